"""File export: Pending requests into request files, uploaded to the CAS once each.

Two steps, each safe to repeat:

1. **Prepare** (one transaction per file, the provider's row locked so that two exporters take
   turns): the oldest Pending requests not yet in a file — Express first — up to *Maximum
   Number of Records in Each File*, are assigned to a new ``TransferFile`` in state Prepared,
   with a deterministic name and the end dates its lines carry (from the operation
   parameters, counted from the day it is prepared). The file's bytes are a function of what
   is committed, so a retry rebuilds exactly the same file (its checksum is recorded).
2. **Upload** each Prepared file, oldest first, holding its row: if the file is already on the
   server under its final name, or the CAS has already answered it, it is not uploaded again;
   otherwise it goes up under a temporary name and is renamed. The file becomes Uploaded in
   the same transaction that held it.

A run killed after an upload and before its commit leaves the file Prepared; the next run finds
it on the server and only records it. Requests stay Pending until a response file answers them
(``responses.py``).
"""

import posixpath
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime

from dateutil.relativedelta import relativedelta
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from providers.delivery import fail
from providers.models import Provider, ProvisioningRequest, TransferFile

from . import file_format as ff
from . import transport

Req = ProvisioningRequest
END_PERIODS = {
    ff.ADD: "add_end_period_months",
    ff.RENEW: "renew_end_period_months",
    ff.CANCEL: "cancel_end_period_months",
}


class ExportError(Exception):
    pass


@dataclass
class Result:
    prepared: list[str] = field(default_factory=list)
    uploaded: list[str] = field(default_factory=list)
    # Files found already delivered by an earlier, interrupted run: recorded, not sent again.
    found_delivered: list[str] = field(default_factory=list)
    records: int = 0
    problems: list[tuple[int | None, str]] = field(default_factory=list)


def dates_for(provider: Provider, today: date) -> dict[str, str]:
    """The start date and each command's end date for a file made ``today``."""
    dates = {"start": today.isoformat()}
    for command, parameter in END_PERIODS.items():
        months = int(provider.parameter(parameter))
        dates[command] = (today + relativedelta(months=months)).isoformat()
    return dates


def _queue(provider: Provider):
    return Req.objects.filter(
        provider=provider, state=Req.State.PENDING, transfer_file__isnull=True
    ).order_by("priority", "pk")


def waiting(provider: Provider) -> int:
    """Requests a run would export: not in a file yet, or in a file not uploaded yet."""
    return (
        _queue(provider).count()
        + Req.objects.filter(
            provider=provider,
            transfer_file__state=TransferFile.State.PREPARED,
        ).count()
    )


def _records(file: TransferFile, rows) -> tuple[list[ff.RequestRecord], list[tuple[int, str]]]:
    records, bad = [], []
    for pk, uid, command, parameters in rows:
        try:
            records.append(ff.record_for(str(uid), command, parameters, file.settings["dates"]))
        except (ff.FormatError, KeyError, TypeError) as exc:
            bad.append((pk, f"Cannot be written in a Conax SMS file: {exc!r}"))
    return records, bad


def content(file: TransferFile) -> bytes:
    """The bytes of a request file, from what is committed."""
    rows = (
        file.requests.order_by("priority", "pk")
        .values_list("pk", "uid", "command", "parameters")
        .iterator(chunk_size=5000)
    )
    records, _bad = _records(file, rows)
    return ff.write_request(file.name, file.created_at, records)


