"""Error handling: the platform's answers (response files), each applied once.

For every answer the channel lists (a file in the provider's response directory), oldest name
first:

- the same bytes as an answer of that name read before (its ledger row, a ``TransferFile``
  in, has their checksum) → an earlier run read it and only its archiving was lost: it is
  archived (as refused, logged again, if it was refused) and nothing else happens;
- cannot be trusted as a whole (the layout raises ``FormatError``) → refused: nothing in it is
  applied; the run's log says why; the Pending requests of the batch it answers keep waiting,
  and their last error says so (which answer, why, and the answer deadline); it is archived
  as refused. The platform may send it again, corrected, under the same name: the next run
  reads it as a new attempt (recorded in the ledger row's ``settings["attempts"]``);
- otherwise each record is matched to its request by uid and recorded, set-based, with
  ``record_answers``: Completed (a service authorized, devices initialized, then the
  pipeline's ``accepted`` extras) or Rejected with the platform's error (the change rolled
  back through the action layer). A record that matches no request of this provider, or that
  cannot be read, is logged in the run; the rest goes ahead. A refused batch (the answer's
  ``file_error``) puts its requests back in the export queue. The ledger row is committed with
  the answers, then the answer is archived.

Then requests whose batch was uploaded longer ago than the answer deadline and that are still
unanswered become Failed (``deadline.py``).
"""

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from catalogue.models import Provider
from providers import provider_settings
from providers.answers import APPLIED, Answer, AnswerConflict, Outcome, record_answers
from providers.models import ProvisioningRequest, TransferFile

from . import members
from .channel import Channel
from .deadline import DELIVERED, expire_unanswered
from .layout import AnswerBatch, AnswerRecord, FormatError
from .pipeline import Pipeline

Req = ProvisioningRequest
# How a request's last error begins while it waits for a corrected response file.
WAITING = "Waiting for {platform}'s answer: "
# Answers recorded per statement set (and uids looked up per query).
ANSWER_CHUNK = 5000


@dataclass
class Result:
    files: int = 0  # response files read, refused ones included
    completed: int = 0
    rejected: int = 0
    expired: int = 0  # Failed: no answer within the deadline
    refused: int = 0  # response files that could not be applied
    resent: int = 0  # read again under a name read before, with a new content
    problems: list[tuple[int | None, str]] = field(default_factory=list)


def _normal(uid: str) -> str:
    try:
        return str(uuid.UUID(uid))
    except ValueError:
        return uid


def _requests(provider: Provider, records: list[AnswerRecord]) -> dict[str, Req]:
    uids = []
    for record in records:
        try:
            uids.append(uuid.UUID(record.uid))
        except ValueError:
            continue
    found: dict[str, Req] = {}
    for start in range(0, len(uids), ANSWER_CHUNK):
        for request in Req.objects.filter(
            provider=provider, uid__in=uids[start : start + ANSWER_CHUNK]
        ).only("pk", "uid", "state", "command", "operation", "service_id", "subscription_id"):
            found[str(request.uid)] = request
    return found


def _record(answers: list[Answer]) -> list[Outcome | AnswerConflict]:
    """Set-based (``record_answers``), a chunk at a time; a chunk with a conflict — a request
    answered the other way meanwhile, or twice the other way in this file — is recorded one
    answer at a time, so that only the conflicting answer is left out."""
    outcomes: list[Outcome | AnswerConflict] = []
    for start in range(0, len(answers), ANSWER_CHUNK):
        chunk = answers[start : start + ANSWER_CHUNK]
        try:
            outcomes += record_answers(chunk)
            continue
        except AnswerConflict:
            pass
        for answer in chunk:
            try:
                outcomes += record_answers([answer])
            except AnswerConflict as exc:
                outcomes.append(exc)
    return outcomes


