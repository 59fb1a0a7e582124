"""EXSET's infocas messages, fingerprints and recalls: the requests no reconciler plans (seed 002).

Utilities (``utilities.py``) and runs (``message_runs.py``) make them here, so each rule is
checked once: every function validates all it is given first and raises ``ValidationError``
naming the parameter (the utilities' form fields bear the same names) before writing anything.
The requests are Pending and wait for the TQUEUE writing (EXSET is batch: ``deliver_now=False``).
A broadcast names no subscription, card nor distributor: its TQUEUE entry has them NULL.
"""

import re
from collections.abc import Callable

from django.core.exceptions import ValidationError

from catalogue.models import Product, ProductCAId, Provider
from providers.engine import create_request
from providers.models import ProvisioningRequest
from providers.reconciler import CAIds
from subscriptions.models import InstalledItem, SubscriptionService

Req = ProvisioningRequest

BROADCAST_INFOCAS = "ADD_BROADCAST_INFOCAS_MESSAGE"
INDIVIDUAL_INFOCAS = "ADD_INDIVIDUAL_INFOCAS_MESSAGE"
BROADCAST_FINGERPRINT = "ADD_BROADCAST_FINGERPRINT_MESSAGE"
INDIVIDUAL_FINGERPRINT = "ADD_INDIVIDUAL_FINGERPRINT_MESSAGE"
RECALL = "RECALL_SUBSCRIPTION"

# The seed gives no limit. 200 fits a TV's on-screen box (about four lines of 50 characters)
# and stays under 255, the usual width of a message column in an SMS's own tables.
MAX_MESSAGE = 200
# A broadcast runs at most a week (a campaign, a notice of maintenance); it repeats at least
# once a day; both in whole minutes, at least 1 (0 would mean never shown).
MAX_DURATION_MINUTES = 7 * 24 * 60
MAX_INTERVAL_MINUTES = 24 * 60

# The fingerprint object of the TQUEUE entry's parameters: what the set-top box shows.
WINDOW_TYPES = [
    ("OVERT", "Overt: a box showing the card number"),
    ("COVERT", "Covert: faint, to trace recorded content"),
    ("SCROLLING", "Scrolling across the screen"),
]
FINGERPRINT_DEFAULTS = {
    "window_type": "OVERT",
    "position_x": 50,  # % of the screen's width, from the left
    "position_y": 50,  # % of the screen's height, from the top
    "duration_seconds": 10,
    "font_size": 16,
    "text_color": "#FFFFFF",
    "background_color": "#000000",
}
# (what, low, high, unit) of each number of the fingerprint.
FINGERPRINT_RANGES = {
    "position_x": ("The horizontal position", 0, 100, "% of the width"),
    "position_y": ("The vertical position", 0, 100, "% of the height"),
    # A fingerprint is a glimpse to catch on a recording, not a banner.
    "duration_seconds": ("The display duration", 1, 600, "seconds"),
    "font_size": ("The font size", 8, 48, "points"),
}
_COLOR = re.compile(r"#[0-9A-Fa-f]{6}")


def _refuse(errors: dict[str, str]) -> None:
    if errors:
        raise ValidationError({name: [message] for name, message in errors.items()})


def _whole(value, name: str, errors: dict[str, str]) -> int | None:
    if value is None or value == "":
        errors[name] = "Give a whole number."
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        try:
            value = int(str(value).strip())
        except ValueError:
            errors[name] = f"Give a whole number; {value!r} is not one."
            return None
    return value


def _all_checked(**checks: Callable[[], object]) -> dict:
    """Each check's value by name; the problems of every check refused together."""
    values, errors = {}, {}
    for name, check in checks.items():
        try:
            values[name] = check()
        except ValidationError as invalid:
            errors.update(invalid.message_dict)
    if errors:
        raise ValidationError(errors)
    return values


def _times(duration_minutes, interval_minutes, errors: dict[str, str]) -> tuple:
    duration = _whole(duration_minutes, "duration_minutes", errors)
    if duration is not None and not 1 <= duration <= MAX_DURATION_MINUTES:
        errors["duration_minutes"] = (
            f"The broadcast duration is 1 to {MAX_DURATION_MINUTES} minutes (a week); "
            f"{duration} is out of range."
        )
    interval = _whole(interval_minutes, "interval_minutes", errors)
    if interval is not None and not 1 <= interval <= MAX_INTERVAL_MINUTES:
        errors["interval_minutes"] = (
            f"The interval between broadcasts is 1 to {MAX_INTERVAL_MINUTES} minutes (a day); "
            f"{interval} is out of range."
        )
    elif interval is not None and "duration_minutes" not in errors and interval > duration:
        errors["interval_minutes"] = (
            f"The interval ({interval} minutes) is longer than the broadcast duration "
            f"({duration} minutes): the message would be shown once only."
        )
    return duration, interval


