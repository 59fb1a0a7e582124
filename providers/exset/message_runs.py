"""EXSET SMS message runs (seed 002): Infocas Message (from the communication queue) and
Fingerprinting (a broadcast fingerprint).

*Infocas Message* sends the Pending outgoing communications of the provider's external system
whose subscription has a device at this provider, one ADD_INDIVIDUAL_INFOCAS_MESSAGE per
smartcard, through the shared ``communications.process`` (each communication Completed with its
requests, or Failed with the reason). The seed's rule: not while the subscription has another
request whose TQUEUE entry is New or Under Processing — in our records, a request of this
provider for that subscription still Pending (written, or waiting to be written). Such a
communication stays Pending for the next run, and the run's log says which request holds it.
"""

from collections.abc import Callable

from django import forms
from django.core.exceptions import ValidationError
from django.db import transaction

from catalogue.models import ExternalSystem, ProductCAId
from providers import communications
from providers.extensions import Progress, RunType, counted
from providers.models import ProvisioningRequest
from providers.types import NoSettings
from subscriptions.models import CommunicationQueueEntry

from . import messages
from .utilities import FingerprintFields, minutes_field

Req = ProvisioningRequest

# --- Infocas Message ---------------------------------------------------------------------------


class InfocasInput(forms.Form):
    external_system = forms.ChoiceField(
        choices=lambda: ExternalSystem.objects.values_list("code", "name"),
        help_text="Whose Pending outgoing communications the run sends: the provider's own.",
    )
    duration_minutes = minutes_field(
        60, messages.MAX_DURATION_MINUTES, "How long each message is broadcast (minutes)."
    )
    interval_minutes = minutes_field(
        10, messages.MAX_INTERVAL_MINUTES, "Minutes between two showings of a message."
    )

    def clean(self):
        data = super().clean()
        if "duration_minutes" in data and "interval_minutes" in data:
            try:
                messages.broadcast_times(data["duration_minutes"], data["interval_minutes"])
            except ValidationError as invalid:
                self.add_error(None, invalid)
        return data


def _own_system(definition) -> dict[str, list[str]]:
    """The seed: the run's external system is the provider's."""
    provider, code = definition.provider, definition.input_settings.get("external_system")
    own = provider.external_system
    if own is None:
        return {
            "input_settings": [
                f"external_system: {provider.name} has no external system; set it on the "
                "provider to send its communications."
            ]
        }
    if code != own.code:
        return {
            "input_settings": [
                f"external_system: {provider.name}'s external system is {own.code}; an Infocas "
                f"Message run sends that system's communications, not {code}'s."
            ]
        }
    return {}


def _entries(definition):
    system = ExternalSystem.objects.get(code=definition.input_settings["external_system"])
    return communications.pending(system, provider=definition.provider)


def _send_infocas(definition, run_id: int, report: Callable[[Progress], None]) -> None:
    provider, settings = definition.provider, definition.input_settings
    held: list[tuple[int | None, str]] = []  # this chunk's held-back communications, logged

    def build(entry: CommunicationQueueEntry) -> int:
        waiting = (
            Req.objects.filter(
                provider=provider, subscription_id=entry.subscription_id, state=Req.State.PENDING
            )
            .order_by("pk")
            .values_list("pk", "command")
            .first()
        )
        if waiting is not None:
            held.append(
                (
                    entry.subscription_id,
                    f"{entry.number}: held back for the next run: {entry.subscription.number} "
                    f"has request {waiting[0]} ({waiting[1]}) still waiting at {provider.name} "
                    "(its TQUEUE entry New or Under Processing, or not written yet).",
                )
            )
            raise communications.Defer
        cards = list(messages.smartcards(entry.subscription, provider))
        if not cards:
            raise communications.CommunicationFailed(
                f"{entry.subscription.number} has no smartcard in use at {provider.name}."
            )
        try:
            for card in cards:
                messages.individual_infocas(
                    provider,
                    card,
                    message=entry.text,
                    duration_minutes=settings["duration_minutes"],
                    interval_minutes=settings["interval_minutes"],
                    trigger=Req.Trigger.RUN,
                    trigger_name=INFOCAS_MESSAGES.code,
                    process_run_id=run_id,
                    communication=entry.number,
                )
        except ValidationError as invalid:
            raise communications.CommunicationFailed(" ".join(invalid.messages)) from None
        return len(cards)

    def progress(result: communications.Result) -> None:
        report(
            Progress(
                result.examined,
                result.requests_created,
                [*result.problems, *held],
                counts=communications.counts(result),
            )
        )
        held.clear()

    communications.process(_entries(definition), build, progress=progress)


def _infocas_summary(counts) -> str:
    return (
        f"Sent {counts['sent']} of {counted(counts['communications'], 'communication')} as "
        f"{counted(counts['requests'], 'request')}; {counts['held_back']} held back for the "
        f"next run; {counts['failed']} failed"
    )


INFOCAS_MESSAGES = RunType(
    "exset_infocas_messages",
    "Infocas Message",
    NoSettings,
    InfocasInput,
    _send_infocas,
    total=lambda definition: _entries(definition).count(),
    total_label="Communications to examine",
    checks=_own_system,
    counts=(
        ("communications", "Communications examined"),
        ("sent", "Sent"),
        ("held_back", "Held back for the next run"),
        ("failed", "Failed"),
        ("requests", "Requests created"),
    ),
    summary=_infocas_summary,
)


# --- Fingerprinting ----------------------------------------------------------------------------


def _services():
    known = ProductCAId.objects.order_by("ca_id").values_list("ca_id", "ca_id").distinct()
    return [("", "All subscribers"), *known]


class FingerprintCriteria(forms.Form):
    service_ca_id = forms.ChoiceField(
        label="Only holders of the service",
        choices=_services,
        required=False,
        help_text="Empty: every subscriber.",
    )


class FingerprintInput(FingerprintFields):
    def clean(self):
        data = super().clean()
        self.fingerprint(data)  # judged only: the settings keep their own fields
        return data


def _service_known(definition) -> dict[str, list[str]]:
    try:
        messages.service_ca_id(definition.provider, definition.criteria.get("service_ca_id"))
    except ValidationError as invalid:
        return {"criteria": [f"service_ca_id: {m}" for m in invalid.messages]}
    return {}


def _send_fingerprint(definition, run_id: int, report: Callable[[Progress], None]) -> None:
    shown = {name: definition.input_settings.get(name) for name in messages.FINGERPRINT_DEFAULTS}
    with transaction.atomic():
        messages.broadcast_fingerprint(
            definition.provider,
            shown,
            service=definition.criteria.get("service_ca_id") or "",
            trigger=Req.Trigger.RUN,
            trigger_name=FINGERPRINTING.code,
            process_run_id=run_id,
        )
        report(Progress(1, 1, counts={"broadcasts": 1}))


FINGERPRINTING = RunType(
    "exset_fingerprinting",
    "Fingerprinting",
    FingerprintCriteria,
    FingerprintInput,
    _send_fingerprint,
    total=lambda definition: 1,
    total_label="Broadcasts to make",
    checks=_service_known,
    counts=(("broadcasts", "Fingerprint broadcasts"),),
    summary=lambda counts: f"Created {counted(counts['broadcasts'], 'fingerprint broadcast')}",
)
