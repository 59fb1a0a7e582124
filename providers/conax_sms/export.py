"""File export: Pending requests into request files, each delivered to the CAS exactly once.

One file at a time, in two transactions that each hold the provider's row (exporters take
turns, so a scheduled run and a *process immediately* never write the same request twice):

1. **Stage**: the next waiting requests — Express first, then oldest — up to *Maximum Number of
   Records in Each File* are read as plain values (keyset by priority and id), written as one
   file whose lines carry end dates from the operation parameters, and put on the server under
   its temporary name ``<name>.part``. In the same transaction the file is recorded: one
   ``TransferFile`` row, state Prepared, holding its request ids (``members.py``: the request
   rows themselves are written when their answer comes). A request that cannot be written
   fails alone, with the reason.
2. **Deliver**: the ``.part`` is renamed to its final name — the moment the CAS may take it,
   and delete it — and the file becomes Uploaded.

A run may die anywhere; what the next run finds tells it what happened:

- died before stage 1 committed: nothing was recorded and nothing was renamed, so the CAS
  never saw the file; the requests are written again (a leftover ``.part`` is never renamed
  and is overwritten by the next file of that name);
- died after stage 1 committed: the file is Prepared. If ``<name>.part`` is still on the server
  the rename never happened, and the run renames it now. If it is gone the rename did happen
  — the CAS may already have taken and deleted the file without answering yet — so it is only
  recorded as Uploaded, never sent again. (Nothing but our rename removes a ``.part``: the CAS
  reads only files with their final name.)

Requests stay Pending until a response file answers them, or until the answer deadline
passes (``responses.py``).
"""

import posixpath
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime

from dateutil.relativedelta import relativedelta
from django.db import connection, transaction
from django.db.models import Case, F, JSONField, TextField, Value, When
from django.db.models.fields.json import KT
from django.db.models.functions import Cast
from django.utils import timezone

from providers.models import Provider, ProvisioningRequest, TransferFile

from . import file_format as ff
from . import members, transport

Req = ProvisioningRequest
END_PERIODS = {
    ff.ADD: "add_end_period_months",
    ff.RENEW: "renew_end_period_months",
    ff.CANCEL: "cancel_end_period_months",
}
# Express (1) sorts before Normal (5).
PRIORITIES = sorted(Req.Priority.values)


class ExportError(Exception):
    pass


@dataclass
class Result:
    # Files this run renamed into place.
    uploaded: list[str] = field(default_factory=list)
    # Files an interrupted run had already renamed into place: recorded, not sent again.
    found_delivered: list[str] = field(default_factory=list)
    records: int = 0  # requests in the files above
    failed: int = 0  # requests that could not be written
    problems: list[tuple[int | None, str]] = field(default_factory=list)


def dates_for(provider: Provider, today: date) -> dict[str, str]:
    """The start date and each command's end date for a file made ``today``."""
    dates = {"start": today.isoformat()}
    for command, parameter in END_PERIODS.items():
        months = int(provider.parameter(parameter))
        dates[command] = (today + relativedelta(months=months)).isoformat()
    return dates


def _queue(provider: Provider):
    """Pending and not yet linked to a file (``members.py``: open files' requests are left
    out as well, by id)."""
    return Req.objects.filter(
        provider=provider, state=Req.State.PENDING, transfer_file__isnull=True
    )


def waiting(provider: Provider) -> int:
    """Requests a run would export: waiting for a file, or in a file not delivered yet."""
    files = TransferFile.objects.filter(
        provider=provider, direction=TransferFile.Direction.OUT, state__in=members.OPEN
    )
    count = _queue(provider).count()
    for file in files:
        if file.state == TransferFile.State.PREPARED:
            continue  # its requests are counted among the waiting, as they are
        count -= sum(part.count() for part in members.each(_queue(provider), file))
    return count


def _paths(provider: Provider, name: str) -> tuple[str, str]:
    final = posixpath.join(provider.connection.get("upload_directory", "/in"), name)
    return final, final + ff.PARTIAL_SUFFIX


def _lock(provider: Provider) -> None:
    list(Provider.objects.select_for_update().filter(pk=provider.pk).values_list("pk"))


def _read(provider: Provider, priority: int, after: int, limit: int) -> list[tuple]:
    """Waiting requests of one priority after an id, as plain columns: the uid as text, only
    the parameters their line needs (all of them for the few commands that need more). Run
    with the database cursor: no model instances, no per-row conversions."""
    postgres = connection.vendor == "postgresql"
    queryset = (
        _queue(provider)
        .filter(priority=priority, pk__gt=after)
        .order_by("pk")
        .values_list(
            "pk",
            Cast("uid", TextField()) if postgres else "uid",
            "command",
            *(KT(f"parameters__{key}") for key in ff.LINE_KEYS),
            Case(
                When(command__in=list(ff.LINE_PARAMETERS), then=Value(None)),
                default=F("parameters"),
                output_field=JSONField(),
            ),
        )[:limit]
    )
    sql, params = queryset.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def _next_rows(provider, after, limit, open_files) -> list[tuple]:
    """Up to ``limit`` waiting requests, Express first, then by id; ``after`` holds the last
    id read per priority, so a run reads each row once."""
    rows: list[tuple] = []
    for priority in PRIORITIES:
        while len(rows) < limit:
            batch = _read(provider, priority, after.get(priority, 0), limit - len(rows))
            if not batch:
                break
            after[priority] = batch[-1][0]
            rows += [r for r in batch if r[0] not in open_files] if open_files else batch
    return rows


