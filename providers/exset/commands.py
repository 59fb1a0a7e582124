"""EXSET SMS's commands (seed 002): which the Process Provisioning Requests run creates, and
their parameters.

The reconciler's wanted-vs-held model gives most of them as it is:

- ADD_SUBSCRIPTION: an on service not authorized (usage services never: the adapter's
  ``provisions_usage_services`` leaves them out in the reconciler's SQL);
- REMOVE_SUBSCRIPTION: an off service that is authorized (or the services of a card taken
  away);
- RENEW_SUBSCRIPTION: an on, authorized service whose authorization date plus the provider's
  ``renewal_days`` is today or earlier (``renewals``, shared with Conax SMS);

and ``rewrite`` turns its pairings into EXSET's device commands:

- CHANGE_DEVICE: on a viewing point with an on service, a new smartcard not initialized, a
  registered set-top box, and a smartcard taken away that is still initialized and in use on
  no other subscription — one CHANGE_DEVICE (replaced_ca_id, new_ca_id) instead of pairing
  the new card, cancelling the services on the old one and activating them on the new one.
  The request is a pairing that registers the new card and forgets the old one (its items):
  accepted, the new card is initialized and the old one no longer (its entitlements now count
  as held on the new card); rejected, nothing changes and the next run sends it again;
  Pending, the new card counts as registered, and the old card's cancellations are dropped.
  The cancellations of services switched off meanwhile go to the new card, after it.
- PAIR_UNPAIR_DEVICE_RECEIVER: PAIR per new device, a card with a decoder (a new one if
  there is one, else the point's); UNPAIR per set-top box taken away that EXSET still pairs
  (the reconciler's "forgotten box": a create pairing that leaves it out).
"""

from collections import defaultdict
from dataclasses import dataclass, replace

from dateutil.relativedelta import relativedelta
from django.db import connection

from catalogue.models import Distributor
from core import rawsql
from providers import provider_settings, renewals
from providers.models import ProvisioningRequest
from providers.parameters import Context, standard_parameters
from providers.reconciler import Command
from subscriptions.models import InstalledItem

Op = ProvisioningRequest.Operation
CARD, BOX = InstalledItem.Kind.SMARTCARD, InstalledItem.Kind.STB

ADD = "ADD_SUBSCRIPTION"
REMOVE = "REMOVE_SUBSCRIPTION"
RENEW = "RENEW_SUBSCRIPTION"
CHANGE_DEVICE = "CHANGE_DEVICE"
PAIR_UNPAIR = "PAIR_UNPAIR_DEVICE_RECEIVER"
PAIR, UNPAIR = "PAIR", "UNPAIR"

COMMANDS = {
    Op.ACTIVATE: ADD,
    Op.DEACTIVATE: REMOVE,
    Op.RENEW: RENEW,
    Op.CREATE_PAIRING: PAIR_UNPAIR,
    Op.ADD_TO_PAIRING: PAIR_UNPAIR,
}
PAIRING_OPS = (Op.CREATE_PAIRING, Op.ADD_TO_PAIRING)


# --- Renewals -----------------------------------------------------------------------------------


def renewal_period(provider) -> relativedelta:
    return relativedelta(days=int(provider_settings.parameter(provider, "renewal_days")))


def renewal_commands(provider, subscriptions, today, ca_ids) -> list[Command]:
    """RENEW_SUBSCRIPTION due ``today`` (the adapter's ``extra_commands``)."""
    period = renewal_period(provider)
    return renewals.renewals(provider, subscriptions, today, ca_ids, period, termed_only=True)


# --- Devices: CHANGE_DEVICE and PAIR / UNPAIR ---------------------------------------------------


@dataclass(frozen=True)
class Device:
    id: int
    subscription_id: int
    distributor_id: int
    kind: str
    initialized: bool
    removed: bool
    registered: bool  # initialized, or named by a Pending pairing (the reconciler's view)
    elsewhere: bool  # a card taken away whose CA ID is in use on another subscription
    replaced: bool  # a card taken away that a Pending CHANGE_DEVICE replaces


