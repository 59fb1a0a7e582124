"""Error handling: the CAS's response files, each applied once.

For every response file in the provider's response directory, oldest name first:

- already in our ledger (a ``TransferFile`` in) → it was applied and only its move was lost:
  it is moved to ``processed/`` again and nothing else happens;
- cannot be trusted as a whole (header, trailer, record count or checksum wrong) → nothing in
  it is applied; it is recorded Malformed, logged in the run and moved to ``failed/``;
- otherwise each line is matched to its request by uid and recorded with ``record_answer``:
  Completed (a service authorized, devices initialized, and — for a Renew — the authorization
  date moved to today, so it is not renewed again before its time) or Rejected with the CAS's
  error (the change rolled back through the action layer). A line that matches no request of
  this provider, or that cannot be read, is logged in the run; the rest of the file goes ahead.
  A refused request file (``F`` line) puts its requests back in the export queue. The ledger
  row is committed with the answers, then the file is moved to ``processed/``.
"""

import posixpath
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from django.db import transaction
from django.utils import timezone

from providers.answers import APPLIED, AnswerConflict, record_answer
from providers.models import Provider, ProvisioningRequest, TransferFile
from subscriptions.models import SubscriptionService

from . import file_format as ff
from . import transport

Req = ProvisioningRequest
PROCESSED = "processed"
FAILED = "failed"


@dataclass
class Result:
    files: int = 0
    completed: int = 0
    rejected: int = 0
    problems: list[tuple[int | None, str]] = field(default_factory=list)


def _renewed(request: Req, now) -> None:
    """An accepted Renew extends the entitlement: the renewal frequency counts from now."""
    SubscriptionService.objects.filter(
        pk=request.service_id, authorized=True, state__in=SubscriptionService.ON_STATES
    ).update(authorization_date=now, updated_at=now)


def _normal(uid: str) -> str:
    try:
        return str(uuid.UUID(uid))
    except ValueError:
        return uid


def _apply(provider: Provider, name: str, parsed: ff.ParsedResponse, result: Result) -> None:
    now = timezone.now()
    by_uid: dict[str, Req] = {}
    uids = []
    for record in parsed.records:
        try:
            uids.append(uuid.UUID(record.uid))
        except ValueError:
            continue
    for start in range(0, len(uids), 5000):
        for request in Req.objects.filter(provider=provider, uid__in=uids[start : start + 5000]):
            by_uid[str(request.uid)] = request
    for record in parsed.records:
        request = by_uid.get(_normal(record.uid))
        if request is None:
            result.problems.append(
                (None, f"{name}: the answer for {record.uid} matches no request of {provider}.")
            )
            continue
        try:
            outcome = record_answer(
                request,
                accepted=record.accepted,
                error_code=record.error_code,
                error_description=record.error_description,
                response={"file": name, "status": "OK" if record.accepted else "ERROR"},
            )
        except AnswerConflict as exc:
            result.problems.append((request.subscription_id, f"{name}: {exc}"))
            continue
        if record.accepted:
            result.completed += 1
            if outcome.result == APPLIED and request.operation == Req.Operation.RENEW:
                _renewed(request, now)
        else:
            result.rejected += 1
            result.problems.append(
                (
                    request.subscription_id,
                    f"{request.command} {request.uid} rejected by Conax: "
                    f"{record.error_code} {record.error_description}".rstrip(),
                )
            )
    for line, message in parsed.line_errors:
        result.problems.append((None, f"{name} line {line}: {message}"))


def _refused(provider: Provider, name: str, parsed: ff.ParsedResponse, result: Result) -> None:
    code, description = parsed.file_error
    sent = TransferFile.objects.filter(
        provider=provider, direction=TransferFile.Direction.OUT, name=parsed.request_name
    ).first()
    if sent is None:
        result.problems.append(
            (None, f"{name}: Conax refused {parsed.request_name}, which we never sent.")
        )
        return
    back = Req.objects.filter(transfer_file=sent, state=Req.State.PENDING).update(
        transfer_file=None, sent_at=None
    )
    sent.state = TransferFile.State.REJECTED
    sent.message = f"{code}: {description}"
    sent.save(update_fields=["state", "message"])
    result.problems.append(
        (
            None,
            f"Conax refused request file {sent.name} ({code}: {description}); its {back} "
            "Pending requests go in the next export.",
        )
    )


def handle_file(
    provider: Provider,
    remote: transport.Transport,
    name: str,
    result: Result,
    process_run_id: int | None = None,
) -> None:
    response_dir = provider.connection.get("response_directory", "/out")
    path = posixpath.join(response_dir, name)
    ledger = TransferFile.objects.filter(
        provider=provider, direction=TransferFile.Direction.IN, name=name
    ).first()
    if ledger is not None:
        # Applied by an earlier run that stopped before moving it.
        malformed = ledger.state == TransferFile.State.MALFORMED
        remote.move(path, posixpath.join(response_dir, FAILED if malformed else PROCESSED))
        return
    data = remote.download(path)
    now = timezone.now()
    try:
        parsed = ff.parse_response(data)
    except ff.FormatError as exc:
        TransferFile.objects.create(
            provider=provider,
            direction=TransferFile.Direction.IN,
            name=name,
            state=TransferFile.State.MALFORMED,
            checksum=ff.checksum(data),
            message=str(exc),
            process_run_id=process_run_id,
            created_at=now,
            processed_at=now,
        )
        result.problems.append(
            (None, f"Response file {name} is malformed and was not applied: {exc}")
        )
        remote.move(path, posixpath.join(response_dir, FAILED))
        result.files += 1
        return
    with transaction.atomic():
        TransferFile.objects.create(
            provider=provider,
            direction=TransferFile.Direction.IN,
            name=name,
            state=TransferFile.State.PROCESSED,
            records=len(parsed.records),
            checksum=ff.checksum(data),
            process_run_id=process_run_id,
            created_at=now,
            processed_at=now,
        )
        if parsed.file_error is not None:
            _refused(provider, name, parsed, result)
        else:
            _apply(provider, name, parsed, result)
            TransferFile.objects.filter(
                provider=provider,
                direction=TransferFile.Direction.OUT,
                name=parsed.request_name,
                state=TransferFile.State.UPLOADED,
            ).update(state=TransferFile.State.ANSWERED, processed_at=now)
    remote.move(path, posixpath.join(response_dir, PROCESSED))
    result.files += 1


def process_responses(
    provider: Provider,
    *,
    connect: Callable[[Provider], transport.Transport] = transport.connect,
    process_run_id: int | None = None,
    progress: Callable[[Result], None] | None = None,
) -> Result:
    """Apply every response file waiting on the server. ``progress(result)`` after each file,
    with running counts; ``result.problems`` holds only the new problems and is emptied after
    each call."""
    result = Result()
    response_dir = provider.connection.get("response_directory", "/out")
    with connect(provider) as remote:
        names = sorted(n for n in remote.listdir(response_dir) if ff.is_response_file(n))
        for name in names:
            handle_file(provider, remote, name, result, process_run_id)
            if progress:
                progress(result)
                result.problems = []
    return result