def _lines(rows, dates) -> tuple[list[str], list[int], list[tuple[int, str]]]:
    """(D lines, ids written, (id, why not) for the requests that cannot be written)."""
    if connection.vendor != "postgresql":  # uids stored as 32 hex digits: as the CAS sees them
        rows = [(pk, str(uuid.UUID(str(uid))), *rest) for pk, uid, *rest in rows]
    return ff.request_lines(rows, dates)


def _fail(bad: list[tuple[int, str]], now: datetime, result: Result) -> None:
    """Requests that cannot be written: Failed with the reason, and in the run's log."""
    subscriptions = dict(
        Req.objects.filter(pk__in=[pk for pk, _ in bad]).values_list("pk", "subscription_id")
    )
    for pk, reason in bad:  # rare: one statement each, with its own reason
        Req.objects.filter(pk=pk, state=Req.State.PENDING).update(
            state=Req.State.FAILED, last_error=reason, next_attempt_at=None, updated_at=now
        )
        result.problems.append((subscriptions.get(pk), f"Request {pk}: {reason}"))
    result.failed += len(bad)


@dataclass
class _Run:
    """What one export run carries from file to file."""

    after: dict[int, int]
    open_files: members.OpenFiles


def _stage(
    provider: Provider,
    remote: transport.Transport,
    run: _Run,
    now: datetime,
    process_run_id: int | None,
    result: Result,
) -> TransferFile | None:
    """Stage 1 for the next file (None: nothing waits)."""
    with transaction.atomic():
        _lock(provider)
        run.open_files.refresh()  # files another exporter made meanwhile
        limit = int(provider.parameter("max_records_per_file"))
        dates = dates_for(provider, timezone.localdate(now))
        number = TransferFile.objects.filter(
            provider=provider, direction=TransferFile.Direction.OUT
        ).count()
        name = ff.request_file_name(provider.pk, number + 1)
        created = now.replace(microsecond=0)
        while True:
            rows = _next_rows(provider, run.after, limit, run.open_files)
            if not rows:
                return None
            lines, written, bad = _lines(rows, dates)
            if bad:
                _fail(bad, now, result)
            if written:
                break
        data = ff.write_request_lines(name, created, lines)
        file = TransferFile.objects.create(
            provider=provider,
            direction=TransferFile.Direction.OUT,
            name=name,
            state=TransferFile.State.PREPARED,
            records=len(written),
            checksum=ff.checksum(data),
            settings={"dates": dates, members.KEY: members.runs_of(written)},
            created_at=created,
            process_run_id=process_run_id,
        )
        # Our own file: the keyset is past its requests already, no need to look them up.
        run.open_files.last_file = file.pk
        remote.put(data, _paths(provider, name)[1])
    return file


def _deliver(
    provider: Provider,
    remote: transport.Transport,
    file_id: int,
    now: datetime,
    result: Result,
    *,
    staged_now: bool,
) -> None:
    """Stage 2: rename a Prepared file into place, or find that an earlier run did."""
    with transaction.atomic():
        _lock(provider)
        file = TransferFile.objects.filter(pk=file_id, state=TransferFile.State.PREPARED).first()
        if file is None:
            return  # another exporter finished it (we waited for its lock)
        final, partial = _paths(provider, file.name)
        if staged_now or remote.exists(partial):
            remote.rename(partial, final)
            result.uploaded.append(file.name)
        else:
            file.message = (
                "Renamed into place by an earlier run that stopped before recording it; "
                "not uploaded again."
            )
            result.found_delivered.append(file.name)
        file.state = TransferFile.State.UPLOADED
        file.uploaded_at = now
        file.save(update_fields=["state", "uploaded_at", "message"])
        result.records += file.records


def export(
    provider: Provider,
    *,
    connect: Callable[[Provider], transport.Transport] = transport.connect,
    process_run_id: int | None = None,
    now: datetime | None = None,
    progress: Callable[[Result], None] | None = None,
) -> Result:
    """Deliver the files earlier runs left Prepared, then every waiting request in new files.

    ``connect(provider)`` opens the file server (default: the provider's SFTP / FTP); pass
    another to wrap the transport (tests use it to stop a run at a chosen step). ``now``: the
    clock (the files' dates and times). Raises ``TransportError`` when the server cannot be
    reached or refuses a file: what is not recorded is written again by the next run."""
    result = Result()
    left = list(
        TransferFile.objects.filter(
            provider=provider,
            direction=TransferFile.Direction.OUT,
            state=TransferFile.State.PREPARED,
        )
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    if not left and not _queue(provider).exists():
        return result  # (requests in open files may remain: the stages find nothing then)
    with connect(provider) as remote:
        for file_id in left:
            _deliver(provider, remote, file_id, now or timezone.now(), result, staged_now=False)
            if progress:
                progress(result)
        run = _Run({}, members.OpenFiles(provider))
        while True:
            moment = now or timezone.now()
            file = _stage(provider, remote, run, moment, process_run_id, result)
            if file is None:
                break
            _deliver(provider, remote, file.pk, moment, result, staged_now=True)
            if progress:
                progress(result)
    return result


def export_pending(provider: Provider, **options) -> int:
    """Export everything waiting for ``provider``; returns how many requests went out (the
    benchmark's entry point: ``bench.conax_sms_requests.pending_requests`` makes the work)."""
    return export(provider, **options).records
