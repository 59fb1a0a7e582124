"""Health for load balancers and orchestrators: alive (the process answers) and ready (the
database and the broker answer too).

Readiness leaves the workers out: a web server whose workers are down still takes actions
(their requests wait, Pending), so taking it out of a load balancer would only make it worse.
"""

from dataclasses import dataclass

from celery import current_app
from django.db import connection

# A check that takes longer than this counts as failed: a load balancer waits a few seconds.
TIMEOUT_S = 2


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str  # "ok", or what failed (the error's kind, never its text: it may name hosts)


def _database() -> Check:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as error:
        connection.close()
        return Check("database", False, f"unreachable ({type(error).__name__})")
    return Check("database", True, "ok")


def _broker() -> Check:
    try:
        with current_app.connection_for_write() as broker:
            broker.ensure_connection(max_retries=1, timeout=TIMEOUT_S)
    except Exception as error:
        return Check("broker", False, f"unreachable ({type(error).__name__})")
    return Check("broker", True, "ok")


def ready() -> list[Check]:
    return [_database(), _broker()]
