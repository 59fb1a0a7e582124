"""A subscription's history in words: what each event changed and who did it.

The one description of a ``SubscriptionEvent``, for the subscription page and the Web API
alike. An event keeps its changes as ids (the real-time path writes no more than that); the
names are read here, for a page of events at once, by two queries whatever their number.
Utilities write their own event (``record_utility``), naming the person who used them.
"""

from dataclasses import dataclass
from datetime import datetime

from .models import InstalledItem, SubscriptionEvent, SubscriptionService

Source = SubscriptionEvent.Source

# The actions whose events say more than their changes (the names are the writers' own).
ROLLBACK = "provisioning_rollback"
CORRECTED = "provider_state_corrected"
UTILITY = "utility"
SWAPS = ("swap_service", "regret_swap")

# What a utility did, by a word of its code, and the word before its devices.
UTILITY_DEEDS = (
    ("pin", "PIN reset", "on"),
    ("message", "Message sent", "to"),
    ("fingerprint", "Fingerprint displayed", "on"),
    ("recall", "Subscription recalled", "on"),
    ("pair", "Devices paired", ":"),
    ("reauthorize", "Sector re-authorized", "on"),
    ("reset_subscription", "Subscription reset", "at"),
    ("information", "CA asked about", ""),
    ("query", "CA asked about", ""),
)
KIND_NAMES = {InstalledItem.Kind.SMARTCARD: "Card", InstalledItem.Kind.STB: "Set-top box"}


@dataclass(frozen=True)
class Entry:
    """One event as a person reads it."""

    id: int
    at: datetime
    action: str
    action_label: str
    changes: tuple[str, ...]  # what changed, a sentence each
    by_kind: str  # SubscriptionEvent.Source
    by: str  # the person's user name, the run, the connector or the CA
    reason: str


def action_label(action: str) -> str:
    return action.replace("_", " ").capitalize()


def device_name(kind: str, serial_number: str) -> str:
    return f"{KIND_NAMES.get(kind, 'Device')} {serial_number}"


def utility_deed(code: str, name: str) -> tuple[str, str]:
    """(What the utility did, the word before its devices), from its code; else its name."""
    for word, deed, before in UTILITY_DEEDS:
        if word in code:
            return deed, before
    return name, "on"


def record_utility(
    subscription,
    *,
    code: str,
    name: str,
    provider: str,
    devices: list[tuple[str, str]],
    request_ids: list[int],
    by,
    message: str = "",
) -> SubscriptionEvent:
    """The event of a utility used on ``subscription`` by ``by`` (a user, or None for a
    caller that is none): its devices as (kind, serial number), its requests by id."""
    return SubscriptionEvent.objects.create(
        subscription=subscription,
        action=UTILITY,
        performed_by=by,
        source=Source.PERSON if by is not None else Source.SYSTEM,
        reason=message[:300],
        changes={
            "utility": code,
            "utility_name": name,
            "provider": provider,
            "devices": [device_name(kind, serial) for kind, serial in devices],
            "requests": request_ids,
        },
    )


# The latest events shown: a page reads no more, whatever the subscription's age.
PAGE = 100


def events(subscription, limit: int = PAGE):
    """The subscription's latest events, newest first (the ``event_by_subscription`` index)."""
    return subscription.events.select_related("performed_by").order_by("-id")[:limit]


def describe(events) -> list[Entry]:
    """The events in words, in their order: two queries for their services' and devices'
    names, whatever their number."""
    events = list(events)
    service_ids, item_ids = set(), set()
    for event in events:
        changes = event.changes or {}
        service_ids.update(changes.get("services_on", []) + changes.get("services_off", []))
        item_ids.update(changes.get("items_added", []) + changes.get("items_removed", []))
    services = (
        {
            s.pk: f"{s.product.code} on {s.distributor.code}"
            for s in SubscriptionService.objects.filter(pk__in=service_ids).select_related(
                "product", "distributor"
            )
        }
        if service_ids
        else {}
    )
    items = (
        {
            pk: (kind, serial)
            for pk, kind, serial in InstalledItem.objects.filter(pk__in=item_ids).values_list(
                "pk", "kind", "serial_number"
            )
        }
        if item_ids
        else {}
    )
    return [_entry(event, services, items) for event in events]


def _entry(event: SubscriptionEvent, services: dict, items: dict) -> Entry:
    kind, by = _who(event)
    return Entry(
        id=event.pk,
        at=event.performed_at,
        action=event.action,
        action_label=action_label(event.action),
        changes=tuple(_what(event, services, items)),
        by_kind=kind,
        by=by,
        reason=event.reason,
    )


def _who(event: SubscriptionEvent) -> tuple[str, str]:
    source = event.source
    if not source:
        # Written before the source was kept: told by the action.
        if event.performed_by_id:
            source = Source.PERSON
        elif event.action == ROLLBACK:
            source = Source.ANSWER
        else:
            source = Source.SYSTEM
    if source == Source.PERSON:
        user = event.performed_by
        return source, user.get_username() if user else "a user since deleted"
    if source == Source.ANSWER:
        return source, event.source_name or "the CA's answer"
    return source, event.source_name or Source(source).label.lower()


def _what(event: SubscriptionEvent, services: dict, items: dict) -> list[str]:
    changes = event.changes or {}
    if event.action == UTILITY:
        deed, before = utility_deed(changes.get("utility", ""), changes.get("utility_name", ""))
        devices = ", ".join(d[:1].lower() + d[1:] for d in changes.get("devices", []))
        said = deed
        if devices:
            said += (before if before in ("", ":") else f" {before}") + f" {devices}"
        if changes.get("provider"):
            said += f" ({changes['provider']})"
        return [said]
    if event.action == CORRECTED:
        return [event.reason.removeprefix("Reset: ").rstrip(".")] if event.reason else []

    def service(pk) -> str:
        return services.get(pk, f"service #{pk}")

    def item(pk) -> str:
        return device_name(*items[pk]) if pk in items else f"Device #{pk}"

    on, off = changes.get("services_on", []), changes.get("services_off", [])
    added, removed = changes.get("items_added", []), changes.get("items_removed", [])
    said = []
    if event.action in SWAPS and len(on) == 1 and len(off) == 1:
        said.append(f"Service {service(off[0])} → {service(on[0])}")
    else:
        said += [f"Service {service(pk)} off → on" for pk in on]
        said += [f"Service {service(pk)} on → off" for pk in off]
    if (
        len(added) == 1
        and len(removed) == 1
        and (items.get(added[0], ("",))[0] == items.get(removed[0], ("?",))[0])
    ):
        said.append(f"{item(removed[0])} → {items[added[0]][1]}")
    else:
        said += [f"{item(pk)} added" for pk in added]
        said += [f"{item(pk)} removed" for pk in removed]
    return said
