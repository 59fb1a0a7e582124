"""Subscription, service and installed-item actions: the only way subscription state changes.

Every action
  1. locks the subscription row, so two actions on one subscription never interleave;
  2. validates, raising ``ActionError`` with a message an agent can act on, before writing;
  3. changes state in one transaction;
  4. records a ``SubscriptionEvent`` and sends ``action_performed`` once, inside the
     transaction, naming exactly which services switched on / off and which items came / went.

Views, admin classes, API serializers and tasks call these functions and nothing else.
"""

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.utils import timezone

from catalogue.models import Distributor, Product, ProductCAId, SubscriptionType
from core import fast_path
from core.db import generic_plans_in_transaction, realtime_transaction

from . import fast_path as switch_statements
from .models import (
    CustomerAccount,
    InstalledItem,
    Pairing,
    Subscription,
    SubscriptionEvent,
    SubscriptionService,
)
from .signals import ActionChange, action_performed

MAX_VIEWING_POINTS = 4

SubState = Subscription.State
SvcState = SubscriptionService.State


class ActionError(Exception):
    """An action that is not allowed in the current state. The message is shown to the user."""

    def __init__(self, message: str, code: str = "invalid"):
        super().__init__(message)
        self.message = message
        self.code = code


@dataclass(frozen=True)
class ItemSpec:
    """A device to install: what an agent types in when adding a smartcard or a set-top box."""

    kind: str
    serial_number: str
    ca_id: str
    distributor: Distributor
    product_code: str = ""
    description: str = ""

    @classmethod
    def from_data(cls, data: dict) -> "ItemSpec":
        """From a form's or serializer's cleaned data (kind, serial, CA ID, distributor, …)."""
        return cls(
            data["kind"],
            data["serial_number"],
            data["ca_id"],
            data["distributor"],
            data.get("product_code", ""),
            data.get("description", ""),
        )


# --- Subscription life cycle --------------------------------------------------------------------


@dataclass(frozen=True)
class Transition:
    label: str
    from_states: frozenset
    to_state: str
    # Which service states move, and where to. Services in other states stay as they are.
    service_from: frozenset
    service_to: str


TRANSITIONS: dict[str, Transition] = {
    "activate": Transition(
        "activate",
        frozenset({SubState.NOT_EFFECTIVE}),
        SubState.EFFECTIVE,
        frozenset({SvcState.NOT_EFFECTIVE}),
        SvcState.EFFECTIVE,
    ),
    "deactivate": Transition(
        "deactivate",
        frozenset({SubState.EFFECTIVE, SubState.SHORT_TERM_EFFECTIVE}),
        SubState.NOT_EFFECTIVE,
        frozenset({SvcState.EFFECTIVE, SvcState.SHORT_TERM_EFFECTIVE}),
        SvcState.NOT_EFFECTIVE,
    ),
    "rest": Transition(
        "rest",
        frozenset({SubState.EFFECTIVE}),
        SubState.IN_RESTING,
        frozenset({SvcState.EFFECTIVE}),
        SvcState.IN_RESTING,
    ),
    "end_resting": Transition(
        "end resting",
        frozenset({SubState.IN_RESTING}),
        SubState.EFFECTIVE,
        frozenset({SvcState.IN_RESTING}),
        SvcState.EFFECTIVE,
    ),
    "short_term_activation": Transition(
        "short-term activate",
        frozenset({SubState.NOT_EFFECTIVE}),
        SubState.SHORT_TERM_EFFECTIVE,
        frozenset({SvcState.NOT_EFFECTIVE}),
        SvcState.SHORT_TERM_EFFECTIVE,
    ),
    "end_short_term_activation": Transition(
        "end the short-term activation of",
        frozenset({SubState.SHORT_TERM_EFFECTIVE}),
        SubState.NOT_EFFECTIVE,
        frozenset({SvcState.SHORT_TERM_EFFECTIVE}),
        SvcState.NOT_EFFECTIVE,
    ),
    "short_term_deactivation": Transition(
        "short-term deactivate",
        frozenset({SubState.EFFECTIVE}),
        SubState.SHORT_TERM_NOT_EFFECTIVE,
        frozenset({SvcState.EFFECTIVE}),
        SvcState.SHORT_TERM_NOT_EFFECTIVE,
    ),
    "end_short_term_deactivation": Transition(
        "end the short-term deactivation of",
        frozenset({SubState.SHORT_TERM_NOT_EFFECTIVE}),
        SubState.EFFECTIVE,
        frozenset({SvcState.SHORT_TERM_NOT_EFFECTIVE}),
        SvcState.EFFECTIVE,
    ),
}

