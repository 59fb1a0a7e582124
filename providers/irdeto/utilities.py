"""The agents' utilities for Irdeto KMS (seed 001, SPEC "Utilities").

Each acts on one of the subscription's secure clients (its smartcards and set-top boxes at this
provider, offered by CA ID; with one only, it may be left out) — or, for a message, on every
subscriber at once. Irdeto is real-time: requests go at once through the push worker (no
*process immediately* choice) and may take Express priority; Query secure client asks the KMS
in this process and shows its answer, section by section.

The parental PIN is a secret: it travels sealed (``providers.sealed``) in the request's
parameters, which the Web API and the admin show, and no message or log line names it.
"""

import re

from django import forms

from providers import at_once, engine, registry, sealed
from providers.extensions import Outcome, Table, Utility, UtilityError, UtilityForm
from providers.models import ProvisioningRequest
from subscriptions.models import InstalledItem

from . import protocol

Req = ProvisioningRequest
Kind = InstalledItem.Kind

# The seed: with no PIN given and none set on the provider, the PIN becomes 0001.
STANDARD_PIN = "0001"
MAIL, MESSAGE = "mail", "message"
MESSAGE_TYPES = [(MAIL, "Mail (the set-top box's inbox)"), (MESSAGE, "Message (on screen)")]
MESSAGE_COMMANDS = {MAIL: protocol.SEND_MAIL, MESSAGE: protocol.SEND_SCREEN_MESSAGE}
TEXT_MODE_CHOICES = [
    (protocol.ANSI, "ANSI (advised: one byte a character)"),
    (protocol.UNICODE, "Unicode (two bytes a character)"),
    (protocol.RAW, "Raw (hex bytes)"),
]
TEXT_HELP = (
    f"At most {protocol.MAX_PAYLOAD_BYTES} bytes: {protocol.MAX_PAYLOAD_BYTES} characters in "
    f"ANSI, {protocol.MAX_PAYLOAD_BYTES // 2} in Unicode; Raw takes hex digits (e.g. 48 69)."
)
ONE, ALL = "device", "all"


def in_use(subscription, provider):
    """The subscription's secure clients (smartcards and set-top boxes) in use at the
    provider, oldest first."""
    return (
        InstalledItem.objects.filter(
            subscription=subscription, removed_at__isnull=True, distributor__provider=provider
        )
        .select_related("distributor")
        .order_by("pk")
    )


def screens(devices) -> list[InstalledItem]:
    """The devices that show a viewing point's messages and hold its parental PIN: its set-top
    boxes, or its smartcards where it has no box (a card-only viewing point)."""
    points: dict[int, list[InstalledItem]] = {}
    for device in devices:
        points.setdefault(device.distributor_id, []).append(device)
    return [
        device
        for found in points.values()
        for device in ([d for d in found if d.kind == Kind.STB] or found)
    ]


def device_parameters(subscription, device: InstalledItem) -> dict:
    return {
        "subscription": subscription.number,
        "distributor": device.distributor.code,
        "device_kind": device.kind,
        "device_ca_id": device.ca_id,
        "device_serial_number": device.serial_number,
    }


def named(device: InstalledItem) -> str:
    return f"{device.get_kind_display().lower()} {device.ca_id}"


def payload_error(mode: str, text: str) -> str | None:
    """Why this text cannot be sent in this mode, or None (shared with the Mail run)."""
    try:
        protocol.payload(mode, text)
    except protocol.TextModeError as error:
        return str(error)
    return None


def message_parameters(message_type: str, mode: str, text: str) -> dict:
    """A message's parameters: its bytes as hex, and the text as a person reads it."""
    data = protocol.payload(mode, text)
    return {
        "message_type": message_type,
        "text_mode": mode,
        "payload_hex": data.hex().upper(),
        "text": protocol.text_of(mode, data),
    }


def device_field() -> forms.ChoiceField:
    return forms.ChoiceField(
        label="Device",
        required=False,
        help_text="Its CA ID; may be left out if it is the only one.",
    )


