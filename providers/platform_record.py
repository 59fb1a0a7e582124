"""What a platform holds, as its answers to our requests tell it: the ``PlatformRecord`` that
the rollbacks of ``subscriptions.actions`` ask (``answers`` passes it), and the SQL of what a
card taken away still holds (``still_holding``: the acceptances' on both paths)."""

from core import rawsql
from subscriptions.models import InstalledItem, SubscriptionService

from .models import ProvisioningRequest as Req

_ACTIVATE_OR_DEACTIVATE = (Req.Operation.ACTIVATE, Req.Operation.DEACTIVATE)


class AnsweredRequests:
    def still_holds(self, item: InstalledItem, service: SubscriptionService, ca_id: str) -> bool:
        """The last completed activation or cancellation of ``ca_id`` on the card was an
        activation (a rejected one changed nothing)."""
        last = (
            Req.objects.filter(
                installed_item=item,
                service=service,
                ca_id=ca_id,
                state=Req.State.COMPLETED,
                operation__in=_ACTIVATE_OR_DEACTIVATE,
            )
            .order_by("-pk")
            .values_list("operation", flat=True)
            .first()
        )
        return last == Req.Operation.ACTIVATE

    def holds_service(self, service: SubscriptionService) -> bool | None:
        """One of the service's CA IDs on a registered card was last completed by an
        activation; None while a request of the service is Pending or Failed."""
        requests = Req.objects.filter(service=service, operation__in=_ACTIVATE_OR_DEACTIVATE)
        if requests.filter(state__in=(Req.State.PENDING, Req.State.FAILED)).exists():
            return None
        last: dict[tuple[int, str], str] = {}
        completed = requests.filter(state=Req.State.COMPLETED, installed_item__initialized=True)
        for item_id, ca_id, operation in completed.order_by("pk").values_list(
            "installed_item_id", "ca_id", "operation"
        ):
            last[(item_id, ca_id)] = operation
        return Req.Operation.ACTIVATE in last.values()


def still_holding(item: str, accepted_now: str = "") -> str:
    """SQL: the card ``item`` (a table alias) had a cancellation rejected that no accepted
    one of the same CA ID made good since: the platform still holds that CA ID there, so a
    card taken away stays registered (a reset cancels it again). ``accepted_now``: a
    subquery of the ids a statement accepts (it sees their state before:
    ``fast_path.accept``)."""
    requests = rawsql.table(Req)
    now = f" OR y.id IN ({accepted_now})" if accepted_now else ""
    return (
        f"EXISTS (SELECT 1 FROM {requests} x WHERE x.installed_item_id = {item}.id "  # noqa: S608 (names, constants)
        f"AND x.operation = '{Req.Operation.DEACTIVATE}' AND x.state = '{Req.State.REJECTED}' "
        f"AND NOT EXISTS (SELECT 1 FROM {requests} y WHERE y.installed_item_id = {item}.id "
        f"AND y.ca_id = x.ca_id AND y.operation = '{Req.Operation.DEACTIVATE}' AND y.id > x.id "
        f"AND (y.state = '{Req.State.COMPLETED}'{now})))"
    )