def prepare_next(
    provider: Provider, *, now: datetime | None = None, process_run_id: int | None = None
) -> TransferFile | None:
    """Put the next batch of waiting requests in a new Prepared file (None: nothing waits)."""
    with transaction.atomic():
        provider = Provider.objects.select_for_update().get(pk=provider.pk)
        if not _queue(provider).exists():
            return None
        now = now or timezone.now()
        number = TransferFile.objects.filter(
            provider=provider, direction=TransferFile.Direction.OUT
        ).count()
        file = TransferFile.objects.create(
            provider=provider,
            direction=TransferFile.Direction.OUT,
            name=ff.request_file_name(provider.pk, number + 1),
            state=TransferFile.State.PREPARED,
            created_at=now.replace(microsecond=0),
            settings={"dates": dates_for(provider, timezone.localdate(now))},
            process_run_id=process_run_id,
        )
        limit = int(provider.parameter("max_records_per_file"))
        Req.objects.filter(pk__in=_queue(provider).values("pk")[:limit]).update(transfer_file=file)
        # A request that cannot be written (e.g. a card without CA ID) must not hold up the
        # others: it leaves the file Failed, with the reason.
        _good, bad = _records(
            file, file.requests.values_list("pk", "uid", "command", "parameters").iterator()
        )
        for pk, reason in bad:
            Req.objects.filter(pk=pk).update(transfer_file=None)
            fail(Req(pk=pk), reason)
        file.records = file.requests.count()
        if not file.records:
            file.delete()
            return prepare_next(provider, now=now, process_run_id=process_run_id)
        data = content(file)
        file.checksum = ff.checksum(data)
        file.save(update_fields=["records", "checksum"])
        return file


def _delivered(provider: Provider, remote: transport.Transport, file: TransferFile) -> bool:
    """Whether the CAS already has this file: on the server under its final name, or answered
    (a response file seen by us or waiting on the server)."""
    settings = provider.connection
    response = ff.response_file_name(file.name)
    if TransferFile.objects.filter(
        provider=provider, direction=TransferFile.Direction.IN, name=response
    ).exists():
        return True
    response_dir = settings.get("response_directory", "/out")
    return any(
        remote.exists(path)
        for path in (
            posixpath.join(settings.get("upload_directory", "/in"), file.name),
            posixpath.join(response_dir, response),
            posixpath.join(response_dir, "processed", response),
        )
    )


def upload(provider: Provider, remote: transport.Transport, file_id: int, result: Result) -> None:
    with transaction.atomic():
        file = (
            TransferFile.objects.select_for_update(skip_locked=True)
            .filter(pk=file_id, state=TransferFile.State.PREPARED)
            .first()
        )
        if file is None:
            return  # another exporter holds it, or it has gone up meanwhile
        data = content(file)
        if ff.checksum(data) != file.checksum:
            raise ExportError(f"{file.name} no longer has the content it was prepared with.")
        now = timezone.now()
        if _delivered(provider, remote, file):
            file.message = "Found on the server by a later run; not uploaded again."
            result.found_delivered.append(file.name)
        else:
            path = posixpath.join(provider.connection.get("upload_directory", "/in"), file.name)
            remote.upload(data, path)
            result.uploaded.append(file.name)
        file.state = TransferFile.State.UPLOADED
        file.uploaded_at = now
        file.save(update_fields=["state", "uploaded_at", "message"])
        Req.objects.filter(transfer_file=file, state=Req.State.PENDING).update(
            sent_at=now, attempts=F("attempts") + 1
        )
        result.records += file.records


def export(
    provider: Provider,
    *,
    connect: Callable[[Provider], transport.Transport] = transport.connect,
    process_run_id: int | None = None,
    now: datetime | None = None,
    progress: Callable[[Result], None] | None = None,
) -> Result:
    """Prepare files for every waiting request, then upload every Prepared file.

    ``connect(provider)`` opens the file server (default: the provider's SFTP / FTP); pass
    another to wrap the transport (tests use it to interrupt a run after an upload).
    Raises ``TransportError`` when the server cannot be reached or refuses a file: what was
    prepared stays Prepared, for the next run."""
    result = Result()
    while file := prepare_next(provider, now=now, process_run_id=process_run_id):
        result.prepared.append(file.name)
    prepared = list(
        TransferFile.objects.filter(
            provider=provider,
            direction=TransferFile.Direction.OUT,
            state=TransferFile.State.PREPARED,
        )
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    if not prepared:
        return result
    with connect(provider) as remote:
        for file_id in prepared:
            upload(provider, remote, file_id, result)
            if progress:
                progress(result)
    return result