# The state a service gets when it is added to (or started on) a subscription in a given state.
SERVICE_STATE_FOR = {
    SubState.EFFECTIVE: SvcState.EFFECTIVE,
    SubState.SHORT_TERM_EFFECTIVE: SvcState.SHORT_TERM_EFFECTIVE,
    SubState.NOT_EFFECTIVE: SvcState.NOT_EFFECTIVE,
    SubState.SHORT_TERM_NOT_EFFECTIVE: SvcState.SHORT_TERM_NOT_EFFECTIVE,
    SubState.IN_RESTING: SvcState.IN_RESTING,
}

# Services in these states are part of the subscription's current set; the others are history.
LIVE_SERVICE_STATES = frozenset(
    set(SvcState) - {SvcState.SWAPPED, SvcState.REGRETTED, SvcState.REMOVED, SvcState.CANCELLED}
)


def _states(states) -> str:
    labels = [SubState(s).label for s in SubState if s in states]
    return " or ".join(labels)


def _lock(subscription: Subscription) -> Subscription:
    """Re-read the subscription under a row lock; the caller's copy may be stale."""
    return Subscription.objects.select_for_update().get(pk=subscription.pk)


def _ensure_open(subscription: Subscription, doing: str) -> None:
    if subscription.state == SubState.TERMINATED:
        raise ActionError(
            f"Subscription {subscription.number} is terminated; it cannot {doing}.",
            code="terminated",
        )


def _finish(change: ActionChange) -> ActionChange:
    """Record the change's event and provision it."""
    _event(change).save()
    return _provision(change)


def _event(change: ActionChange) -> SubscriptionEvent:
    return SubscriptionEvent(
        subscription=change.subscription,
        action=change.action,
        performed_by=change.performed_by,
        source=_source(change),
        reason=change.reason[:300],
        changes=change.summary(),
    )


def _source(change: ActionChange) -> str:
    """Who did it: a person, or the CA whose rejection is rolled back, or the system."""
    if change.performed_by is not None:
        return SubscriptionEvent.Source.PERSON
    if change.action == "provisioning_rollback":
        return SubscriptionEvent.Source.ANSWER
    return SubscriptionEvent.Source.SYSTEM


def _provision(change: ActionChange) -> ActionChange:
    action_performed.send(sender=Subscription, change=change)
    return change


def _set_state(service: SubscriptionService, state: str) -> None:
    service.state = state
    service.save(update_fields=["state", "updated_at"])


@realtime_transaction
def _transition(
    name: str, subscription: Subscription, *, by: User | None = None, reason: str = ""
) -> ActionChange:
    t = TRANSITIONS[name]
    sub = _lock(subscription)
    _ensure_open(sub, f"{t.label} it")
    if sub.state not in t.from_states:
        raise ActionError(
            f"Cannot {t.label} subscription {sub.number}: it is {sub.get_state_display()}; "
            f"this action needs it {_states(t.from_states)}.",
            code="illegal_transition",
        )
    change = ActionChange(name, sub, performed_by=by, reason=reason)
    sub.state = t.to_state
    sub.save(update_fields=["state", "updated_at"])
    for service in sub.services.filter(state__in=t.service_from).select_related(
        "product", "distributor"
    ):
        was_on = service.is_on
        _set_state(service, t.service_to)
        if service.is_on and not was_on:
            change.services_on.append(service)
        elif was_on and not service.is_on:
            change.services_off.append(service)
    return _finish(change)


