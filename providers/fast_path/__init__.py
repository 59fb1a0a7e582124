"""Hand-written PostgreSQL statements on the real-time path, each doing in one round trip what a
behaviour's portable implementation does in several (docs/adr/0002-fast-path-sql.md).

``claim``: due requests claimed by ``delivery.claim``; ``action_answer``: an action's answer
(``crm_provisioning.subscriptions_api.action_result``, docs/adr/0007). Whether they are taken
is decided here alone; the behaviour tests run on both paths on PostgreSQL."""

from django.conf import settings
from django.db import connection


def enabled() -> bool:
    """Whether this connection takes the hand-written statements."""
    return settings.PROVISIONING_FAST_PATH and connection.vendor == "postgresql"
