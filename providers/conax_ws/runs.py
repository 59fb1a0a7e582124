"""Run types of Conax Contego web services: Mail & Bark Messages and Fingerprinting.

(Reset Subscriptions and Archive requests are the shared ones, named in the adapter.)

Both make one request per smartcard the subscription has in use at this provider, written in
chunks, each chunk one transaction with its progress, and wake the push worker after each
chunk commits; the requests then go to the CAS like any other, in order per card.
"""

from collections.abc import Callable

from django import forms
from django.conf import settings
from django.db import transaction
from django.db.models import Exists, OuterRef

from catalogue.models import ExternalSystem
from providers import communications, run_requests
from providers.extensions import Progress, RunType, counted
from providers.models import ProvisioningRequest
from providers.types import NoSettings
from subscriptions.models import InstalledItem, Segment, Subscription

from .utilities import (
    MESSAGE_COMMANDS,
    fingerprint_defaults,
    fingerprint_parameters,
    message_length_error,
    message_parameters,
    message_settings_clean,
)

Req = ProvisioningRequest
Kind = InstalledItem.Kind


def _cards(provider, subscription_ids) -> dict[int, list[InstalledItem]]:
    """Each subscription's smartcards in use at the provider, oldest first."""
    found: dict[int, list[InstalledItem]] = {}
    for card in (
        InstalledItem.objects.filter(
            subscription_id__in=subscription_ids,
            kind=Kind.SMARTCARD,
            removed_at__isnull=True,
            distributor__provider=provider,
        )
        .select_related("distributor")
        .order_by("subscription_id", "pk")
    ):
        found.setdefault(card.subscription_id, []).append(card)
    return found


def _card_parameters(subscription, card) -> dict:
    return {
        "subscription": subscription.number,
        "distributor": card.distributor.code,
        "card_ca_id": card.ca_id,
        "card_serial_number": card.serial_number,
    }


def _moment(value):
    return forms.DateTimeField().to_python(value) if value else None


class MomentWidget(forms.DateTimeInput):
    def value_from_datadict(self, data, files, name):
        if name not in data and f"{name}_0" in data:
            return [data.get(f"{name}_0"), data.get(f"{name}_1")]
        return super().value_from_datadict(data, files, name)


class MomentField(forms.DateTimeField):
    """A date and time given as one value (stored settings, the API) or as the date and time
    of the back office's split widget, which the run definition form gives every date-time
    field of a run type (posted as ``<name>_0`` and ``<name>_1``)."""

    widget = MomentWidget

    def to_python(self, value):
        if isinstance(value, list | tuple):
            value = " ".join(str(part).strip() for part in value if part)
        return super().to_python(value)


# --- Mail & Bark Messages ----------------------------------------------------------------------


class MessageInput(forms.Form):
    message_type = forms.ChoiceField(
        choices=[
            ("mail", "Mail message (at most 141 characters)"),
            ("bark", "Bark message (at most 129 characters)"),
            ("repeating_bark", "Repeating bark message (at most 129 characters)"),
        ],
        initial="mail",
    )
    external_system = forms.ChoiceField(
        label="Communication queue external system",
        choices=lambda: ExternalSystem.objects.values_list("code", "name"),
        help_text="Its Pending outgoing communications that refer to a subscription are sent.",
    )
    start_at = MomentField(label="Start indication date time", required=False)
    display_duration_seconds = forms.IntegerField(
        label="Display duration in seconds", required=False, min_value=1, max_value=3600
    )
    repetition_count = forms.IntegerField(required=False, min_value=1, max_value=255)
    repetition_interval_seconds = forms.IntegerField(
        label="Repetition interval in seconds", required=False, help_text="10 to 2550, by 10."
    )

    def clean(self):
        data = super().clean()
        message_settings_clean(self, data)
        return data


def _pending(definition):
    system = ExternalSystem.objects.get(code=definition.input_settings["external_system"])
    return communications.pending(system, provider=definition.provider)


def _send_messages(definition, run_id: int, report: Callable[[Progress], None]) -> None:
    provider, data = definition.provider, dict(definition.input_settings)
    data["start_at"] = _moment(data.get("start_at"))
    kind = data["message_type"]

    def build(entry) -> int:
        problem = message_length_error(kind, entry.text)
        if problem:
            raise communications.CommunicationFailed(problem)
        cards = _cards(provider, [entry.subscription_id]).get(entry.subscription_id)
        if not cards:
            raise communications.CommunicationFailed(
                f"{entry.subscription.number} has no smartcard at {provider.name}."
            )
        parameters = {
            **message_parameters(data, entry.text),
            "communication_queue_number": entry.number,
        }
        return run_requests.write(
            provider,
            [
                (
                    MESSAGE_COMMANDS[kind],
                    entry.subscription,
                    card,
                    {**_card_parameters(entry.subscription, card), **parameters},
                )
                for card in cards
            ],
            trigger_name="mail_bark_messages",
            run_id=run_id,
        )

    communications.process(
        _pending(definition),
        build,
        chunk_size=settings.RUN_CHUNK_SIZE,
        progress=communications.reporter(report),
    )


