"""Alerts as an operator at 3 a.m. meets them: the Conax WS simulator (a real SOAP server) goes
down, the watch opens one incident and tells the e-mail channel (Django's locmem backend) and
a webhook (a real HTTP server on a free port, reading Slack's JSON) once; it comes back, and
one recovery notice follows."""

import logging
from datetime import timedelta

import pytest
from django.core import mail
from django.core.exceptions import ValidationError
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from monitoring import alerts, status
from monitoring.models import AlertChannel, Incident, ProviderHealth
from providers.models import ProvisioningRequest
from runs.models import ProcessRun, RunDefinition
from tests.alert_receivers import Webhook

WEBHOOK_ENV = "CRM_SECRET_TEST_ALERT_WEBHOOK"


@pytest.fixture
def receiver(monkeypatch):
    receiver = Webhook()
    monkeypatch.setenv(WEBHOOK_ENV, receiver.url)
    yield receiver
    receiver.close()


@pytest.fixture
def channels(db, settings, receiver):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.ALERT_AFTER_SECONDS = 0
    AlertChannel.objects.create(name="On call", kind="email", recipients="oncall@example.net")
    AlertChannel.objects.create(name="Ops chat", kind="webhook", url_env=WEBHOOK_ENV)


def subjects() -> list[str]:
    return [message.subject for message in mail.outbox]


def test_a_cas_down_alerts_once_and_its_recovery_once(
    conax, conax_ws_simulator, channels, receiver
):
    name = conax.provider.name
    alerts.watch()
    assert subjects() == [] and receiver.texts() == []
    assert ProviderHealth.objects.get(provider=conax.provider).reachable is True

    conax_ws_simulator.state.controls.down = True
    alerts.watch()
    alerts.watch()

    assert subjects() == [f"ALERT: {name} is unreachable"]
    assert receiver.texts() == [f"ALERT: {name} is unreachable"]
    incident = Incident.objects.get()
    assert incident.kind == Incident.Kind.UNREACHABLE and incident.resolved_at is None
    assert "cannot be reached" in incident.detail

    conax_ws_simulator.state.controls.down = False
    alerts.watch()
    alerts.watch()

    assert subjects() == [f"ALERT: {name} is unreachable", f"RECOVERED: {name} is unreachable"]
    assert receiver.texts() == subjects()
    assert Incident.objects.get().resolved_at is not None
    assert AlertChannel.objects.get(name="Ops chat").last_error == ""


def test_a_blip_shorter_than_the_grace_tells_nobody(
    conax, conax_ws_simulator, channels, receiver, settings
):
    settings.ALERT_AFTER_SECONDS = 60
    conax_ws_simulator.state.controls.down = True
    alerts.watch()
    conax_ws_simulator.state.controls.down = False
    alerts.watch()
    assert subjects() == [] and receiver.texts() == []
    incident = Incident.objects.get()  # kept for the record
    assert incident.resolved_at is not None and incident.notified_open_at is None


def test_an_incident_is_told_once_it_has_lasted_the_grace(
    conax, conax_ws_simulator, channels, receiver, settings
):
    settings.ALERT_AFTER_SECONDS = 60
    conax_ws_simulator.state.controls.down = True
    alerts.watch()
    assert subjects() == []
    Incident.objects.update(opened_at=timezone.now() - timedelta(seconds=61))
    alerts.watch()
    assert subjects() == [f"ALERT: {conax.provider.name} is unreachable"]


def test_failed_requests_over_the_threshold_make_the_provider_failing(
    conax, subscribe, channels, receiver, settings
):
    settings.ALERT_FAILED_REQUESTS = 2
    subscribe("AGRICULTURE", catalog=conax)
    subscribe("AGRICULTURE", catalog=conax)
    # As delivery leaves a request it gave up on (providers.delivery.fail).
    ProvisioningRequest.objects.update(
        state="failed", last_error="timed out", updated_at=timezone.now()
    )
    failed = ProvisioningRequest.objects.count()

    alerts.watch()

    name = conax.provider.name
    assert sorted(subjects()) == sorted(
        [f"ALERT: {name} is failing", f"ALERT: {name} has {failed} Failed requests"]
    )
    failing = Incident.objects.get(kind=Incident.Kind.FAILING)
    assert "became Failed at" in failing.detail


def fail_all_requests() -> int:
    """As delivery leaves the requests it gave up on (providers.delivery.fail)."""
    return ProvisioningRequest.objects.update(
        state="failed", last_error="HTTP 503 from the CAS", updated_at=timezone.now()
    )


