"""The fast path of an action's answer on PostgreSQL (``api.action_result`` selects it; ADR
0007): the subscription as it now is (its services and the devices in use) and the requests
the action made, read by one hand-written statement instead of the serializers' five.

The representation is ``api.ActionResultSerializer``'s, keys in order (the same tests run on
both paths). Each column goes through Django's own converters for its model field, then
through DRF's representation of its type, so the values are the serializers'
(``core.rawsql``).
"""

import uuid
from collections.abc import Sequence
from datetime import datetime
from functools import cache

from django.db import connection
from rest_framework import ISO_8601, serializers
from rest_framework.settings import api_settings

from catalogue.models import Distributor, Product, SubscriptionType
from core import rawsql
from providers.models import ProvisioningRequest
from subscriptions.models import CustomerAccount, InstalledItem, Subscription, SubscriptionService

Req = ProvisioningRequest
_DATETIME = serializers.DateTimeField()

# Output name → "alias.field" of the model the alias stands for; in the serializers' order.
_SUBSCRIPTION = {
    "id": "s.id",
    "number": "s.number",
    "account_number": "a.number",
    "account_name": "a.name",
    "subscription_type": "t.code",
    "state": "s.state",
    "created_at": "s.created_at",
    "updated_at": "s.updated_at",
    "terminated_at": "s.terminated_at",
}
_SERVICE = {
    "id": "v.id",
    "subscription": "v.subscription",
    "product": "v.product",
    "product_code": "p.code",
    "distributor": "v.distributor",
    "distributor_code": "d.code",
    "state": "v.state",
    "is_on": None,  # from the state
    "swapped_from": "v.swapped_from",
    "authorized": "v.authorized",
    "authorization_date": "v.authorization_date",
    "created_at": "v.created_at",
    "updated_at": "v.updated_at",
}
_ITEM = {
    "id": "i.id",
    "subscription": "i.subscription",
    "kind": "i.kind",
    "serial_number": "i.serial_number",
    "ca_id": "i.ca_id",
    "product_code": "i.product_code",
    "description": "i.description",
    "distributor": "i.distributor",
    "distributor_code": "d.code",
    "initialized": "i.initialized",
    "in_use": None,  # every item read is
    "installed_at": "i.installed_at",
    "removed_at": "i.removed_at",
    "replaced_by": "i.replaced_by",
}
_REQUEST = {
    **{name: f"r.{name}" for name in ["id", "uid", "command", "operation", "ca_id"]},
    **{name: f"r.{name}" for name in ["parameters", "provider", "distributor"]},
    "distributor_code": "d.code",
    "subscription": "r.subscription",
    "subscription_number": "s.number",
    "service": "r.service",
    "installed_item": "r.installed_item",
    "card_ca_id": "i.ca_id",
    "items": None,  # filled in from the item rows
    **{name: f"r.{name}" for name in ["priority", "trigger", "trigger_name", "state"]},
    **{name: f"r.{name}" for name in ["attempts", "next_attempt_at", "last_error"]},
    **{name: f"r.{name}" for name in ["error_code", "response", "process_run", "created_by"]},
    "created_at": "r.created_at",
    **{name: f"r.{name}" for name in ["updated_at", "sent_at", "answered_at"]},
}
_HAS_MEMBERS = "has_members"
_MODELS = {
    "s": Subscription,
    "a": CustomerAccount,
    "t": SubscriptionType,
    "v": SubscriptionService,
    "p": Product,
    "d": Distributor,
    "i": InstalledItem,
    "r": Req,
}