# --- Fingerprinting ----------------------------------------------------------------------------


def _segments():
    return Segment.objects.values_list("code", "name")


class FingerprintCriteria(forms.Form):
    included_segments = forms.MultipleChoiceField(
        choices=_segments, help_text="Subscriptions in any of these segments get the fingerprint."
    )
    excluded_segments = forms.MultipleChoiceField(
        choices=_segments, required=False, help_text="…unless they are in one of these."
    )

    def clean(self):
        data = super().clean()
        both = sorted(
            set(data.get("included_segments") or []) & set(data.get("excluded_segments") or [])
        )
        if both:
            self.add_error(
                "excluded_segments",
                f"A segment cannot be both included and excluded: {', '.join(both)}.",
            )
        return data


class FingerprintInput(forms.Form):
    display_at = MomentField(label="Display date time", required=False, help_text="Empty: at once.")
    duration_seconds = forms.IntegerField(
        label="Display duration in seconds", required=False, min_value=1, max_value=3600
    )
    position_x = forms.IntegerField(required=False, min_value=0, max_value=4096)
    position_y = forms.IntegerField(required=False, min_value=0, max_value=4096)
    height = forms.IntegerField(
        label="Height in pixels", required=False, min_value=1, max_value=255
    )
    slot = forms.ChoiceField(choices=[("A", "Slot A"), ("B", "Slot B")], required=False)

    def clean(self):
        data = super().clean()
        fingerprint_defaults(self, data)
        return data


def _fingerprinted(definition):
    """Subscriptions in an included segment, in no excluded one, with a smartcard in use at
    the provider."""
    criteria = definition.criteria
    return (
        Subscription.objects.filter(
            Exists(
                Segment.subscriptions.through.objects.filter(
                    subscription=OuterRef("pk"), segment__code__in=criteria["included_segments"]
                )
            ),
            Exists(
                InstalledItem.objects.filter(
                    subscription=OuterRef("pk"),
                    kind=Kind.SMARTCARD,
                    removed_at__isnull=True,
                    distributor__provider=definition.provider,
                )
            ),
        )
        .exclude(
            Exists(
                Segment.subscriptions.through.objects.filter(
                    subscription=OuterRef("pk"),
                    segment__code__in=criteria.get("excluded_segments") or [],
                )
            )
        )
        .order_by("pk")
    )


def _send_fingerprints(definition, run_id: int, report: Callable[[Progress], None]) -> None:
    provider = definition.provider
    data = dict(definition.input_settings)
    data["display_at"] = _moment(data.get("display_at"))
    shown = fingerprint_parameters(data)
    subscriptions = _fingerprinted(definition)
    examined = created = 0
    last = 0
    while True:
        with transaction.atomic():
            chunk = list(subscriptions.filter(pk__gt=last)[: settings.RUN_CHUNK_SIZE])
            if not chunk:
                return
            last = chunk[-1].pk
            cards = _cards(provider, [s.pk for s in chunk])
            created += run_requests.write(
                provider,
                [
                    ("DISPLAY_FINGERPRINT", sub, card, {**_card_parameters(sub, card), **shown})
                    for sub in chunk
                    for card in cards.get(sub.pk, [])
                ],
                trigger_name="fingerprinting",
                run_id=run_id,
            )
            examined += len(chunk)
            counts = {"subscriptions": examined, "cards": created}
            report(Progress(examined, created, counts=counts))


def _fingerprint_summary(c) -> str:
    return (
        f"Sent the fingerprint to {counted(c['cards'], 'smartcard')} of "
        f"{counted(c['subscriptions'], 'subscription')}"
    )


MAIL_BARK_MESSAGES = RunType(
    "conax_ws_mail_bark_messages",
    "Mail & Bark Messages",
    NoSettings,
    MessageInput,
    _send_messages,
    total=lambda definition: _pending(definition).count(),
    total_label="Communications to examine",
    counts=communications.COUNTS,
    summary=communications.card_summary,
)
FINGERPRINTING = RunType(
    "conax_ws_fingerprinting",
    "Fingerprinting",
    FingerprintCriteria,
    FingerprintInput,
    _send_fingerprints,
    total=lambda definition: _fingerprinted(definition).count(),
    counts=(("subscriptions", "Subscriptions examined"), ("cards", "Smartcards sent to")),
    summary=_fingerprint_summary,
)
