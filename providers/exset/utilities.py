"""EXSET SMS utilities (seed 002): Send Infocas Message, Display Fingerprint, Recall Subscription.

Each form offers the subscription's own smartcards at this provider by CA ID (``card_ca_id``;
with one card only it may be left out), and names its fields as the requests' parameters, so a
rule ``messages.py`` refuses names the field the agent or the API caller got wrong. The
requests wait for the TQUEUE writing; *process immediately* writes them at once.
"""

from django import forms
from django.core.exceptions import ValidationError
from django.db import transaction

from catalogue.models import ProductCAId
from providers.extensions import Outcome, Utility, UtilityForm
from providers.file_delivery import export
from providers.models import ProvisioningRequest
from subscriptions.models import InstalledItem

from . import messages
from .queue import PIPELINE

Req = ProvisioningRequest
SINGLE, ALL = "single_subscriber", "all_subscribers"
RECIPIENTS = [(SINGLE, "Single subscriber"), (ALL, "All subscribers")]


def minutes_field(initial: int, maximum: int, help_text: str) -> forms.IntegerField:
    # The range is judged by ``messages`` (one rule, one message); the widget only hints it.
    return forms.IntegerField(
        initial=initial,
        widget=forms.NumberInput(attrs={"min": 1, "max": maximum}),
        help_text=help_text,
    )


