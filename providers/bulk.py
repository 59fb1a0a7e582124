"""Writing many rows at once, fast: COPY on PostgreSQL (a few rows: one INSERT).

A run over a million subscriptions writes hundreds of thousands of requests. Django's
``bulk_create`` makes a model instance per row and prepares every value of every row in Python,
which costs more than the database's own work at that scale. Here rows are plain dicts of
column values (foreign keys by ``<name>_id``), sent column by column; fields left out take
their default (``auto_now`` ones: now). Other databases get ``bulk_create``.
"""

import json
import uuid

from django.db import connection
from django.db.models import JSONField, Model, QuerySet
from django.utils import timezone

# Up to this many rows go in one INSERT; more by COPY.
FEW = 8


def insert(model: type[Model], rows: list[dict], shared: dict | None = None) -> list[int]:
    """Insert ``rows`` in order, each with the column values of ``shared`` too (prepared once
    for all of them); returns their primary keys in the same order."""
    if not rows:
        return []
    shared = shared or {}
    if connection.vendor != "postgresql":
        objs = (model(**shared, **row) for row in rows)
        return [obj.pk for obj in model.objects.bulk_create(objs)]
    now = timezone.now()
    quote = connection.ops.quote_name
    table, pk = model._meta.db_table, model._meta.pk.column
    fields = [f for f in model._meta.concrete_fields if not f.primary_key]
    columns = ", ".join(quote(c) for c in [pk, *(f.column for f in fields)])
    values = [_column(f, rows, shared, now) for f in fields]
    with connection.cursor() as cursor:
        if len(rows) <= FEW:
            # A real-time action's request or two: one INSERT … RETURNING (the keys come back
            # in the rows' order, as Django's bulk_create relies on), not the two statements
            # and the COPY exchange below.
            own = ", ".join(quote(f.column) for f in fields)
            marks = f"({', '.join(['%s'] * len(fields))})"
            cursor.execute(
                f"INSERT INTO {quote(table)} ({own}) "  # noqa: S608 (names and placeholders only)
                f"VALUES {', '.join([marks] * len(rows))} RETURNING {quote(pk)}",
                [value for row in zip(*values, strict=True) for value in row],
            )
            return [key for (key,) in cursor.fetchall()]
        # The keys first, from the table's own sequence, so that the rows can travel by COPY
        # (which returns nothing) and still be returned in order.
        cursor.execute(
            "SELECT nextval(pg_get_serial_sequence(%s, %s)) FROM generate_series(1, %s)",
            [table, pk, len(rows)],
        )
        ids = [key for (key,) in cursor.fetchall()]
        # psycopg 3 formats COPY rows in C. Its client-side binding would instead quote every
        # element of an INSERT's arrays in Python: a third of a processing run's time.
        with cursor.cursor.copy(f"COPY {quote(table)} ({columns}) FROM STDIN") as copy:
            for row in zip(ids, *values, strict=True):
                copy.write_row(row)
    return ids


def _column(field, rows: list[dict], shared: dict, now) -> list:
    """One column's values, ready for the driver. Rows all have the same keys."""
    if field.attname in shared:
        return [_plain(field, shared[field.attname])] * len(rows)
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
