"""Writing many rows at once, fast: one ``INSERT … SELECT FROM unnest(…)`` on PostgreSQL.

A run over a million subscriptions writes hundreds of thousands of requests. Django's
``bulk_create`` makes a model instance per row and prepares every value of every row in Python,
which costs more than the database's own work at that scale. Here rows are plain dicts of
column values (foreign keys by ``<name>_id``), sent as one array per column; fields left out
take their default (``auto_now`` ones: now). Other databases get ``bulk_create``.
"""

import json
import uuid

from django.db import connection
from django.db.models import JSONField, Model, QuerySet
from django.utils import timezone


def insert(model: type[Model], rows: list[dict]) -> list[int]:
    """Insert ``rows`` in order; returns their primary keys in the same order."""
    if not rows:
        return []
    if connection.vendor != "postgresql":
        return [obj.pk for obj in model.objects.bulk_create(model(**row) for row in rows)]
    now = timezone.now()
    quote = connection.ops.quote_name
    fields = [f for f in model._meta.concrete_fields if not f.primary_key]
    columns = ", ".join(quote(f.column) for f in fields)
    # varchar(60)[] would truncate silently; the bare type keeps the column's own check.
    arrays = ", ".join(f"%s::{f.db_type(connection).split('(')[0]}[]" for f in fields)
    sql = (
        f"INSERT INTO {quote(model._meta.db_table)} ({columns}) "  # noqa: S608 (names from the model)
        f"SELECT * FROM unnest({arrays}) RETURNING {quote(model._meta.pk.column)}"
    )
    values = [_column(f, rows, now) for f in fields]
    with connection.cursor() as cursor:
        # unnest yields the rows in array order, and INSERT … SELECT returns them so.
        cursor.execute(sql, values)
        return [pk for (pk,) in cursor.fetchall()]


def _column(field, rows: list[dict], now) -> list:
    """One column's values, ready for the driver. Rows all have the same keys."""
    if field.attname not in rows[0]:
        if getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False):
            default = now
        else:
            default = field.get_default()
        return [_plain(field, default)] * len(rows)
    return [_plain(field, row[field.attname]) for row in rows]


def _plain(field, value):
    if value is None:
        return None
    if isinstance(field, JSONField):
        return json.dumps(value, cls=field.encoder)
    if isinstance(value, uuid.UUID | str):
        return str(value)  # a UUID, or a TextChoices member, as its plain text
    return value


def estimated_rows(queryset: QuerySet) -> int | None:
    """How many rows the planner expects the queryset to return (PostgreSQL; else None)."""
    if connection.vendor != "postgresql":
        return None
    sql, params = queryset.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}", params)
        plan = cursor.fetchone()[0]
    plan = json.loads(plan) if isinstance(plan, str) else plan
    return int(plan[0]["Plan"]["Plan Rows"])


def analyze(model: type[Model], *columns: str) -> None:
    """Refresh the planner's statistics of the model's table (those columns), PostgreSQL.

    Statistics taken while a table held almost none of some rows make the planner trust plans
    that are only good for an empty set: delivery's "nothing older is Pending for this card"
    scanned every Pending request of a running reset for each due request (10 s for a claim
    of 50). Autovacuum would refresh them, but only once a tenth of the table has changed and
    after its next nap."""
    if connection.vendor != "postgresql" or connection.in_atomic_block:
        return
    names = ", ".join(connection.ops.quote_name(model._meta.get_field(c).column) for c in columns)
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {connection.ops.quote_name(model._meta.db_table)} ({names})")
