"""The back-office pages the benchmark times (``bench.pages``) cost the same number of
statements whatever the database holds: counted on a small database, then again once it holds
many more subscriptions, services, devices and requests (the subscription's own among them),
they must be equal. On both databases."""

import uuid

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from bench import load, pages
from core import roles
from monitoring import activity
from providers.answers import record_answer
from providers.models import ProvisioningRequest
from subscriptions.models import InstalledItem, Subscription, SubscriptionService

pytestmark = pytest.mark.django_db

Req = ProvisioningRequest


def statements(clients: dict[str, Client], chosen: list[pages.Page]) -> dict[str, int]:
    """How many statements each page took, signed in as its role, having checked that it is
    the page asked for (and, for a search, that it found the subscription)."""
    counts = {}
    for page in chosen:
        with CaptureQueriesContext(connection) as queries:
            response = clients[page.role].get(page.path)
        assert response.status_code == 200, (page.name, response.status_code)
        assert page.shows in response.content.decode(), page.name
        counts[page.name] = len(queries)
    return counts


def copies(requests: list[Req], subscription_ids, times: int = 1) -> list[Req]:
    """The requests again, on each of these subscriptions, ``times`` over."""
    made = []
    for subscription_id in subscription_ids:
        for _ in range(times):
            for request in requests:
                made.append(
                    Req(
                        **{
                            field.attname: getattr(request, field.attname)
                            for field in Req._meta.concrete_fields
                            if field.attname not in ("id", "uid", "subscription_id")
                        },
                        uid=uuid.uuid4(),
                        subscription_id=subscription_id,
                    )
                )
    return made


def test_the_benchmarked_pages_cost_the_same_whatever_the_database_holds(
    agent, operator, subscribe
):
    load.generate(40, drift=0)
    # Requests the platform answered, for the request list filtered by state.
    subscribe("BUNDLE_A", ("AGRICULTURE", "TWIN1"))
    for request in Req.objects.order_by("pk"):
        record_answer(request, accepted=True)
    answered = list(Req.objects.filter(state=Req.State.COMPLETED))
    sub = pages.subscription()
    Req.objects.bulk_create(copies(answered, [sub.pk]))
    chosen = pages.pages_of(sub)
    clients = {roles.AGENT: Client(), roles.OPERATOR: Client()}
    clients[roles.AGENT].force_login(agent)
    clients[roles.OPERATOR].force_login(operator)
    activity.keep_counts()
    statements(clients, chosen)  # the first visit fills the per-process caches
    few = statements(clients, chosen)

    load.generate(600, drift=0.05)
    others = Subscription.objects.exclude(pk=sub.pk).values_list("pk", flat=True)[:300]
    Req.objects.bulk_create(copies(answered, others) + copies(answered, [sub.pk], times=12))
    assert Subscription.objects.count() > 600
    assert SubscriptionService.objects.count() > 1000 and InstalledItem.objects.count() > 1000
    assert Req.objects.filter(subscription=sub).count() > 50  # more than its page lists
    assert Req.objects.filter(state=Req.State.COMPLETED).count() > 1000
    activity.keep_counts()
    many = statements(clients, chosen)
    assert many == few
