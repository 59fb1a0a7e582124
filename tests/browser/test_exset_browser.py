"""In a real browser, at an EXSET SMS subscriber, with the EXSET SMS simulator working on a real
SMS database (an SQLite file): an agent sends an infocas message, a fingerprint and a recall
with *Process immediately* ticked and watches each request go from Pending to Completed on the
result page once the SMS's answers are read; a bad input is refused by the form and nothing is
made. Then an operator runs Process Provisioning Requests and Infocas Message from the run
definitions' pages, on a real Celery worker, and reads what each did on its run's page.

The answers are read by the *Read TQUEUE answers* run, executed here by the test
(``runs.services.execute``, what a worker runs on the run's schedule) while the result page
polls: the agent sees what an agent sees when the scheduled reading comes by.

Headless Chromium from Debian driven by Playwright against pytest-django's live server, as in
``conftest.py``; without either, skipped with the reason.
"""

import time

import pytest
from django.urls import reverse

from providers import batch
from providers.exset import tqueue
from providers.models import ProvisioningRequest
from runs import services
from runs.models import ProcessRun, RunDefinition
from subscriptions.models import CommunicationQueueEntry
from tests import workers
from tests.browser.signing_in import log_in
from tests.fixtures import card_of

Req = ProvisioningRequest

pytestmark = [
    pytest.mark.worker,
    # The SMS database is an SQLite file, shared by the simulator, the worker and the server.
    pytest.mark.parametrize("tqueue_url", ["sqlite"], indirect=True),
]


@pytest.fixture
def catalog(exset):  # this module's catalogue, where ``subscribe`` subscribes, is EXSET SMS
    return exset


@pytest.fixture
def worker(tmp_path):
    """A real Celery worker on the test database, started now (it takes a few seconds)."""
    process = workers.start(tmp_path)
    yield tmp_path / "worker.log"
    workers.stop(process)


def statuses(sms) -> list[str]:
    """The status of each TQUEUE entry, by sequence."""
    cursor = sms.execute(
        f"SELECT {sms.column('status')} FROM {sms.table} ORDER BY {sms.column('sequence')}"
    )
    found = [row[0] for row in cursor.fetchall()]
    sms.conn.commit()  # a fresh snapshot next time
    return found


