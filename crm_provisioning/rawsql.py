"""Model rows by hand-written SQL, converted as the ORM converts them.

For the real-time path: an action is a couple of dozen statements on one row or a few, and
compiling each through the ORM cost more CPU than the database spent running it. These
helpers keep the ORM's meaning — Django's converters for every column read (a SQLite text
UUID, a naive datetime, JSON text), each field's ``pre_save`` and ``get_db_prep_save`` for
every value written (``auto_now``, JSON adaptation) — and skip only the compiling. Model
signals are not sent (none are connected in this project).
"""

from functools import cache

from django.db import connection
from django.db.models import Field, Model


def quote(name: str) -> str:
    return connection.ops.quote_name(name)


def table(model: type[Model]) -> str:
    return quote(model._meta.db_table)


def typed_null(sql_type: str) -> str:
    """A NULL of ``sql_type``, in PostgreSQL's short form where it is understood."""
    if connection.vendor == "postgresql":
        return f"NULL::{sql_type}"
    return f"CAST(NULL AS {sql_type})"


def marks(values) -> str:
    """One ``%s`` placeholder per value, comma-separated (for ``IN (…)``)."""
    return ", ".join(["%s"] * len(values))


def among(column: str, values, params: list) -> str:
    """SQL: ``column`` among ``values`` (added to ``params``): one array parameter on
    PostgreSQL (thousands of placeholders cost more to bind and plan than the statement to
    run), a list elsewhere."""
    values = list(values)
    if connection.vendor == "postgresql":
        params.append(values)
        return f"{column} = ANY(%s)"
    params.extend(values)
    return f"{column} IN ({marks(values)})"


@cache
def converters(field: Field) -> tuple:
    """Django's converters from a column's database value to the field's Python value."""
    col = field.get_col(field.model._meta.db_table)
    return tuple(connection.ops.get_db_converters(col) + field.get_db_converters(connection))


def convert(field: Field, value):
    if value is None:
        return None
    for converter in converters(field):
        value = converter(value, field.get_col(field.model._meta.db_table), connection)
    return value


def columns(model: type[Model], alias: str) -> str:
    """Every concrete column of ``model`` under ``alias``, in the model's field order."""
    return ", ".join(f"{alias}.{quote(f.column)}" for f in model._meta.concrete_fields)


def instance(model: type[Model], values) -> Model:
    """A model instance from a row of ``columns(model, …)`` values, as the ORM loads it."""
    fields = model._meta.concrete_fields
    return model.from_db(
        connection.alias,
        [f.attname for f in fields],
        [convert(f, v) for f, v in zip(fields, values, strict=True)],
    )


def instances(models: list[type[Model]], row) -> list[Model]:
    """One instance per model from a row of their ``columns`` one after the other."""
    made, start = [], 0
    for model in models:
        width = len(model._meta.concrete_fields)
        made.append(instance(model, row[start : start + width]))
        start += width
    return made


def update(obj: Model, *names: str) -> None:
    """``obj.save(update_fields=names)`` plus its ``auto_now`` fields, by one UPDATE."""
    _execute(*_update(obj, names))


def insert(obj: Model) -> None:
    """``obj.save()`` of a new row whose key the caller does not need back, by one INSERT."""
    _execute(*_insert(obj))


def update_then_insert(updated: Model, names: tuple[str, ...], new: Model) -> None:
    """``update(updated, *names)``, then ``insert(new)``: on PostgreSQL by one statement (the
    update a data-modifying ``WITH`` of the insert; an action writes its service's state and
    its event, and each statement is a round trip on the real-time path), elsewhere two."""
    if connection.vendor != "postgresql":
        update(updated, *names)
        insert(new)
        return
    update_sql, update_params = _update(updated, names)
    insert_sql, insert_params = _insert(new)
    _execute(f"WITH updated AS ({update_sql}) {insert_sql}", [*update_params, *insert_params])


def _update(obj: Model, names) -> tuple[str, list]:
    model = type(obj)
    fields = [
        f
        for f in model._meta.concrete_fields
        if f.name in names or f.attname in names or getattr(f, "auto_now", False)
    ]
    values = [f.get_db_prep_save(f.pre_save(obj, add=False), connection) for f in fields]
    sets = ", ".join(f"{quote(f.column)} = %s" for f in fields)
    return (
        f"UPDATE {table(model)} SET {sets} WHERE {quote(model._meta.pk.column)} = %s",  # noqa: S608 (names and placeholders only)
        [*values, obj.pk],
    )


def _insert(obj: Model) -> tuple[str, list]:
    model = type(obj)
    fields = [f for f in model._meta.concrete_fields if not f.primary_key]
    values = [f.get_db_prep_save(f.pre_save(obj, add=True), connection) for f in fields]
    return (
        f"INSERT INTO {table(model)} ({', '.join(quote(f.column) for f in fields)}) "  # noqa: S608 (names and placeholders only)
        f"VALUES ({', '.join(['%s'] * len(fields))})",
        values,
    )


def _execute(sql: str, params: list) -> None:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
