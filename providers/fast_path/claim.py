"""Due requests claimed by ONE statement, as ``delivery.claim`` claims them.

A worker claims on every wake-up, mostly one to three requests; the portable claim compiles
``delivery.due`` and takes six round trips. This statement has the same conditions as
``due``: the provider's Pending requests whose time has come and with no older Pending request
for their card, Express first then oldest, locked ``SKIP LOCKED`` and leased in one
``UPDATE … RETURNING`` (the queue pattern), with each claimed request's card.
"""

from functools import cache

from django.db import connection

from core import rawsql
from core.db import equals_without_partial_index
from subscriptions.models import InstalledItem

from ..models import ProvisioningRequest as Req


@cache
def _statement(limit: int) -> str:
    # The limit is written in (an int): a planner that knows it picks the queue's index.
    requests, items = rawsql.table(Req), rawsql.table(InstalledItem)
    # 'pending' is written in, so that the queue's partial index serves a prepared plan; a
    # card's other requests come by the card's index, whatever the statistics say.
    older = equals_without_partial_index("older.state", Req.State.PENDING)
    later = equals_without_partial_index("later.state", Req.State.PENDING)
    return (
        f"WITH claimed AS ("  # noqa: S608 (names from the models, the limit an int)
        f"UPDATE {requests} AS r SET next_attempt_at = %s, attempts = r.attempts + 1, "
        f"sent_at = %s WHERE r.id IN ("
        f"SELECT due.id FROM {requests} due WHERE due.provider_id = %s "
        "AND due.state = 'pending' "
        "AND (due.next_attempt_at IS NULL OR due.next_attempt_at <= %s) "
        f"AND NOT EXISTS (SELECT 1 FROM {requests} older "
        "WHERE older.installed_item_id = due.installed_item_id AND older.id < due.id "
        f"AND {older}) "
        f"ORDER BY due.priority, due.id LIMIT {int(limit)} FOR UPDATE SKIP LOCKED) "
        # Whether a later Pending request waits for the same card (``claim``'s ``followed``).
        f"RETURNING r.*, EXISTS (SELECT 1 FROM {requests} later "
        "WHERE later.installed_item_id = r.installed_item_id "
        f"AND {later} AND later.id > r.id) AS followed) "
        f"SELECT {rawsql.columns(Req, 'claimed')}, claimed.followed, "
        f"{rawsql.columns(InstalledItem, 'item')} "
        f"FROM claimed LEFT JOIN {items} item ON item.id = claimed.installed_item_id"
    )


def claim(provider_id: int, limit: int, now, lease_until) -> list[Req]:
    """The claimed requests (unordered), each with ``followed`` and its card loaded."""
    with connection.cursor() as cursor:
        cursor.execute(_statement(limit), [lease_until, now, provider_id, now])
        rows = cursor.fetchall()
    width = len(Req._meta.concrete_fields)
    claimed = []
    for row in rows:
        request = rawsql.instance(Req, row[:width])
        request.followed = row[width]
        card = row[width + 1 :]
        item = rawsql.instance(InstalledItem, card) if card[0] is not None else None
        Req.installed_item.field.set_cached_value(request, item)
        claimed.append(request)
    return claimed