def test_requests_failed_in_an_outage_are_the_outages_not_a_new_alert(
    conax, conax_ws_simulator, subscribe, channels, receiver
):
    name = conax.provider.name
    conax_ws_simulator.state.controls.down = True
    alerts.watch()
    subscribe("AGRICULTURE", catalog=conax)
    fail_all_requests()
    alerts.watch()
    conax_ws_simulator.state.controls.down = False
    alerts.watch()
    alerts.watch()

    # Told as the outage and its end; the dashboard still names the Failed requests.
    assert subjects() == [f"ALERT: {name} is unreachable", f"RECOVERED: {name} is unreachable"]
    assert receiver.texts() == subjects()
    assert list(Incident.objects.values_list("kind", flat=True)) == ["unreachable"]
    conax_status = next(s for s in status.providers() if s.provider == conax.provider)
    assert conax_status.level == status.FAILING and conax_status.failed > 0

    # A request failing once the outage is well over is news again.
    Incident.objects.update(resolved_at=timezone.now() - alerts.OUTAGE_TAIL - timedelta(seconds=1))
    fail_all_requests()
    alerts.watch()
    assert subjects()[2:] == [f"ALERT: {name} is failing"]


def test_requests_waiting_out_a_retry_delay_go_as_soon_as_the_platform_answers(
    conax, conax_ws_simulator, subscribe, channels, receiver
):
    conax_ws_simulator.state.controls.down = True
    alerts.watch()
    subscribe("AGRICULTURE", catalog=conax)
    # Retried six times already: the next try is due in over two minutes.
    later = timezone.now() + timedelta(minutes=2)
    waiting = ProvisioningRequest.objects.filter(provider=conax.provider, state="pending")
    waiting.update(attempts=6, next_attempt_at=later, last_error="Attempt 6 failed: HTTP 503")
    assert waiting.exists()

    conax_ws_simulator.state.controls.down = False
    alerts.watch()

    assert set(waiting.values_list("next_attempt_at", flat=True)) == {None}


def test_requests_failed_in_an_outage_nobody_was_told_of_are_news(
    conax, conax_ws_simulator, subscribe, channels, receiver, settings
):
    settings.ALERT_AFTER_SECONDS = 60
    conax_ws_simulator.state.controls.down = True
    alerts.watch()
    subscribe("AGRICULTURE", catalog=conax)
    fail_all_requests()
    conax_ws_simulator.state.controls.down = False
    alerts.watch()
    assert Incident.objects.get(kind="failing", resolved_at__isnull=True)


def test_a_failed_run_is_told_once_and_has_no_recovery(catalog, channels, receiver):
    definition = RunDefinition.objects.create(
        name="Nightly reset", run_type="reset_subscriptions", provider=catalog.provider
    )
    run = ProcessRun.objects.create(
        definition=definition,
        trigger="schedule",
        status=ProcessRun.Status.FAILED,
        finished_at=timezone.now(),
        message="The worker stopped answering.",
    )
    ProcessRun.objects.create(  # long ago: history, not news
        definition=definition,
        trigger="schedule",
        status=ProcessRun.Status.FAILED,
        finished_at=timezone.now() - timedelta(days=2),
    )

    alerts.watch()
    alerts.watch()

    assert receiver.texts() == [f"ALERT: Run Nightly reset #{run.pk} failed"]
    assert mail.outbox[0].body == "The worker stopped answering."


def test_a_failing_webhook_is_recorded_without_its_address_and_mail_still_goes(
    conax, conax_ws_simulator, channels, receiver, caplog
):
    receiver.status = 500
    conax_ws_simulator.state.controls.down = True
    with caplog.at_level(logging.WARNING):
        alerts.watch()
    assert len(mail.outbox) == 1
    hook = AlertChannel.objects.get(name="Ops chat")
    assert hook.last_error.startswith("HTTPError")
    assert hook.last_sent_at is None
    assert "secret-path" not in caplog.text + hook.last_error
    assert "Ops chat" in caplog.text


def test_channels_are_checked_before_they_are_saved(db):
    with pytest.raises(ValidationError, match="not a secret variable"):
        AlertChannel(name="x", kind="webhook", url_env="SECRET_KEY").full_clean()
    with pytest.raises(ValidationError, match="'nobody' is not an e-mail address"):
        AlertChannel(name="y", kind="email", recipients="ops@example.net, nobody").full_clean()


def test_the_status_costs_the_same_however_many_requests(conax, subscribe):
    subscribe("AGRICULTURE", catalog=conax)
    with CaptureQueriesContext(connection) as few:
        status.providers()
    for _ in range(15):
        subscribe("AGRICULTURE", catalog=conax)
    with CaptureQueriesContext(connection) as many:
        status.providers()
    assert len(many.captured_queries) == len(few.captured_queries)