def _devices(provider_id: int, subscription_ids: list[int]) -> list[Device]:
    """The devices in use, and the cards taken away, of these subscriptions at the provider's
    viewing points: one statement per chunk that has pairings or cancellations."""
    item, request = rawsql.table(InstalledItem), rawsql.table(ProvisioningRequest)
    through = ProvisioningRequest.items.through
    members, by_request, by_item = (
        rawsql.table(through),
        rawsql.quote(through._meta.get_field("provisioningrequest").column),
        rawsql.quote(through._meta.get_field("installeditem").column),
    )
    pending = (
        f"EXISTS (SELECT 1 FROM {members} m JOIN {request} pr ON pr.id = m.{by_request} "  # noqa: S608 (names from the models)
        f"WHERE m.{by_item} = it.id AND pr.state = '{ProvisioningRequest.State.PENDING}' "
        "AND pr.provider_id = %s AND {which})"
    )
    pairing = f"pr.operation IN ('{Op.CREATE_PAIRING}', '{Op.ADD_TO_PAIRING}')"
    params: list = [provider_id, provider_id, CHANGE_DEVICE, provider_id]
    sql = (
        "SELECT it.id, it.subscription_id, it.distributor_id, it.kind, it.initialized, "  # noqa: S608 (names from the models, constants)
        "it.removed_at IS NOT NULL, "
        f"it.initialized OR {pending.format(which=pairing)}, "
        f"it.removed_at IS NOT NULL AND EXISTS (SELECT 1 FROM {item} o WHERE o.kind = it.kind "
        "AND o.ca_id = it.ca_id AND o.removed_at IS NULL "
        "AND o.subscription_id <> it.subscription_id), "
        # Replaced: the card a Pending CHANGE_DEVICE moves away from (it is addressed to the
        # new one, which may itself be taken away meanwhile).
        "it.removed_at IS NOT NULL AND "
        f"{pending.format(which='pr.command = %s AND pr.installed_item_id <> it.id')} "
        f"FROM {item} it WHERE it.distributor_id IN (SELECT id FROM "
        f"{rawsql.table(Distributor)} WHERE provider_id = %s) "
        f"AND {rawsql.among('it.subscription_id', subscription_ids, params)} "
        f"AND (it.removed_at IS NULL OR it.kind = '{CARD}') "
        "ORDER BY it.id"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return [
            Device(pk, sub, dist, kind, *(bool(flag) for flag in flags))
            for pk, sub, dist, kind, *flags in cursor.fetchall()
        ]


def rewrite(provider, planned: dict[int, list[Command]]) -> dict[int, list[Command]]:
    """The adapter's ``rewrite_commands``: a chunk's pairings as EXSET's device commands, and
    the cancellations and activations a CHANGE_DEVICE moves with the card left out."""
    concerned = sorted(
        sub_id
        for sub_id, commands in planned.items()
        if any(c.operation in PAIRING_OPS or c.operation == Op.DEACTIVATE for c in commands)
    )
    if not concerned:
        return planned
    points: dict[tuple[int, int], list[Device]] = defaultdict(list)
    by_id: dict[int, Device] = {}
    for found in _devices(provider.pk, concerned):
        points[(found.subscription_id, found.distributor_id)].append(found)
        by_id[found.id] = found
    for sub_id in concerned:
        planned[sub_id] = _rewritten(planned[sub_id], points, by_id)
    return planned


def _rewritten(commands: list[Command], points: dict, by_id: dict[int, Device]) -> list[Command]:
    moved: dict[int, int] = {}  # old card -> new card, by this run's CHANGE_DEVICEs
    out: list[Command] = []
    for command in commands:
        if command.operation in PAIRING_OPS:
            out += _device_commands(
                command, points[(command.subscription_id, command.distributor_id)], moved
            )
    activations = {
        (c.service_id, c.ca_id, c.item_id) for c in commands if c.operation == Op.ACTIVATE
    }
    carried = set()  # (service, CA ID, new card): held on the old card, moved with it
    for command in commands:
        if command.operation == Op.DEACTIVATE and command.item_id in moved:
            key = (command.service_id, command.ca_id, moved[command.item_id])
            if key in activations:
                carried.add(key)
    for command in commands:
        if command.operation in PAIRING_OPS:
            continue
        if command.operation == Op.DEACTIVATE:
            card = by_id.get(command.item_id)
            if card is not None and card.replaced:
                continue  # a Pending CHANGE_DEVICE moves it to the new card
            if command.item_id in moved:
                new = moved[command.item_id]
                if (command.service_id, command.ca_id, new) not in carried:
                    # Switched off: cancelled on the card that holds it after the change.
                    out.append(replace(command, item_id=new))
                continue
        if command.operation == Op.ACTIVATE and (
            (command.service_id, command.ca_id, command.item_id) in carried
        ):
            continue
        out.append(command)
    return out


def _device_commands(command: Command, point: list[Device], moved: dict[int, int]) -> list[Command]:
    """One reconciler pairing of a viewing point as EXSET's commands: UNPAIR per box taken
    away, CHANGE_DEVICE per new card replacing one taken away, PAIR per other new device."""
    sub_id, dist_id = command.subscription_id, command.distributor_id
    out = [
        Command(Op.CREATE_PAIRING, sub_id, dist_id, gone, forget_ids=(gone,))
        for gone in command.forget_ids
    ]
    in_use = [d for d in point if not d.removed]
    members = set(command.member_ids)
    new_cards = [d for d in in_use if d.kind == CARD and d.id in members and not d.registered]
    new_boxes = [d for d in in_use if d.kind == BOX and d.id in members and not d.registered]
    boxes = [d for d in in_use if d.kind == BOX]
    old_cards = [
        d
        for d in point
        if d.removed and d.kind == CARD and d.initialized and not (d.elsewhere or d.replaced)
    ]
    if any(box.registered for box in boxes):
        while new_cards and old_cards:
            new, old = new_cards.pop(0), old_cards.pop()  # the latest taken away first
            moved[old.id] = new.id
            out.append(
                Command(
                    Op.CREATE_PAIRING,
                    sub_id,
                    dist_id,
                    new.id,
                    member_ids=(new.id,),
                    forget_ids=(old.id,),
                    command=CHANGE_DEVICE,
                )
            )
    for card in new_cards:
        box = new_boxes.pop(0) if new_boxes else (boxes[0] if boxes else None)
        pair = (card.id,) if box is None else (card.id, box.id)
        out.append(Command(Op.CREATE_PAIRING, sub_id, dist_id, card.id, member_ids=pair))
    cards = sorted((d for d in in_use if d.kind == CARD), key=lambda d: (not d.registered, d.id))
    for box in new_boxes:
        card = cards[0] if cards else None
        pair = (box.id,) if card is None else (card.id, box.id)
        addressed = box if card is None else card
        out.append(Command(Op.CREATE_PAIRING, sub_id, dist_id, addressed.id, member_ids=pair))
    return out


# --- Parameters ---------------------------------------------------------------------------------


def _of_kind(ctx: Context, ids, kind: str) -> str | None:
    return next((ctx.items[i]["ca_id"] for i in ids if ctx.items[i]["kind"] == kind), None)


def parameters(command: Command, ctx: Context) -> dict:
    """The contract's parameters of each command (the adapter's ``parameters_for``)."""
    if command.operation not in PAIRING_OPS:
        if command.operation == Op.RENEW:
            # The same parameters as the Add it renews.
            command = replace(command, operation=Op.ACTIVATE)
        return standard_parameters(command, ctx)
    params = {
        "subscription": ctx.subscriptions[command.subscription_id],
        "distributor": ctx.distributors[command.distributor_id],
    }
    if command.command == CHANGE_DEVICE:
        params["replaced_ca_id"] = ctx.items[command.forget_ids[0]]["ca_id"]
        params["new_ca_id"] = ctx.items[command.item_id]["ca_id"]
        return params
    devices = command.member_ids or command.forget_ids
    params["action"] = PAIR if command.member_ids else UNPAIR
    params["card_ca_id"] = _of_kind(ctx, devices, CARD)
    params["decoder_ca_id"] = _of_kind(ctx, devices, BOX)
    return params
