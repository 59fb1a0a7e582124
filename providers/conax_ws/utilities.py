"""The agents' utilities for Conax Contego web services (seed 000, SPEC "Utilities").

Each acts on one subscription's device at this provider: its form offers the subscription's
own smartcards (and set-top boxes) by CA ID, so an agent — or an API caller — names a device
the subscription really has; with one card only, the card may be left out. Requests are sent
at once by the push worker (Conax WS is real-time: there is no later processing run, so
*process immediately* is not a choice here) and may take Express priority, except Get Conax
information, which asks the CAS synchronously and shows its answer as a table.
"""

import re

from django import forms
from django.db import transaction

from catalogue.models import ProductCAId
from providers import at_once, engine, registry, sealed
from providers.extensions import Outcome, Utility, UtilityError, UtilityForm
from providers.models import ProvisioningRequest
from subscriptions.models import InstalledItem

Req = ProvisioningRequest
Op = Req.Operation
Kind = InstalledItem.Kind

MAIL_MAX = 141
BARK_MAX = 129
DEFAULT_PIN = "1234"
MESSAGE_COMMANDS = {
    "mail": "SEND_MAIL_MESSAGE_TO_CLIENT",
    "bark": "SEND_BARK_MESSAGE_TO_CLIENT",
    "repeating_bark": "SEND_REPEATING_BARK_MESSAGE_TO_CLIENT",
}
MESSAGE_NAMES = {"mail": "mail", "bark": "bark", "repeating_bark": "repeating bark"}


def devices(subscription, provider, kind: str):
    """The subscription's devices of one kind in use at this provider."""
    return InstalledItem.objects.filter(
        subscription=subscription,
        kind=kind,
        removed_at__isnull=True,
        distributor__provider=provider,
    ).select_related("distributor")


def message_length_error(message_type: str, text: str) -> str | None:
    """Why this text cannot be sent as this type of message, or None (shared with the run)."""
    limit = MAIL_MAX if message_type == "mail" else BARK_MAX
    if len(text) > limit:
        return (
            f"A {MESSAGE_NAMES[message_type]} message holds at most {limit} characters; "
            f"this one has {len(text)}."
        )
    return None


def repetition_interval_error(seconds: int) -> str | None:
    if not 10 <= seconds <= 2550:
        return f"The repetition interval is 10 to 2550 seconds; {seconds} is out of range."
    if seconds % 10:
        return (
            "The repetition interval goes in steps of 10 seconds (10, 20, 30 … 2550); "
            f"{seconds} is not one of them."
        )
    return None


class DeviceField(forms.ChoiceField):
    """One of the subscription's devices, by CA ID; optional where the subscription has only
    one (``pick_only``)."""

    def __init__(self, *, kind: str, label: str, pick_only: bool = True, **kwargs):
        self.kind, self.pick_only = kind, pick_only
        super().__init__(label=label, required=False, **kwargs)