def broadcast_times(duration_minutes, interval_minutes) -> tuple[int, int]:
    """The broadcast duration and interval in minutes, checked (an Infocas run's settings)."""
    errors: dict[str, str] = {}
    times = _times(duration_minutes, interval_minutes, errors)
    _refuse(errors)
    return times


def infocas_parameters(message: str, duration_minutes, interval_minutes) -> dict:
    """The message, its broadcast duration and its interval, checked."""
    errors: dict[str, str] = {}
    text = (message or "").strip()
    if not text:
        errors["message"] = "Give the text of the message."
    elif len(text) > MAX_MESSAGE:
        errors["message"] = (
            f"An infocas message holds at most {MAX_MESSAGE} characters; this one has {len(text)}."
        )
    duration, interval = _times(duration_minutes, interval_minutes, errors)
    _refuse(errors)
    return {"message": text, "duration_minutes": duration, "interval_minutes": interval}


def fingerprint(values: dict) -> dict:
    """The fingerprint object: the values given (``None`` or absent: the default), checked."""
    given = {k: values.get(k) for k in FINGERPRINT_DEFAULTS}
    unknown = sorted(set(values) - set(FINGERPRINT_DEFAULTS))
    errors: dict[str, str] = {}
    if unknown:
        errors["fingerprint"] = f"Unknown fingerprint parameters: {', '.join(unknown)}."
    shown = {k: FINGERPRINT_DEFAULTS[k] if v in (None, "") else v for k, v in given.items()}
    if shown["window_type"] not in dict(WINDOW_TYPES):
        errors["window_type"] = (
            f"The window type is one of {', '.join(dict(WINDOW_TYPES))}; "
            f"{shown['window_type']!r} is not."
        )
    for name, (what, low, high, unit) in FINGERPRINT_RANGES.items():
        number = _whole(shown[name], name, errors)
        if number is not None and not low <= number <= high:
            errors[name] = f"{what} is {low} to {high} {unit}; {number} is out of range."
        shown[name] = number
    for name in ("text_color", "background_color"):
        if not _COLOR.fullmatch(str(shown[name])):
            errors[name] = f"Give the colour as #RRGGBB (e.g. #FFFFFF); {shown[name]!r} is not."
        else:
            shown[name] = shown[name].upper()
    _refuse(errors)
    return shown


def service_ca_id(provider: Provider, ca_id: str | None) -> str:
    """A service CA ID known at this provider, or "" for none."""
    if not ca_id:
        return ""
    if not ProductCAId.objects.filter(provider=provider, ca_id=ca_id).exists():
        _refuse({"service_ca_id": f"No service has the CA ID {ca_id} at {provider.name}."})
    return ca_id


def smartcards(subscription, provider: Provider):
    """The subscription's smartcards in use at this provider, oldest first."""
    return (
        InstalledItem.objects.filter(
            subscription=subscription,
            kind=InstalledItem.Kind.SMARTCARD,
            removed_at__isnull=True,
            distributor__provider=provider,
        )
        .select_related("distributor", "subscription")
        .order_by("pk")
    )


def card_at(provider: Provider, card: InstalledItem | str) -> InstalledItem:
    """The smartcard in use at this provider, given as a row or by CA ID; else refused."""
    ca_id = card.ca_id if isinstance(card, InstalledItem) else str(card or "")
    found = (
        InstalledItem.objects.filter(
            kind=InstalledItem.Kind.SMARTCARD,
            removed_at__isnull=True,
            distributor__provider=provider,
            ca_id=ca_id,
        )
        .select_related("distributor", "subscription")
        .first()
    )
    if found is None:
        _refuse({"card_ca_id": f"No smartcard with CA ID {ca_id!r} is in use at {provider.name}."})
    return found


def _card_parameters(card: InstalledItem) -> dict:
    return {
        "subscription": card.subscription.number,
        "distributor": card.distributor.code,
        "card_ca_id": card.ca_id,
    }


def _to_card(provider, card: InstalledItem, command: str, parameters: dict, **how) -> Req:
    return create_request(
        provider,
        command,
        parameters,
        subscription=card.subscription,
        installed_item=card,
        distributor=card.distributor,
        deliver_now=False,
        **how,
    )


def broadcast_infocas(
    provider: Provider,
    *,
    message: str,
    duration_minutes: int,
    interval_minutes: int,
    trigger: str,
    trigger_name: str,
    priority: int = Req.Priority.NORMAL,
) -> Req:
    """ADD_BROADCAST_INFOCAS_MESSAGE: one message to every subscriber."""
    parameters = infocas_parameters(message, duration_minutes, interval_minutes)
    return create_request(
        provider,
        BROADCAST_INFOCAS,
        parameters,
        trigger=trigger,
        trigger_name=trigger_name,
        priority=priority,
        deliver_now=False,
    )