class SecureClientForm(UtilityForm):
    """A form whose ``device`` (``device_field``, declared where it goes in the form) offers
    the subscription's secure clients at this provider (``offered``); the only one is taken
    when it is left out."""

    what = "device"

    def offered(self, devices: list[InstalledItem]) -> list[InstalledItem]:
        return devices

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        found = (
            self.offered(list(in_use(self.subscription, self.provider)))
            if self.subscription is not None and self.provider is not None
            else []
        )
        self.devices = {d.ca_id: d for d in found}
        self.fields["device"].choices = [("", "—")] + [
            (
                d.ca_id,
                f"{d.serial_number} ({d.get_kind_display()}, CA ID {d.ca_id}, "
                f"{d.distributor.code})",
            )
            for d in found
        ]

    def chosen(self) -> InstalledItem | None:
        """The device chosen (the only one when left out), or an error on ``device``."""
        value = self.cleaned_data.get("device")
        if value:
            return self.devices[value]
        if "device" in self.errors:
            return None
        if len(self.devices) == 1:
            return next(iter(self.devices.values()))
        if not self.devices:
            self.add_error(
                "device",
                f"{self.subscription.number} has no {self.what} in use at {self.provider.name}.",
            )
        else:
            self.add_error("device", f"Choose the {self.what}: {', '.join(self.devices)}.")
        return None


def _request(provider, subscription, device, command, parameters, *, priority, name) -> Req:
    return engine.create_request(
        provider,
        command,
        parameters,
        trigger=Req.Trigger.UTILITY,
        trigger_name=name,
        subscription=subscription,
        installed_item=device,
        distributor=device.distributor if device else None,
        priority=priority,
    )


# --- Send single message -----------------------------------------------------------------------


class MessageForm(SecureClientForm):
    message_type = forms.ChoiceField(choices=MESSAGE_TYPES, initial=MAIL)
    recipients = forms.ChoiceField(
        choices=[(ONE, "One device of this subscription"), (ALL, "All subscribers")],
        initial=ONE,
        required=False,
        help_text="Empty: one device.",
    )
    device = device_field()
    text_mode = forms.ChoiceField(choices=TEXT_MODE_CHOICES, initial=protocol.ANSI)
    # No max_length: the limit is in bytes and depends on the mode; clean() names it.
    text = forms.CharField(widget=forms.Textarea(attrs={"rows": 4}), help_text=TEXT_HELP)

    def clean(self):
        data = super().clean()
        data["recipients"] = data.get("recipients") or ONE
        if data["recipients"] == ONE:
            data["target"] = self.chosen()
        elif data.get("device"):
            self.add_error("device", "A message to all subscribers names no device.")
        mode, text = data.get("text_mode"), data.get("text")
        if mode and text:
            problem = payload_error(mode, text)
            if problem:
                self.add_error("text", problem)
        return data


def _message(provider, subscription, data, user, priority, process_immediately) -> Outcome:
    kind = data["message_type"]
    parameters = message_parameters(kind, data["text_mode"], data["text"])
    device = data.get("target")
    if device is None:
        # A broadcast: one request naming no subscription nor device (as EXSET's infocas).
        request = engine.create_request(
            provider,
            MESSAGE_COMMANDS[kind],
            parameters,
            trigger=Req.Trigger.UTILITY,
            trigger_name=SEND_MESSAGE.code,
            priority=priority,
        )
        to = "all subscribers"
    else:
        request = _request(
            provider,
            subscription,
            device,
            MESSAGE_COMMANDS[kind],
            {**device_parameters(subscription, device), **parameters},
            priority=priority,
            name=SEND_MESSAGE.code,
        )
        to = named(device)
    what = "A mail" if kind == MAIL else "An on-screen message"
    size = len(parameters["payload_hex"]) // 2
    return Outcome(
        [request],
        f"{what} to {to} ({protocol.TEXT_MODES[data['text_mode']]}, {size} bytes) is on its "
        f"way to {provider.name}.",
    )


# --- Set parental PIN --------------------------------------------------------------------------


class PinForm(SecureClientForm):
    what = "set-top box (or smartcard of a viewing point without one)"
    device = device_field()
    pin = forms.CharField(
        label="New PIN",
        required=False,
        strip=True,
        max_length=20,
        # Never written back into the page (an error re-shows the form).
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
        help_text=f"4 digits. Empty: the provider's default PIN, or {STANDARD_PIN} if it has none.",
    )

    def offered(self, devices):
        return screens(devices)

    def clean(self):
        data = super().clean()
        data["target"] = self.chosen()
        pin = data.get("pin") or ""
        if pin and not re.fullmatch(r"[0-9]{4}", pin):
            # The error does not repeat what was typed: it may be most of a PIN.
            self.add_error("pin", "A PIN is exactly 4 digits (0 to 9).")
        return data