class DeviceForm(UtilityForm):
    """A utility form whose ``DeviceField``s offer the subscription's own devices."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.items: dict[str, InstalledItem] = {}
        for field in self.fields.values():
            if isinstance(field, DeviceField):
                found = (
                    list(devices(self.subscription, self.provider, field.kind))
                    if self.subscription is not None and self.provider is not None
                    else []
                )
                self.items.update({i.ca_id: i for i in found})
                field.choices = [("", "—")] + [
                    (i.ca_id, f"{i.serial_number} (CA ID {i.ca_id}, {i.distributor.code})")
                    for i in found
                ]

    def device(self, name: str, *, required: bool) -> InstalledItem | None:
        """The device chosen in field ``name`` (the only one when left out), or an error."""
        field = self.fields[name]
        value = self.cleaned_data.get(name)
        if value:
            return self.items[value]
        offered = [c for c, _label in field.choices if c]
        what = "smartcard" if field.kind == Kind.SMARTCARD else "set-top box"
        if required and not offered:
            self.add_error(name, f"The subscription has no {what} at {self.provider.name}.")
        elif required and len(offered) == 1 and field.pick_only:
            return self.items[offered[0]]
        elif required:
            self.add_error(name, f"Choose the {what}: {', '.join(offered)}.")
        return None


def _base_parameters(subscription, card: InstalledItem) -> dict:
    return {
        "subscription": subscription.number,
        "distributor": card.distributor.code,
        "card_ca_id": card.ca_id,
        "card_serial_number": card.serial_number,
    }


def _device(item: InstalledItem) -> dict:
    return {
        "kind": item.kind,
        "ca_id": item.ca_id,
        "serial_number": item.serial_number,
        "product_code": item.product_code,
    }


def _request(provider, subscription, item, command, parameters, *, priority, name, **kwargs):
    with transaction.atomic():
        return engine.create_request(
            provider,
            command,
            parameters,
            trigger=Req.Trigger.UTILITY,
            trigger_name=name,
            subscription=subscription,
            installed_item=item,
            distributor=item.distributor,
            priority=priority,
            **kwargs,
        )


def _iso(value) -> str | None:
    return value.isoformat() if value else None


# --- Get Conax information ---------------------------------------------------------------------


class InformationForm(DeviceForm):
    ACTIVE = "active_subscriptions"
    CARD = "pairing_for_smartcard"
    STB = "pairing_for_stb"

    type = forms.ChoiceField(
        choices=[
            (ACTIVE, "Active subscriptions"),
            (CARD, "Pairing status for smartcard"),
            (STB, "Pairing status for STB"),
        ],
        initial=ACTIVE,
    )
    smartcard = DeviceField(kind=Kind.SMARTCARD, label="Smartcard")
    stb = DeviceField(kind=Kind.STB, label="Set-top box")

    def clean(self):
        data = super().clean()
        if data.get("type") == self.STB:
            data["device"] = self.device("stb", required=True)
        elif data.get("type"):
            data["device"] = self.device("smartcard", required=True)
        return data


# The queries, by what they ask: the command and its parameters for a device.
QUERIES = {
    InformationForm.ACTIVE: ("GET_ACTIVE_SUBSCRIPTIONS", lambda item: {"card_ca_id": item.ca_id}),
    InformationForm.CARD: ("GET_PAIRING_STATUS_FOR_CARD", lambda item: {"card_ca_id": item.ca_id}),
    InformationForm.STB: (
        "GET_PAIRING_STATUS_FOR_PAIRING_MODULE",
        lambda item: {"stb_ca_id": item.ca_id},
    ),
}
# The CAS's refusal of a query about a device it was never given: it holds nothing for it.
UNKNOWN_DEVICE = ("UNKNOWN_CA_CLIENT", "UNKNOWN_PAIRING_MODULE")


def ask(
    provider,
    subscription,
    item: InstalledItem,
    query: str,
    *,
    priority: int = Req.Priority.NORMAL,
    trigger: str = Req.Trigger.UTILITY,
    name: str,
    process_run_id: int | None = None,
) -> tuple[Req, registry.Answer]:
    """Ask the CAS now, in this process, one of ``QUERIES`` about ``item``; the query is
    recorded as a request with its answer (``at_once``). A CAS that does not answer: the
    request is Failed with the reason, and ``TransportError`` raised."""
    command, parameters_of = QUERIES[query]
    parameters = {
        "subscription": subscription.number,
        "distributor": item.distributor.code,
        **parameters_of(item),
    }
    request = at_once.create(
        provider,
        command,
        parameters,
        trigger=trigger,
        trigger_name=name,
        subscription=subscription,
        installed_item=item,
        distributor=item.distributor,
        priority=priority,
        process_run_id=process_run_id,
    )
    answer = at_once.send(request, registry.adapter_for(provider).send)
    return request, answer


def _pairing_rows(provider, answer: dict) -> tuple[tuple, ...]:
    known = {
        (i.kind, i.ca_id): i
        for i in InstalledItem.objects.filter(
            removed_at__isnull=True,
            ca_id__in=answer.get("cards", []) + answer.get("modules", []),
            distributor__provider=provider,
        )
    }
    rows = []
    for kind, ids in (
        (Kind.SMARTCARD, answer.get("cards", [])),
        (Kind.STB, answer.get("modules", [])),
    ):
        for ca_id in ids:
            item = known.get((kind, ca_id))
            rows.append(
                (
                    ca_id if kind == Kind.SMARTCARD else "",
                    ca_id if kind == Kind.STB else "",
                    item.serial_number if item else "",
                    item.product_code if item else "",
                    item.description if item else "Not in our records",
                )
            )
    return tuple(rows)


def _information(provider, subscription, data, user, priority, process_immediately) -> Outcome:
    item: InstalledItem = data["device"]
    kind = data["type"]
    try:
        request, answer = ask(
            provider, subscription, item, kind, priority=priority, name="conax_information"
        )
    except registry.TransportError as error:
        raise UtilityError(f"{provider.name} did not answer: {error}. Try again later.") from None
    if not answer.accepted:
        return Outcome(
            [request],
            f"{provider.name} refused the query: {answer.error_code} {answer.error_description}",
        )
    found = answer.response or {}
    if kind == InformationForm.ACTIVE:
        held = found.get("subscriptions", [])
        names = {
            p.ca_id: (p.product.code, p.product.name)
            for p in ProductCAId.objects.filter(
                provider=provider, ca_id__in=[s["product_id"] for s in held]
            ).select_related("product")
        }
        rows = tuple(
            (s["product_id"], *names.get(s["product_id"], ("", "Not in the catalogue")))
            for s in held
        )
        return Outcome(
            [request],
            f"{provider.name} holds {len(rows)} active subscription(s) on card {item.ca_id}.",
            ("Service CA ID", "Code", "Description"),
            rows,
        )
    what = f"card {item.ca_id}" if kind == InformationForm.CARD else f"set-top box {item.ca_id}"
    if not found.get("pairing_id"):
        return Outcome([request], f"{provider.name} has {what} in no pairing.")
    return Outcome(
        [request],
        f"{provider.name} has {what} in pairing {found['pairing_id']}.",
        ("Smartcard CA ID", "STB CA ID", "Serial number", "Product code", "Description"),
        _pairing_rows(provider, found),
    )


def platform_state(
    provider, subscription, devices, *, trigger: str, trigger_name: str, process_run_id=None
) -> dict[int, registry.Held]:
    """What the CAS holds for each device (the adapter's ``platform_state``), asked by the
    queries of Get Conax information: a card's pairing status and active subscriptions, a
    set-top box's pairing status. A device the CAS does not know holds nothing."""

    def asked(item: InstalledItem, query: str) -> dict | None:
        try:
            _request, answer = ask(
                provider,
                subscription,
                item,
                query,
                trigger=trigger,
                name=trigger_name,
                process_run_id=process_run_id,
            )
        except registry.TransportError as error:
            raise registry.PlatformQueryError(f"{provider.name} did not answer: {error}") from None
        if answer.accepted:
            return answer.response or {}
        if answer.error_code in UNKNOWN_DEVICE:
            return None
        raise registry.PlatformQueryError(
            f"{provider.name} refused to say what it holds for {item.ca_id}: "
            f"{answer.error_code} {answer.error_description}".rstrip()
        )

    held: dict[int, registry.Held] = {}
    for item in devices:
        if item.kind == Kind.STB:
            pairing = asked(item, InformationForm.STB)
            held[item.pk] = registry.Held(bool(pairing and pairing.get("pairing_id")))
            continue
        pairing = asked(item, InformationForm.CARD)
        active = asked(item, InformationForm.ACTIVE) if pairing is not None else None
        entitlements = frozenset(s["product_id"] for s in (active or {}).get("subscriptions", []))
        held[item.pk] = registry.Held(bool(pairing and pairing.get("pairing_id")), entitlements)
    return held


# --- Display fingerprint -----------------------------------------------------------------------


class FingerprintForm(DeviceForm):
    smartcard = DeviceField(kind=Kind.SMARTCARD, label="Smartcard")
    display_at = forms.DateTimeField(
        label="Display date time", required=False, help_text="Empty: at once."
    )
    duration_seconds = forms.IntegerField(
        label="Display duration in seconds",
        required=False,
        min_value=1,
        max_value=3600,
        help_text="Empty: 10 seconds.",
    )
    position_x = forms.IntegerField(label="Position X", required=False, min_value=0, max_value=4096)
    position_y = forms.IntegerField(label="Position Y", required=False, min_value=0, max_value=4096)
    height = forms.IntegerField(
        label="Height in pixels",
        required=False,
        min_value=1,
        max_value=255,
        help_text="Empty: 12 pixels.",
    )
    slot = forms.ChoiceField(
        label="Fingerprint slot", choices=[("A", "Slot A"), ("B", "Slot B")], required=False
    )

    def clean(self):
        data = super().clean()
        data["card"] = self.device("smartcard", required=True)
        fingerprint_defaults(self, data)
        return data


def fingerprint_defaults(form: forms.Form, data: dict) -> None:
    """The seed's defaults and the position rule (shared with the Fingerprinting run)."""
    if data.get("duration_seconds") is None:
        data["duration_seconds"] = 10
    if data.get("height") is None:
        data["height"] = 12
    data["slot"] = data.get("slot") or "A"
    if (data.get("position_x") is None) != (data.get("position_y") is None):
        form.add_error(
            "position_y" if data.get("position_y") is None else "position_x",
            "Give both X and Y of the position, or neither (the CA system's own position).",
        )


def fingerprint_parameters(data: dict) -> dict:
    return {
        "display_at": _iso(data.get("display_at")),
        "duration_seconds": data["duration_seconds"],
        "position_x": data.get("position_x"),
        "position_y": data.get("position_y"),
        "height": data["height"],
        "slot": data["slot"],
    }


def _fingerprint(provider, subscription, data, user, priority, process_immediately) -> Outcome:
    card = data["card"]
    request = _request(
        provider,
        subscription,
        card,
        "DISPLAY_FINGERPRINT",
        {**_base_parameters(subscription, card), **fingerprint_parameters(data)},
        priority=priority,
        name="fingerprinting_utility",
    )
    return Outcome(
        [request], f"A fingerprint for card {card.ca_id} is on its way to {provider.name}."
    )


# --- Pair smartcards & STBs --------------------------------------------------------------------


class PairForm(DeviceForm):
    NEW, UPDATE = "new", "update"

    type = forms.ChoiceField(
        choices=[
            (NEW, "New: create a pairing (the card leaves any other pairing)"),
            (UPDATE, "Update: add to the existing pairing of a card"),
        ],
        initial=NEW,
    )
    paired_smartcard = DeviceField(
        kind=Kind.SMARTCARD,
        label="Smartcard already paired",
        pick_only=False,
        help_text="Update: the card whose pairing the devices join.",
    )
    smartcard = DeviceField(kind=Kind.SMARTCARD, label="Smartcard to pair", pick_only=False)
    stb = DeviceField(kind=Kind.STB, label="Set-top box to pair", pick_only=False)

    def clean(self):
        data = super().clean()
        card = self.items.get(data.get("smartcard") or "")
        stb = self.items.get(data.get("stb") or "")
        if data.get("type") == self.NEW:
            if card is None:
                self.add_error("smartcard", "Choose the smartcard to pair.")
            data["anchor"], data["members"] = card, [d for d in (card, stb) if d]
        elif data.get("type") == self.UPDATE:
            paired = self.items.get(data.get("paired_smartcard") or "")
            if paired is None:
                self.add_error(
                    "paired_smartcard", "Choose the smartcard whose pairing the devices join."
                )
            if card is None and stb is None:
                self.add_error("smartcard", "Choose a smartcard or a set-top box to add.")
            elif card is not None and card == paired:
                self.add_error("smartcard", "This smartcard is the one already paired.")
            data["anchor"], data["members"] = paired, [d for d in (card, stb) if d]
        return data


def _pair(provider, subscription, data, user, priority, process_immediately) -> Outcome:
    anchor, members = data["anchor"], data["members"]
    new = data["type"] == PairForm.NEW
    parameters = {
        "subscription": subscription.number,
        "distributor": anchor.distributor.code,
        "devices": [_device(m) for m in members],
    }
    if not new:
        parameters["paired_card_ca_id"] = anchor.ca_id
    request = _request(
        provider,
        subscription,
        anchor,
        "CREATE_PAIRING" if new else "ADD_TO_EXISTING_PAIRING",
        parameters,
        priority=priority,
        name="pairing_utility",
        operation=Op.CREATE_PAIRING if new else Op.ADD_TO_PAIRING,
        items=members,
        rollback={"leave_uninitialized": [m.pk for m in members]},
    )
    names = " and ".join(m.ca_id for m in members)
    if new:
        message = f"{names} will be paired anew at {provider.name}."
    else:
        message = f"{names} will join the pairing of card {anchor.ca_id} at {provider.name}."
    return Outcome([request], message)


# --- Reset smartcard PIN -----------------------------------------------------------------------


class PinForm(DeviceForm):
    DEFAULT, NEW = "default", "new"

    smartcard = DeviceField(kind=Kind.SMARTCARD, label="Smartcard")
    reset_to = forms.ChoiceField(
        choices=[(DEFAULT, f"The default PIN ({DEFAULT_PIN})"), (NEW, "A new value")],
        initial=DEFAULT,
        required=False,
    )
    pin = forms.CharField(
        label="New PIN",
        required=False,
        strip=True,
        max_length=20,
        # Never written back into the page (an error re-shows the form).
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
    )

    def clean(self):
        data = super().clean()
        data["card"] = self.device("smartcard", required=True)
        data["reset_to"] = data.get("reset_to") or self.DEFAULT
        pin = data.get("pin") or ""
        if data["reset_to"] == self.NEW and not re.fullmatch(r"[0-9]{4}", pin):
            self.add_error(
                "pin",
                # The error does not repeat what was typed: it may be most of a PIN.
                "Give the new PIN: exactly 4 digits (0 to 9)."
                if not pin
                else "A PIN is exactly 4 digits (0 to 9).",
            )
        elif data["reset_to"] == self.DEFAULT and pin:
            self.add_error(
                "pin",
                f"Leave the PIN empty to reset to the default ({DEFAULT_PIN}), or choose "
                "a new value.",
            )
        return data


def _reset_pin(provider, subscription, data, user, priority, process_immediately) -> Outcome:
    card = data["card"]
    parameters = _base_parameters(subscription, card)
    if data["reset_to"] == PinForm.NEW:
        # Sealed: the request's parameters never hold the PIN in clear (providers.sealed).
        command = "UPDATE_CA_PIN_TO_GIVEN_VALUE"
        parameters.update(sealed.sealed_pin(data["pin"]))
        message = f"The PIN of card {card.ca_id} will be set to the new value."
    else:
        command = "UPDATE_CA_PIN_TO_DEFAULT_VALUE"
        message = f"The PIN of card {card.ca_id} will be reset to {DEFAULT_PIN}."
    request = _request(
        provider, subscription, card, command, parameters, priority=priority, name="reset_pin"
    )
    return Outcome([request], message)


# --- Send mail & bark message ------------------------------------------------------------------


class MessageForm(DeviceForm):
    message_type = forms.ChoiceField(
        choices=[
            ("mail", f"Mail message (at most {MAIL_MAX} characters)"),
            ("bark", f"Bark message (at most {BARK_MAX} characters)"),
            ("repeating_bark", f"Repeating bark message (at most {BARK_MAX} characters)"),
        ],
        initial="mail",
    )
    smartcard = DeviceField(kind=Kind.SMARTCARD, label="Smartcard")
    # No max_length: the limit depends on the message type, and clean() names it; a field
    # limit would answer a long text with its own number instead (and cut it off in the form).
    text = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}))
    start_at = forms.DateTimeField(
        label="Start indication date time", required=False, help_text="Empty: at once."
    )
    display_duration_seconds = forms.IntegerField(
        label="Display duration in seconds",
        required=False,
        min_value=1,
        max_value=3600,
        help_text="Bark messages; empty: 20 seconds.",
    )
    repetition_count = forms.IntegerField(required=False, min_value=1, max_value=255)
    repetition_interval_seconds = forms.IntegerField(
        label="Repetition interval in seconds",
        required=False,
        help_text="10 to 2550, in steps of 10.",
    )

    def clean(self):
        data = super().clean()
        data["card"] = self.device("smartcard", required=True)
        message_settings_clean(self, data)
        kind, text = data.get("message_type"), data.get("text")
        if kind and text:
            problem = message_length_error(kind, text)
            if problem:
                self.add_error("text", problem)
        return data


