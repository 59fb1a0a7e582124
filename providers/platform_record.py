"""What a platform holds, as its answers to our requests tell it: the ``PlatformRecord`` that
the rollbacks of ``subscriptions.actions`` ask (``answers`` passes it)."""

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
