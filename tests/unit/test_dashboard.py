"""The operations dashboard on the back office's home, as an operator reads it: each provider's
counts and status, a red banner for a failing or unreachable one, workers per queue and beat,
runs, open incidents, and the hourly counts the charts draw; and the dashboard alone, which the
home page asks for again every few seconds so that it turns red by itself."""

import json
import re
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from monitoring import activity, dashboard
from monitoring.models import HourlyRequests, Incident, ProviderHealth
from providers.models import ProvisioningRequest
from runs.models import ProcessRun, RunDefinition, WorkerHeartbeat


def home(client, person) -> str:
    client.force_login(person)
    response = client.get("/admin/")
    assert response.status_code == 200
    return response.content.decode()


def provider_row(html: str, name: str) -> str:
    row = re.search(
        rf"<tr class=\"provider-\w+\">\s*<th scope=\"row\"><a [^>]*>{name}</a>.*?</tr>", html, re.S
    )
    assert row, f"no row for {name}"
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", row.group(0))).strip()


@pytest.fixture
def requests_of(subscribe, catalog):
    """The Generic provider's requests in the states wanted, created ``age`` ago (only these)."""
    sub = subscribe("AGRICULTURE")
    ProvisioningRequest.objects.all().delete()

    def make(*states, age=timedelta(minutes=30)):
        for state in states:
            row = ProvisioningRequest.objects.create(
                command="ADD_SUBSCRIPTIONS",
                provider=catalog.provider,
                distributor=catalog.main,
                subscription=sub,
                trigger=ProvisioningRequest.Trigger.ACTION,
                state=state,
            )
            ProvisioningRequest.objects.filter(pk=row.pk).update(
                created_at=timezone.now() - age,
                answered_at=timezone.now() if state == "completed" else None,
                updated_at=timezone.now() - age,
            )

    return make


def test_an_operator_sees_each_providers_counts_and_status(client, operator, catalog, requests_of):
    requests_of("pending", "pending", "failed", "rejected", "completed")
    ProviderHealth.objects.create(
        provider=catalog.provider, checked_at=timezone.now(), reachable=None, message="No check."
    )

    row = provider_row(home(client, operator), "Generic")

    assert row.startswith("Generic ok 2 30")  # pending 2, the oldest for 30 minutes
    assert "minutes 1 1 67 %" in row  # failed 1, rejected 1, 2 of 3 outcomes bad
    assert "not checked No check." in row


def test_a_failing_provider_turns_the_home_page_red(client, operator, catalog, requests_of):
    requests_of("failed", age=timedelta(minutes=5))
    ProvisioningRequest.objects.update(last_error="CAS timed out", updated_at=timezone.now())

    html = home(client, operator)

    assert 'id="dashboard-alarms"' in html
    assert re.search(r"<strong>Generic is failing</strong> — A request became Failed at", html)


def test_an_unreachable_provider_is_named_with_why(client, operator, catalog):
    ProviderHealth.objects.create(
        provider=catalog.provider,
        checked_at=timezone.now(),
        reachable=False,
        message="Generic cannot be reached: connection refused",
    )
    html = home(client, operator)
    assert "<strong>Generic is unreachable</strong> — Generic cannot be reached" in html


def test_workers_per_queue_and_beat(client, operator):
    now = timezone.now()
    WorkerHeartbeat.objects.create(hostname="rt-1", queue="celery", last_seen=now, beats=1)
    WorkerHeartbeat.objects.create(
        hostname="batch-1", queue="batch", last_seen=now - timedelta(minutes=10), beats=1
    )
    html = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", home(client, operator)))
    assert "Real-time worker (queue celery) alive rt-1" in html
    assert "Batch worker (queue batch) down last heartbeat 10 minutes ago (batch-1)" in html
    assert "Beat alive" in html


