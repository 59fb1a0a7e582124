"""PostgreSQL connections between requests (``CONN_HEALTH_CHECKS``): a persistent connection
is checked before each request's first statement and replaced when its server end is gone."""

import time

import pytest
from django.db import close_old_connections, connection, connections

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


def test_a_dead_connection_is_checked_and_replaced_before_the_next_request(persistent):
    before = backend_pid()
    next_request()
    assert backend_pid() == before  # alive: kept
    drop_from_the_server(before)

    next_request()
    after = backend_pid()  # no error: the check found it dead, and a new one was opened

    assert after != before