class _Branch:
    """The columns of ``names`` (see above) ``tail``: one branch of the answer's statement. The
    first is the id, which the statement orders the branch's rows by."""

    def __init__(self, names: dict[str, str | tuple[str, str] | None], tail: str):
        self.names = list(names)
        self.tail = tail
        self.columns = []  # (output name, model field, SQL expression, SQL type)
        for name, path in names.items():
            if path is None:
                continue
            if isinstance(path, tuple):  # an expression of our own and its type, read as it comes
                self.columns.append((name, None, *path))
                continue
            alias, field_name = path.split(".")
            field = _MODELS[alias]._meta.get_field(field_name)
            sql = f"{alias}.{rawsql.quote(field.column)}"
            self.columns.append((name, field, sql, field.cast_db_type(connection)))

    def row(self, values, zone) -> dict:
        row = dict.fromkeys(self.names)
        for (name, field, _, _), value in zip(self.columns, values, strict=True):
            row[name] = value if field is None else _represent(rawsql.convert(field, value), zone)
        return row


def _represent(value, zone):
    """DRF's representations of the types these columns hold; the others pass as they are.
    An aware datetime as ``DateTimeField`` gives it, in the current time zone (``zone``, read
    once per answer), by hand: asking DRF for each of an answer's dozens cost the real-time
    path a few percent of its CPU."""
    if isinstance(value, datetime):
        if value.tzinfo is None or zone is None:
            return _DATETIME.to_representation(value)
        text = value.astimezone(zone).isoformat()
        return text[:-6] + "Z" if text.endswith("+00:00") else text
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


class _Answer:
    """The subscription, its services, its devices in use and the requests, read by ONE
    statement: an action answers on the real-time path, where every statement is a round trip
    and its own CPU in psycopg and in PostgreSQL, so one ``UNION ALL`` instead of four SELECTs.

    A row's first column is its branch's number (0 the subscription, 1 its services, 2 its
    devices in use, 3 the requests), then come the columns of every branch, each branch's at
    positions of its own and NULL in the other branches' rows: no position ever holds two
    types. The rows come back by branch, each branch's by id, as the four SELECTs gave them.

    PostgreSQL resolves a UNION's column types pairwise, left to right: where the first two
    branches both had a bare NULL it would settle on ``text`` and then fail on the next
    branch's bigint or timestamp. So the first branch's NULLs for the columns of the third
    and later branches are cast to the type of the column they stand for; the others need
    not be (the second branch's own columns give their types). Short casts, as the statement
    stays under ``db.SHORT_STATEMENT_BYTES``.
    """

    def __init__(self, branches: list[_Branch]):
        self.branches = branches
        self.slices = []  # where each branch's columns are in a row
        start = 1
        for branch in branches:
            self.slices.append(slice(start, start + len(branch.columns)))
            start += len(branch.columns)
        selects = []
        for number, branch in enumerate(branches):
            sql = [str(number)]
            for position, other in enumerate(branches):
                if other is branch:
                    sql += [expression for _, _, expression, _ in other.columns]
                elif number == 0 and position > 1:
                    sql += [rawsql.typed_null(type_) for _, _, _, type_ in other.columns]
                else:
                    sql += ["NULL"] * len(other.columns)
            selects.append(f"SELECT {', '.join(sql)} {branch.tail}")
        # By branch, then by the ids of the branches (in a branch's rows, only its own is not
        # NULL); by position, as a UNION's output columns are named after the first branch's.
        order = " ORDER BY 1, " + ", ".join(str(where.start + 1) for where in self.slices)
        self.sql = " UNION ALL ".join(selects) + order
        # No requests, no requests branch (the last): ``IN ()`` is no SQL on PostgreSQL.
        self.sql_without_requests = " UNION ALL ".join(selects[:-1]) + order

    def rows(self, cursor, subscription_id: int, request_ids: list[int]) -> list[list[dict]]:
        """Each branch's rows, as the serializers' dicts. The statement's text is the same for
        the same number of requests, so that PostgreSQL prepares it (settings)."""
        params = [subscription_id] * (len(self.branches) - 1)  # the branches before requests'
        if request_ids:
            cursor.execute(self.sql.format(marks=rawsql.marks(request_ids)), params + request_ids)
        else:
            cursor.execute(self.sql_without_requests, params)
        rows = [[] for _ in self.branches]
        # The hand-made representation is ISO 8601's; another format is left to DRF.
        iso = (api_settings.DATETIME_FORMAT or "").lower() == ISO_8601
        zone = _DATETIME.default_timezone() if iso else None
        for values in cursor.fetchall():
            number = values[0]
            rows[number].append(self.branches[number].row(values[self.slices[number]], zone))
        return rows