def activate(subscription, **kw) -> ActionChange:
    return _transition("activate", subscription, **kw)


def deactivate(subscription, **kw) -> ActionChange:
    return _transition("deactivate", subscription, **kw)


def rest(subscription, **kw) -> ActionChange:
    return _transition("rest", subscription, **kw)


def end_resting(subscription, **kw) -> ActionChange:
    return _transition("end_resting", subscription, **kw)


def short_term_activation(subscription, **kw) -> ActionChange:
    return _transition("short_term_activation", subscription, **kw)


def end_short_term_activation(subscription, **kw) -> ActionChange:
    return _transition("end_short_term_activation", subscription, **kw)


def short_term_deactivation(subscription, **kw) -> ActionChange:
    return _transition("short_term_deactivation", subscription, **kw)


def end_short_term_deactivation(subscription, **kw) -> ActionChange:
    return _transition("end_short_term_deactivation", subscription, **kw)


@realtime_transaction
def terminate(subscription, *, by: User | None = None, reason: str = "") -> ActionChange:
    """End the subscription: every current service is cancelled and every device returned."""
    sub = _lock(subscription)
    _ensure_open(sub, "be terminated again")
    change = ActionChange("terminate", sub, performed_by=by, reason=reason)
    now = timezone.now()
    for service in sub.services.filter(state__in=LIVE_SERVICE_STATES).select_related(
        "product", "distributor"
    ):
        was_on = service.is_on
        _set_state(service, SvcState.CANCELLED)
        if was_on:
            change.services_off.append(service)
    for item in sub.installed_items.filter(removed_at__isnull=True):
        item.removed_at = now
        item.save(update_fields=["removed_at"])
        change.items_removed.append(item)
    sub.pairings.filter(cancelled_at__isnull=True).update(cancelled_at=now)
    sub.state = SubState.TERMINATED
    sub.terminated_at = now
    sub.save(update_fields=["state", "terminated_at", "updated_at"])
    return _finish(change)


# --- Validation of what a subscription is distributed to ----------------------------------------


def _in_use_distributors(sub: Subscription) -> set[int]:
    services = sub.services.filter(state__in=LIVE_SERVICE_STATES).values_list(
        "distributor_id", flat=True
    )
    items = sub.installed_items.filter(removed_at__isnull=True).values_list(
        "distributor_id", flat=True
    )
    return set(services) | set(items)


def _check_product(product: Product, distributor: Distributor) -> None:
    if not distributor.allowed_products.filter(pk=product.pk).exists():
        raise ActionError(
            f"Distributor {distributor.code} does not carry {product.name} ({product.code}).",
            code="product_not_allowed",
        )
    provisioned = product.provisioned_products()
    if not provisioned:
        raise ActionError(f"Bundle {product.code} has no components.", code="empty_bundle")
    with_ca_id = set(
        ProductCAId.objects.filter(
            provider_id=distributor.provider_id, product__in=provisioned
        ).values_list("product_id", flat=True)
    )
    missing = [p.code for p in provisioned if p.pk not in with_ca_id]
    if missing:
        raise ActionError(
            f"{', '.join(missing)} has no CA ID at provider {distributor.provider.name}; "
            "give it one before selling it on this distributor.",
            code="missing_ca_id",
        )


def _check_viewing_points(sub: Subscription) -> None:
    """Run after the change is written (inside the transaction): the result must be legal."""
    in_use = _in_use_distributors(sub)
    if len(in_use) > MAX_VIEWING_POINTS:
        raise ActionError(
            f"Subscription {sub.number} would have {len(in_use)} viewing points; "
            f"at most {MAX_VIEWING_POINTS} are allowed.",
            code="too_many_viewing_points",
        )
    for distributor in Distributor.objects.filter(pk__in=in_use).select_related(
        "required_distributor"
    ):
        required = distributor.required_distributor
        if required is not None and required.pk not in in_use:
            raise ActionError(
                f"Distributor {distributor.code} requires {required.code} to be in use on "
                f"subscription {sub.number}.",
                code="required_distributor",
            )


