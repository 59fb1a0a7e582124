"""How our work is tuned for PostgreSQL — plans, joins, index choice, statement length — behind
names the domain code calls by what it needs; the reasons live here."""

import contextlib
import re
from collections.abc import Iterator
from functools import lru_cache

from django.db import DatabaseError, connection, transaction


@contextlib.contextmanager
def plans_per_call() -> Iterator[None]:
    """Batch work: this connection prepares no statement, so PostgreSQL plans every one for
    its own values.

    Connections prepare what they run again (settings: ``prepare_threshold``), and after a
    few calls PostgreSQL may run a prepared statement on a *generic* plan, made without
    looking at the values. That is what saves a real-time action its planning. A batch part's
    statements over a range of a hundred thousand subscription ids would be planned as if the
    range held a few rows (the planner's default guess for an unknown range), and a nested
    loop over a hundred thousand rows costs minutes; planning each is a millisecond against
    seconds of work. Not ``plan_cache_mode = force_custom_plan``: that also re-plans the
    foreign key checks PostgreSQL runs for every row a run inserts, a third of its time."""
    if connection.vendor != "postgresql":
        yield
        return
    connection.ensure_connection()
    raw = connection.connection
    before = raw.prepare_threshold
    raw.prepare_threshold = None
    try:
        yield
    finally:
        raw.prepare_threshold = before


# Real-time work is a few dozen short statements, each keyed by ids (a service, a card, a
# request), prepared after two calls. PostgreSQL's own choice (plan_cache_mode = auto) still
# plans some of them again on every call: for ``= ANY(%s)`` over an array it cannot see, or a
# join of small tables, the generic plan's estimate looks dearer than a fresh plan for the
# values at hand, and it keeps planning anew — about a millisecond of PostgreSQL's CPU per
# action, a fifth of its share. For id look-ups the generic plan is the plan that a fresh one
# would make. Batch work is unaffected: it prepares nothing (``plans_per_call``).
_GENERIC = "plan_cache_mode = force_generic_plan"


def _preparing() -> bool:
    """In a transaction on a PostgreSQL connection that prepares statements."""
    if connection.vendor != "postgresql" or not connection.in_atomic_block:
        return False
    connection.ensure_connection()
    return connection.connection.prepare_threshold is not None


def generic_plans_in_transaction() -> None:
    """Real-time work: the current transaction's prepared statements run on their generic
    plan (``SET LOCAL``: until the outermost transaction commits or rolls back). Call it first
    thing in the transaction. Nothing to do where nothing is prepared (``plans_per_call``)."""
    if _preparing():
        with connection.cursor() as cursor:
            cursor.execute(f"SET LOCAL {_GENERIC}")


# ``SET LOCAL`` as an expression: the same setting, for the rest of the transaction.
GENERIC_PLANS_COLUMN = "set_config('plan_cache_mode', 'force_generic_plan', true)"


def generic_plans_with_first_statement() -> bool:
    """Like ``generic_plans_in_transaction``, for a caller whose first statement reads one row
    anyway: True when that statement is to carry ``GENERIC_PLANS_COLUMN`` as its first column
    (one round trip to PostgreSQL fewer on every real-time action); False where nothing is to
    be set. A statement that finds no row sets nothing, and the caller then stops."""
    return _preparing()


@contextlib.contextmanager
def generic_plans() -> Iterator[None]:
    """Real-time work over many transactions (a delivery loop): this connection's prepared
    statements run on their generic plan until the block ends."""
    if connection.vendor != "postgresql":
        yield
        return
    with connection.cursor() as cursor:
        cursor.execute(f"SET {_GENERIC}")
    failed = True
    try:
        yield
        failed = False
    finally:
        try:
            with connection.cursor() as cursor:
                cursor.execute("RESET plan_cache_mode")
        except DatabaseError:
            # After a failure that broke the connection or its transaction, that failure is
            # the one to raise; a broken connection is closed, and its setting with it.
            if not failed:
                raise


@contextlib.contextmanager
def without_nested_loops() -> Iterator[None]:
    """A batch chunk's statement that joins thousands of rows to thousands: PostgreSQL may
    not join them by a nested loop while the block lasts (in a transaction, a savepoint when
    one is open already; the setting is put back after, or rolled back with the block).

    A chunk's services joined to its cards match on two correlated columns, and the planner
    multiplies their selectivities: it expects one row where there are tens of thousands, and
    joins them to the chunk's Pending requests by a nested loop, comparing every pair. With a
    reset run's requests Pending, a chunk of 10,000 subscriptions took 50 s; joined by hashes,
    0.04 s. Hash and merge joins cost about the same whatever the estimate."""
    if connection.vendor != "postgresql":
        yield
        return
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            "SELECT current_setting('enable_nestloop'), set_config('enable_nestloop', 'off', true)"
        )
        before = cursor.fetchone()[0]
        yield
        cursor.execute("SELECT set_config('enable_nestloop', %s, true)", [before])


def equals_without_partial_index(column: str, value: str) -> str:
    """SQL: ``column = 'value'`` (``value`` a model constant, never input) written so that no
    partial index on that condition can serve it: a generic plan made while statistics said
    such an index was nearly empty keeps reading it when a run has filled it since, for every
    call. Written this way, the rows come by another index (a card's, a subscription's)."""
    return f"upper({column}) = '{value.upper()}'"


# psycopg caches its parse of a statement up to 4 KB; a longer one is parsed again, in Python,
# on every call (a few hundred microseconds: a real-time action's statements stay under it).
SHORT_STATEMENT_BYTES = 4096
_LINE_BREAKS = re.compile(r"\n\s*")


@lru_cache(maxsize=256)
def short_statement(sql: str) -> str:
    """``sql`` without its line breaks and indentation (our statements' literals hold neither),
    for a real-time statement that must stay under ``SHORT_STATEMENT_BYTES``."""
    return _LINE_BREAKS.sub(" ", sql)