class ExsetForm(UtilityForm):
    """A utility form whose ``card_ca_id`` offers the subscription's smartcards at this
    provider, and whose ``service_ca_id`` offers the provider's service CA IDs."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        known = self.subscription is not None and self.provider is not None
        self.cards: dict[str, InstalledItem] = {}
        if "card_ca_id" in self.fields:
            if known:
                cards = messages.smartcards(self.subscription, self.provider)
                self.cards = {card.ca_id: card for card in cards}
            field = self.fields["card_ca_id"]
            field.choices = [("", "—")] + [
                (ca_id, f"{c.serial_number} (CA ID {ca_id}, {c.distributor.code})")
                for ca_id, c in self.cards.items()
            ]
            if known:
                field.error_messages["invalid_choice"] = (
                    f"No smartcard with CA ID %(value)s is in use on {self.subscription.number} "
                    f"at {self.provider.name}."
                )
        if "service_ca_id" in self.fields and self.provider is not None:
            self.fields["service_ca_id"].choices = [("", "— (every subscriber)")] + [
                (ca_id, f"{name} ({ca_id})")
                for ca_id, name in ProductCAId.objects.filter(provider=self.provider)
                .order_by("product__name")
                .values_list("ca_id", "product__name")
            ]

    def card(self) -> InstalledItem | None:
        """The smartcard chosen (the only one when left out), or an error on ``card_ca_id``."""
        chosen = self.cleaned_data.get("card_ca_id")
        if chosen:
            return self.cards[chosen]
        if "card_ca_id" in self.errors:
            return None
        if len(self.cards) == 1:
            return next(iter(self.cards.values()))
        if not self.cards:
            self.add_error(
                "card_ca_id",
                f"{self.subscription.number} has no smartcard in use at {self.provider.name}.",
            )
        else:
            self.add_error("card_ca_id", f"Choose the smartcard: {', '.join(self.cards)}.")
        return None

    def judged(self, check, *names: str):
        """``check()``'s value, or its ``ValidationError`` on the form's fields; not run while
        one of ``names`` has an error already (a second message would only repeat it)."""
        if any(name in self.errors for name in names):
            return None
        try:
            return check()
        except ValidationError as invalid:
            self.add_error(None, invalid)
            return None


def _card_field(help_text: str) -> forms.ChoiceField:
    return forms.ChoiceField(label="Smartcard", required=False, help_text=help_text)


# --- Send Infocas Message ----------------------------------------------------------------------


class InfocasForm(ExsetForm):
    type = forms.ChoiceField(choices=RECIPIENTS, initial=SINGLE)
    card_ca_id = _card_field("Single subscriber: the card to show it on (its only one if empty).")
    message = forms.CharField(
        widget=forms.Textarea(attrs={"maxlength": messages.MAX_MESSAGE, "rows": 4}),
        help_text=f"At most {messages.MAX_MESSAGE} characters, shown on the screen.",
    )
    duration_minutes = minutes_field(
        60, messages.MAX_DURATION_MINUTES, "How long the message is broadcast (minutes)."
    )
    interval_minutes = minutes_field(
        10, messages.MAX_INTERVAL_MINUTES, "Minutes between two showings of it."
    )

    def clean(self):
        data = super().clean()
        if data.get("type") == SINGLE:
            data["card"] = self.card()
        self.judged(
            lambda: messages.infocas_parameters(
                data["message"], data["duration_minutes"], data["interval_minutes"]
            ),
            "message",
            "duration_minutes",
            "interval_minutes",
        )
        return data


def _finish(provider, request: Req, what: str, process_immediately: bool) -> Outcome:
    message = f"{what} waits for the next TQUEUE writing."
    if process_immediately:
        message = f"{what}. " + export.export_now(PIPELINE, provider)
    request.refresh_from_db()
    return Outcome([request], message)


def _infocas(provider, subscription, data, user, priority, process_immediately) -> Outcome:
    how = {
        "message": data["message"],
        "duration_minutes": data["duration_minutes"],
        "interval_minutes": data["interval_minutes"],
        "trigger": Req.Trigger.UTILITY,
        "trigger_name": SEND_INFOCAS_MESSAGE.code,
        "priority": priority,
    }
    with transaction.atomic():
        if data["type"] == ALL:
            request = messages.broadcast_infocas(provider, **how)
            what = "An infocas message to all subscribers"
        else:
            request = messages.individual_infocas(provider, data["card"], **how)
            what = f"An infocas message to card {data['card'].ca_id}"
    return _finish(provider, request, what, process_immediately)


# --- Display Fingerprint -----------------------------------------------------------------------


class FingerprintFields(forms.Form):
    """The fingerprint's display parameters (the utility's and the Fingerprinting run's); empty
    ones take ``messages.FINGERPRINT_DEFAULTS``."""

    window_type = forms.ChoiceField(
        choices=messages.WINDOW_TYPES,
        required=False,
        initial=messages.FINGERPRINT_DEFAULTS["window_type"],
    )
    position_x = forms.IntegerField(
        label="Position X (%)",
        required=False,
        initial=messages.FINGERPRINT_DEFAULTS["position_x"],
        help_text="From the left edge, 0 to 100 % of the width.",
    )
    position_y = forms.IntegerField(
        label="Position Y (%)",
        required=False,
        initial=messages.FINGERPRINT_DEFAULTS["position_y"],
        help_text="From the top edge, 0 to 100 % of the height.",
    )
    duration_seconds = forms.IntegerField(
        label="Display duration (seconds)",
        required=False,
        initial=messages.FINGERPRINT_DEFAULTS["duration_seconds"],
        help_text="1 to 600.",
    )
    font_size = forms.IntegerField(
        label="Font size (points)",
        required=False,
        initial=messages.FINGERPRINT_DEFAULTS["font_size"],
        help_text="8 to 48.",
    )
    text_color = forms.CharField(
        required=False, initial=messages.FINGERPRINT_DEFAULTS["text_color"], help_text="#RRGGBB"
    )
    background_color = forms.CharField(
        required=False,
        initial=messages.FINGERPRINT_DEFAULTS["background_color"],
        help_text="#RRGGBB",
    )

    def fingerprint(self, data: dict) -> dict | None:
        """The fingerprint object, or the errors on its fields."""
        # A field wrong already (not a number, not a choice) is judged as its default here.
        names = [name for name in messages.FINGERPRINT_DEFAULTS if name not in self.errors]
        try:
            return messages.fingerprint({name: data.get(name) for name in names})
        except ValidationError as invalid:
            self.add_error(None, invalid)
            return None


class FingerprintRecipients(ExsetForm):
    type = forms.ChoiceField(choices=RECIPIENTS, initial=SINGLE)
    card_ca_id = _card_field("Single subscriber: the card to show it on (its only one if empty).")
    service_ca_id = forms.ChoiceField(
        label="Only holders of the service",
        required=False,
        help_text="All subscribers: only those having this service.",
    )


class FingerprintForm(FingerprintFields, FingerprintRecipients):
    """Who sees it first, then what they see (the fields in that order)."""

    def clean(self):
        data = super().clean()
        if data.get("type") == SINGLE:
            data["card"] = self.card()
        data["fingerprint"] = self.fingerprint(data)
        return data


def _fingerprint(provider, subscription, data, user, priority, process_immediately) -> Outcome:
    how = {
        "service": data.get("service_ca_id") or "",
        "trigger": Req.Trigger.UTILITY,
        "trigger_name": DISPLAY_FINGERPRINT.code,
        "priority": priority,
    }
    holders = f" holding {how['service']}" if how["service"] else ""
    with transaction.atomic():
        if data["type"] == ALL:
            request = messages.broadcast_fingerprint(provider, data["fingerprint"], **how)
            what = f"A fingerprint to all subscribers{holders}"
        else:
            request = messages.individual_fingerprint(
                provider, data["card"], data["fingerprint"], **how
            )
            what = f"A fingerprint to card {data['card'].ca_id}"
    return _finish(provider, request, what, process_immediately)


# --- Recall Subscription -----------------------------------------------------------------------


class RecallForm(ExsetForm):
    card_ca_id = _card_field("The card whose services are re-authorized (its only one if empty).")

    def clean(self):
        data = super().clean()
        card = self.card()
        if card is not None:
            data["card"] = card
            self.judged(lambda: messages.recall_parameters(self.provider, card), "card_ca_id")
        return data


def _recall(provider, subscription, data, user, priority, process_immediately) -> Outcome:
    with transaction.atomic():
        request = messages.recall(
            provider,
            data["card"],
            trigger=Req.Trigger.UTILITY,
            trigger_name=RECALL_SUBSCRIPTION.code,
            priority=priority,
        )
    services = ", ".join(request.parameters["service_ca_ids"])
    what = f"Recall of card {data['card'].ca_id} ({services})"
    return _finish(provider, request, what, process_immediately)


SEND_INFOCAS_MESSAGE = Utility(
    code="exset_send_infocas_message",
    name="Send Infocas Message",
    description="Show a message on screen: on one of the subscription's smartcards (single "
    "subscriber), or on every subscriber's (all subscribers), for a duration, repeated at an "
    "interval.",
    form=InfocasForm,
    run=_infocas,
    may_be_express=True,
)
DISPLAY_FINGERPRINT = Utility(
    code="exset_display_fingerprint",
    name="Display Fingerprint",
    description="Show a fingerprint (to detect piracy) on one of the subscription's smartcards, "
    "or on every subscriber's, optionally only those holding one service.",
    form=FingerprintForm,
    run=_fingerprint,
    may_be_express=True,
)
RECALL_SUBSCRIPTION = Utility(
    code="exset_recall_subscription",
    name="Recall Subscription",
    description="Re-authorize on one of the subscription's smartcards every Effective service "
    "of its viewing point, when the customer says a service does not work.",
    form=RecallForm,
    run=_recall,
    may_be_express=True,
)