def pin_for(provider, given: str) -> tuple[str, str]:
    """(PIN, where it comes from): the given one, else the provider's default, else 0001."""
    if given:
        return given, "the given PIN"
    default = (provider.parameters or {}).get("default_pin") or ""
    if default:
        return default, f"{provider.name}'s default PIN"
    return STANDARD_PIN, "the standard default PIN"


def _set_pin(provider, subscription, data, user, priority, process_immediately) -> Outcome:
    device = data["target"]
    pin, source = pin_for(provider, data.get("pin") or "")
    request = _request(
        provider,
        subscription,
        device,
        protocol.SET_PARENTAL_PIN,
        {**device_parameters(subscription, device), **sealed.sealed_pin(pin)},
        priority=priority,
        name=SET_PARENTAL_PIN.code,
    )
    return Outcome([request], f"The parental PIN of {named(device)} will be set to {source}.")


# --- Query secure client -----------------------------------------------------------------------


class DeviceForm(SecureClientForm):
    device = device_field()

    def clean(self):
        data = super().clean()
        data["target"] = self.chosen()
        return data


# Words of the KMS's field names that a person reads in capitals.
ACRONYMS = {"id": "ID", "pin": "PIN", "stbs": "STBs", "gb": "GB", "pvr": "PVR", "tms": "TMS"}


def _label(key: str) -> str:
    """A field name of the KMS (``pairingId``, ``storage_gb``) as a column heading."""
    words = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", str(key)).replace("_", " ").lower().split()
    words = [ACRONYMS.get(w, w) for w in words]
    return " ".join(words)[:1].upper() + " ".join(words)[1:]


def _shown(value) -> str:
    if value is None or value == "":
        return "-"
    if isinstance(value, bool):
        return "Yes" if value else "No"
    if isinstance(value, list | tuple):
        return ", ".join(_shown(v) for v in value) or "-"
    if isinstance(value, dict):
        return "; ".join(f"{_label(k)}: {_shown(v)}" for k, v in value.items()) or "-"
    return str(value)


def section_table(heading: str, section) -> Table:
    """A section of the KMS's answer as a table: a record as Field / Value rows, a list of
    records as one row each, a list of values as one column."""
    if isinstance(section, dict):
        return Table(
            heading, ("Field", "Value"), tuple((_label(k), _shown(v)) for k, v in section.items())
        )
    if isinstance(section, list) and all(isinstance(r, dict) for r in section):
        keys = list(dict.fromkeys(k for r in section for k in r))
        return Table(
            heading,
            tuple(_label(k) for k in keys),
            tuple(tuple(_shown(r.get(k)) for k in keys) for r in section),
        )
    if isinstance(section, list):
        return Table(heading, ("Value",), tuple((_shown(v),) for v in section))
    return Table(heading, ("Value",), () if section is None else ((_shown(section),),))


def sections_of(body: dict) -> tuple[Table, ...]:
    """The nine sections of a Query secure client answer, in the order a person reads them."""
    found = body.get("sections", body) if isinstance(body, dict) else {}
    return tuple(
        section_table(heading, found.get(key)) for key, heading in protocol.QUERY_SECTIONS.items()
    )


def ask(
    provider,
    subscription,
    device: InstalledItem,
    *,
    priority: int = Req.Priority.NORMAL,
    trigger: str = Req.Trigger.UTILITY,
    name: str,
    process_run_id: int | None = None,
) -> tuple[Req, registry.Answer]:
    """Query the KMS now, in this process, about ``device``; the query is recorded as a
    request with its answer (``at_once``). A KMS that does not answer: the request is Failed
    with the reason, and ``TransportError`` raised."""
    request = at_once.create(
        provider,
        protocol.QUERY_SECURE_CLIENT,
        device_parameters(subscription, device),
        trigger=trigger,
        trigger_name=name,
        subscription=subscription,
        installed_item=device,
        distributor=device.distributor,
        priority=priority,
        process_run_id=process_run_id,
    )
    return request, at_once.send(request, registry.adapter_for(provider).send)