def _check_device_free(spec: ItemSpec) -> None:
    kind_label = InstalledItem.Kind(spec.kind).label
    for field, value in (("serial_number", spec.serial_number), ("ca_id", spec.ca_id)):
        other = (
            InstalledItem.objects.filter(kind=spec.kind, removed_at__isnull=True, **{field: value})
            .select_related("subscription")
            .first()
        )
        if other is not None:
            what = "serial number" if field == "serial_number" else "CA ID"
            raise ActionError(
                f"{kind_label} with {what} {value} is already installed on subscription "
                f"{other.subscription.number}.",
                code="device_in_use",
            )


def _install(sub: Subscription, spec: ItemSpec) -> InstalledItem:
    if spec.kind not in InstalledItem.Kind.values:
        raise ActionError(f"Unknown device kind '{spec.kind}'.", code="invalid_item")
    if not spec.serial_number or not spec.ca_id:
        raise ActionError("A device needs a serial number and a CA ID.", code="invalid_item")
    _check_device_free(spec)
    try:
        # The check above names the other subscription; the unique constraint is the backstop
        # when two subscriptions take the same device at the same moment.
        with transaction.atomic():
            item = InstalledItem.objects.create(
                subscription=sub,
                kind=spec.kind,
                serial_number=spec.serial_number,
                ca_id=spec.ca_id,
                product_code=spec.product_code,
                description=spec.description,
                distributor=spec.distributor,
            )
    except IntegrityError:
        raise ActionError(
            f"{InstalledItem.Kind(spec.kind).label} {spec.serial_number} was just installed on "
            "another subscription.",
            code="device_in_use",
        ) from None
    pairing = sub.pairings.filter(distributor=spec.distributor, cancelled_at__isnull=True).first()
    if pairing is None:
        pairing = Pairing.objects.create(subscription=sub, distributor=spec.distributor)
    pairing.items.add(item)
    return item


def _uninstall(item: InstalledItem, now) -> None:
    item.removed_at = now
    item.save(update_fields=["removed_at", "replaced_by"])
    for pairing in item.pairings.filter(cancelled_at__isnull=True):
        if not pairing.items.filter(removed_at__isnull=True).exists():
            pairing.cancelled_at = now
            pairing.save(update_fields=["cancelled_at"])


def _check_provider_enabled(distributor: Distributor) -> None:
    if not distributor.provider.enabled:
        raise ActionError(
            f"Provider {distributor.provider.name} of distributor {distributor.code} is disabled.",
            code="provider_disabled",
        )


# --- Becoming a subscriber and changing distribution --------------------------------------------


def become_subscriber(
    account: CustomerAccount,
    subscription_type: SubscriptionType,
    services: list[tuple[Product, Distributor]],
    items: list[ItemSpec] = (),
    *,
    number: str | None = None,
    created_at=None,
    by: User | None = None,
    reason: str = "",
) -> ActionChange:
    """Create an effective subscription with its services and devices."""
    if not services:
        raise ActionError("A subscription needs at least one service.", code="no_services")
    with transaction.atomic():
        sub = Subscription.objects.create(
            number=number or uuid.uuid4().hex,  # replaced by S<id> below
            account=account,
            subscription_type=subscription_type,
            state=SubState.EFFECTIVE,
            created_at=created_at or timezone.now(),
        )
        if not number:
            sub.number = f"S{sub.pk:08d}"
            sub.save(update_fields=["number"])
        change = ActionChange("become_subscriber", sub, performed_by=by, reason=reason)
        for spec in items:
            _check_provider_enabled(spec.distributor)
            change.items_added.append(_install(sub, spec))
        for product, distributor in services:
            _check_provider_enabled(distributor)
            _check_product(product, distributor)
            change.services_on.append(
                SubscriptionService.objects.create(
                    subscription=sub,
                    product=product,
                    distributor=distributor,
                    state=SvcState.EFFECTIVE,
                )
            )
        _check_no_duplicates(sub)
        _check_viewing_points(sub)
        return _finish(change)


