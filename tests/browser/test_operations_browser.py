"""Issue 28's 3 a.m. scenario in a real browser. An operator's home page is the operations
dashboard. The Conax WS simulator (a real SOAP server) goes down while subscribers are being
served; a real Celery worker with beat tries each request three times until it is Failed, and
runs the watch, which tells an e-mail channel and a webhook once. The dashboard turns red by
itself, without a reload. The CAS comes back: one recovery notice, and nothing more about the
requests the outage failed. The operator retries them in bulk from the list the dashboard links
to, and sees them complete and the dashboard green again.

The e-mail goes through Django's SMTP backend to an SMTP server of the test's own, the webhook
to an HTTP server of its own (``tests/alert_receivers.py``), as they would to a mail relay and a
chat service. Short settings keep it well under two minutes: the watch every 3 s, an incident
told once it has lasted 2 s, retries 1 s and 2 s apart, woken every 2 s.

Headless Chromium from Debian driven by Playwright against pytest-django's live server, as in
``conftest.py``; without either, skipped with the reason.
"""

import time
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from monitoring.models import AlertChannel, ProviderHealth
from providers.models import ProvisioningRequest
from tests import workers
from tests.alert_receivers import Mailbox, Webhook
from tests.browser.signing_in import log_in

Req = ProvisioningRequest

pytestmark = [pytest.mark.worker, pytest.mark.integration]

WEBHOOK_ENV = "CRM_SECRET_TEST_OPS_WEBHOOK"
WATCH_SECONDS = 3
ALERT_AFTER_SECONDS = 2
LINE_PX = 30  # a table cell's height with one line of text, about


@pytest.fixture
def catalog(conax):  # this module's catalogue, where ``subscribe`` subscribes, is Conax WS
    return conax


@pytest.fixture
def mailbox():
    mailbox = Mailbox()
    yield mailbox
    mailbox.close()


@pytest.fixture
def webhook(monkeypatch):
    webhook = Webhook()
    monkeypatch.setenv(WEBHOOK_ENV, webhook.url)
    yield webhook
    webhook.close()


@pytest.fixture
def worker(tmp_path, conax_ws_simulator, mailbox, webhook):
    """A real Celery worker with beat on the test database, sending mail to ``mailbox``."""
    process = workers.start(
        tmp_path,
        beat=True,
        WATCH_SECONDS=str(WATCH_SECONDS),
        ALERT_AFTER_SECONDS=str(ALERT_AFTER_SECONDS),
        PROVISIONING_RETRY_SECONDS="1",
        SWEEP_SECONDS="2",
        EMAIL_BACKEND="django.core.mail.backends.smtp.EmailBackend",
        EMAIL_HOST="127.0.0.1",
        EMAIL_PORT=str(mailbox.port),
    )
    yield tmp_path / "worker.log"
    workers.stop(process)


def watches_pass(provider, log, seconds: float = 0) -> None:
    """Wait until a whole watch has run that began ``seconds`` from now or later: once the next
    one has checked the provider (the worker runs one task at a time), it has told all it had."""
    start = timezone.now() + timedelta(seconds=seconds)

    def checked():
        return ProviderHealth.objects.get(provider=provider).checked_at

    workers.wait_until(lambda: checked() > start, seconds=seconds + 30, what="a watch", logs=[log])
    first = checked()
    workers.wait_until(lambda: checked() > first, seconds=30, what="the next watch", logs=[log])


