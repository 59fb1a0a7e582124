"""Conax SMS run types: export request files, error handling (response files), mail & bark.

The *Process Provisioning Requests* run that creates the entitlement and pairing requests is
the shared one (``runs/types.py``); this adapter adds renewals to it (``extra_commands``).
"""

from collections.abc import Callable

from django import forms

from catalogue.models import ExternalSystem
from providers import communications
from providers.extensions import Progress, RunType, counted
from providers.file_delivery import export, responses
from providers.registry import TransportError
from providers.types import NoSettings
from subscriptions.models import CommunicationQueueEntry

from . import messages
from .files import PIPELINE


def _export_counts(result: export.Result) -> dict[str, int]:
    files = len(result.uploaded) + len(result.found_delivered)
    return {"records": result.records, "files": files, "failed": result.failed}


def _export(definition, run_id: int, report: Callable[[Progress], None]) -> None:
    def progress(result: export.Result) -> None:
        # Problems are reported once: the list holds only those since the last file.
        report(Progress(result.records, problems=result.problems, counts=_export_counts(result)))
        result.problems = []

    result = export.export(PIPELINE, definition.provider, process_run_id=run_id, progress=progress)
    report(Progress(result.records, problems=result.problems, counts=_export_counts(result)))


def _export_summary(c) -> str:
    text = f"Exported {counted(c['records'], 'record')} in {counted(c['files'], 'file')}"
    if c["failed"]:
        text += f"; {c['failed']} could not be written"
    return text


def _error_handling(definition, run_id: int, report: Callable[[Progress], None]) -> None:
    def progress(result: responses.Result) -> None:
        answered = result.completed + result.rejected
        counts = {
            "answered": answered,
            "accepted": result.completed,
            "rejected": result.rejected,
            "files": result.files,
            "refused": result.refused,
            "resent": result.resent,
            "expired": result.expired,
        }
        report(Progress(examined=answered, problems=result.problems, counts=counts))

    responses.process_responses(
        PIPELINE, definition.provider, process_run_id=run_id, progress=progress
    )


def _error_handling_summary(c) -> str:
    text = (
        f"Answered {c['answered']} (accepted {c['accepted']}, rejected {c['rejected']}) "
        f"from {counted(c['files'], 'response file')}"
    )
    if c["resent"]:
        text += f", {c['resent']} of them sent again under the same name"
    if c["refused"]:
        text += f"; {counted(c['refused'], 'file')} refused"
    if c["expired"]:
        text += f"; {c['expired']} unanswered past the deadline, now Failed"
    return text


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

    def progress(result: communications.Result) -> None:
        report(Progress(result.examined, result.requests_created, list(result.problems)))

    result = communications.process(_entries(definition), build, progress=progress)
    if settings.get("process_immediately") and result.requests_created:
        try:
            export.export(PIPELINE, provider, process_run_id=run_id)
        except TransportError as exc:
            report(
                Progress(
                    result.examined,
                    result.requests_created,
                    [(None, f"Could not export now ({exc}); the next export run sends them.")],
                )
            )


EXPORT = RunType(
    "conax_sms_export_files",
    "Export request files",
    NoSettings,
    NoSettings,
    _export,
    total=lambda d: export.waiting(d.provider),
    counts=(
        ("records", "Records exported"),
        ("files", "Files exported"),
        ("failed", "Could not be written"),
    ),
    summary=_export_summary,
)
ERROR_HANDLING = RunType(
    "conax_sms_error_handling",
    "Error Handling file run",
    NoSettings,
    NoSettings,
    _error_handling,
    total=lambda d: None,
    counts=(
        ("answered", "Requests answered"),
        ("accepted", "Accepted"),
        ("rejected", "Rejected"),
        ("files", "Response files read"),
        ("refused", "Response files refused"),
        ("resent", "Sent again under the same name"),
        ("expired", "Failed: no answer by the deadline"),
    ),
    summary=_error_handling_summary,
)
MESSAGES = RunType(
    "conax_sms_messages",
    "Mail & Bark Messages",
    NoSettings,
    MessageRunInput,
    _messages,
    total=lambda d: _entries(d).count(),
)
