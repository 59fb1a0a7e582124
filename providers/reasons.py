"""Why the reconciler plans each command, in words, for previews: "Activate SPORT: service
Effective, not authorized at the provider".

The words follow the reconciler's model (``reconciler``'s docstring): an activation is
*wanted* and not *held* (the service not authorized, or the card not initialized, or a
deactivation still Pending), a deactivation *held* and not *wanted* (the service no longer on,
or the card removed), a pairing has devices the provider has not registered. What a command's
parameters are built from (``parameters.Context``) names the product and the devices; the
flags behind the decision — service state and authorization, card initialization and removal
— come by one statement per chunk of commands, never one per subscription.
"""

from dataclasses import dataclass
from datetime import datetime

from django.db import connection
from django.utils import timezone

from core import rawsql
from subscriptions.models import InstalledItem, SubscriptionService

from .operations import Operation as Op
from .parameters import Context
from .reconciler import PAIRING_OPS, Command

VERBS = {Op.ACTIVATE: "Activate", Op.DEACTIVATE: "Deactivate", Op.RENEW: "Renew"}
DEVICE_NAMES = {InstalledItem.Kind.SMARTCARD: "card", InstalledItem.Kind.STB: "set-top box"}


@dataclass(frozen=True)
class _Service:
    state: str
    authorized: bool
    authorization_date: datetime | None


@dataclass(frozen=True)
class _Device:
    initialized: bool
    removed: bool


def explain(commands: list[Command], ctx: Context) -> list[str]:
    """One sentence per command, in order: what it does and why."""
    if not commands:
        return []
    services, devices = _facts(commands)
    return [_why(c, ctx, services, devices) for c in commands]


def _facts(commands: list[Command]) -> tuple[dict[int, _Service], dict[int, _Device]]:
    """The commands' services and devices, by one statement with id arrays: two ORM look-ups
    binding thousands of ids each slowed the whole preview markedly (docs/benchmarks.md)."""
    service_ids = sorted({c.service_id for c in commands if c.service_id})
    item_ids = {c.item_id for c in commands}
    item_ids |= {m for c in commands for m in c.member_ids + c.forget_ids}
    params: list = []
    branches = []
    if service_ids:
        branches.append(
            "SELECT 's', id, state, authorized, authorization_date "  # noqa: S608 (names from the model)
            f"FROM {rawsql.table(SubscriptionService)} "
            f"WHERE {rawsql.among('id', service_ids, params)}"
        )
    # A device's removal rides in the state's column: a UNION's columns keep one type each.
    branches.append(
        "SELECT 'i', id, CASE WHEN removed_at IS NULL THEN NULL ELSE 'removed' END, "  # noqa: S608 (names from the model)
        f"initialized, NULL FROM {rawsql.table(InstalledItem)} "
        f"WHERE {rawsql.among('id', sorted(item_ids), params)}"
    )
    authorized_at = SubscriptionService._meta.get_field("authorization_date")
    services: dict[int, _Service] = {}
    devices: dict[int, _Device] = {}
    with connection.cursor() as cursor:
        cursor.execute(" UNION ALL ".join(branches), params)
        for what, pk, state, flag, when in cursor.fetchall():
            if what == "s":
                services[pk] = _Service(state, bool(flag), rawsql.convert(authorized_at, when))
            else:
                devices[pk] = _Device(initialized=bool(flag), removed=state is not None)
    return services, devices


def _device(ctx: Context, item_id: int | None) -> str:
    item = ctx.items.get(item_id) if item_id else None
    if item is None:
        return "a device"
    return f"{DEVICE_NAMES.get(item['kind'], item['kind'])} {item['serial_number']}"


def _listed(names: list[str]) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def _state(service: _Service) -> str:
    return SubscriptionService.State(service.state).label


def _why(
    command: Command, ctx: Context, services: dict[int, _Service], devices: dict[int, _Device]
) -> str:
    if command.operation in PAIRING_OPS:
        return _why_pairing(command, ctx, devices)
    verb = VERBS.get(command.operation)
    service = services.get(command.service_id) if command.service_id else None
    if verb is None or service is None:
        return Op(command.operation).label if command.operation in Op.values else "Other"
    what = f"{verb} {ctx.products.get(command.service_id) or command.ca_id}"
    device = devices.get(command.item_id, _Device(initialized=True, removed=False))
    card = _device(ctx, command.item_id)
    if command.operation == Op.ACTIVATE:
        if not service.authorized:
            held = "not authorized at the provider"
        elif not device.initialized:
            held = f"{card} not initialized at the provider"
        else:
            held = "a deactivation is still Pending"
        return f"{what}: service {_state(service)}, {held}"
    if command.operation == Op.DEACTIVATE:
        if device.removed:
            gone = f"{card} removed"
        elif service.state not in SubscriptionService.ON_STATES:
            gone = f"service {_state(service)}"
        else:
            gone = "a usage service, not provisioned at this provider"
        held = "still authorized" if service.authorized else "an activation is still Pending"
        return f"{what}: {gone}, {held}"
    since = service.authorization_date
    since_text = f" since {timezone.localdate(since):%Y-%m-%d}" if since else ""
    return f"{what}: service {_state(service)}, authorized{since_text}: due for renewal"


def _why_pairing(command: Command, ctx: Context, devices: dict[int, _Device]) -> str:
    new = [
        _device(ctx, m)
        for m in command.member_ids
        if not devices.get(m, _Device(initialized=False, removed=False)).initialized
    ]
    gone = [_device(ctx, f) for f in command.forget_ids]
    if not command.member_ids:
        label = "Unpair"
    elif command.command:
        label = command.command.replace("_", " ").capitalize()
    else:
        label = Op(command.operation).label
    reasons = []
    if new:
        reasons.append(f"{_listed(new)} not initialized at the provider")
    if gone:
        reasons.append(f"{_listed(gone)} taken away")
    if command.operation == Op.ADD_TO_PAIRING and command.anchor_id:
        reasons.append(f"joins the pairing of {_device(ctx, command.anchor_id)}")
    if not reasons:
        reasons.append("its devices paired anew")
    return f"{label}: {'; '.join(reasons)}"
