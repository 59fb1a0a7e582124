"""What a provider type's layout tells the pipeline: how its requests become a batch's entries
(lines of a file, or rows of a queue table) and how its answers read.

The pipeline reads each waiting request as plain columns — its id, its uid as text, its
command, then the layout's own ``columns()`` — and hands them to ``render`` a batch at a time;
it never looks inside an entry. What comes back is read by ``parse_answers`` into an
``AnswerBatch``: per request uid, accepted or rejected with the platform's code and text.
"""

from dataclasses import dataclass, field
from datetime import date, datetime


class FormatError(ValueError):
    """A batch or an answer that does not follow the layout (the message says where)."""


@dataclass(frozen=True)
class AnswerRecord:
    uid: str
    accepted: bool
    error_code: str = ""
    error_description: str = ""


@dataclass
class AnswerBatch:
    name: str
    # The name of the batch it answers.
    request_name: str
    records: list[AnswerRecord] = field(default_factory=list)
    # The platform refused the whole batch: (code, description).
    file_error: tuple[str, str] | None = None
    # Entries that could not be read: (line number, what is wrong); the rest still counts.
    line_errors: list[tuple[int, str]] = field(default_factory=list)


class Layout:
    """A provider type's entries and answers. Every method MUST be implemented."""

    def columns(self) -> tuple:
        """Value expressions (``values_list`` arguments) read per request after its id, uid
        and command: only what its entries need."""
        raise NotImplementedError

    def context(self, provider, today: date) -> dict:
        """What a batch made ``today`` is written with (e.g. end dates): kept in its
        ``TransferFile.settings``, beside its request ids."""
        raise NotImplementedError

    def batch_name(self, provider_id: int, number: int) -> str:
        """The name of the provider's ``number``-th batch (from 1)."""
        raise NotImplementedError

    def render(self, rows: list[tuple], context: dict) -> tuple[list, list[int], list]:
        """(entries, ids written, (id, why not) for the rows that cannot be written) from rows
        ``(id, uid, command, *columns())``. The loop every delivered request goes through."""
        raise NotImplementedError

    def write(self, name: str, created: datetime, entries: list):
        """The payload the channel stages: a file's bytes, or a queue's rows."""
        raise NotImplementedError

    def checksum(self, payload) -> str:
        """Recorded on the batch (and on an answer, to know it when it is read again)."""
        raise NotImplementedError

    def is_answer(self, name: str) -> bool:
        """Whether something the channel lists is an answer of this layout."""
        raise NotImplementedError

    def parse_answers(self, payload) -> AnswerBatch:
        """An answer's records; raises ``FormatError`` when it cannot be trusted as a whole."""
        raise NotImplementedError

    def answered_batch(self, answer_name: str) -> str:
        """The batch an answer answers, by its name alone (for an answer that cannot be
        read)."""
        raise NotImplementedError