def message_settings_clean(form: forms.Form, data: dict) -> None:
    """Display duration and repetition for the message type (shared with the run)."""
    kind = data.get("message_type")
    if kind == "mail":
        if data.get("display_duration_seconds") is not None:
            form.add_error(
                "display_duration_seconds", "A mail message waits in the inbox: no duration."
            )
    elif kind and data.get("display_duration_seconds") is None:
        data["display_duration_seconds"] = 20
    for name, label in (
        ("repetition_count", "repetition count"),
        ("repetition_interval_seconds", "repetition interval"),
    ):
        if kind == "repeating_bark" and data.get(name) is None and name not in form.errors:
            form.add_error(name, f"A repeating bark message needs its {label}.")
        elif kind in ("mail", "bark") and data.get(name) is not None:
            form.add_error(name, f"Only a repeating bark message has a {label}.")
    interval = data.get("repetition_interval_seconds")
    if kind == "repeating_bark" and interval is not None:
        problem = repetition_interval_error(interval)
        if problem:
            form.add_error("repetition_interval_seconds", problem)


def message_parameters(data: dict, text: str) -> dict:
    kind = data["message_type"]
    parameters = {
        "message_type": kind,
        "text": text,
        "start_at": _iso(data.get("start_at")),
    }
    if kind != "mail":
        parameters["display_duration_seconds"] = data["display_duration_seconds"]
    if kind == "repeating_bark":
        parameters["repetition_count"] = data["repetition_count"]
        parameters["repetition_interval_seconds"] = data["repetition_interval_seconds"]
    return parameters


