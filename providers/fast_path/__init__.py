"""The providers' hand-written PostgreSQL statements on the real-time path, each doing in one
round trip what a behaviour's portable implementation does in several
(docs/adr/0002-fast-path-sql.md).

``claim``: due requests claimed by ``delivery.claim``; ``accept``: acceptances recorded by
``answers.record_answers``; ``action_answer``: an action's answer
(``crm_provisioning.subscriptions_api.action_result``, docs/adr/0007). Whether they are taken
is decided by ``enabled()`` alone (``core.fast_path``, the one seam); the behaviour tests run on
both paths on PostgreSQL."""

from core.fast_path import enabled

__all__ = ["enabled"]
