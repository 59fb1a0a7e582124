"""How our work is tuned for PostgreSQL — plans, joins, index choice, statement length — behind
names the domain code calls by what it needs. Why each exists, in a line here; the measurements
behind them in docs/benchmarks.md. Elsewhere than on PostgreSQL each is a no-op (or plain SQL).

Real-time work (an action, a delivery) runs prepared statements on their generic plans: for id
look-ups that is the plan a fresh one would make, minus the planning. Batch work (a run's
chunk, a preview) plans every statement for its own values: a range of a hundred thousand ids
must not be planned as if it held a few rows.
"""

import contextlib
import functools
import re
from collections.abc import Callable, Iterator
from functools import lru_cache
from typing import ParamSpec, TypeVar

from django.db import DatabaseError, connection, transaction

P = ParamSpec("P")
R = TypeVar("R")

# Real-time: PostgreSQL's own choice (auto) keeps re-planning some id look-ups on every call.
_GENERIC = "plan_cache_mode = force_generic_plan"


@contextlib.contextmanager
def plans_per_call() -> Iterator[None]:
    """Batch work: this connection prepares nothing while the block lasts, so every statement
    is planned for its values. (Not ``force_custom_plan``: that re-plans the foreign-key checks
    of every row a run inserts too.)"""
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


def _preparing() -> bool:
    """In a transaction on a PostgreSQL connection that prepares statements."""
    if connection.vendor != "postgresql" or not connection.in_atomic_block:
        return False
    connection.ensure_connection()
    return connection.connection.prepare_threshold is not None


def generic_plans_in_transaction() -> None:
    """Real-time work: the current transaction's prepared statements run on their generic plan
    (``SET LOCAL``). Call it first thing in the transaction."""
    if _preparing():
        with connection.cursor() as cursor:
            cursor.execute(f"SET LOCAL {_GENERIC}")


# ``SET LOCAL`` as an expression: the same setting, for the rest of the transaction.
GENERIC_PLANS_COLUMN = "set_config('plan_cache_mode', 'force_generic_plan', true)"


def generic_plans_with_first_statement() -> bool:
    """Like ``generic_plans_in_transaction``, for a caller whose first statement reads one row
    anyway: True when that statement is to carry ``GENERIC_PLANS_COLUMN`` as its first column
    (one round trip fewer); False where nothing is to be set. A statement that finds no row
    sets nothing, and the caller then stops."""
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
    """A batch statement that joins thousands of rows to thousands on correlated columns: the
    planner multiplies their selectivities, expects one row, and picks a nested loop comparing
    every pair; hash and merge joins cost about the same whatever the estimate. In a
    transaction (a savepoint when one is open); the setting is put back after."""
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
    partial index on that condition can serve it: a generic plan made while such an index was
    nearly empty would keep reading it after a run has filled it, on every call."""
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


def realtime_transaction(function: Callable[P, R]) -> Callable[P, R]:
    """``function`` runs in a transaction (``transaction.atomic``) whose prepared statements run
    on their generic plans (``generic_plans_in_transaction``): a subscription action."""

    @functools.wraps(function)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        with transaction.atomic():
            generic_plans_in_transaction()
            return function(*args, **kwargs)

    return run