def individual_infocas(
    provider: Provider,
    card: InstalledItem | str,
    *,
    message: str,
    duration_minutes: int,
    interval_minutes: int,
    trigger: str,
    trigger_name: str,
    priority: int = Req.Priority.NORMAL,
    process_run_id: int | None = None,
    communication: str = "",
) -> Req:
    """ADD_INDIVIDUAL_INFOCAS_MESSAGE: one message to one smartcard (from the utility, or a
    communication of the queue: its number is kept)."""
    checked = _all_checked(
        message=lambda: infocas_parameters(message, duration_minutes, interval_minutes),
        card=lambda: card_at(provider, card),
    )
    card = checked["card"]
    parameters = {**_card_parameters(card), **checked["message"]}
    if communication:
        parameters["communication"] = communication
    return _to_card(
        provider,
        card,
        INDIVIDUAL_INFOCAS,
        parameters,
        trigger=trigger,
        trigger_name=trigger_name,
        priority=priority,
        process_run_id=process_run_id,
    )


def broadcast_fingerprint(
    provider: Provider,
    shown: dict,
    *,
    service: str = "",
    trigger: str,
    trigger_name: str,
    priority: int = Req.Priority.NORMAL,
    process_run_id: int | None = None,
    communication: str = "",
) -> Req:
    """ADD_BROADCAST_FINGERPRINT_MESSAGE: to every subscriber, or only to the holders of the
    service whose CA ID is ``service``."""
    checked = _all_checked(
        fingerprint=lambda: fingerprint(shown), service=lambda: service_ca_id(provider, service)
    )
    parameters = {"fingerprint": checked["fingerprint"]}
    if checked["service"]:
        parameters["service_ca_id"] = checked["service"]
    if communication:
        parameters["communication"] = communication
    return create_request(
        provider,
        BROADCAST_FINGERPRINT,
        parameters,
        trigger=trigger,
        trigger_name=trigger_name,
        priority=priority,
        process_run_id=process_run_id,
        deliver_now=False,
    )


def individual_fingerprint(
    provider: Provider,
    card: InstalledItem | str,
    shown: dict,
    *,
    service: str = "",
    trigger: str,
    trigger_name: str,
    priority: int = Req.Priority.NORMAL,
    process_run_id: int | None = None,
    communication: str = "",
) -> Req:
    """ADD_INDIVIDUAL_FINGERPRINT_MESSAGE: to one smartcard."""
    checked = _all_checked(
        fingerprint=lambda: fingerprint(shown),
        service=lambda: service_ca_id(provider, service),
        card=lambda: card_at(provider, card),
    )
    card = checked["card"]
    parameters = {**_card_parameters(card), "fingerprint": checked["fingerprint"]}
    if checked["service"]:
        parameters["service_ca_id"] = checked["service"]
    if communication:
        parameters["communication"] = communication
    return _to_card(
        provider,
        card,
        INDIVIDUAL_FINGERPRINT,
        parameters,
        trigger=trigger,
        trigger_name=trigger_name,
        priority=priority,
        process_run_id=process_run_id,
    )


def recall_parameters(provider: Provider, card: InstalledItem | str) -> dict:
    """What RECALL_SUBSCRIPTION re-authorizes on a card: every Effective (or Short Term
    Effective) service of its subscription on the card's viewing point (its distributor: the
    services of another viewing point are its own cards'), by CA ID (a bundle's components'),
    usage services aside, as they are never authorized."""
    card = card_at(provider, card)
    services = list(
        SubscriptionService.objects.filter(
            subscription=card.subscription,
            state__in=SubscriptionService.ON_STATES,
            distributor=card.distributor,
        )
        .exclude(product__service_type=Product.ServiceType.USAGE)
        .order_by("pk")
    )
    ca_ids = CAIds.of_provider(provider.pk)
    service_ca_ids = list(dict.fromkeys(c for s in services for c in ca_ids[s.product_id]))
    if not service_ca_ids:
        _refuse(
            {
                "card_ca_id": f"{card.subscription.number} has no Effective service on "
                f"{card.distributor.code} at {provider.name}: there is nothing to re-authorize "
                f"on {card.ca_id}."
            }
        )
    return {
        "subscription": card.subscription.number,
        "distributors": [card.distributor.code],
        "card_ca_id": card.ca_id,
        "service_ca_ids": service_ca_ids,
    }


def recall(
    provider: Provider,
    card: InstalledItem | str,
    *,
    trigger: str,
    trigger_name: str,
    priority: int = Req.Priority.NORMAL,
) -> Req:
    """RECALL_SUBSCRIPTION: re-authorize every service of a smartcard."""
    card = card_at(provider, card)
    parameters = recall_parameters(provider, card)
    return _to_card(
        provider,
        card,
        RECALL,
        parameters,
        trigger=trigger,
        trigger_name=trigger_name,
        priority=priority,
    )
