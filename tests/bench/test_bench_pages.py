"""The back-office pages figure's small version: the pages through a real gunicorn, signed in
as an agent, on the suite's database. Nothing here asserts a speed; the figures are read from
the JSON the bench writes."""

import pytest
from django.conf import global_settings

from bench import load, pages
from bench.report import Report
from providers.answers import record_answer
from providers.models import ProvisioningRequest
from tests.bench.test_bench import figures_in

pytestmark = pytest.mark.django_db(transaction=True)

PAGES = [
    "subscription page",
    "search by name part",
    "search by number part",
    "search by card serial",
    "requests by state",
    "home page",
    "dashboard",
]


def test_pages_measures_each_page_through_the_web_server(subscribe, catalog, tmp_path, settings):
    # The web server checks the agent's password with the hashers it is deployed with.
    settings.PASSWORD_HASHERS = global_settings.PASSWORD_HASHERS
    load.generate(300, drift=0)
    # Requests the platform has answered, for the request list filtered by state.
    subscribe("BUNDLE_A")
    for request in ProvisioningRequest.objects.order_by("pk"):
        record_answer(request, accepted=True)
    report = Report(subscriptions=300)
    pages.pages(report, tmp_path, samples=4)
    report.write(tmp_path / "bench.json")

    figures = figures_in(tmp_path / "bench.json")
    assert list(figures) == [
        f"Back-office page {stat}, {page}" for page in PAGES for stat in ("median", "p95")
    ]
    sub = pages.subscription()
    assert sub.number.startswith(load.PREFIX)
    assert sub.services.values("distributor").distinct().count() >= 2
    for page in PAGES:
        median = figures[f"Back-office page median, {page}"]
        p95 = figures[f"Back-office page p95, {page}"]
        assert (median["unit"], median["target"], median["floor"]) == ("ms", 300, None)
        assert (p95["unit"], p95["target"]) == ("ms", None)
        assert 0 < median["value"] <= p95["value"] <= median["counts"]["max_ms"]
        assert median["counts"]["samples"] == 4 and median["counts"]["bytes"] > 0
        assert median["verdict"] in ("pass", "miss (target)")
    # What the pages showed: the subscription (found by each search), its page, the answered
    # requests, the home page, the dashboard.
    for page in PAGES:
        assert figures[f"Back-office page median, {page}"]["counts"]["found"] is True, page
    serial = figures["Back-office page median, search by card serial"]
    assert serial["counts"]["path"].endswith(
        "?q=" + sub.installed_items.filter(kind="smartcard").first().serial_number
    )
    assert sub.number in figures["Back-office page median, subscription page"]["detail"]