def _apply(
    pipeline: Pipeline, provider: Provider, name: str, parsed: AnswerBatch, result: Result
) -> None:
    now = timezone.now()
    by_uid = _requests(provider, parsed.records)
    lines: list[tuple[AnswerRecord, Req | None]] = [
        (record, by_uid.get(_normal(record.uid))) for record in parsed.records
    ]
    answers = [
        Answer(
            request.pk,
            record.accepted,
            record.error_code,
            record.error_description,
            # An acceptance needs no more than its state and its file (linked below): the
            # common answer stays one UPDATE for the lot. A rejection keeps where it was said.
            None if record.accepted else {"file": name, "status": "ERROR"},
        )
        for record, request in lines
        if request is not None
    ]
    outcomes = iter(_record(answers))
    accepted = []
    # The run's log in the order of the file's lines.
    for record, request in lines:
        if request is None:
            result.problems.append(
                (None, f"{name}: the answer for {record.uid} matches no request of {provider}.")
            )
            continue
        outcome = next(outcomes)
        if isinstance(outcome, AnswerConflict):
            result.problems.append((request.subscription_id, f"{name}: {outcome}"))
        elif outcome.result != APPLIED:
            continue  # answered so before (a file read again): nothing changes
        elif record.accepted:
            result.completed += 1
            accepted.append(request)
        else:
            result.rejected += 1
            result.problems.append(
                (
                    request.subscription_id,
                    f"{request.command} {request.uid} rejected by {pipeline.platform}: "
                    f"{record.error_code} {record.error_description}".rstrip(),
                )
            )
    if accepted and pipeline.accepted:
        pipeline.accepted(accepted, now)
    for line, message in parsed.line_errors:
        result.problems.append((None, f"{name} line {line}: {message}"))


def _request_file(provider: Provider, request_name: str) -> TransferFile | None:
    return TransferFile.objects.filter(
        provider=provider, direction=TransferFile.Direction.OUT, name=request_name
    ).first()


def _refused(
    platform: str, name: str, parsed: AnswerBatch, sent: TransferFile | None, result: Result
):
    code, description = parsed.file_error
    if sent is None:
        result.problems.append(
            (None, f"{name}: {platform} refused {parsed.request_name}, which we never sent.")
        )
        return
    # A refused file is not open: its Pending requests are in the export queue again.
    back = sum(
        part.count() for part in members.each(Req.objects.filter(state=Req.State.PENDING), sent)
    )
    sent.state = TransferFile.State.REJECTED
    sent.message = f"{code}: {description}"
    sent.save(update_fields=["state", "message"])
    result.problems.append(
        (
            None,
            f"{platform} refused request file {sent.name} ({code}: {description}); its {back} "
            "Pending requests go in the next export.",
        )
    )


def _answered(sent: TransferFile | None, now) -> None:
    """The request file is answered: its requests are linked to it now (``members.py``: the
    export did not write them), and it is Answered — from Prepared too, since the CAS may
    answer a file between its rename and the export's record of that."""
    if sent is None:
        return
    for part in members.each(Req.objects.filter(transfer_file__isnull=True), sent):
        part.update(transfer_file=sent, sent_at=sent.uploaded_at or now)
    TransferFile.objects.filter(
        pk=sent.pk, state__in=(TransferFile.State.PREPARED, TransferFile.State.UPLOADED)
    ).update(
        state=TransferFile.State.ANSWERED,
        processed_at=now,
        uploaded_at=Coalesce("uploaded_at", Value(now)),
    )


def _wait(pipeline: Pipeline, provider: Provider, name: str, exc: FormatError, now) -> str:
    """A response file that cannot be applied: the Pending requests of the file it answers say
    on their page (last error) that they wait for it, and until when. Returns what the run's
    log adds about them."""
    sent = _request_file(provider, pipeline.layout.answered_batch(name))
    if sent is None or sent.state not in DELIVERED:
        return ""
    hours = int(provider_settings.parameter(provider, "answer_deadline_hours"))
    deadline = (sent.uploaded_at or now) + timedelta(hours=hours)
    until = timezone.localtime(deadline).strftime("%Y-%m-%d %H:%M")
    note = (
        f"{WAITING.format(platform=pipeline.platform)}its response file {name} was refused: "
        f"{exc} The next Error Handling run applies a corrected {name}; with no answer by "
        f"{until} this request becomes Failed."
    )
    waiting = sum(
        part.update(last_error=note, updated_at=now)
        for part in members.each(
            Req.objects.filter(state=Req.State.PENDING, transfer_file__isnull=True), sent
        )
    )
    if not waiting:  # answered already, by an earlier version of this file
        return ""
    sent.message = note
    sent.save(update_fields=["message"])
    return (
        f" The {waiting} requests of request file {sent.name} stay Pending, waiting for a "
        f"corrected {name} under the same name (until the answer deadline, {until})."
    )


