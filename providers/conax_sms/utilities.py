"""Conax SMS utilities: Pair smartcards & STBs, Send mail & bark message (seed 000)."""

from django import forms
from django.db import transaction

from providers.extensions import Outcome, Utility, UtilityForm
from providers.file_delivery import export
from providers.models import ProvisioningRequest
from subscriptions.models import InstalledItem

from . import messages
from .files import PIPELINE

Req = ProvisioningRequest


def _devices(form: UtilityForm, kind: str):
    if form.subscription is None or form.provider is None:
        return InstalledItem.objects.none()
    return InstalledItem.objects.filter(
        subscription=form.subscription,
        kind=kind,
        removed_at__isnull=True,
        distributor__provider=form.provider,
    ).order_by("pk")


class DeviceChoice(forms.ModelChoiceField):
    def label_from_instance(self, obj):
        return f"{obj.serial_number} (CA ID {obj.ca_id}, {obj.distributor.code})"


class PairForm(UtilityForm):
    smartcard = DeviceChoice(queryset=InstalledItem.objects.none())
    stb = DeviceChoice(queryset=InstalledItem.objects.none(), label="Set-top box")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["smartcard"].queryset = _devices(self, InstalledItem.Kind.SMARTCARD)
        self.fields["stb"].queryset = _devices(self, InstalledItem.Kind.STB)

    def clean(self):
        data = super().clean()
        card, box = data.get("smartcard"), data.get("stb")
        if card and box and card.distributor_id != box.distributor_id:
            self.add_error("stb", "The set-top box is on another viewing point than the card.")
        return data


class MessageForm(UtilityForm):
    message_type = forms.ChoiceField(choices=messages.MESSAGE_TYPES, initial=messages.MAIL)
    smartcard = DeviceChoice(queryset=InstalledItem.objects.none())
    text = forms.CharField(max_length=max(messages.MAX_LENGTH.values()), widget=forms.Textarea)
    sequence = forms.IntegerField(
        min_value=1,
        max_value=255,
        initial=messages.DEFAULT_SEQUENCE,
        help_text="The order in which Conax handles the messages.",
    )
    duration_seconds = forms.IntegerField(
        min_value=1,
        max_value=3600,
        initial=messages.DEFAULT_BARK_SECONDS,
        help_text="How long a bark message stays on screen.",
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["smartcard"].queryset = _devices(self, InstalledItem.Kind.SMARTCARD)
        for name in ("sequence", "duration_seconds"):
            self.fields[name].required = False

    def clean(self):
        data = super().clean()
        kind, text = data.get("message_type"), data.get("text") or ""
        if kind and len(text) > messages.MAX_LENGTH[kind]:
            self.add_error(
                "text",
                f"A {kind.lower()} message holds at most {messages.MAX_LENGTH[kind]} characters.",
            )
        data["sequence"] = data.get("sequence") or messages.DEFAULT_SEQUENCE
        data["duration_seconds"] = data.get("duration_seconds") or messages.DEFAULT_BARK_SECONDS
        return data


def _finish(provider, request: Req, what: str, process_immediately: bool) -> Outcome:
    message = f"{what} waits for the next export to Conax."
    if process_immediately:
        message = f"{what}. " + export.export_now(PIPELINE, provider)
    request.refresh_from_db()
    return Outcome([request], message)


def _pair(provider, subscription, data, user, priority, process_immediately) -> Outcome:
    with transaction.atomic():
        request = messages.pair(
            provider, data["smartcard"], data["stb"], trigger_name="conax_sms_pair_devices"
        )
    what = f"Create Pairing of {data['smartcard'].serial_number} and {data['stb'].serial_number}"
    return _finish(provider, request, what, process_immediately)


def _message(provider, subscription, data, user, priority, process_immediately) -> Outcome:
    with transaction.atomic():
        request = messages.send_message(
            provider,
            data["smartcard"],
            message_type=data["message_type"],
            text=data["text"],
            sequence=data["sequence"],
            duration_seconds=data["duration_seconds"],
            trigger=Req.Trigger.UTILITY,
            trigger_name="conax_sms_send_message",
            priority=priority,
        )
    kind = dict(messages.MESSAGE_TYPES)[data["message_type"]]
    return _finish(
        provider, request, f"{kind} to {data['smartcard'].serial_number}", process_immediately
    )


PAIR_DEVICES = Utility(
    code="conax_sms_pair_devices",
    name="Pair smartcards & STBs",
    description="Create Pairing of a smartcard and a set-top box at Conax, with Express "
    "priority; once Conax accepts it both devices are initialized.",
    form=PairForm,
    run=_pair,
    may_be_express=True,
)

SEND_MESSAGE = Utility(
    code="conax_sms_send_message",
    name="Send mail & bark message",
    description="Send a mail (inbox) or bark (on screen) message to one smartcard.",
    form=MessageForm,
    run=_message,
    may_be_express=True,
)
