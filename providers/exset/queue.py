"""EXSET SMS on the shared file-delivery pipeline (``providers.file_delivery``): a batch is a
set of TQUEUE entries (``tqueue.py``), one per request, and the SMS's outcomes are read back
per batch.

    export.export(PIPELINE, provider)                # the Write TQUEUE entries run
    responses.process_responses(PIPELINE, provider)  # the Read TQUEUE answers run
    export.export_now(PIPELINE, provider)            # a utility's *process immediately*

An entry carries the request's uid (``entry_id``), its id (``sequence``: the SMS takes lower
priorities first, then lower sequences), priority, command, the subscription's number and the
card addressed (NULL for broadcasts) and its parameters as a JSON object. Done completes the
request; Error rejects it with the SMS's ``error_code`` and ``error_text``.
"""

import hashlib
import json
from datetime import date, datetime

from django.db.models.fields.json import KT

from catalogue.models import Provider
from providers import renewals
from providers.file_delivery.layout import AnswerBatch, AnswerRecord, FormatError, Layout
from providers.file_delivery.pipeline import Pipeline

from . import tqueue

PLATFORM = "EXSET"
# Widths of TQUEUE's columns (``tqueue.create_table``): a longer value is refused, not cut.
WIDTHS = {"command": 40, "subscription": 64, "card_ca_id": 64}


def batch_name(provider_id: int, number: int) -> str:
    return f"EXSET-{provider_id}-{number:06d}"


def card_addressed(command: str, parameters: dict) -> str | None:
    """The smartcard (or physical good) an entry addresses: its card, the new one on a
    device change, else the pairing's smartcard."""
    card = parameters.get("card_ca_id") or parameters.get("new_ca_id")
    if card:
        return card
    for item in parameters.get("devices") or ():
        if item.get("kind") == "smartcard" and item.get("ca_id"):
            return item["ca_id"]
    return None


def _entry(uid, command: str, priority: int, pk: int, subscription, card, parameters):
    """One entry (``tqueue.WRITTEN`` without batch and created_at); ``ValueError`` saying
    what cannot be written."""
    if isinstance(parameters, str):
        # JSON as the database holds it: parsed only when the card must be looked for in it.
        text = parameters
        if not text.startswith("{"):
            raise ValueError("its parameters are not a JSON object")
        if card is None:
            card = card_addressed(command, json.loads(text))
    else:
        if not isinstance(parameters, dict):
            raise ValueError("its parameters are not a JSON object")
        text = json.dumps(parameters, separators=(",", ":"))
        if card is None:
            card = card_addressed(command, parameters)
    for column, value in (
        ("command", command),
        ("subscription", subscription),
        ("card_ca_id", card),
    ):
        if value is not None and len(str(value)) > WIDTHS[column]:
            raise ValueError(f"its {column} is longer than {WIDTHS[column]} characters")
    return (uid, pk, priority, command, subscription, card, text)


class ExsetLayout(Layout):
    def columns(self) -> tuple:
        # The subscription and card as text, read by the database; the parameters whole.
        return (
            "priority",
            KT("parameters__subscription"),
            KT("parameters__card_ca_id"),
            "parameters",
        )

    def context(self, provider: Provider, today: date) -> dict:
        return {}

    def batch_name(self, provider_id: int, number: int) -> str:
        return batch_name(provider_id, number)

    def render(self, rows: list[tuple], context: dict):
        entries, written, bad = [], [], []
        for pk, uid, command, priority, subscription, card, parameters in rows:
            try:
                entries.append(_entry(uid, command, priority, pk, subscription, card, parameters))
            except (ValueError, TypeError) as exc:
                bad.append((pk, f"Cannot be written as a TQUEUE entry: {exc}."))
            else:
                written.append(pk)
        return entries, written, bad

    def write(self, name: str, created: datetime, entries: list) -> list[tuple]:
        at = tqueue.utc(created)
        return [(uid, name, *rest, at) for uid, *rest in entries]

    def checksum(self, payload) -> str:
        if isinstance(payload, tqueue.Reading):
            return payload.checksum()
        # One line per entry (its batch and time are the batch's): JSON would cost as much
        # as rendering the entries.
        lines = "\n".join(
            f"{entry_id}\t{sequence}\t{priority}\t{command}\t{subscription}\t{card}\t{text}"
            for entry_id, _batch, sequence, priority, command, subscription, card, text, _at in (
                payload
            )
        )
        return hashlib.sha256(lines.encode()).hexdigest()

    def is_answer(self, name: str) -> bool:
        return "." in name

    def parse_answers(self, payload: tqueue.Reading) -> AnswerBatch:
        if not isinstance(payload, tqueue.Reading):
            raise FormatError("Not a TQUEUE reading.")
        parsed = AnswerBatch(payload.name, payload.batch)
        for line, (entry_id, status, code, text) in enumerate(payload.rows, 1):
            if status == tqueue.DONE:
                parsed.records.append(AnswerRecord(entry_id, True))
            elif status == tqueue.ERROR:
                parsed.records.append(AnswerRecord(entry_id, False, code or "", text or ""))
            else:
                parsed.line_errors.append((line, f"entry {entry_id} has status {status!r}"))
        return parsed

    def answered_batch(self, answer_name: str) -> str:
        return tqueue.batch_of(answer_name)


PIPELINE = Pipeline(
    layout=ExsetLayout(),
    connect=tqueue.connect,
    platform=PLATFORM,
    # An accepted Renew moves the authorization date: the next one is due a period later.
    accepted=renewals.renewed,
    noun=("batch", "batches"),
    answer_noun=("TQUEUE reading", "TQUEUE readings"),
    sent_noun="TQUEUE batch",
    sent_verb="written",
    sending="being written",
)