def sms_finishes(sms, count: int) -> None:
    """Wait until TQUEUE holds ``count`` entries, each Done or Error."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        found = statuses(sms)
        if len(found) == count and set(found) <= {tqueue.DONE, tqueue.ERROR}:
            return
        time.sleep(0.05)
    raise AssertionError(f"The SMS did not finish {count} entries: {statuses(sms)}")


def read_answers(provider) -> ProcessRun:
    """The Read TQUEUE answers run, as a worker executes it on its schedule."""
    definition, _ = RunDefinition.objects.get_or_create(
        name="EXSET: Read TQUEUE answers",
        defaults={"run_type": "exset_read_tqueue", "provider": provider},
    )
    return services.execute(definition.pk, ProcessRun.Trigger.SCHEDULE)


def test_an_agent_sends_messages_and_an_operator_runs_the_runs(
    browser,
    page,
    expect,
    live_server,
    agent,
    operator,
    exset,
    subscribe,
    tqueue_sms,
    exset_simulator,
    worker,
    tmp_path,
):
    provider = exset.provider
    # A subscriber the SMS knows: its requests processed, written, applied and read back.
    sub = subscribe("BUNDLE_A", number="ZX-EXS-A")
    batch.reconcile(batch.Selection(provider), trigger_name="process_provisioning_requests")
    services.execute(
        RunDefinition.objects.create(
            name="EXSET: Write TQUEUE entries", run_type="exset_write_tqueue", provider=provider
        ).pk,
        ProcessRun.Trigger.SCHEDULE,
    )
    sms_finishes(tqueue_sms, 3)
    read_answers(provider)
    assert set(Req.objects.values_list("state", flat=True)) == {Req.State.COMPLETED}
    card = sub.installed_items.get(kind="smartcard")
    written = 3

    # The agent finds the subscriber by the card's serial number.
    log_in(page, live_server, agent)
    page.click("#utilities-entry a")
    page.fill("input[name=q]", card.serial_number)
    page.click("#utility-search input[type=submit]")
    page.click(f"text={sub.number}")
    utilities = page.url

    def open_utility(name: str) -> None:
        page.goto(utilities)
        page.click(f"a.utility-link:has-text('{name}')")
        expect(page.locator("#id_process_immediately")).to_be_checked()

    def sent_and_completed(command: str, message: str) -> None:
        """Submitted: the result page shows the request Pending, written at once; the SMS
        applies it; once the answers are read, the page (not reloaded) shows it Completed."""
        nonlocal written
        page.click("#utility-form input[type=submit]")
        expect(page.locator("ul.messagelist li.success")).to_contain_text(message)
        expect(page.locator("ul.messagelist li.success")).to_contain_text("Exported now: EXSET-")
        row = page.locator("#utility-requests tr[data-request]")
        expect(row).to_have_count(1)
        expect(row.locator("td").nth(1)).to_have_text(command)
        expect(row.locator(".state")).to_have_text("Pending")
        page.evaluate("window.notReloaded = true")
        written += 1
        sms_finishes(tqueue_sms, written)
        read_answers(provider)
        expect(row.locator(".state")).to_have_text("Completed")
        assert page.evaluate("window.notReloaded") is True
        page.screenshot(path=tmp_path / f"{command}.png", full_page=True)

    # Send Infocas Message, first with bad input: the message box takes 200 characters at
    # most; a duration of 0 the browser itself refuses (the field says 1 at least), so the form
    # is not sent; an interval longer than the duration the server refuses, naming both
    # numbers. Nothing is made.
    open_utility("Send Infocas Message")
    page.select_option("#id_type", "single_subscriber")
    page.select_option("#id_card_ca_id", card.ca_id)
    page.fill("#id_message", "M" * 201)
    expect(page.locator("#id_message")).to_have_value("M" * 200)
    page.fill("#id_message", "Your package renews on Monday")
    page.fill("#id_duration_minutes", "0")
    page.click("#utility-form input[type=submit]")
    expect(page.locator("#id_duration_minutes:invalid")).to_have_count(1)
    assert page.eval_on_selector("#utility-form", "form => form.checkValidity()") is False
    assert page.eval_on_selector("#id_duration_minutes", "field => field.validationMessage")
    page.fill("#id_duration_minutes", "10")
    page.fill("#id_interval_minutes", "20")
    page.click("#utility-form input[type=submit]")
    expect(page.locator("#utility-form .errorlist")).to_have_text(
        "The interval (20 minutes) is longer than the broadcast duration (10 minutes): the "
        "message would be shown once only."
    )
    expect(page.locator("#id_message")).to_have_value("Your package renews on Monday")  # kept
    page.screenshot(path=tmp_path / "infocas-refused.png", full_page=True)
    assert not Req.objects.filter(trigger=Req.Trigger.UTILITY).exists()
    assert len(statuses(tqueue_sms)) == written
    page.fill("#id_duration_minutes", "30")
    page.fill("#id_interval_minutes", "5")
    sent_and_completed(
        "ADD_INDIVIDUAL_INFOCAS_MESSAGE", f"An infocas message to card {card.ca_id}."
    )

    # Display Fingerprint: covert, at the left edge.
    open_utility("Display Fingerprint")
    page.select_option("#id_type", "single_subscriber")
    page.select_option("#id_window_type", "COVERT")
    page.fill("#id_position_x", "0")
    sent_and_completed("ADD_INDIVIDUAL_FINGERPRINT_MESSAGE", f"A fingerprint to card {card.ca_id}.")

    # Recall Subscription: the card's Effective services re-authorized.
    open_utility("Recall Subscription")
    page.select_option("#id_card_ca_id", card.ca_id)
    sent_and_completed("RECALL_SUBSCRIPTION", f"Recall of card {card.ca_id} (GFA1, EFA2).")

    # What the SMS holds on the card now.
    held = exset_simulator.state.cards[card_of(sub)]
    assert [
        (m["message"], m["duration_minutes"], m["interval_minutes"]) for m in held["infocas"]
    ] == [("Your package renews on Monday", 30, 5)]
    assert [
        (f["fingerprint"]["window_type"], f["fingerprint"]["position_x"])
        for f in held["fingerprints"]
    ] == [("COVERT", 0)]
    assert [r["service_ca_ids"] for r in held["recalls"]] == [["GFA1", "EFA2"]]

    # --- The operator: a new subscriber to process, and two communications to send --------
    new = subscribe("AGRICULTURE", number="ZX-EXS-B")
    system = exset.external_system
    CommunicationQueueEntry.objects.create(
        number="CQ-1", external_system=system, subscription=sub, text="Thank you for paying."
    )
    CommunicationQueueEntry.objects.create(
        number="CQ-2", external_system=system, subscription=new, text="Welcome to Company ZX."
    )
    processing = RunDefinition.objects.create(
        name="EXSET: Process Provisioning Requests",
        run_type="process_provisioning_requests",
        provider=provider,
    )
    infocas = RunDefinition.objects.create(
        name="EXSET: Infocas Message",
        run_type="exset_infocas_messages",
        provider=provider,
        input_settings={
            "external_system": system.code,
            "duration_minutes": 60,
            "interval_minutes": 10,
        },
    )
    workers.wait_until(
        lambda: " ready." in worker.read_text(), seconds=60, what="the worker", logs=[worker]
    )
    # Another user: a page of its own, which does not share the agent's session.
    page = browser.new_page(viewport=page.viewport_size)
    log_in(page, live_server, operator)

    def run_now(definition: RunDefinition):
        """Run now from the definition's page; once the worker has run it, its page."""
        page.goto(f"{live_server.url}{reverse('admin:runs_rundefinition_changelist')}")
        page.click(f"#result_list a:text-is('{definition.name}')")
        page.click("#definition-operations input[value='Run now']")
        expect(page.locator("ul.messagelist li.success")).to_contain_text(
            f"{definition.name} will run as soon as a worker is free; its process run #"
        )
        workers.wait_until(
            lambda: definition.process_runs.exclude(status__in=ProcessRun.UNFINISHED).exists(),
            seconds=60,
            what=definition.name,
            logs=[worker],
        )
        page.reload()
        (run,) = definition.process_runs.all()
        page.click(f"#definition-runs a:text-is('#{run.pk}')")
        return run

    # Process Provisioning Requests: the new subscriber's pairing and Add, written as it goes.
    run = run_now(processing)
    expect(page.locator("#run-status")).to_have_text("Completed")
    expect(page.locator("#run-message")).to_have_text(
        "Examined 2 subscriptions; created 2 requests: 1 new pairing, 1 activation."
    )
    expect(page.locator("th:has(+ #run-total)")).to_have_text("Subscriptions to examine")
    expect(page.locator("#run-total")).to_have_text("2")
    expect(page.locator("#run-count-examined")).to_have_text("2")
    expect(page.locator("#run-count-created")).to_have_text("2")
    expect(page.locator("#run-requests-pending")).to_have_text("2")
    expect(page.locator("#run-error-log tbody")).to_have_text("No errors.")
    page.screenshot(path=tmp_path / "processing-run.png", full_page=True)
    assert [r.subscription.number for r in Req.objects.filter(process_run=run)] == [new.number] * 2
    sms_finishes(tqueue_sms, written + 2)  # written by the run itself, applied by the SMS

    # Infocas Message: CQ-1 sent; CQ-2 held back while ZX-EXS-B's requests wait for their
    # answers (not read yet), and the log says which request holds it.
    run = run_now(infocas)
    expect(page.locator("#run-message")).to_contain_text(
        "Sent 1 of 2 communications as 1 request; 1 held back for the next run; 0 failed"
    )
    expect(page.locator("th:has(+ #run-total)")).to_have_text("Communications to examine")
    expect(page.locator("#run-total")).to_have_text("2")
    expect(page.locator("#run-count-communications")).to_have_text("2")
    expect(page.locator("#run-count-sent")).to_have_text("1")
    expect(page.locator("#run-count-held_back")).to_have_text("1")
    expect(page.locator("#run-count-failed")).to_have_text("0")
    expect(page.locator("#run-count-requests")).to_have_text("1")
    log = page.locator("#run-error-log tbody tr")
    expect(log).to_have_count(1)
    expect(log.locator("td").nth(1)).to_have_text(new.number)
    expect(log.locator("td").nth(2)).to_contain_text(
        "CQ-2: held back for the next run: ZX-EXS-B has request"
    )
    page.screenshot(path=tmp_path / "infocas-run.png", full_page=True)
    (sent,) = Req.objects.filter(process_run=run)
    assert (sent.command, sent.subscription, sent.parameters["message"]) == (
        "ADD_INDIVIDUAL_INFOCAS_MESSAGE",
        sub,
        "Thank you for paying.",
    )
    assert list(
        CommunicationQueueEntry.objects.order_by("number").values_list("number", "state")
    ) == [("CQ-1", "completed"), ("CQ-2", "pending")]
