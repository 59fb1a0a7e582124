"""A reset judged against what the platform holds, asked now, not against our own flags alone.

For a provider whose adapter can tell (``Adapter.platform_state``), resetting a subscription:

1. asks the platform what it holds for each of the subscription's devices there (``ask``,
   before any lock: it waits on the network);
2. under the subscription's lock, corrects our flags to it — a device's ``initialized``
   (registered), a service's ``authorized`` — and records what changed in the subscription's
   history (``correct``);
3. plans with the ordinary reconciler, which now sees what the platform holds;
4. judges the entitlement commands by what the platform will hold once the Pending requests
   have arrived (``judge``): an activation of what it holds already, or a cancellation of
   what it does not hold (or what a wanted service still gives), is dropped; what it holds
   that no wanted service gives is cancelled, and what a wanted service gives that it lacks
   is activated.

"In step" then means that the platform agrees. A device is asked about while in use, and
after it was taken away while we still count it registered (unless its CA ID is in use again:
the platform's answer would be about the device in use).
"""

from dataclasses import dataclass

from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from subscriptions.models import InstalledItem, SubscriptionEvent, SubscriptionService

from . import reconciler, registry
from .models import ProvisioningRequest

Op = ProvisioningRequest.Operation
Held = registry.Held
Source = SubscriptionEvent.Source
CORRECTED = "provider_state_corrected"


def devices(provider, subscription_id: int) -> list[InstalledItem]:
    """The subscription's devices at ``provider`` that the platform may hold something for."""
    # A device taken away whose CA ID is in use again, here or elsewhere: the platform's answer
    # would be about the device in use.
    again = InstalledItem.objects.filter(
        kind=OuterRef("kind"), ca_id=OuterRef("ca_id"), removed_at__isnull=True
    )
    return list(
        InstalledItem.objects.filter(
            subscription_id=subscription_id, distributor__provider=provider
        )
        .filter(Q(removed_at__isnull=True) | Q(initialized=True) & ~Exists(again))
        .select_related("distributor")
        .order_by("pk")
    )


def ask(adapter: registry.Adapter, subscription, **asking) -> dict[int, Held] | None:
    """What the platform holds for the subscription's devices there, by device id (None: this
    platform cannot tell). Raises ``PlatformQueryError``. ``asking``: the trigger, its name and
    the process run, recorded with each query."""
    found = devices(adapter.provider, subscription.pk)
    return adapter.platform_state(subscription, found, **asking) if found else {}


@dataclass
class _View:
    """The subscription at the provider as the platform's answer is compared with it."""

    items: dict[int, InstalledItem]  # the devices asked about
    services: list[SubscriptionService]
    ca_ids: reconciler.CAIds

    @classmethod
    def of(cls, provider, subscription_id: int, held: dict[int, Held], ca_ids) -> "_View":
        return cls(
            {i.pk: i for i in InstalledItem.objects.filter(pk__in=held).order_by("pk")},
            list(
                SubscriptionService.objects.filter(
                    subscription_id=subscription_id, distributor__provider=provider
                )
                .select_related("product", "distributor")
                .order_by("pk")
            ),
            ca_ids,
        )

    def cards(self, *, in_use: bool = True) -> list[InstalledItem]:
        return [
            i
            for i in self.items.values()
            if i.kind == InstalledItem.Kind.SMARTCARD and (i.in_use or not in_use)
        ]

    def wanted(self, card: InstalledItem) -> set[str]:
        """The CA IDs the subscription's services want on this card."""
        if not card.in_use:
            return set()
        return {
            ca_id
            for s in self.services
            if s.is_on and s.distributor_id == card.distributor_id
            for ca_id in self.ca_ids[s.product_id]
        }

    def giver(self, card: InstalledItem, ca_id: str, *, on: bool) -> int | None:
        """A service on (or off) at the card's viewing point whose product has ``ca_id``."""
        found = [
            s.pk
            for s in self.services
            if s.is_on == on
            and s.distributor_id == card.distributor_id
            and ca_id in self.ca_ids[s.product_id]
        ]
        return (found[0] if on else found[-1]) if found else None