def _query(provider, subscription, data, user, priority, process_immediately) -> Outcome:
    device = data["target"]
    try:
        request, answer = ask(
            provider, subscription, device, priority=priority, name=QUERY_SECURE_CLIENT.code
        )
    except registry.TransportError as error:
        raise UtilityError(f"{provider.name} did not answer: {error}. Try again later.") from None
    if not answer.accepted:
        return Outcome(
            [request],
            f"{provider.name} refused the query: {answer.error_code} "
            f"{answer.error_description}".rstrip(),
        )
    return Outcome(
        [request],
        f"{provider.name} describes {named(device)} in {len(protocol.QUERY_SECTIONS)} sections.",
        tables=sections_of(answer.response or {}),
    )


def platform_state(
    provider, subscription, devices, *, trigger: str, trigger_name: str, process_run_id=None
) -> dict[int, registry.Held]:
    """What the KMS holds for each device (the adapter's ``platform_state``), by Query secure
    client: paired or not, and the products entitled now. A device the KMS does not know
    holds nothing."""
    held: dict[int, registry.Held] = {}
    for device in devices:
        try:
            _request, answer = ask(
                provider,
                subscription,
                device,
                trigger=trigger,
                name=trigger_name,
                process_run_id=process_run_id,
            )
        except registry.TransportError as error:
            raise registry.PlatformQueryError(f"{provider.name} did not answer: {error}") from None
        if not answer.accepted:
            if answer.error_code == protocol.UNKNOWN_SECURE_CLIENT:
                held[device.pk] = registry.Held(False)
                continue
            raise registry.PlatformQueryError(
                f"{provider.name} refused to say what it holds for {device.ca_id}: "
                f"{answer.error_code} {answer.error_description}".rstrip()
            )
        sections = (answer.response or {}).get("sections") or {}
        entitled = frozenset(
            e["productId"] for e in sections.get("entitlements") or () if e.get("active")
        )
        paired = bool((sections.get("pairing") or {}).get("pairingId"))
        held[device.pk] = registry.Held(paired, entitled)
    return held


# --- Re-authorize secure client's sector -------------------------------------------------------


def _reauthorize(provider, subscription, data, user, priority, process_immediately) -> Outcome:
    device = data["target"]
    request = _request(
        provider,
        subscription,
        device,
        protocol.REAUTHORIZE_SECTOR,
        device_parameters(subscription, device),
        priority=priority,
        name=REAUTHORIZE_SECTOR.code,
    )
    return Outcome(
        [request], f"The sector of {named(device)} will be re-authorized at {provider.name}."
    )


SEND_MESSAGE = Utility(
    code="irdeto_send_message",
    name="Send single message",
    description="Send a mail (the set-top box's inbox) or an on-screen message to one device "
    "of the subscription or to all subscribers, in ANSI (advised), Unicode or Raw text.",
    form=MessageForm,
    run=_message,
    may_process_immediately=False,
    may_be_express=True,
)
SET_PARENTAL_PIN = Utility(
    code="irdeto_set_parental_pin",
    name="Set parental PIN",
    description="Set the parental PIN of one set-top box (a smartcard where its viewing point "
    f"has no box): to a given value, else the provider's default PIN, else {STANDARD_PIN}.",
    form=PinForm,
    run=_set_pin,
    may_process_immediately=False,
    may_be_express=True,
)
QUERY_SECURE_CLIENT = Utility(
    code="irdeto_query_secure_client",
    name="Query secure client",
    description="Ask the KMS now what it holds for a device: pairing, entitlements, basic, "
    "security, anchoring, TMS attributes, sector, PVR and device domain information.",
    form=DeviceForm,
    run=_query,
    may_process_immediately=False,
)
REAUTHORIZE_SECTOR = Utility(
    code="irdeto_reauthorize_sector",
    name="Re-authorize secure client's sector",
    description="Refresh a device's sector at the KMS: the first thing to try when a "
    "subscriber reports a loss of signal.",
    form=DeviceForm,
    run=_reauthorize,
    may_process_immediately=False,
    may_be_express=True,
)