def _message(provider, subscription, data, user, priority, process_immediately) -> Outcome:
    card = data["card"]
    request = _request(
        provider,
        subscription,
        card,
        MESSAGE_COMMANDS[data["message_type"]],
        {**_base_parameters(subscription, card), **message_parameters(data, data["text"])},
        priority=priority,
        name="mail_bark_utility",
    )
    kind = MESSAGE_NAMES[data["message_type"]]
    return Outcome(
        [request],
        f"A {kind} message for card {card.ca_id} is on its way to {provider.name}.",
    )


INFORMATION = Utility(
    code="conax_ws_information",
    name="Get Conax information",
    description="Ask the CAS now what it holds: the active subscriptions of a smartcard, "
    "or the pairing of a smartcard or a set-top box.",
    form=InformationForm,
    run=_information,
    may_process_immediately=False,
)
DISPLAY_FINGERPRINT = Utility(
    code="conax_ws_display_fingerprint",
    name="Display fingerprint",
    description="Show a fingerprint on a smartcard's screen, to detect piracy.",
    form=FingerprintForm,
    run=_fingerprint,
    may_process_immediately=False,
    may_be_express=True,
)
PAIR = Utility(
    code="conax_ws_pair",
    name="Pair smartcards & STBs",
    description="New: pair a smartcard (and a set-top box) anew, out of any other pairing. "
    "Update: add a smartcard or a set-top box to a card's existing pairing.",
    form=PairForm,
    run=_pair,
    may_process_immediately=False,
    may_be_express=True,
)
RESET_PIN = Utility(
    code="conax_ws_reset_pin",
    name="Reset smartcard PIN",
    description=f"Reset a smartcard's CA PIN to {DEFAULT_PIN}, or set a new 4-digit value.",
    form=PinForm,
    run=_reset_pin,
    may_process_immediately=False,
    may_be_express=True,
)
SEND_MESSAGE = Utility(
    code="conax_ws_message",
    name="Send mail & bark message",
    description="Send a mail message (inbox) or a bark / repeating bark message (on screen) "
    "to a smartcard.",
    form=MessageForm,
    run=_message,
    may_process_immediately=False,
    may_be_express=True,
)
