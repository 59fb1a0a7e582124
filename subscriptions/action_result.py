"""What an action answers with, read by hand-written SQL: the subscription as it now is (its
services and the devices in use) and the provisioning requests the action made.

The representation is ``api.ActionResultSerializer``'s (the schema's; a test holds the two
equal, keys in order), built without it: a real-time action spent more CPU on the ORM
compiling the five queries behind those serializers, and on the serializers, than on the
action itself. Each column goes through Django's own converters for its model field (a SQLite
text UUID, a naive datetime, JSON text), then through DRF's representation of its type, so the
values are the serializers' on either database (``crm_provisioning.rawsql``).
"""

import uuid
from collections.abc import Sequence
from datetime import datetime
from functools import cache

from django.db import connection
from rest_framework import serializers

from crm_provisioning import rawsql
from providers.models import Distributor, ProvisioningRequest
from subscriptions.models import (
    CustomerAccount,
    InstalledItem,
    Product,
    Subscription,
    SubscriptionService,
    SubscriptionType,
)

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
    **{name: f"r.{name}" for name in ["error_code", "response", "process_run", "created_at"]},
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


class _Select:
    """``SELECT`` the columns of ``names`` (see above) ``tail``; rows come back as the
    serializers' dicts."""

    def __init__(self, names: dict[str, str | None], tail: str):
        self.names = list(names)
        self.columns = []  # (output name, model field)
        sql = []
        for name, path in names.items():
            if path is None:
                continue
            if path.startswith("("):  # an expression of our own, read as it comes
                self.columns.append((name, None))
                sql.append(path)
                continue
            alias, field_name = path.split(".")
            field = _MODELS[alias]._meta.get_field(field_name)
            self.columns.append((name, field))
            sql.append(f"{alias}.{rawsql.quote(field.column)}")
        self.sql = f"SELECT {', '.join(sql)} {tail}"

    def rows(self, cursor, params: Sequence, **formats) -> list[dict]:
        cursor.execute(self.sql.format(**formats) if formats else self.sql, params)
        return [self._row(values) for values in cursor.fetchall()]

    def _row(self, values) -> dict:
        row = dict.fromkeys(self.names)
        for (name, field), value in zip(self.columns, values, strict=True):
            row[name] = value if field is None else _represent(rawsql.convert(field, value))
        return row


def _represent(value):
    # DRF's representations of the types these columns hold; the others pass as they are.
    if isinstance(value, datetime):
        return _DATETIME.to_representation(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


@cache
def _selects() -> dict[str, _Select]:
    # Built on first use: quoting names needs the database connection's operations.
    return {
        "subscription": _Select(
            _SUBSCRIPTION,
            f"FROM {rawsql.table(Subscription)} s "
            f"JOIN {rawsql.table(CustomerAccount)} a ON a.id = s.account_id "
            f"JOIN {rawsql.table(SubscriptionType)} t ON t.id = s.subscription_type_id "
            "WHERE s.id = %s",
        ),
        "services": _Select(
            _SERVICE,
            f"FROM {rawsql.table(SubscriptionService)} v "
            f"JOIN {rawsql.table(Product)} p ON p.id = v.product_id "
            f"JOIN {rawsql.table(Distributor)} d ON d.id = v.distributor_id "
            "WHERE v.subscription_id = %s ORDER BY v.id",
        ),
        "items": _Select(
            _ITEM,
            f"FROM {rawsql.table(InstalledItem)} i "
            f"JOIN {rawsql.table(Distributor)} d ON d.id = i.distributor_id "
            "WHERE i.subscription_id = %s AND i.removed_at IS NULL ORDER BY i.id",
        ),
        "requests": _Select(
            # Whether it has item rows: most requests are to one card, and have none.
            {
                **_REQUEST,
                _HAS_MEMBERS: f"(EXISTS (SELECT 1 FROM {rawsql.table(Req.items.through)} m "  # noqa: S608 (names only)
                "WHERE m.provisioningrequest_id = r.id))",
            },
            f"FROM {rawsql.table(Req)} r "
            f"LEFT JOIN {rawsql.table(Distributor)} d ON d.id = r.distributor_id "
            f"LEFT JOIN {rawsql.table(Subscription)} s ON s.id = r.subscription_id "
            f"LEFT JOIN {rawsql.table(InstalledItem)} i ON i.id = r.installed_item_id "
            "WHERE r.id IN ({marks}) ORDER BY r.id",
        ),
    }


def action_result(subscription_id: int, request_ids: Sequence[int]) -> dict:
    """``{"subscription": …, "requests": …}`` as ``ActionResultSerializer`` represents it."""
    selects = _selects()
    with connection.cursor() as cursor:
        (subscription,) = selects["subscription"].rows(cursor, [subscription_id])
        services = selects["services"].rows(cursor, [subscription_id])
        for service in services:
            service["is_on"] = service["state"] in SubscriptionService.ON_STATES
        items = selects["items"].rows(cursor, [subscription_id])
        for item in items:
            item["in_use"] = True
        subscription["services"], subscription["installed_items"] = services, items
        requests = _requests(cursor, selects["requests"], list(request_ids))
    return {"subscription": subscription, "requests": requests}


def _requests(cursor, select: _Select, ids: list[int]) -> list[dict]:
    if not ids:
        return []
    rows = select.rows(cursor, ids, marks=rawsql.marks(ids))
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
    return rows