def _check_no_duplicates(sub: Subscription) -> None:
    seen = set()
    for product_id, distributor_id, code, dist in sub.services.filter(
        state__in=LIVE_SERVICE_STATES
    ).values_list("product_id", "distributor_id", "product__code", "distributor__code"):
        if (product_id, distributor_id) in seen:
            raise ActionError(
                f"Subscription {sub.number} already has {code} on distributor {dist}.",
                code="duplicate_service",
            )
        seen.add((product_id, distributor_id))


@realtime_transaction
def change_distribution(
    subscription: Subscription,
    from_distributor: Distributor,
    to_distributor: Distributor,
    *,
    by: User | None = None,
    reason: str = "",
) -> ActionChange:
    """Move a viewing point: its services and devices leave one distributor for another.

    The rows on the old distributor end (services Removed, items removed) and new rows start on
    the new one, so what the provider holds is tracked per distributor.
    """
    sub = _lock(subscription)
    _ensure_open(sub, "change its distribution")
    if from_distributor.pk == to_distributor.pk:
        raise ActionError("Choose a different distributor to move to.", code="same_distributor")
    in_use = _in_use_distributors(sub)
    if from_distributor.pk not in in_use:
        raise ActionError(
            f"Distributor {from_distributor.code} is not in use on subscription {sub.number}.",
            code="distributor_not_in_use",
        )
    if to_distributor.pk in in_use:
        raise ActionError(
            f"Distributor {to_distributor.code} is already in use on subscription {sub.number}.",
            code="distributor_in_use",
        )
    _check_provider_enabled(to_distributor)
    change = ActionChange("change_distribution", sub, performed_by=by, reason=reason)
    now = timezone.now()
    for service in sub.services.filter(
        distributor=from_distributor, state__in=LIVE_SERVICE_STATES
    ).select_related("product"):
        _check_product(service.product, to_distributor)
        moved = SubscriptionService.objects.create(
            subscription=sub,
            product=service.product,
            distributor=to_distributor,
            state=service.state,
        )
        if service.is_on:
            change.services_off.append(service)
            change.services_on.append(moved)
        _set_state(service, SvcState.REMOVED)
    for item in list(sub.installed_items.filter(distributor=from_distributor, removed_at=None)):
        _uninstall(item, now)
        change.items_removed.append(item)
        spec = ItemSpec(
            item.kind,
            item.serial_number,
            item.ca_id,
            to_distributor,
            item.product_code,
            item.description,
        )
        new_item = _install(sub, spec)
        item.replaced_by = new_item
        item.save(update_fields=["replaced_by"])
        change.items_added.append(new_item)
    _check_viewing_points(sub)
    return _finish(change)


# --- Service actions ----------------------------------------------------------------------------
# Each takes the service or its id (the Web API's): it is read again under a lock first thing.


def _lock_service(
    service: SubscriptionService | int,
) -> tuple[Subscription, SubscriptionService]:
    """The service (or the service of this id) and its subscription re-read, both under row
    locks, with its product, distributor and the distributor's provider (not locked: every
    action on them would queue behind it). The provider comes along because provisioning the
    action needs it (``providers.engine.providers_touched``).
    Raises ``SubscriptionService.DoesNotExist``."""
    pk = service if isinstance(service, int) else service.pk
    service = (
        SubscriptionService.objects.select_related(
            "subscription", "product", "distributor__provider"
        )
        .select_for_update(of=("self", "subscription"))
        .get(pk=pk)
    )
    return service.subscription, service


@realtime_transaction
def add_service(
    subscription: Subscription,
    product: Product,
    distributor: Distributor,
    *,
    by: User | None = None,
    reason: str = "",
) -> ActionChange:
    sub = _lock(subscription)
    _ensure_open(sub, "get new services")
    _check_provider_enabled(distributor)
    _check_product(product, distributor)
    change = ActionChange("add_service", sub, performed_by=by, reason=reason)
    service = SubscriptionService.objects.create(
        subscription=sub,
        product=product,
        distributor=distributor,
        state=SERVICE_STATE_FOR[sub.state],
    )
    if service.is_on:
        change.services_on.append(service)
    _check_no_duplicates(sub)
    _check_viewing_points(sub)
    return _finish(change)


