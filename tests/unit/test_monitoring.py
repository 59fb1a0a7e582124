"""/health/live, /health/ready and /metrics as a load balancer and Prometheus see them: the
metrics read back by the Prometheus client's own parser."""

import re
from datetime import timedelta

import pytest
from django.conf import settings
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from providers.models import ProvisioningRequest
from runs.models import ProcessRun, RunDefinition, WorkerHeartbeat

State = ProvisioningRequest.State


@pytest.fixture
def make_requests(subscribe, catalog):
    sub = subscribe("AGRICULTURE")
    ProvisioningRequest.objects.all().delete()  # the subscription's own: each test counts its

    def make(state: str, count: int = 1, *, age=timedelta(0), took=None, attempts=1):
        rows = []
        for _ in range(count):
            row = ProvisioningRequest.objects.create(
                command="ADD_SUBSCRIPTIONS",
                provider=catalog.provider,
                distributor=catalog.main,
                subscription=sub,
                trigger=ProvisioningRequest.Trigger.ACTION,
                state=state,
                attempts=attempts,
            )
            created = timezone.now() - age
            answered = created + took if took is not None else None
            ProvisioningRequest.objects.filter(pk=row.pk).update(
                created_at=created, answered_at=answered
            )
            rows.append(row)
        return rows

    return make


def scrape(client, **headers) -> dict:
    """Every sample of /metrics: {(name, sorted labels): value}."""
    response = client.get("/metrics", **headers)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            samples[sample.name, tuple(sorted(sample.labels.items()))] = sample.value
    return samples


def test_live_answers_without_signing_in(client):
    response = client.get("/health/live")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_probes_answer_by_any_host_name_and_over_plain_http(client, settings, db):
    settings.SECURE_SSL_REDIRECT = True
    for probe in ("/health/live", "/health/ready"):
        assert client.get(probe, HTTP_HOST="10.0.0.7:8000").status_code == 200
        assert client.head(probe, HTTP_HOST="10.0.0.7:8000").status_code == 200
    assert client.post("/health/live").status_code == 405


def test_ready_names_each_check(client, db):
    response = client.get("/health/ready")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "checks": {"database": "ok", "broker": "ok"}}


def test_metrics_count_requests_by_provider_and_state(client, operator, catalog, make_requests):
    make_requests(State.PENDING, 3, age=timedelta(minutes=10))
    make_requests(State.FAILED, 2)
    make_requests(State.REJECTED, 1)
    make_requests(State.COMPLETED, 4, took=timedelta(seconds=0.2), attempts=1)
    make_requests(State.COMPLETED, 1, took=timedelta(seconds=20), attempts=3)
    client.force_login(operator)

    samples = scrape(client)

    name = catalog.provider.name
    assert samples["crm_requests", (("provider", name), ("state", "pending"))] == 3
    assert samples["crm_requests", (("provider", name), ("state", "failed"))] == 2
    assert samples["crm_requests", (("provider", name), ("state", "rejected"))] == 1
    assert 599 <= samples["crm_oldest_pending_age_seconds", (("provider", name),)] <= 660
    latency = {
        labels: value
        for (metric, labels), value in samples.items()
        if metric == "crm_delivery_latency_seconds_bucket"
    }
    assert latency[(("le", "0.25"), ("provider", name))] == 4
    assert latency[(("le", "10.0"), ("provider", name))] == 4
    assert latency[(("le", "30.0"), ("provider", name))] == 5
    assert latency[(("le", "+Inf"), ("provider", name))] == 5
    assert samples["crm_delivery_attempts_bucket", (("le", "1.0"), ("provider", name))] == 4
    assert samples["crm_delivery_attempts_gsum", (("provider", name),)] == 7
    assert samples["crm_broker_up", ()] == 1
    assert ("crm_broker_queue_messages", (("queue", "realtime"),)) in samples


def test_metrics_show_each_workers_heartbeat_age(client, operator):
    WorkerHeartbeat.objects.create(
        hostname="worker-1", last_seen=timezone.now() - timedelta(seconds=90), beats=3
    )
    client.force_login(operator)
    age = scrape(client)["crm_worker_heartbeat_age_seconds", (("hostname", "worker-1"),)]
    assert 90 <= age < 120


def test_prometheus_reads_with_the_metrics_token(client, settings, db):
    settings.METRICS_TOKEN = "s3cret-scrape-token"
    assert "crm_broker_up" in {
        n for n, _ in scrape(client, HTTP_AUTHORIZATION="Bearer s3cret-scrape-token")
    }
    wrong = client.get("/metrics", HTTP_AUTHORIZATION="Bearer not-it")
    assert wrong.status_code in (401, 403)
    assert b"crm_" not in wrong.content


def test_agents_and_anonymous_may_not_read_metrics(client, agent, db):
    assert client.get("/metrics").status_code == 401
    client.force_login(agent)
    assert client.get("/metrics").status_code == 403


def test_the_scrape_costs_the_same_however_many_requests(client, operator, make_requests):
    client.force_login(operator)
    make_requests(State.PENDING, 2)
    make_requests(State.COMPLETED, 2, took=timedelta(seconds=1))
    with CaptureQueriesContext(connection) as few:
        scrape(client)
    make_requests(State.PENDING, 40)
    make_requests(State.FAILED, 20)
    make_requests(State.COMPLETED, 40, took=timedelta(seconds=1))
    with CaptureQueriesContext(connection) as many:
        scrape(client)
    assert len(many.captured_queries) == len(few.captured_queries)


def test_the_grafana_example_asks_only_for_metrics_that_exist(
    client, operator, catalog, make_requests
):
    make_requests(State.PENDING, 1)
    definition = RunDefinition.objects.create(
        name="Reset", run_type="reset_subscriptions", provider=catalog.provider
    )
    ProcessRun.objects.create(
        definition=definition, trigger="schedule", status="completed", finished_at=timezone.now()
    )
    make_requests(State.COMPLETED, 1, took=timedelta(seconds=1))
    WorkerHeartbeat.objects.create(hostname="w", last_seen=timezone.now(), beats=1)
    client.force_login(operator)
    served = {name for name, _ in scrape(client)}
    dashboard = (settings.BASE_DIR / "docs" / "grafana" / "crm-provisioning.json").read_text()
    asked = set(re.findall(r"crm_[a-z_]+", dashboard)) - {"crm_provisioning", "crm-provisioning"}
    assert asked and asked <= served, asked - served