def test_runs_and_open_incidents(client, operator, catalog):
    definition = RunDefinition.objects.create(
        name="Nightly reset", run_type="reset_subscriptions", provider=catalog.provider
    )
    ProcessRun.objects.create(definition=definition, trigger="schedule", total=10, examined=4)
    ProcessRun.objects.create(
        definition=definition,
        trigger="schedule",
        status=ProcessRun.Status.FAILED,
        finished_at=timezone.now(),
        message="The worker stopped answering.",
    )
    Incident.objects.create(
        kind="unreachable",
        subject="provider:1",
        title="Generic is unreachable",
        opened_at=timezone.now(),
    )
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", home(client, operator)))
    assert re.search(
        r"Nightly reset #\d+ running since \d\d:\d\d: Examined 4 of 10 subscriptions; created 0 requests",
        text,
    )
    assert "Failed 0 minutes ago — The worker stopped answering." in text
    assert "Open incidents Generic is unreachable since" in text


def test_an_agent_home_has_no_dashboard(client, agent):
    assert 'id="dashboard"' not in home(client, agent)


def test_hourly_counts_feed_the_charts(client, operator, catalog, requests_of):
    requests_of("completed", "completed", "failed", "pending", age=timedelta(minutes=0))
    activity.keep_counts()
    activity.keep_counts()  # recounting changes nothing

    hour = HourlyRequests.objects.get(
        hour=timezone.now().replace(minute=0, second=0, microsecond=0)
    )
    assert (hour.created, hour.completed, hour.failed) == (4, 2, 1)
    html = home(client, operator)
    charts = json.loads(
        re.search(r'id="dashboard-charts"[^>]*>(.*?)</script>', html, re.S).group(1)
    )
    day = charts["day"]["providers"]["Generic"]
    assert day["created"][-1] == 4 and day["failed"][-1] == 1 and sum(day["created"]) == 4
    assert len(charts["day"]["labels"]) == 24 and len(charts["week"]["labels"]) == 7
    assert charts["week"]["providers"]["Generic"]["completed"][-1] == 2


@pytest.mark.parametrize("page", ["/admin/", "/admin/dashboard/"])
def test_the_dashboard_costs_the_same_however_many_requests(client, operator, subscribe, page):
    client.force_login(operator)
    subscribe("AGRICULTURE")
    with CaptureQueriesContext(connection) as few:
        client.get(page)
    for _ in range(12):
        subscribe("AGRICULTURE")
    ProvisioningRequest.objects.filter(id__lt=10).update(state="failed")
    with CaptureQueriesContext(connection) as many:
        client.get(page)
    assert len(many.captured_queries) == len(few.captured_queries)


# --- The dashboard alone, polled by the home page ---------------------------------------------

FRAGMENT = "/admin/dashboard/"


def test_the_home_page_asks_for_its_dashboard_again(client, operator):
    html = home(client, operator)
    live = re.search(r'<div id="dashboard" ([^>]*)>', html).group(1)
    assert f'hx-get="{reverse("admin:monitoring-dashboard")}"' in live
    assert f'hx-trigger="every {dashboard.REFRESH_SECONDS}s"' in live
    assert 'hx-swap="outerHTML"' in live
    assert "subscriptions/htmx.min.js" in html


def test_an_operator_gets_the_dashboard_alone(client, operator, catalog):
    ProviderHealth.objects.create(
        provider=catalog.provider,
        checked_at=timezone.now(),
        reachable=False,
        message="Generic cannot be reached: connection refused",
    )
    client.force_login(operator)

    response = client.get(FRAGMENT)

    assert response.status_code == 200
    html = response.content.decode().strip()
    # What the home page swaps in: the dashboard, polling again, with its charts' data.
    assert html.startswith(f'<div id="dashboard" hx-get="{FRAGMENT}"') and html.endswith("</div>")
    assert "<strong>Generic is unreachable</strong> — Generic cannot be reached" in html
    assert provider_row(html, "Generic").startswith("Generic unreachable 0")
    assert 'id="dashboard-charts"' in html
    every = dashboard.REFRESH_SECONDS
    assert re.search(rf"as of \d\d:\d\d:\d\d \S+, updated every {every} s", html)
    # Not the page around it, nor what the page loads once.
    assert "<html" not in html and "utilities-entry" not in html and "<script src" not in html


def test_an_administrator_gets_the_dashboard_too(client, administrator):
    client.force_login(administrator)
    assert client.get(FRAGMENT).status_code == 200


def test_an_agent_may_not_poll_the_dashboard(client, agent):
    client.force_login(agent)
    assert client.get(FRAGMENT).status_code == 403


def test_signed_out_the_poll_is_led_to_log_in(client):
    response = client.get(FRAGMENT)
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")