def correct(
    provider, subscription, held: dict[int, Held], ca_ids, *, by=None, run_id=None
) -> list[str]:
    """Our flags set to what the platform holds, under the subscription's lock; what changed,
    as sentences, recorded in the subscription's history. A service on is authorized when
    every card of its viewing point holds all its CA IDs (``judge`` then sends each card only
    what it lacks); a service off, when a card holds one of its CA IDs that nothing wanted
    gives."""
    view = _View.of(provider, subscription.pk, held, ca_ids)
    notes: list[str] = []
    changes: dict[str, dict[str, bool]] = {"initialized": {}, "authorized": {}}
    for item in view.items.values():
        registered = held[item.pk].registered
        if item.initialized != registered:
            InstalledItem.objects.filter(pk=item.pk).update(initialized=registered)
            item.initialized = registered
            changes["initialized"][str(item.pk)] = registered
            what = "registers" if registered else "does not register"
            notes.append(f"{provider.name} {what} {item.get_kind_display().lower()} {item.ca_id}")
    cards = view.cards()
    now = timezone.now()
    for service in view.services:
        ids = set(view.ca_ids[service.product_id])
        here = [c for c in cards if c.distributor_id == service.distributor_id]
        if not ids or not here:
            continue
        if service.is_on:
            holds = all(ids <= held[c.pk].entitlements for c in here)
        else:
            holds = any((ids - view.wanted(c)) & held[c.pk].entitlements for c in here)
        if service.authorized != holds:
            SubscriptionService.objects.filter(pk=service.pk).update(
                authorized=holds, authorization_date=now, updated_at=now
            )
            service.authorized = holds
            changes["authorized"][str(service.pk)] = holds
            what = "holds" if holds else "does not hold"
            notes.append(
                f"{provider.name} {what} {service.product.code} on {service.distributor.code}"
            )
    if notes:
        SubscriptionEvent.objects.create(
            subscription=subscription,
            action=CORRECTED,
            performed_by=by,
            source=Source.PERSON if by else Source.RUN if run_id else Source.SYSTEM,
            source_name=f"Run #{run_id}" if run_id and not by else "",
            reason=("Reset: " + "; ".join(notes) + ".")[:300],
            changes=changes,
        )
    return notes


def judge(
    provider, subscription_id: int, commands: list, held: dict[int, Held], ca_ids
) -> list[reconciler.Command]:
    """The reconciler's ``commands`` for one subscription, judged by what the platform will
    hold once its Pending requests arrive; in sending order."""
    view = _View.of(provider, subscription_id, held, ca_ids)
    expected = {c.pk: set(held[c.pk].entitlements) for c in view.cards(in_use=False)}
    pending = ProvisioningRequest.objects.filter(
        subscription_id=subscription_id,
        provider=provider,
        state=ProvisioningRequest.State.PENDING,
        operation__in=reconciler.ENTITLEMENT_OPS,
        installed_item_id__in=list(expected),
    ).order_by("pk")
    for item_id, operation, ca_id in pending.values_list("installed_item_id", "operation", "ca_id"):
        if operation == Op.ACTIVATE:
            expected[item_id].add(ca_id)
        else:
            expected[item_id].discard(ca_id)
    wanted = {pk: view.wanted(view.items[pk]) for pk in expected}
    judged = []
    for command in commands:
        holds = expected.get(command.item_id)
        if holds is not None and command.operation == Op.ACTIVATE:
            if command.ca_id in holds:
                continue
            holds.add(command.ca_id)
        elif holds is not None and command.operation == Op.DEACTIVATE:
            if command.ca_id not in holds or command.ca_id in wanted[command.item_id]:
                continue
            holds.discard(command.ca_id)
        judged.append(command)
    for item_id, holds in expected.items():
        card = view.items[item_id]
        for operation, ca_ids_ in (
            (Op.DEACTIVATE, sorted(holds - wanted[item_id])),
            (Op.ACTIVATE, sorted(wanted[item_id] - holds)),
        ):
            for ca_id in ca_ids_:
                judged.append(
                    reconciler.Command(
                        operation,
                        subscription_id,
                        card.distributor_id,
                        item_id,
                        service_id=view.giver(card, ca_id, on=operation == Op.ACTIVATE),
                        ca_id=ca_id,
                    )
                )
    return sorted(judged, key=lambda c: reconciler.OP_ORDER[c.operation])


def plan(
    provider,
    subscription,
    held: dict[int, Held],
    ca_ids,
    *,
    on_problem=None,
    today=None,
    by=None,
    run_id=None,
):
    """Under the subscription's lock: our flags corrected to ``held``, then the commands that
    bring the platform in step with the subscription; (commands, corrections)."""
    notes = correct(provider, subscription, held, ca_ids, by=by, run_id=run_id)
    commands = list(
        reconciler.plan(provider, [subscription.pk], on_problem=on_problem, today=today)
    )
    return judge(provider, subscription.pk, commands, held, ca_ids), notes
