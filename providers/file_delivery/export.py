"""Export: Pending requests into batches (files, or queue entries), each delivered once.

One batch at a time, in two transactions that each hold the provider's row (exporters take
turns, so a scheduled run and a *process immediately* never write the same request twice):

1. **Stage**: the next waiting requests — Express first, then oldest — up to *Maximum Number of
   Records in Each File* are read as plain values (keyset by priority and id), rendered by the
   layout with the batch's context (e.g. end dates), and staged on the channel (a file under
   its temporary name ``<name>.part``). In the same transaction the batch is recorded: one
   ``TransferFile`` row, state Prepared, holding its request ids (``members.py``: the request
   rows themselves are written when their answer comes). A request that cannot be written
   fails alone, with the reason.
2. **Deliver**: the batch is published (the ``.part`` renamed to its final name) — the moment
   the platform may take it, and delete it — and it becomes Uploaded.

A run may die anywhere; what the next run finds tells it what happened:

- died before stage 1 committed: nothing was recorded and nothing was published, so the
  platform never saw the batch; the requests are written again (a leftover ``.part`` is never
  renamed and is overwritten by the next file of that name; queue entries are written
  idempotently, by request uid);
- died after stage 1 committed: the batch is Prepared. If the channel still has it staged the
  publication never happened, and the run publishes it now. If not, it did happen — the
  platform may already have taken and deleted the file without answering yet — so it is only
  recorded as Uploaded, never sent again. (Nothing but our rename removes a ``.part``: the
  platform reads only files with their final name.)

Requests stay Pending until an answer comes, or until the answer deadline passes
(``responses.py``).
"""

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from django.db import connection, transaction
from django.db.models import TextField
from django.db.models.functions import Cast
from django.utils import timezone

from catalogue.models import Provider
from providers import provider_settings
from providers.errors import TransportError
from providers.models import ProvisioningRequest, TransferFile

from . import members
from .channel import Channel
from .pipeline import Pipeline

Req = ProvisioningRequest
# Express (1) sorts before Normal (5).
PRIORITIES = sorted(Req.Priority.values)


@dataclass
class Result:
    # Batches this run published.
    uploaded: list[str] = field(default_factory=list)
    # Batches an interrupted run had already published: recorded, not sent again.
    found_delivered: list[str] = field(default_factory=list)
    records: int = 0  # requests in the batches above
    failed: int = 0  # requests that could not be written
    problems: list[tuple[int | None, str]] = field(default_factory=list)


def _queue(provider: Provider):
    """Pending and not yet linked to a batch (``members.py``: open batches' requests are left
    out as well, by id)."""
    return Req.objects.filter(
        provider=provider, state=Req.State.PENDING, transfer_file__isnull=True
    )


def waiting(provider: Provider) -> int:
    """Requests a run would export: waiting for a batch, or in a batch not delivered yet."""
    files = TransferFile.objects.filter(
        provider=provider, direction=TransferFile.Direction.OUT, state__in=members.OPEN
    )
    count = _queue(provider).count()
    for file in files:
        if file.state == TransferFile.State.PREPARED:
            continue  # its requests are counted among the waiting, as they are
        count -= sum(part.count() for part in members.each(_queue(provider), file))
    return count


def _lock(provider: Provider) -> None:
    list(Provider.objects.select_for_update().filter(pk=provider.pk).values_list("pk"))


def _read(pipeline: Pipeline, provider, priority: int, after: int, limit: int) -> list[tuple]:
    """Waiting requests of one priority after an id, as plain columns: id, uid as text,
    command and the layout's columns. Run with the database cursor: no model instances, no
    per-row conversions."""
    postgres = connection.vendor == "postgresql"
    queryset = (
        _queue(provider)
        .filter(priority=priority, pk__gt=after)
        .order_by("pk")
        .values_list(
            "pk",
            Cast("uid", TextField()) if postgres else "uid",
            "command",
            *pipeline.layout.columns(),
        )[:limit]
    )
    sql, params = queryset.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def _next_rows(pipeline: Pipeline, provider, after, limit, open_files) -> list[tuple]:
    """Up to ``limit`` waiting requests, Express first, then by id; ``after`` holds the last
    id read per priority, so a run reads each row once."""
    rows: list[tuple] = []
    for priority in PRIORITIES:
        while len(rows) < limit:
            batch = _read(pipeline, provider, priority, after.get(priority, 0), limit - len(rows))
            if not batch:
                break
            after[priority] = batch[-1][0]
            rows += [r for r in batch if r[0] not in open_files] if open_files else batch
    return rows


def _render(pipeline: Pipeline, rows, context) -> tuple[list, list[int], list[tuple[int, str]]]:
    """(entries, ids written, (id, why not) for the requests that cannot be written)."""
    if connection.vendor != "postgresql":  # uids stored as 32 hex digits: as platforms see them
        rows = [(pk, str(uuid.UUID(str(uid))), *rest) for pk, uid, *rest in rows]
    return pipeline.layout.render(rows, context)


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
    """What one export run carries from batch to batch."""

    after: dict[int, int]
    open_files: members.OpenFiles


