"""Django's PostgreSQL backend, its connection health check made cheap for a busy process.

With ``CONN_HEALTH_CHECKS`` Django sends ``SELECT 1`` before the first statement of every web
request (and of every Celery task): one more round trip on each real-time action, about a
twentieth of the web server's share of it. A persistent connection that answered a check a
moment ago is almost never dead, so it is checked again only once it has gone
``CHECK_AFTER_SECONDS`` without one: under a steady stream of requests, once in that time;
after an idle spell (when a restarted server or a firewall is likely to have dropped it),
before the first statement, as Django does.

What a dead connection costs within that moment is what Django's setting without checks costs:
the statement fails (the request answers with the error, and nothing of it is committed), and
Django closes the connection at the request's end, so the next request reconnects."""

import time

from django.db.backends.postgresql import base

CHECK_AFTER_SECONDS = 5.0


class DatabaseWrapper(base.DatabaseWrapper):
    checked_at: float | None = None

    def close_if_health_check_failed(self):
        if (
            self.connection is not None
            and self.health_check_enabled
            and not self.health_check_done
            and self.checked_at is not None
            and time.monotonic() - self.checked_at < CHECK_AFTER_SECONDS
        ):
            self.health_check_done = True
            return
        was_due = self.connection is not None and not self.health_check_done
        super().close_if_health_check_failed()
        if was_due and self.connection is not None:
            self.checked_at = time.monotonic()

    def connect(self):
        super().connect()
        self.checked_at = time.monotonic()  # a new connection has just answered