@realtime_transaction
def remove_service(service, *, by: User | None = None, reason: str = "") -> ActionChange:
    sub, service = _lock_service(service)
    _ensure_open(sub, "change its services")
    if service.state not in LIVE_SERVICE_STATES:
        raise ActionError(
            f"{service.product.code} is {service.get_state_display()}; "
            "only a current service can be removed.",
            code="illegal_transition",
        )
    change = ActionChange("remove_service", sub, performed_by=by, reason=reason)
    if service.is_on:
        change.services_off.append(service)
    _set_state(service, SvcState.REMOVED)
    _check_viewing_points(sub)
    return _finish(change)


@realtime_transaction
def swap_service(
    service, new_product: Product, *, by: User | None = None, reason: str = ""
) -> ActionChange:
    """Replace a service's product; the old service becomes Swapped (a regret restores it)."""
    sub, service = _lock_service(service)
    _ensure_open(sub, "change its services")
    if service.state not in LIVE_SERVICE_STATES:
        raise ActionError(
            f"{service.product.code} is {service.get_state_display()}; "
            "only a current service can be swapped.",
            code="illegal_transition",
        )
    if new_product.pk == service.product_id:
        raise ActionError(
            f"The service is already {new_product.code}; choose another product.",
            code="same_product",
        )
    _check_product(new_product, service.distributor)
    change = ActionChange("swap_service", sub, performed_by=by, reason=reason)
    new = SubscriptionService.objects.create(
        subscription=sub,
        product=new_product,
        distributor=service.distributor,
        state=service.state,
        swapped_from=service,
    )
    if service.is_on:
        change.services_on.append(new)
        change.services_off.append(service)
    _set_state(service, SvcState.SWAPPED)
    _check_no_duplicates(sub)
    return _finish(change)


@realtime_transaction
def regret_swap(service, *, by: User | None = None, reason: str = "") -> ActionChange:
    """Undo a swap: the service taken in the swap is Regretted and the swapped one restored.

    ``service`` is the service the swap created.
    """
    sub, service = _lock_service(service)
    _ensure_open(sub, "change its services")
    original = service.swapped_from
    if (
        original is None
        or original.state != SvcState.SWAPPED
        or service.state not in LIVE_SERVICE_STATES
    ):
        raise ActionError(
            f"{service.product.code} is not the result of a swap that can be regretted.",
            code="nothing_to_regret",
        )
    change = ActionChange("regret_swap", sub, performed_by=by, reason=reason)
    state = service.state
    if service.is_on:
        change.services_off.append(service)
    _set_state(service, SvcState.REGRETTED)
    _set_state(original, state)
    if original.is_on:
        change.services_on.append(original)
    _check_no_duplicates(sub)
    return _finish(change)


def start_service(service, *, by: User | None = None, reason: str = "") -> ActionChange:
    return _switch_service(service, "start_service", _started, by=by, reason=reason)


def _started(sub: Subscription, service: SubscriptionService) -> str:
    """The state starting the service gives it; ``ActionError`` if it cannot start."""
    _ensure_open(sub, "start services")
    if service.state != SvcState.NOT_EFFECTIVE:
        raise ActionError(
            f"{service.product.code} is {service.get_state_display()}; "
            "only a Not Effective service can be started.",
            code="illegal_transition",
        )
    target = SERVICE_STATE_FOR[sub.state]
    if target not in SubscriptionService.ON_STATES:
        raise ActionError(
            f"Subscription {sub.number} is {sub.get_state_display()}; "
            "activate it before starting services.",
            code="subscription_not_effective",
        )
    return target


def stop_service(service, *, by: User | None = None, reason: str = "") -> ActionChange:
    return _switch_service(service, "stop_service", _stopped, by=by, reason=reason)