def _stage(
    pipeline: Pipeline,
    provider: Provider,
    channel: Channel,
    run: _Run,
    now: datetime,
    process_run_id: int | None,
    result: Result,
) -> TransferFile | None:
    """Stage 1 for the next batch (None: nothing waits)."""
    layout = pipeline.layout
    with transaction.atomic():
        _lock(provider)
        run.open_files.refresh()  # batches another exporter made meanwhile
        limit = int(provider_settings.parameter(provider, "max_records_per_file"))
        context = layout.context(provider, timezone.localdate(now))
        number = TransferFile.objects.filter(
            provider=provider, direction=TransferFile.Direction.OUT
        ).count()
        name = layout.batch_name(provider.pk, number + 1)
        created = now.replace(microsecond=0)
        while True:
            rows = _next_rows(pipeline, provider, run.after, limit, run.open_files)
            if not rows:
                return None
            entries, written, bad = _render(pipeline, rows, context)
            if bad:
                _fail(bad, now, result)
            if written:
                break
        payload = layout.write(name, created, entries)
        file = TransferFile.objects.create(
            provider=provider,
            direction=TransferFile.Direction.OUT,
            name=name,
            state=TransferFile.State.PREPARED,
            records=len(written),
            checksum=layout.checksum(payload),
            settings={**context, members.KEY: members.runs_of(written)},
            created_at=created,
            process_run_id=process_run_id,
        )
        # Our own batch: the keyset is past its requests already, no need to look them up.
        run.open_files.last_file = file.pk
        channel.stage(name, payload)
    return file


def _deliver(
    provider: Provider,
    channel: Channel,
    file_id: int,
    now: datetime,
    result: Result,
    *,
    staged_now: bool,
) -> None:
    """Stage 2: publish a Prepared batch, or find that an earlier run did."""
    with transaction.atomic():
        _lock(provider)
        file = TransferFile.objects.filter(pk=file_id, state=TransferFile.State.PREPARED).first()
        if file is None:
            return  # another exporter finished it (we waited for its lock)
        if staged_now or channel.staged(file.name):
            channel.publish(file.name)
            result.uploaded.append(file.name)
        else:
            file.message = channel.found_published
            result.found_delivered.append(file.name)
        file.state = TransferFile.State.UPLOADED
        file.uploaded_at = now
        file.save(update_fields=["state", "uploaded_at", "message"])
        result.records += file.records


def export(
    pipeline: Pipeline,
    provider: Provider,
    *,
    connect: Callable[[Provider], Channel] | None = None,
    process_run_id: int | None = None,
    now: datetime | None = None,
    progress: Callable[[Result], None] | None = None,
    after: dict[int, int] | None = None,
) -> Result:
    """Deliver the batches earlier runs left Prepared, then every waiting request in new ones.

    ``connect(provider)`` opens the channel (default: the pipeline's); pass another to wrap it
    (tests use it to stop a run at a chosen step). ``now``: the clock (the batches' dates and
    times). ``after``: the last id read per priority by an earlier export of the same run,
    which this one goes on from (and moves on): only requests made since are read (default:
    every waiting one). Raises ``TransportError`` when the platform cannot be reached or
    refuses a batch: what is not recorded is written again by the next run."""
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
        return result  # (requests in open batches may remain: the stages find nothing then)
    with (connect or pipeline.connect)(provider) as channel:
        for file_id in left:
            _deliver(provider, channel, file_id, now or timezone.now(), result, staged_now=False)
            if progress:
                progress(result)
        run = _Run({} if after is None else after, members.OpenFiles(provider))
        while True:
            moment = now or timezone.now()
            file = _stage(pipeline, provider, channel, run, moment, process_run_id, result)
            if file is None:
                break
            _deliver(provider, channel, file.pk, moment, result, staged_now=True)
            if progress:
                progress(result)
    return result


def export_now(pipeline: Pipeline, provider: Provider) -> str:
    """Process immediately: export what waits now; says what happened. Inside a transaction
    it waits for the commit (a batch must never carry requests that may still roll back); a
    platform that cannot be reached leaves them for the export run, and says so."""
    if transaction.get_connection().in_atomic_block:
        transaction.on_commit(lambda: _export_now(pipeline, provider))
        return "They will be exported when this transaction commits."
    return _export_now(pipeline, provider)


def _export_now(pipeline: Pipeline, provider: Provider) -> str:
    try:
        result = export(pipeline, provider)
    except TransportError as exc:
        return f"They could not be exported now ({exc}); the next export run sends them."
    names = ", ".join(result.uploaded + result.found_delivered) or "nothing new"
    return f"Exported now: {names}."
