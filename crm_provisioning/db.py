"""Database session settings that some work needs for itself."""

import contextlib
from collections.abc import Iterator

from django.db import connection


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
