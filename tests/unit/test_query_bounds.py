"""The pages and endpoints an agent uses on one subscription cost what that subscription holds,
not what the database holds: the same number of statements with a few subscriptions or with
hundreds, and on PostgreSQL the lookups start from the subscription's own rows."""

import json

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from bench import load
from catalogue.models import Provider
from subscriptions import actions
from subscriptions.admin_forms import in_use_distributors
from subscriptions.models import InstalledItem, Subscription, SubscriptionService
from tests.fixtures import card_and_box

pytestmark = pytest.mark.django_db


@pytest.fixture
def sub(subscribe, catalog):
    """A subscription on two viewing points (MAIN and TWIN1), with the requests it made."""
    sub = subscribe("BUNDLE_A")
    twin = catalog.distributors["TWIN1"]
    for spec in card_and_box(twin):
        actions.add_installed_item(sub, spec)
    actions.add_service(sub, catalog.products["AGRICULTURE"], twin)
    return sub


def pages(sub: Subscription) -> dict[str, tuple[str, str]]:
    """What each page shows about the subscription: its address and a text it must show."""
    admin = "admin:subscriptions_{}_changelist"
    search = f"?q={sub.number}"
    card = sub.installed_items.filter(distributor__code="TWIN1", kind="smartcard").get()
    provider = card.distributor.provider
    return {
        "subscription page": (
            reverse("admin:subscriptions_subscription_change", args=[sub.pk]),
            f"Subscription {sub.number}",
        ),
        "its utilities": (
            reverse("admin:utilities-subscription", args=[sub.pk]),
            "Reset single subscription",
        ),
        "a utility's form": (
            reverse("admin:utilities-run", args=[sub.pk, provider.pk, "reset_subscription"]),
            f"Reset single subscription — {sub.number}",
        ),
        "utilities API": (f"/api/v1/utilities/?subscription={sub.pk}", "reset_subscription"),
        "utility search": (reverse("admin:utilities-search") + search, sub.number),
        "utility search by name": (reverse("admin:utilities-search") + "?q=maria", sub.number),
        "utility search by card": (
            reverse("admin:utilities-search") + f"?q={card.ca_id}",
            sub.number,
        ),
        "subscription list": (reverse(admin.format("subscription")), "LD-"),
        "subscription search": (reverse(admin.format("subscription")) + search, sub.number),
        "subscription search by name part": (
            reverse(admin.format("subscription")) + "?q=georgiou",
            sub.number,
        ),
        "subscription search by card serial": (
            reverse(admin.format("subscription")) + f"?q={card.serial_number}",
            sub.number,
        ),
        # As many rows as the search's limit allows: one statement for them all still.
        "subscription search matching many": (
            reverse(admin.format("subscription")) + "?q=load+customer",
            "Load customer",
        ),
        "account search": (reverse(admin.format("customeraccount")) + "?q=georgiou", "ACC-1"),
        "API search": (f"/api/v1/subscriptions/?search={sub.number.lower()}", sub.number),
        "its services": (reverse(admin.format("subscriptionservice")) + search, "AGRICULTURE"),
        "its devices": (reverse(admin.format("installeditem")) + search, card.serial_number),
        "its events": (reverse(admin.format("subscriptionevent")) + search, "Add service"),
        "its requests": (
            reverse("admin:providers_provisioningrequest_changelist")
            + f"?subscription__id__exact={sub.pk}",
            "TWIN1 (Generic)",
        ),
    }


def statements(client: Client, sub: Subscription) -> dict[str, int]:
    """How many statements each page took, having checked that it shows the subscription."""
    counts = {}
    for name, (url, expected) in pages(sub).items():
        with CaptureQueriesContext(connection) as queries:
            response = client.get(url)
        assert response.status_code == 200, (name, response.status_code)
        assert expected in response.content.decode(), name
        counts[name] = len(queries)
    return counts


def test_a_subscriptions_pages_cost_the_same_whatever_the_number_of_subscriptions(agent, sub):
    load.generate(5)
    client = Client()
    client.force_login(agent)
    statements(client, sub)  # the first visit fills the per-process caches
    few = statements(client, sub)

    load.generate(300)
    assert Subscription.objects.count() == 301
    many = statements(client, sub)
    assert many == few


# --- The plans, on PostgreSQL ------------------------------------------------------------------


def providers_of(subscription):
    return Provider.objects.of_subscription(subscription).order_by("name")


def scans(plan: dict) -> list[dict]:
    """Every node of an EXPLAIN (FORMAT JSON) plan, subplans included."""
    return [plan, *(node for child in plan.get("Plans", []) for node in scans(child))]


def test_what_the_lookups_find(sub, catalog):
    main, twin = catalog.distributors["MAIN"], catalog.distributors["TWIN1"]
    assert list(in_use_distributors(sub)) == [main, twin]
    assert list(providers_of(sub)) == [catalog.provider]

    # A viewing point is in use while a live service or a device in place is on it.
    actions.remove_service(sub.services.get(distributor=twin))
    assert list(in_use_distributors(sub)) == [main, twin]
    for item in sub.installed_items.filter(distributor=twin):
        actions.remove_installed_item(item)
    assert list(in_use_distributors(sub)) == [main]
    # The subscription's providers are those it was ever distributed to, if enabled.
    assert list(providers_of(sub)) == [catalog.provider]
    catalog.provider.enabled = False
    catalog.provider.save()
    assert list(providers_of(sub)) == []


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the plans are PostgreSQL's")
def test_the_subscriptions_distributors_and_providers_are_read_through_its_index(sub):
    # Enough load beside ``sub`` that the planner prices a scan of services and devices at
    # what it would cost in production (``generate`` ANALYZEs the tables).
    load.generate(3000)
    assert SubscriptionService.objects.count() > 6000 and InstalledItem.objects.count() > 6000
    tables = {SubscriptionService._meta.db_table, InstalledItem._meta.db_table}
    for lookup in (in_use_distributors, providers_of):
        plan = json.loads(lookup(sub).explain(format="json"))[0]["Plan"]
        reads = [node for node in scans(plan) if node.get("Relation Name") in tables]
        # Both the services and the devices are read, and only by the subscription's index.
        assert {node["Relation Name"] for node in reads} == tables, lookup
        for node in reads:
            assert node["Node Type"] in ("Index Scan", "Bitmap Heap Scan", "Index Only Scan"), (
                lookup,
                node,
            )
        conditions = [
            node.get("Index Cond", "")
            for node in scans(plan)
            if node["Node Type"] in ("Index Scan", "Bitmap Index Scan", "Index Only Scan")
        ]
        assert sum("subscription_id" in c for c in conditions) == 2, (lookup, conditions)
