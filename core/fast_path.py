"""The one seam of the hand-written PostgreSQL statements on the real-time path
(docs/adr/0002-fast-path-sql.md): each does in one round trip what a behaviour's portable
implementation does in several, and is taken only where ``enabled()`` says so. They live in
``subscriptions/fast_path.py`` (starting and stopping a service) and ``providers/fast_path/``
(the claim, the acceptance, an action's answer); the behaviour tests run on both paths on
PostgreSQL (the ``fast_path`` fixture)."""

from django.conf import settings
from django.db import connection


def enabled() -> bool:
    """Whether this connection takes the hand-written statements: PostgreSQL, and the setting
    ``PROVISIONING_FAST_PATH`` (on by default; off, the portable implementations serve)."""
    return settings.PROVISIONING_FAST_PATH and connection.vendor == "postgresql"
