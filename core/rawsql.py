"""Pieces of hand-written SQL built from model metadata, and model rows read by it, converted
as the ORM converts them (Django's converters for every column: a SQLite text UUID, a naive
datetime, JSON text), and rows written as the ORM writes them (each field's ``pre_save`` and
``get_db_prep_save``: ``auto_now``, JSON). For the few statements kept by hand (docs/adr/0006
and 0002, 0007). Model signals are not sent (none are connected in this project)."""

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


def update(obj: Model, names: tuple[str, ...]) -> tuple[str, list]:
    """The statement and parameters of ``obj.save(update_fields=names)``: those fields and its
    ``auto_now`` ones (set on ``obj`` too, as a save sets them)."""
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


def insert(obj: Model) -> tuple[str, list]:
    """The statement and parameters of ``obj.save()`` of a new row whose key the caller does
    not need back."""
    model = type(obj)
    fields = [f for f in model._meta.concrete_fields if not f.primary_key]
    values = [f.get_db_prep_save(f.pre_save(obj, add=True), connection) for f in fields]
    return (
        f"INSERT INTO {table(model)} ({', '.join(quote(f.column) for f in fields)}) "  # noqa: S608 (names and placeholders only)
        f"VALUES ({marks(values)})",
        values,
    )