def _stop_waiting(platform: str, sent: TransferFile | None) -> None:
    """An answer to a file whose earlier answer was refused: its requests wait no more."""
    waiting = WAITING.format(platform=platform)
    if sent is None or not sent.message.startswith(waiting):
        return
    for part in members.each(
        Req.objects.filter(state=Req.State.PENDING, last_error__startswith=waiting), sent
    ):
        part.update(last_error="")
    sent.message = ""
    sent.save(update_fields=["message"])


def _ledger(
    provider: Provider,
    name: str,
    ledger: TransferFile | None,
    now,
    process_run_id: int | None,
    state: str,
    message: str = "",
    **fields,
) -> None:
    """The ledger row of a response file: made on its first reading; each later reading (a
    file sent again under the same name) is an attempt added to it. A file once applied stays
    Processed whatever a later version of it is."""
    attempt = {"at": now.isoformat(), "process_run": process_run_id, "state": state}
    if message:
        attempt["message"] = message
    if ledger is None:
        TransferFile.objects.create(
            provider=provider,
            direction=TransferFile.Direction.IN,
            name=name,
            state=state,
            message=message,
            settings={"attempts": [attempt]},
            process_run_id=process_run_id,
            created_at=now,
            processed_at=now,
            **fields,
        )
        return
    ledger.settings.setdefault("attempts", []).append(attempt)
    if state == TransferFile.State.PROCESSED or ledger.state == TransferFile.State.MALFORMED:
        ledger.state, ledger.message = state, message
        for key, value in fields.items():
            setattr(ledger, key, value)
    ledger.process_run_id, ledger.processed_at = process_run_id, now
    ledger.save()


def handle_answer(
    pipeline: Pipeline,
    provider: Provider,
    channel: Channel,
    name: str,
    result: Result,
    process_run_id: int | None = None,
) -> None:
    layout = pipeline.layout
    data = channel.fetch(name)
    digest = layout.checksum(data)
    ledger = TransferFile.objects.filter(
        provider=provider, direction=TransferFile.Direction.IN, name=name
    ).first()
    if ledger is not None and ledger.checksum == digest:
        # The same bytes again: read by an earlier run that stopped before archiving it.
        malformed = ledger.state == TransferFile.State.MALFORMED
        if malformed:
            result.problems.append(
                (None, f"Response file {name} is unchanged and still refused: {ledger.message}")
            )
        channel.archive(name, refused=malformed)
        return
    now = timezone.now()
    result.files += 1
    result.resent += int(ledger is not None)
    try:
        parsed = layout.parse_answers(data)
    except FormatError as exc:
        with transaction.atomic():
            waiting = _wait(pipeline, provider, name, exc, now)
            refused = TransferFile.State.MALFORMED
            _ledger(provider, name, ledger, now, process_run_id, refused, str(exc), checksum=digest)
        result.refused += 1
        result.problems.append(
            (None, f"Response file {name} was refused; nothing in it was applied: {exc}{waiting}")
        )
        channel.archive(name, refused=True)
        return
    with transaction.atomic():
        done = TransferFile.State.PROCESSED
        _ledger(
            provider,
            name,
            ledger,
            now,
            process_run_id,
            done,
            records=len(parsed.records),
            checksum=digest,
        )
        sent = _request_file(provider, parsed.request_name)
        _stop_waiting(pipeline.platform, sent)
        if parsed.file_error is not None:
            _refused(pipeline.platform, name, parsed, sent, result)
        else:
            _apply(pipeline, provider, name, parsed, result)
            _answered(sent, now)
    channel.archive(name, refused=False)


def process_responses(
    pipeline: Pipeline,
    provider: Provider,
    *,
    connect: Callable[[Provider], Channel] | None = None,
    process_run_id: int | None = None,
    progress: Callable[[Result], None] | None = None,
    now: datetime | None = None,
) -> Result:
    """Apply every answer waiting on the channel (``connect``: default the pipeline's), then
    fail what waited past the answer deadline (``deadline.py``; ``now``: the clock) — that too
    when the platform cannot be reached, which is when it matters most. ``progress(result)``
    after each answer and at the end, with running counts; ``result.problems`` holds only the
    new problems and is emptied after each call."""
    result = Result()
    try:
        with (connect or pipeline.connect)(provider) as channel:
            for name in channel.answers():
                handle_answer(pipeline, provider, channel, name, result, process_run_id)
                if progress:
                    progress(result)
                    result.problems = []
    finally:
        result.expired, problems = expire_unanswered(provider, now or timezone.now(), pipeline)
        result.problems += problems
        if progress:
            progress(result)
            result.problems = []
    return result
