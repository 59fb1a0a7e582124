"""Acceptances by id recorded by ONE statement, as ``answers.record_answers`` records them.

A worker answers the requests it delivered one to three at a time; the portable path takes
five round trips for that (BEGIN, the lock, the request's update, the service's, COMMIT). This
statement does the same in one:

- the requests are locked in id order (as ``answers._lock``: two callers cannot deadlock);
- only when every one exists and none is finished otherwise (Rejected, Archived: a conflict)
  is anything written, so that the caller can still raise before anything changed;
- the open ones become Completed, with their response and error code (a plain answer's NULL
  leaves the error code as it was, as ``answers._save`` does), without their sealed PIN;
- the provider state follows as ``answers._apply_acceptances`` sets it: activated services
  authorized, deactivated ones (unless on again since) not, deactivated cards that were taken
  away forgotten, pairings' members in use initialized (and removed boxes left out forgotten).

Sibling updates of one statement must not touch one row twice (PostgreSQL would apply only
one), so where two of those updates would meet on a row, the row gets the later one's result
from one of them alone: a service both activated and cancelled is cancelled when it is off,
else authorized; a card both forgotten and paired is paired.

Its text depends only on the number of answers, so that PostgreSQL prepares it.
"""

from functools import cache

from core import rawsql
from subscriptions.models import InstalledItem, SubscriptionService

from .. import sealed
from ..models import ProvisioningRequest as Req
from ..platform_record import still_holding

Op = Req.Operation
State = Req.State


def _literals(values) -> str:
    # Model constants only, never input: written in, so that a generic plan can use them.
    return ", ".join(f"'{value}'" for value in sorted(values))


@cache
def statement(count: int) -> str:
    """For ``count`` answers; parameters: ``params(...)``. Each row it returns is a locked
    request: id, uid, its state before."""
    requests, services = rawsql.table(Req), rawsql.table(SubscriptionService)
    items, members = rawsql.table(InstalledItem), rawsql.table(Req.items.through)
    on = _literals(SubscriptionService.ON_STATES)
    finished = _literals([State.COMPLETED, State.REJECTED, State.ARCHIVED])
    conflicting = _literals([State.REJECTED, State.ARCHIVED])
    pairing = _literals([Op.CREATE_PAIRING, Op.ADD_TO_PAIRING])
    values = ", ".join(["(%s::bigint, %s::text, %s::jsonb)"] * count)
    holding = still_holding("i", "SELECT id FROM done")
    served = "SELECT service_id FROM done WHERE service_id IS NOT NULL AND operation ="
    activated = f"{served} '{Op.ACTIVATE}'"
    deactivated = f"{served} '{Op.DEACTIVATE}'"
    paired = (
        f"SELECT m.installeditem_id FROM {members} m WHERE m.provisioningrequest_id IN "  # noqa: S608 (names, constants)
        f"(SELECT id FROM done WHERE operation IN ({pairing}))"
    )
    return (
        f"WITH v(id, error_code, response) AS (VALUES {values}), "  # noqa: S608 (names from the models, constants)
        "locked AS (SELECT r.id, r.uid, r.state, r.operation, r.service_id, "
        f"r.installed_item_id FROM {requests} r WHERE r.id IN (SELECT id FROM v) "
        "ORDER BY r.id FOR UPDATE), "
        "clear AS (SELECT count(*) = %s AND NOT coalesce(bool_or(state IN "
        f"({conflicting})), false) AS ok FROM locked), "
        f"done AS (UPDATE {requests} r SET state = '{State.COMPLETED}', answered_at = %s, "
        "updated_at = %s, error_code = COALESCE(v.error_code, r.error_code), "
        "response = COALESCE(v.response, r.response), "
        f"parameters = {sealed.without_pin_sql('r.parameters', 'postgresql')} "
        "FROM v, locked l, clear "
        f"WHERE clear.ok AND r.id = v.id AND l.id = v.id AND l.state NOT IN ({finished}) "
        "RETURNING r.id, l.operation, l.service_id, l.installed_item_id), "
        f"authorized AS (UPDATE {services} s SET authorized = true, authorization_date = %s "
        f"WHERE s.id IN ({activated}) "
        f"AND NOT (s.id IN ({deactivated}) AND s.state NOT IN ({on}))), "
        f"cancelled AS (UPDATE {services} s SET authorized = false, authorization_date = %s, "
        f"updated_at = %s WHERE s.id IN ({deactivated}) AND s.state NOT IN ({on})), "
        f"forgotten AS (UPDATE {items} i SET initialized = false WHERE i.id IN "
        f"(SELECT installed_item_id FROM done WHERE operation = '{Op.DEACTIVATE}' "
        "AND installed_item_id IS NOT NULL) AND i.removed_at IS NOT NULL "
        f"AND i.id NOT IN ({paired}) AND NOT {holding}), "
        f"initialized AS (UPDATE {items} i SET initialized = i.removed_at IS NULL "
        f"WHERE i.id IN ({paired})) "
        "SELECT l.id, l.uid, l.state FROM locked l ORDER BY l.id"
    )


def params(rows: list[tuple[int, str | None, str | None]], now) -> list:
    """``rows``: (request id, error code or None to keep it, response as JSON text or None),
    one per distinct request."""
    return [*(value for row in rows for value in row), len(rows), now, now, now, now, now]
