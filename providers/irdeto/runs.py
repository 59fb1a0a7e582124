"""Irdeto's Mail run (seed 001): the Pending communications of the run's external system, sent
as mails (the set-top box's inbox) or on-screen messages, in one text mode.

(Reset Subscriptions and Archive requests are the shared ones, named in the adapter.)

Each communication becomes one request per viewing point of its subscription at this provider,
to the point's set-top box (its smartcard where it has none), through the shared
``communications.process``: Completed with its requests, or — a text the mode cannot carry,
no device — Failed with the reason, which the run's log shows; never sent half.
"""

from collections.abc import Callable

from django import forms
from django.conf import settings

from catalogue.models import ExternalSystem
from providers import communications, run_requests
from providers.extensions import Progress, RunType, counted
from providers.types import NoSettings

from . import protocol
from .utilities import (
    MESSAGE_COMMANDS,
    MESSAGE_TYPES,
    TEXT_MODE_CHOICES,
    device_parameters,
    in_use,
    message_parameters,
    payload_error,
    screens,
)


class MailInput(forms.Form):
    external_system = forms.ChoiceField(
        label="Communication queue external system",
        choices=lambda: ExternalSystem.objects.values_list("code", "name"),
        help_text="Its Pending outgoing communications that refer to a subscription are sent.",
    )
    message_type = forms.ChoiceField(choices=MESSAGE_TYPES, initial="mail")
    text_mode = forms.ChoiceField(
        choices=TEXT_MODE_CHOICES,
        initial=protocol.ANSI,
        help_text="A communication whose text this mode cannot carry fails with the reason.",
    )


def _pending(definition):
    system = ExternalSystem.objects.get(code=definition.input_settings["external_system"])
    return communications.pending(system, provider=definition.provider)


def _send_mail(definition, run_id: int, report: Callable[[Progress], None]) -> None:
    provider, data = definition.provider, definition.input_settings
    kind, mode = data["message_type"], data["text_mode"]

    def build(entry) -> int:
        problem = payload_error(mode, entry.text)
        if problem:
            raise communications.CommunicationFailed(problem)
        devices = screens(in_use(entry.subscription, provider))
        if not devices:
            raise communications.CommunicationFailed(
                f"{entry.subscription.number} has no device at {provider.name}."
            )
        parameters = {
            **message_parameters(kind, mode, entry.text),
            "communication_queue_number": entry.number,
        }
        return run_requests.write(
            provider,
            [
                (
                    MESSAGE_COMMANDS[kind],
                    entry.subscription,
                    device,
                    {**device_parameters(entry.subscription, device), **parameters},
                )
                for device in devices
            ],
            trigger_name=MAIL.code,
            run_id=run_id,
        )

    communications.process(
        _pending(definition),
        build,
        chunk_size=settings.RUN_CHUNK_SIZE,
        progress=communications.reporter(report),
    )


def _summary(counts) -> str:
    return (
        f"Sent {counts['sent']} of {counted(counts['communications'], 'communication')} as "
        f"{counted(counts['requests'], 'request')}; {counts['failed']} failed"
    )


MAIL = RunType(
    "irdeto_mail",
    "Mail",
    NoSettings,
    MailInput,
    _send_mail,
    total=lambda definition: _pending(definition).count(),
    total_label="Communications to examine",
    counts=communications.COUNTS,
    summary=_summary,
)