def test_at_3_am_the_dashboard_turns_red_alerts_once_and_the_failed_are_retried(
    page,
    expect,
    live_server,
    operator,
    conax,
    subscribe,
    conax_ws_simulator,
    mailbox,
    webhook,
    worker,
    tmp_path,
):
    provider = conax.provider
    name = provider.name
    AlertChannel.objects.create(name="On call", kind="email", recipients="oncall@example.net")
    AlertChannel.objects.create(name="Ops chat", kind="webhook", url_env=WEBHOOK_ENV)
    workers.wait_until(
        lambda: ProviderHealth.objects.filter(provider=provider, reachable=True).exists(),
        seconds=60,
        what="the watch finding the CAS answering",
        logs=[worker],
    )

    # The operator's home page: Conax WS is ok, nothing is red.
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    log_in(page, live_server, operator)
    row = page.locator("#dashboard-providers tbody tr").filter(
        has=page.get_by_role("rowheader", name=name, exact=True)
    )
    status, pending, failed, reachable = (row.locator("td").nth(n) for n in (0, 1, 3, 7))
    expect(status).to_have_text("ok")
    expect(reachable).to_contain_text("yes")
    expect(page.locator("#dashboard-alarms")).to_have_count(0)
    page.evaluate("window.notReloaded = true")

    # 3 a.m.: the CAS goes down while subscribers are being served.
    conax_ws_simulator.state.controls.down = True
    down_at = time.monotonic()
    subscribe("AGRICULTURE")
    subscribe("AGRICULTURE")
    made = Req.objects.filter(provider=provider).count()

    # Within a minute, without a reload, the home page turns red and says why.
    alarm = page.locator("#dashboard-alarms li")
    within_a_minute = (60 - (time.monotonic() - down_at)) * 1000
    expect(alarm).to_contain_text(f"{name} is unreachable", timeout=within_a_minute)
    expect(alarm).to_contain_text(f"{name} cannot be reached")
    expect(alarm).to_contain_text("HTTP 503")
    expect(status).to_have_text("unreachable")
    # Each request tried three times, then Failed: the dashboard counts them.
    expect(failed).to_have_text(str(made), timeout=60_000)
    expect(pending).to_have_text("0")
    assert page.evaluate("window.notReloaded") is True
    # The open incident, its title on one line beside its detail.
    incident = page.locator("#dashboard-incidents th")
    expect(incident).to_have_text(f"{name} is unreachable")
    assert incident.bounding_box()["height"] < 2 * LINE_PX
    # The charts drawn again on the dashboard swapped in.
    assert page.evaluate("['chart-day', 'chart-week'].every(id => Chart.getChart(id))")
    page.screenshot(path=tmp_path / "dashboard-red.png", full_page=True)

    # One alert by e-mail and one by webhook, however many watches follow.
    alert = f"ALERT: {name} is unreachable"
    workers.wait_until(
        lambda: mailbox.messages and webhook.received, seconds=30, what="the alert", logs=[worker]
    )
    watches_pass(provider, worker, WATCH_SECONDS)
    assert mailbox.subjects() == [alert]
    assert webhook.texts() == [alert]
    ((to, message),) = mailbox.messages
    assert to == ["oncall@example.net"]
    assert f"{name} cannot be reached" in message.get_content()

    # The CAS is back: one recovery notice; the requests the outage failed are no new alert,
    # however long they wait for the operator.
    conax_ws_simulator.state.controls.down = False
    recovered = f"RECOVERED: {name} is unreachable"
    workers.wait_until(
        lambda: len(mailbox.messages) == 2 and len(webhook.received) == 2,
        seconds=30,
        what="the recovery notice",
        logs=[worker],
    )
    watches_pass(provider, worker, ALERT_AFTER_SECONDS + WATCH_SECONDS)
    assert mailbox.subjects() == [alert, recovered]
    assert webhook.texts() == [alert, recovered]
    # The dashboard, still without a reload: reachable, its Failed requests named.
    expect(reachable).to_contain_text("yes", timeout=30_000)
    expect(alarm).to_contain_text(f"{name} is failing — A request became Failed at")
    assert page.evaluate("window.notReloaded") is True

    # The operator opens the Failed requests from the dashboard and retries them all at once.
    failed.locator("a").click()
    expect(page.locator("#result_list td.field-state")).to_have_text(["Failed"] * made)
    page.check("#action-toggle")
    page.select_option("select[name=action]", "retry_failed")
    page.click("#changelist-form button[name=index]")
    expect(page.locator("ul.messagelist li")).to_have_text(
        f"{made} Failed request(s) are Pending again."
    )
    unfinished = Req.objects.filter(provider=provider).exclude(state=Req.State.COMPLETED)
    workers.wait_until(
        lambda: not unfinished.exists(),
        seconds=30,
        what="the retried requests completed",
        logs=[worker],
    )

    # Completed, every one; the dashboard green again, Failed 0.
    listing = reverse("admin:providers_provisioningrequest_changelist")
    page.goto(f"{live_server.url}{listing}?provider__id__exact={provider.pk}")
    expect(page.locator("#result_list td.field-state")).to_have_text(["Completed"] * made)
    page.goto(f"{live_server.url}{reverse('admin:index')}")
    expect(status).to_have_text("ok")
    expect(failed).to_have_text("0")
    expect(pending).to_have_text("0")
    expect(page.locator("#dashboard-alarms")).to_have_count(0)
    page.screenshot(path=tmp_path / "dashboard-green.png", full_page=True)
    assert errors == []
    assert mailbox.subjects() == [alert, recovered]
    assert webhook.texts() == [alert, recovered]
