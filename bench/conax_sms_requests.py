"""Pending Conax SMS requests in bulk, for the export benchmark.

``pending_requests(provider, n)`` adds ``n`` Pending requests not yet in a file, shaped as the
processing run, the pairing utility and the message run leave them (the same parameters): a
mix of Add, Cancel and Renew subscription, Create Pairing and Send Message, one in a hundred
Express. They belong to no subscription — the export reads only the request rows — so a
million of them take seconds to make: written with ``COPY`` on PostgreSQL, in batches
elsewhere. The mix is a pure function of the position, so two runs make the same file lines
(but new uids).

    from bench import conax_sms_requests
    from providers.conax_sms.files import PIPELINE
    from providers.file_delivery import export
    conax_sms_requests.pending_requests(provider, 1_000_000)
    export.export(PIPELINE, provider).records   # -> 1_000_000
"""

import json
import uuid
from collections.abc import Callable
from datetime import datetime

from django.db import connection, transaction
from django.utils import timezone

from catalogue.models import Provider
from providers.conax_sms import file_format as ff
from providers.models import ProvisioningRequest

from .load import copy_csv

Req = ProvisioningRequest
Op = Req.Operation
CHUNK = 50_000
EXPRESS_EVERY = 100
# (share in a hundred, operation, command)
MIX = [
    (70, Op.ACTIVATE, ff.ADD),
    (12, Op.DEACTIVATE, ff.CANCEL),
    (12, Op.RENEW, ff.RENEW),
    (4, Op.CREATE_PAIRING, ff.PAIR),
    (2, Op.OTHER, ff.MESSAGE),
]
_SLOTS = [(operation, command) for share, operation, command in MIX for _ in range(share)]
SERVICES = [
    ("AF1", "AGRICULTURE"),
    ("GFA1", "BUNDLE_A"),
    ("EFA2", "BUNDLE_A"),
    ("RFB1", "BUNDLE_B"),
]


def _parameters(n: int, command: str) -> dict:
    subscriber = n // 3  # a few requests per subscriber, as a processing run makes them
    card = f"CX-SC-{subscriber:08d}"
    base = {"subscription": f"LD-{subscriber:07d}", "distributor": "MAIN"}
    if command in (ff.ADD, ff.CANCEL, ff.RENEW):
        ca_id, product = SERVICES[n % len(SERVICES)]
        return {
            **base,
            "service_ca_id": ca_id,
            "product_code": product,
            "card_ca_id": card,
            "card_serial_number": f"SC{subscriber:08d}",
        }
    if command == ff.PAIR:
        return {
            **base,
            "devices": [
                {
                    "kind": "smartcard",
                    "ca_id": card,
                    "serial_number": f"SC{subscriber:08d}",
                    "product_code": "SC-CX",
                },
                {
                    "kind": "stb",
                    "ca_id": f"CX-STB-{subscriber:08d}",
                    "serial_number": f"STB{subscriber:08d}",
                    "product_code": "STB-CX",
                },
            ],
        }
    return {
        **base,
        "card_ca_id": card,
        "card_serial_number": f"SC{subscriber:08d}",
        "message_type": "MAIL",
        "text": f"Your bill {n} is ready | 100% paid?",
        "sequence": 255,
        "duration_seconds": 0,
    }


def _row(provider_id: int, n: int, now: datetime) -> dict:
    operation, command = _SLOTS[(n * 37) % len(_SLOTS)]  # spread, not in runs of one kind
    parameters = _parameters(n, command)
    return {
        "uid": uuid.uuid4(),
        "command": command,
        "operation": operation,
        "ca_id": parameters.get("service_ca_id", ""),
        "parameters": parameters,
        "provider_id": provider_id,
        "priority": Req.Priority.EXPRESS if n % EXPRESS_EVERY == 7 else Req.Priority.NORMAL,
        "trigger": Req.Trigger.RUN,
        "trigger_name": "process_provisioning_requests",
        "state": Req.State.PENDING,
        "attempts": 0,
        "last_error": "",
        "error_code": "",
        "rollback": {},
        "created_at": now,
        "updated_at": now,
    }


def _copy(rows: list[dict]) -> None:
    table = connection.ops.quote_name(Req._meta.db_table)
    names = list(rows[0])
    columns = ", ".join(connection.ops.quote_name(Req._meta.get_field(n).column) for n in names)
    copy_csv(table, columns, ([_csv(v) for v in row.values()] for row in rows))


def _csv(value):
    if isinstance(value, dict):
        return json.dumps(value)
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def pending_requests(
    provider: Provider,
    count: int,
    *,
    start: int = 0,
    row: Callable[[int, int, datetime], dict] = _row,
) -> int:
    """Add ``count`` Pending requests for ``provider`` (positions ``start`` …); returns count.
    ``row(provider id, position, now)``: another provider type's mix (``exset_requests``)."""
    now = timezone.now()
    for first in range(start, start + count, CHUNK):
        rows = [row(provider.pk, n, now) for n in range(first, min(first + CHUNK, start + count))]
        with transaction.atomic():
            if connection.vendor == "postgresql":
                _copy(rows)
            else:
                Req.objects.bulk_create((Req(**row) for row in rows), batch_size=2000)
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(f"ANALYZE {connection.ops.quote_name(Req._meta.db_table)}")
    return count
