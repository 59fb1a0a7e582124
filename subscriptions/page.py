"""What the subscription page reads: its viewing points, each service's provisioning status and
its latest requests, by a fixed number of statements whatever the database holds.

Provisioning requests belong to the providers layer, above this one: they are read through the
subscription's reverse relations (``provisioning_requests``), never by importing their model.
"""

from dataclasses import dataclass, field

from django.db.models import Case, F, IntegerField, OuterRef, Subquery, Value, When

from catalogue.models import Distributor

from . import actions
from .models import InstalledItem, Pairing, Subscription, SubscriptionService

# The page shows the newest rows of each list; the rest is one click away in its own list.
SERVICES_SHOWN = 60
ITEMS_SHOWN = 30
PAIRINGS_SHOWN = 10
REQUESTS_SHOWN = 10

# ProvisioningRequest.State values (the model lives in the providers layer, above this one).
PENDING, FAILED, REJECTED = "pending", "failed", "rejected"


def point_label(distributor: Distributor) -> str:
    """A viewing point as agents tell them apart: four providers may each have a MAIN."""
    return f"{distributor.provider.name} — {distributor.code}"


@dataclass
class ViewingPoint:
    distributor: Distributor
    services: list = field(default_factory=list)
    devices: list = field(default_factory=list)
    paired: list = field(default_factory=list)  # the devices of its current pairing

    @property
    def label(self) -> str:
        return point_label(self.distributor)


@dataclass
class ServiceStatus:
    """Where a service stands at its provider: ``kind`` is authorized, pending, retrying,
    failed, rejected, not_authorized or off; ``request`` the latest request about it."""

    kind: str
    request: object | None = None


def _requests_model():
    return Subscription.provisioning_requests.field.model


def services(sub: Subscription) -> list[SubscriptionService]:
    """Current services first, then the newest ended ones; each with ``live`` and the id of
    its latest request (``latest_request_id``)."""
    latest = (
        _requests_model().objects.filter(service=OuterRef("pk")).order_by("-id").values("pk")[:1]
    )
    live_first = Case(
        When(state__in=actions.LIVE_SERVICE_STATES, then=Value(0)),
        default=Value(1),
        output_field=IntegerField(),
    )
    rows = list(
        sub.services.select_related("product", "distributor__provider", "swapped_from__product")
        .annotate(latest_request_id=Subquery(latest), ended=live_first)
        .order_by("ended", "-id")[:SERVICES_SHOWN]
    )
    for service in rows:
        service.live = not service.ended
    return rows


def with_status(rows: list[SubscriptionService]) -> list[SubscriptionService]:
    """Set ``status`` on each service from its latest request (one statement for all)."""
    ids = [s.latest_request_id for s in rows if s.latest_request_id]
    latest = {
        r.pk: r for r in _requests_model().objects.filter(pk__in=ids).select_related("provider")
    }
    for service in rows:
        service.status = _status(service, latest.get(service.latest_request_id))
    return rows


def _status(service: SubscriptionService, request) -> ServiceStatus:
    if request is not None and request.state == PENDING:
        retrying = request.attempts > 0 and request.last_error
        return ServiceStatus("retrying" if retrying else "pending", request)
    if request is not None and request.state in (FAILED, REJECTED):
        return ServiceStatus(request.state, request)
    if service.authorized:
        return ServiceStatus("authorized", request)
    if service.live and service.is_on:
        return ServiceStatus("not_authorized", request)
    return ServiceStatus("off", request)


def status(sub: Subscription) -> dict:
    """The live part of the page: services with their status and the latest requests."""
    rows = with_status(services(sub))
    requests = list(
        sub.provisioning_requests.select_related("provider", "distributor").order_by("-id")[
            :REQUESTS_SHOWN
        ]
    )
    pending = sub.provisioning_requests.filter(state=PENDING).exists()
    return {"services": rows, "requests": requests, "pending": pending}


def devices(sub: Subscription) -> list[InstalledItem]:
    """Devices in place first, then the newest removed ones."""
    return list(
        sub.installed_items.select_related("distributor__provider").order_by(
            F("removed_at").desc(nulls_first=True), "-id"
        )[:ITEMS_SHOWN]
    )


def pairings(sub: Subscription) -> list[Pairing]:
    return list(
        sub.pairings.select_related("distributor__provider")
        .prefetch_related("items")
        .order_by(F("cancelled_at").desc(nulls_first=True), "-id")[:PAIRINGS_SHOWN]
    )


def viewing_points(services_, devices_, pairings_) -> list[ViewingPoint]:
    """Each viewing point in use, with its current services, devices and pairing."""
    points: dict[int, ViewingPoint] = {}

    def point(distributor):
        return points.setdefault(distributor.pk, ViewingPoint(distributor))

    for item in devices_:
        if item.in_use:
            point(item.distributor).devices.append(item)
    for service in services_:
        if service.live:
            point(service.distributor).services.append(service)
    for pairing in pairings_:
        if pairing.cancelled_at is None and pairing.distributor_id in points:
            points[pairing.distributor_id].paired.extend(pairing.items.all())
    return sorted(points.values(), key=lambda p: (p.distributor.provider.name, p.distributor.code))


def offer_swaps(rows: list[SubscriptionService]) -> None:
    """Set ``swap_products`` on each service: what its viewing point carries, but itself."""
    points = {s.distributor_id for s in rows if s.live}
    carried = {
        d.pk: sorted(d.allowed_products.all(), key=lambda p: p.code)
        for d in Distributor.objects.filter(pk__in=points).prefetch_related("allowed_products")
    }
    for service in rows:
        service.swap_products = [
            p for p in carried.get(service.distributor_id, []) if p.pk != service.product_id
        ]
