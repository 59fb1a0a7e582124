"""PostgreSQL connections between requests (``crm_provisioning.postgresql``): one that has
gone a while without a check is checked before its first statement and replaced when its
server end is gone; one checked a moment ago is trusted, and when it was dead after all, one
request fails and the next works on a new connection."""

import time

import pytest
from django.db import OperationalError, close_old_connections, connection, connections

from crm_provisioning.postgresql.base import CHECK_AFTER_SECONDS

pytestmark = [
    pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's backend"),
    # Outside a test transaction, as between a web server's requests.
    pytest.mark.django_db(transaction=True),
]


def backend_pid() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


def drop_from_the_server(pid: int) -> None:
    """What a server restart does to a connection: its backend is gone."""
    other = connections.create_connection("default")
    try:
        with other.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
            assert cursor.fetchone()[0]
    finally:
        other.close()
    time.sleep(0.2)  # the backend has exited


def next_request() -> None:
    """What Django does between two requests (and Celery between two tasks)."""
    close_old_connections()


@pytest.fixture
def persistent(settings):
    assert connection.settings_dict["CONN_HEALTH_CHECKS"]
    connection.close()
    yield
    connection.close()


def test_a_connection_without_a_recent_check_is_checked_and_replaced_when_dead(persistent):
    before = backend_pid()
    next_request()
    drop_from_the_server(before)
    # As after an idle spell: its last check is longer ago than the window.
    connection.checked_at = time.monotonic() - CHECK_AFTER_SECONDS - 1

    next_request()
    after = backend_pid()  # no error: the check found it dead, and a new one was opened

    assert after != before


def test_a_connection_checked_a_moment_ago_is_trusted_and_one_request_pays_if_dead(persistent):
    before = backend_pid()
    next_request()
    assert backend_pid() == before  # trusted: no check, the same connection
    drop_from_the_server(before)

    next_request()
    with pytest.raises(OperationalError):
        backend_pid()
    # The failed request's end closes it; the next request works on a new connection.
    next_request()
    assert backend_pid() != before