@cache
def _answer() -> _Answer:
    # Built on first use: quoting names and naming types needs the database connection.
    return _Answer(
        [
            _Branch(
                _SUBSCRIPTION,
                f"FROM {rawsql.table(Subscription)} s "
                f"JOIN {rawsql.table(CustomerAccount)} a ON a.id = s.account_id "
                f"JOIN {rawsql.table(SubscriptionType)} t ON t.id = s.subscription_type_id "
                "WHERE s.id = %s",
            ),
            _Branch(
                _SERVICE,
                f"FROM {rawsql.table(SubscriptionService)} v "
                f"JOIN {rawsql.table(Product)} p ON p.id = v.product_id "
                f"JOIN {rawsql.table(Distributor)} d ON d.id = v.distributor_id "
                "WHERE v.subscription_id = %s",
            ),
            _Branch(
                _ITEM,
                f"FROM {rawsql.table(InstalledItem)} i "
                f"JOIN {rawsql.table(Distributor)} d ON d.id = i.distributor_id "
                "WHERE i.subscription_id = %s AND i.removed_at IS NULL",
            ),
            _Branch(
                # Whether it has item rows: most requests are to one card, and have none.
                {
                    **_REQUEST,
                    _HAS_MEMBERS: (
                        f"(EXISTS (SELECT 1 FROM {rawsql.table(Req.items.through)} m "  # noqa: S608 (names only)
                        "WHERE m.provisioningrequest_id = r.id))",
                        "boolean",
                    ),
                },
                f"FROM {rawsql.table(Req)} r "
                f"LEFT JOIN {rawsql.table(Distributor)} d ON d.id = r.distributor_id "
                f"LEFT JOIN {rawsql.table(Subscription)} s ON s.id = r.subscription_id "
                f"LEFT JOIN {rawsql.table(InstalledItem)} i ON i.id = r.installed_item_id "
                "WHERE r.id IN ({marks})",
            ),
        ]
    )


def action_result(subscription_id: int, request_ids: Sequence[int]) -> dict:
    """``{"subscription": …, "requests": …}`` as ``ActionResultSerializer`` represents it."""
    with connection.cursor() as cursor:
        (subscription,), services, items, requests = _answer().rows(
            cursor, subscription_id, list(request_ids)
        )
        for service in services:
            service["is_on"] = service["state"] in SubscriptionService.ON_STATES
        for item in items:
            item["in_use"] = True
        subscription["services"], subscription["installed_items"] = services, items
        _requests(cursor, requests)
    return {"subscription": subscription, "requests": requests}


def _requests(cursor, rows: list[dict]) -> None:
    """The requests' rows completed: their items (the members, read by a statement of their
    own, rare enough), their priority's name."""
    members: dict[int, list[int]] = {}
    with_members = [row["id"] for row in rows if row.pop(_HAS_MEMBERS)]
    if with_members:
        cursor.execute(
            f"SELECT m.provisioningrequest_id, m.installeditem_id "  # noqa: S608 (names and placeholders only)
            f"FROM {rawsql.table(Req.items.through)} m "
            f"JOIN {rawsql.table(InstalledItem)} i ON i.id = m.installeditem_id "
            f"WHERE m.provisioningrequest_id IN ({rawsql.marks(with_members)}) "
            "ORDER BY i.subscription_id, i.id",
            with_members,
        )
        for request_id, item_id in cursor.fetchall():
            members.setdefault(request_id, []).append(item_id)
    for row in rows:
        # ``ProvisioningRequest.device_ids``: the members, else the one card it is addressed to.
        card = row["installed_item"]
        row["items"] = members.get(row["id"]) or ([] if card is None else [card])
        row["priority"] = "express" if row["priority"] == Req.Priority.EXPRESS else "normal"
