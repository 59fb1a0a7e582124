"""Conax SMS run types: export request files and error handling (response files), the shared
file-delivery runs over its pipeline (``providers.file_delivery.runs``); mail & bark.

The *Process Provisioning Requests* run that creates the entitlement and pairing requests is
the shared one (``runs/types.py``); this adapter adds renewals to it (``extra_commands``).
"""

from collections.abc import Callable

from django import forms

from catalogue.models import ExternalSystem
from providers import communications
from providers.extensions import Progress, RunType
from providers.file_delivery import runs as file_runs
from providers.types import NoSettings
from subscriptions.models import CommunicationQueueEntry

from . import messages
from .files import PIPELINE


class MessageRunInput(forms.Form):
    message_type = forms.ChoiceField(choices=messages.MESSAGE_TYPES, initial=messages.MAIL)
    external_system = forms.ChoiceField(
        choices=lambda: ExternalSystem.objects.values_list("code", "name"),
        help_text="Whose Pending outgoing communications the run sends.",
    )
    sequence = forms.IntegerField(min_value=1, max_value=255, initial=messages.DEFAULT_SEQUENCE)
    duration_seconds = forms.IntegerField(
        min_value=1,
        max_value=3600,
        initial=messages.DEFAULT_BARK_SECONDS,
        help_text="How long a bark message stays on screen.",
    )
    process_immediately = forms.BooleanField(
        required=False,
        help_text="Export a file at the end of the run, instead of at the next export run.",
    )


def _entries(definition):
    system = ExternalSystem.objects.get(code=definition.input_settings["external_system"])
    return communications.pending(system, provider=definition.provider)


def _messages(definition, run_id: int, report: Callable[[Progress], None]) -> None:
    provider, settings = definition.provider, definition.input_settings
    kind = settings["message_type"]

    def build(entry: CommunicationQueueEntry) -> int:
        text = entry.text
        if len(text) > messages.MAX_LENGTH[kind]:
            raise communications.CommunicationFailed(
                f"The text has {len(text)} characters; a {kind.lower()} message holds at "
                f"most {messages.MAX_LENGTH[kind]}."
            )
        cards = list(messages.smartcards(entry.subscription, provider))
        if not cards:
            raise communications.CommunicationFailed(
                f"{entry.subscription.number} has no smartcard in use at {provider.name}."
            )
        for card in cards:
            messages.send_message(
                provider,
                card,
                message_type=kind,
                text=text,
                sequence=settings["sequence"],
                duration_seconds=settings["duration_seconds"],
                trigger="run",
                trigger_name="conax_sms_messages",
                process_run_id=run_id,
                communication=entry.number,
            )
        return len(cards)

    result = communications.process(
        _entries(definition), build, progress=communications.reporter(report)
    )
    if settings.get("process_immediately") and result.requests_created:
        problems = file_runs.export_at_end(PIPELINE, provider, run_id)
        if problems:
            counts = communications.counts(result)
            report(Progress(result.examined, result.requests_created, problems, counts))


EXPORT = file_runs.export_run_type(
    PIPELINE, code="conax_sms_export_files", name="Export request files"
)
ERROR_HANDLING = file_runs.answers_run_type(
    PIPELINE, code="conax_sms_error_handling", name="Error Handling file run"
)
MESSAGES = RunType(
    "conax_sms_messages",
    "Mail & Bark Messages",
    NoSettings,
    MessageRunInput,
    _messages,
    total=lambda d: _entries(d).count(),
    total_label="Communications to examine",
    counts=communications.COUNTS,
    summary=communications.card_summary,
)
