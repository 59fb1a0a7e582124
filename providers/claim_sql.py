"""PostgreSQL: the claim of ``delivery.claim`` as one statement whose text is built once.

A worker claims on every wake-up, mostly one to three requests, and compiling ``delivery.due``
as a QuerySet each time cost more CPU than running the statement. So the statement is written
here with the same conditions as ``due``: the provider's Pending requests whose time has come
and with no older Pending request for their card, Express first then oldest, locked
``SKIP LOCKED`` and leased in one ``UPDATE … RETURNING`` (the queue pattern). The claimed
requests' cards come in the same statement, because adapters read ``request.installed_item``.
"""

from functools import cache

from django.db import connection

from subscriptions.models import InstalledItem

from .models import ProvisioningRequest as Req


@cache
def _statement(limit: int) -> str:
    # The limit is written in (an int): a planner that knows it picks the queue's index.
    q = connection.ops.quote_name
    requests, items = q(Req._meta.db_table), q(InstalledItem._meta.db_table)
    request_columns = ", ".join(f"claimed.{q(f.column)}" for f in Req._meta.concrete_fields)
    item_columns = ", ".join(f"item.{q(f.column)}" for f in InstalledItem._meta.concrete_fields)
    # 'pending' is written in too, so that the partial queue index applies to a prepared plan.
    return (
        f"WITH claimed AS ("  # noqa: S608 (names from the models, the limit an int)
        f"UPDATE {requests} AS r SET next_attempt_at = %s, attempts = r.attempts + 1, "
        f"sent_at = %s WHERE r.id IN ("
        f"SELECT due.id FROM {requests} due WHERE due.provider_id = %s "
        "AND due.state = 'pending' "
        "AND (due.next_attempt_at IS NULL OR due.next_attempt_at <= %s) "
        f"AND NOT EXISTS (SELECT 1 FROM {requests} older "
        "WHERE older.installed_item_id = due.installed_item_id AND older.id < due.id "
        "AND older.state = 'pending') "
        f"ORDER BY due.priority, due.id LIMIT {int(limit)} FOR UPDATE SKIP LOCKED) "
        # Whether a later Pending request waits for the same card (``claim``'s ``followed``).
        f"RETURNING r.*, EXISTS (SELECT 1 FROM {requests} later "
        "WHERE later.installed_item_id = r.installed_item_id AND later.state = 'pending' "
        "AND later.id > r.id) AS followed) "
        f"SELECT {request_columns}, claimed.followed, {item_columns} "
        f"FROM claimed LEFT JOIN {items} item ON item.id = claimed.installed_item_id"
    )


@cache
def _converters(model) -> list[tuple[int, object, list]]:
    """(index, column, converters) of the model's fields whose database values need
    converting (JSON arrives as text), as the ORM's compiler would find them."""
    found = []
    for index, field in enumerate(model._meta.concrete_fields):
        column = field.get_col(model._meta.db_table)
        functions = connection.ops.get_db_converters(column) + field.get_db_converters(connection)
        if functions:
            found.append((index, column, functions))
    return found


def _instance(model, values):
    values = list(values)
    for index, column, functions in _converters(model):
        for convert in functions:
            values[index] = convert(values[index], column, connection)
    return model.from_db(connection.alias, None, values)


def claim(provider_id: int, limit: int, now, lease_until) -> list[Req]:
    """The claimed requests (unordered), each with ``followed`` and its card loaded."""
    with connection.cursor() as cursor:
        cursor.execute(_statement(limit), [lease_until, now, provider_id, now])
        rows = cursor.fetchall()
    width = len(Req._meta.concrete_fields)
    claimed = []
    for row in rows:
        request = _instance(Req, row[:width])
        request.followed = row[width]
        card = row[width + 1 :]
        item = _instance(InstalledItem, card) if card[0] is not None else None
        Req.installed_item.field.set_cached_value(request, item)
        claimed.append(request)
    return claimed
