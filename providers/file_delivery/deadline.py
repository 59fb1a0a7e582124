"""The answer deadline: exported requests the platform never answers do not wait for ever.

A request stays Pending after its file is uploaded until a response file answers it. Past the
provider's *answer deadline* (hours after the upload; ``answer_deadline_hours``, default 24)
the Error Handling run marks the file's unanswered requests Failed, with a reason that names
the file and the deadline, logs one line per file in the run, and closes the file
(``members.py``). They are then visible with the other Failed requests; *retry* puts them back
in the export queue (the next export writes them in a new file), and an answer that still
comes completes them.
"""

from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

from catalogue.models import Provider
from providers import provider_settings
from providers.models import ProvisioningRequest, TransferFile

from . import members
from .pipeline import Pipeline

Req = ProvisioningRequest
# Delivered files whose requests may still wait for an answer.
DELIVERED = (TransferFile.State.UPLOADED, TransferFile.State.ANSWERED)


def expire_unanswered(
    provider: Provider, now: datetime, pipeline: Pipeline
) -> tuple[int, list[tuple[None, str]]]:
    """Fail what waited past the deadline: (requests failed, one log line per file), in the
    pipeline's words (who did not answer, what was sent)."""
    platform = pipeline.platform
    hours = int(provider_settings.parameter(provider, "answer_deadline_hours"))
    overdue = TransferFile.objects.filter(
        provider=provider,
        direction=TransferFile.Direction.OUT,
        state__in=DELIVERED,
        uploaded_at__lt=now - timedelta(hours=hours),
    ).order_by("pk")
    failed, problems = 0, []
    for file in overdue:
        uploaded = timezone.localtime(file.uploaded_at).strftime("%Y-%m-%d %H:%M")
        reason = (
            f"{platform} did not answer within {hours} hours of {pipeline.sent_noun} {file.name} "
            f"being {pipeline.sent_verb} ({uploaded}). Retry it to send it again in a new "
            f"{pipeline.noun[0]}."
        )
        with transaction.atomic():
            count = sum(
                part.update(
                    state=Req.State.FAILED,
                    last_error=reason,
                    next_attempt_at=None,
                    # Out of the file, so that a retry exports it again (the reason names it).
                    transfer_file=None,
                    sent_at=None,
                    updated_at=now,
                )
                for part in members.each(Req.objects.filter(state=Req.State.PENDING), file)
            )
            # Closed: whatever it held is answered or Failed, so it no longer keeps its
            # requests out of the export.
            file.state = members.CLOSED
            file.save(update_fields=["state"])
        if count:
            failed += count
            problems.append(
                (
                    None,
                    f"{file.name}: {count} requests had no answer within {hours} hours of "
                    f"{pipeline.sending} ({uploaded}) and are now Failed.",
                )
            )
    return failed, problems


def unanswered(provider: Provider) -> int:
    """Requests still waiting for their answer in the provider's delivered batches."""
    files = TransferFile.objects.filter(
        provider=provider, direction=TransferFile.Direction.OUT, state__in=DELIVERED
    )
    pending = Req.objects.filter(state=Req.State.PENDING)
    return sum(part.count() for file in files for part in members.each(pending, file))
