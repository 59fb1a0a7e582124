"""Which requests a batch (request file) holds: recorded on its file row, not on each request.

Rewriting every request row when its file is exported would cost more than the rest of the
export together (a row and its fourteen index entries each, about 60 µs a request on our
benchmark machine: a million-request export could not go past 16,000 a second). So the export
writes one row per file: its request ids, as runs of consecutive ids, in
``TransferFile.settings["requests"] = [[first, last], …]``. The request rows are written once,
when their answer comes: the Error Handling run sets ``transfer_file`` (and ``sent_at``) on the
requests of each answered file, beside their new state.

A request waits for export when it is Pending, has no ``transfer_file`` and is in no *open* file:
Prepared, Uploaded or Answered — the CAS has the file, or may have it, so its answer may still
come. A file closes (``CLOSED``, shown as Processed) at the answer deadline, when what it left
unanswered becomes Failed (``deadline.py``); a file the CAS refused (Rejected) is not open, so
its requests go in the next export by themselves.
"""

from bisect import bisect_right
from collections.abc import Iterable, Iterator

from django.db.models import Q

from catalogue.models import Provider
from providers.models import ProvisioningRequest, TransferFile

OPEN = (TransferFile.State.PREPARED, TransferFile.State.UPLOADED, TransferFile.State.ANSWERED)
CLOSED = TransferFile.State.PROCESSED
KEY = "requests"
# At most this many ids, or ranges, in one SQL condition (SQLite takes 32766 parameters).
CHUNK_IDS = 10_000
CHUNK_RANGES = 100


def runs_of(ids: Iterable[int]) -> list[list[int]]:
    """Sorted runs of consecutive ids: [3, 4, 5, 9] -> [[3, 5], [9, 9]]."""
    runs: list[list[int]] = []
    for pk in sorted(ids):
        if runs and pk == runs[-1][1] + 1:
            runs[-1][1] = pk
        else:
            runs.append([pk, pk])
    return runs


def runs(file: TransferFile) -> list[list[int]]:
    return file.settings.get(KEY, [])


def conditions(file_runs: list[list[int]]) -> Iterator[Q]:
    """``Q`` objects that together select exactly the ids of ``file_runs``, each small enough
    for one statement: long runs as ranges, short ones as id lists."""
    ranges = [r for r in file_runs if r[1] - r[0] >= 8]
    for start in range(0, len(ranges), CHUNK_RANGES):
        condition = Q()
        for first, last in ranges[start : start + CHUNK_RANGES]:
            condition |= Q(pk__range=(first, last))
        yield condition
    ids = [pk for first, last in file_runs if last - first < 8 for pk in range(first, last + 1)]
    for start in range(0, len(ids), CHUNK_IDS):
        yield Q(pk__in=ids[start : start + CHUNK_IDS])


def each(queryset, file: TransferFile) -> Iterator:
    """``queryset`` narrowed to the file's requests, in statement-sized parts."""
    for condition in conditions(runs(file)):
        yield queryset.filter(condition)


class OpenFiles:
    """The ids in a provider's open files, to leave out of an export. Loaded once, then only
    the files made since (``refresh``, under the provider's lock: another exporter's)."""

    def __init__(self, provider: Provider):
        self.provider = provider
        self.last_file = 0
        self._runs: list[list[int]] = []
        self._starts: list[int] = []
        self.refresh()

    def refresh(self) -> None:
        new = (
            TransferFile.objects.filter(
                provider=self.provider,
                direction=TransferFile.Direction.OUT,
                state__in=OPEN,
                pk__gt=self.last_file,
            )
            .order_by("pk")
            .values_list("pk", "settings")
        )
        added = False
        for pk, settings in new:
            self.last_file = pk
            self._runs += settings.get(KEY, [])
            added = True
        if added:
            self._runs.sort()
            self._starts = [first for first, _last in self._runs]

    def __bool__(self) -> bool:
        return bool(self._runs)

    def __contains__(self, pk: int) -> bool:
        index = bisect_right(self._starts, pk) - 1
        return index >= 0 and pk <= self._runs[index][1]


def requests_in(file: TransferFile):
    """The file's requests, as one queryset (for a look at one file; large work goes
    through ``each``)."""
    condition = Q(pk__in=[])
    for part in conditions(runs(file)):
        condition |= part
    return ProvisioningRequest.objects.filter(condition)