def _stopped(sub: Subscription, service: SubscriptionService) -> str:
    """The state stopping the service gives it; ``ActionError`` if it cannot stop."""
    _ensure_open(sub, "stop services")
    if not service.is_on:
        raise ActionError(
            f"{service.product.code} is {service.get_state_display()}; "
            "only an effective service can be stopped.",
            code="illegal_transition",
        )
    return SvcState.NOT_EFFECTIVE


# Starting and stopping a service are the real-time path's commonest actions (the bench's). On
# PostgreSQL's fast path (``core.fast_path``) the lock, which sets the transaction's generic
# plans too, and the write of the new state with the event are one statement each
# (``subscriptions.fast_path``; docs/adr/0002); elsewhere, and with the setting off, the ORM's.


class _ByTheORM:
    """The switch's lock and write on every database (``subscriptions.fast_path``'s twins)."""

    @staticmethod
    def lock_service(service) -> tuple[Subscription, SubscriptionService]:
        generic_plans_in_transaction()
        return _lock_service(service)

    @staticmethod
    def write(service: SubscriptionService, event: SubscriptionEvent) -> None:
        service.save(update_fields=["state", "updated_at"])
        event.save()


def _switch_service(
    service,
    action: str,
    new_state: Callable[[Subscription, SubscriptionService], str],
    *,
    by: User | None,
    reason: str,
) -> ActionChange:
    """Lock the service, take the state ``new_state`` gives it (or its ``ActionError``), write
    it with the action's event, provision the change: in one transaction."""
    rows = switch_statements if fast_path.enabled() else _ByTheORM
    with transaction.atomic():
        sub, service = rows.lock_service(service)
        state = new_state(sub, service)
        change = ActionChange(action, sub, performed_by=by, reason=reason)
        service.state = state
        (change.services_on if service.is_on else change.services_off).append(service)
        rows.write(service, _event(change))
        return _provision(change)


# --- Installed item actions ---------------------------------------------------------------------


@realtime_transaction
def add_installed_item(
    subscription: Subscription, spec: ItemSpec, *, by: User | None = None, reason: str = ""
) -> ActionChange:
    sub = _lock(subscription)
    _ensure_open(sub, "get new devices")
    _check_provider_enabled(spec.distributor)
    change = ActionChange("add_installed_item", sub, performed_by=by, reason=reason)
    change.items_added.append(_install(sub, spec))
    _check_viewing_points(sub)
    return _finish(change)


def _lock_item(item: InstalledItem) -> tuple[Subscription, InstalledItem]:
    sub = _lock(item.subscription)
    item = InstalledItem.objects.select_related("distributor").get(pk=item.pk)
    if not item.in_use:
        raise ActionError(f"{item} was already removed.", code="item_removed")
    return sub, item


@realtime_transaction
def remove_installed_item(item, *, by: User | None = None, reason: str = "") -> ActionChange:
    sub, item = _lock_item(item)
    _ensure_open(sub, "change its devices")
    change = ActionChange("remove_installed_item", sub, performed_by=by, reason=reason)
    _uninstall(item, timezone.now())
    change.items_removed.append(item)
    _check_viewing_points(sub)
    return _finish(change)


@realtime_transaction
def swap_installed_item(
    item,
    serial_number: str,
    ca_id: str,
    *,
    product_code: str = "",
    description: str = "",
    by: User | None = None,
    reason: str = "",
) -> ActionChange:
    """Replace a device by another of the same kind on the same viewing point."""
    sub, item = _lock_item(item)
    _ensure_open(sub, "change its devices")
    change = ActionChange("swap_installed_item", sub, performed_by=by, reason=reason)
    _uninstall(item, timezone.now())
    new_item = _install(
        sub,
        ItemSpec(
            item.kind,
            serial_number,
            ca_id,
            item.distributor,
            product_code or item.product_code,
            description or item.description,
        ),
    )
    item.replaced_by = new_item
    item.save(update_fields=["replaced_by"])
    change.items_removed.append(item)
    change.items_added.append(new_item)
    return _finish(change)


# --- Provisioning rollback ----------------------------------------------------------------------


