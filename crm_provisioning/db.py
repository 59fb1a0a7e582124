"""Database session settings that some work needs for itself."""

import contextlib
from collections.abc import Iterator

from django.db import connection


@contextlib.contextmanager
def plans_per_call() -> Iterator[None]:
    """Batch work: PostgreSQL plans every statement for its own parameters.

    Connections keep prepared statements (settings: ``prepare_threshold``), and after a few
    calls PostgreSQL may run one on a *generic* plan, made without looking at the values. That
    is what saves a real-time action its planning. A batch part's statements over a range of a
    hundred thousand subscription ids would be planned as if the range held a few rows (the
    planner's default guess for an unknown range), and a nested loop over a hundred thousand
    rows costs minutes. Planning each is a millisecond against seconds of work."""
    if connection.vendor != "postgresql":
        yield
        return
    with connection.cursor() as cursor:
        cursor.execute("SET plan_cache_mode = force_custom_plan")
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute("RESET plan_cache_mode")