class PlatformRecord(Protocol):
    """What the provisioning side knows of what a platform holds, from the answers it gave
    (``providers.answers`` passes one to the rollbacks below): the domain asks, never reads
    provisioning requests itself."""

    def still_holds(self, item: InstalledItem, service: SubscriptionService, ca_id: str) -> bool:
        """The platform's last answer for this card and CA ID of the service left it active."""
        ...

    def holds_service(self, service: SubscriptionService) -> bool | None:
        """It holds one of the service's CA IDs on a registered card; None while requests of the
        service are still open (their answers will tell)."""
        ...


@realtime_transaction
def switch_off_rejected_service(service, *, reason: str, record: PlatformRecord) -> ActionChange:
    """Roll back an activation the provider rejected: the service is switched off again.

    Recorded like any action (event + signal), so the engine cancels whatever components the
    provider did accept; recorded too when the service is off already (the CA's reason
    belongs in the history). ``authorized`` then says whether the provider still holds it.
    """
    sub, service = _lock_service(service)
    change = ActionChange("provisioning_rollback", sub, reason=reason)
    if service.is_on:
        _set_state(service, SvcState.NOT_EFFECTIVE)
        change.services_off.append(service)
    _finish(change)
    _settle_authorized(service, record)
    return change


@realtime_transaction
def restore_rejected_deactivation(
    service,
    item: InstalledItem | None,
    *,
    reason: str,
    record: PlatformRecord,
    by_rollback: bool = False,
    ca_id: str = "",
) -> ActionChange:
    """Roll back a deactivation the provider rejected: it still holds the service on that
    card. A service switched off (not ended: swapped, removed or cancelled rows are history)
    goes back to the state its subscription gives its services, if that is on; otherwise it
    stays off and ``authorized`` stays true, so that the next reset cancels it again. Nothing
    is restored for a card the provider never registered (it holds nothing there), nor for a
    cancellation a rollback made (that would undo the rollback, and the rollback it again)."""
    sub, service = _lock_service(service)
    change = ActionChange("provisioning_rollback", sub, reason=reason)
    if item is not None and not item.in_use and ca_id:
        _keep_registered(item, service, ca_id, record)
    held = item is None or InstalledItem.objects.filter(pk=item.pk, initialized=True).exists()
    target = SERVICE_STATE_FOR.get(sub.state)
    if held and not by_rollback and not service.is_on:
        if service.state in LIVE_SERVICE_STATES and target in SubscriptionService.ON_STATES:
            _set_state(service, target)
            change.services_on.append(service)
        elif not service.authorized:
            # The provider said no to cancelling it: it still holds it.
            SubscriptionService.objects.filter(pk=service.pk).update(authorized=True)
            service.authorized = True
    _finish(change)
    if by_rollback or not held:
        _settle_authorized(service, record)
    return change


def _keep_registered(
    item: InstalledItem, service: SubscriptionService, ca_id: str, record: PlatformRecord
) -> None:
    """A card taken away whose cancellation of ``ca_id`` was refused still holds it: it stays
    registered (its other cancellations' acceptance forgets it only once none was refused),
    so that a reset cancels it again."""
    if not item.initialized and record.still_holds(item, service, ca_id):
        InstalledItem.objects.filter(pk=item.pk).update(initialized=True)
        item.initialized = True


@realtime_transaction
def record_rejected_pairing(subscription, *, reason: str) -> ActionChange:
    """A pairing the provider rejected: its devices stay not initialized (the reconciler pairs
    them again on the next reset); the rejection goes in the subscription's history."""
    return _finish(ActionChange("provisioning_rollback", _lock(subscription), reason=reason))


def _settle_authorized(service: SubscriptionService, record: PlatformRecord) -> None:
    """An off service with nothing on its way is authorized iff the provider holds it. A
    service on, or with requests still open, is left to their answers."""
    if service.is_on:
        return
    authorized = record.holds_service(service)
    if authorized is not None and authorized != service.authorized:
        SubscriptionService.objects.filter(pk=service.pk).update(authorized=authorized)
        service.authorized = authorized
