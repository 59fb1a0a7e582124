"""In a real browser: a process run's page follows the run live, without reloading; the
definition form offers only what the chosen provider offers, then submit and preview.

Headless Chromium from Debian driven by Playwright against pytest-django's live server (set up
in ``conftest.py``); without either, skipped with the reason.
"""

from datetime import timedelta

from django.urls import reverse
from django.utils import timezone

from catalogue.models import Provider
from providers.models import ProvisioningRequest
from runs.models import ProcessRun, ProcessRunPart, RunDefinition
from subscriptions.models import SubscriptionService
from tests.browser.signing_in import log_in


def test_the_run_page_follows_the_run_live(
    browser, expect, live_server, operator, catalog, tmp_path
):
    definition = RunDefinition.objects.create(
        name="Reset after the outage",
        run_type="reset_subscriptions",
        provider=catalog.provider,
        run_at=timezone.now() + timedelta(hours=1),
    )
    run = ProcessRun.objects.create(
        definition=definition, trigger="run_now", total=10, heartbeat_at=timezone.now()
    )
    first, _ = ProcessRunPart.objects.bulk_create(
        ProcessRunPart(run=run, number=n, low=1 + 5 * (n - 1), high=1 + 5 * n) for n in (1, 2)
    )
    url = reverse("admin:runs_processrun_change", args=[run.pk])
    progress_url = reverse("admin:runs_processrun_progress", args=[run.pk])

    page = browser.new_page(viewport={"width": 1280, "height": 1100})
    polls = []
    page.on("request", lambda r: polls.append(r.url) if progress_url in r.url else None)
    log_in(page, live_server, operator, url)

    status, summary = page.locator("#run-status"), page.locator("#run-summary")
    bar = page.locator("#run-bar")
    expect(status).to_have_text("Running")
    expect(summary).to_have_text(
        "Examined 0 of 10 subscriptions; created 0 requests (0%) · 0 errors"
    )
    expect(page.locator("#run-parts")).to_have_text("0 of 2 done")
    expect(bar).to_have_attribute("aria-valuenow", "0")
    # Anything a reload would wipe out: it must still be there at the end.
    page.evaluate("window.notReloaded = true")

    # The worker gets on: 4 examined, 3 requests created (one already answered).
    for state in ("pending", "pending", "completed"):
        ProvisioningRequest.objects.create(
            command="ACTIVATE_SERVICE",
            provider=catalog.provider,
            trigger=ProvisioningRequest.Trigger.RUN,
            state=state,
            process_run=run,
        )
    ProcessRun.objects.filter(pk=run.pk).update(examined=4, created=3, heartbeat_at=timezone.now())
    ProcessRunPart.objects.filter(pk=first.pk).update(worker="w1:42", finished_at=timezone.now())
    expect(summary).to_contain_text(
        "Examined 4 of 10 subscriptions; created 3 requests (40%) · 0 errors · about"
    )
    expect(bar).to_have_attribute("aria-valuenow", "40")
    page.wait_for_function("document.getElementById('run-bar-fill').style.width === '40%'")
    expect(page.locator("#run-requests-pending")).to_have_text("2")
    expect(page.locator("#run-requests-completed")).to_have_text("1")
    expect(page.locator("#run-eta")).to_contain_text("about")
    expect(page.locator("#run-parts")).to_have_text("1 of 2 done, on w1:42")
    page.screenshot(path=tmp_path / "run-running.png", full_page=True)

    # It finishes.
    ProcessRun.objects.filter(pk=run.pk).update(
        examined=10,
        created=3,
        status=ProcessRun.Status.COMPLETED,
        finished_at=timezone.now(),
        counts={"activate": 3},
        message="Examined 10 subscriptions; created 3 requests: 3 activations.",
    )
    expect(status).to_have_text("Completed")
    expect(summary).to_have_text(
        "Examined 10 subscriptions; created 3 requests: 3 activations (100%) · 0 errors"
    )
    expect(bar).to_have_attribute("aria-valuenow", "100")
    expect(page.locator("#run-message")).to_have_text(
        "Examined 10 subscriptions; created 3 requests: 3 activations."
    )
    expect(page.locator("#run-eta")).to_have_text("-")
    expect(page.locator("#run-finished")).not_to_have_text("-")
    assert page.evaluate("window.notReloaded") is True
    page.screenshot(path=tmp_path / "run-finished.png", full_page=True)

    # Polling stops once the run is no longer running.
    polled = len(polls)
    assert polled >= 2
    page.wait_for_timeout(2500)
    assert len(polls) == polled


def test_the_definition_form_offers_what_the_provider_offers(
    page, expect, live_server, operator, catalog, subscribe, tmp_path
):
    sms = Provider.objects.create(name="SMS", type="conax_sms")
    subscribe("AGRICULTURE")
    SubscriptionService.objects.update(authorized=False)  # the provider lost it: a reset fixes it
    ProvisioningRequest.objects.update(state=ProvisioningRequest.State.COMPLETED)
    log_in(page, live_server, operator, reverse("admin:runs_rundefinition_add"))

    def offered():
        return page.eval_on_selector_all(
            "#id_run_type option", "os => os.filter(o => o.value && !o.disabled).map(o => o.value)"
        )

    page.select_option("#id_provider", str(sms.pk))
    assert offered() == [  # in the menu's order: the built-in types first
        "process_provisioning_requests",
        "archive_requests",
        "conax_sms_export_files",
        "conax_sms_error_handling",
        "conax_sms_messages",
    ]
    page.select_option("#id_provider", str(catalog.provider.pk))
    assert offered() == ["reset_subscriptions", "archive_requests"]

    # A reset has two fieldsets (criteria, input settings): both show and hide together.
    reset = page.locator("fieldset.run-type-reset_subscriptions")
    archive = page.locator("fieldset.run-type-archive_requests")
    page.select_option("#id_run_type", "archive_requests")
    expect(archive).to_be_visible()
    expect(reset).to_have_count(2)
    for fieldset in reset.all():
        expect(fieldset).to_be_hidden()
    page.select_option("#id_run_type", "reset_subscriptions")
    for fieldset in reset.all():
        expect(fieldset).to_be_visible()
    expect(archive).to_be_hidden()
    # A provider that does not offer the chosen type clears the choice.
    page.select_option("#id_provider", str(sms.pk))
    expect(page.locator("#id_run_type")).to_have_value("")
    page.select_option("#id_provider", str(catalog.provider.pk))
    page.select_option("#id_run_type", "reset_subscriptions")

    page.select_option("#id_schedule", "interval")
    expect(page.locator(".form-row.field-run_at")).to_be_hidden()
    expect(page.locator(".form-row.field-every")).to_be_visible()
    page.select_option("#id_schedule", "weekly")
    expect(page.locator(".form-row.field-at")).to_be_visible()
    expect(page.locator(".form-row.field-weekdays")).to_be_visible()
    page.select_option("#id_schedule", "daily")
    expect(page.locator(".form-row.field-weekdays")).to_be_hidden()
    expect(page.locator(".form-row.field-every")).to_be_hidden()
    page.select_option("#id_schedule", "once")
    expect(page.locator(".form-row.field-every")).to_be_hidden()

    later = timezone.localtime() + timedelta(hours=1)
    page.fill("#id_name", "Reset after the outage")
    page.check("input[name='criteria-reset_subscriptions-subscription_types'][value='RES']")
    page.fill("#id_run_at_0", f"{later:%Y-%m-%d}")
    page.fill("#id_run_at_1", f"{later:%H:%M:%S}")
    page.click("input[name=_continue]")
    expect(page.locator("#definition-operations h2")).to_have_text("State: Draft")

    page.click("#definition-operations input[value=Submit]")
    expect(page.locator("ul.messagelist li.success")).to_contain_text(
        "Reset after the outage is submitted"
    )
    expect(page.locator("#definition-operations h2")).to_have_text("State: Submitted")

    page.click("#definition-operations a:text('Preview')")
    expect(page.locator("tr.preview-row")).to_have_count(1)
    expect(page.locator("tr.preview-row")).to_contain_text("ACTIVATE_SERVICE")
    expect(page.locator("tr.preview-row .preview-reason").last).to_have_text(
        "Activate AGRICULTURE: service Effective, not authorized at the provider"
    )
    page.screenshot(path=tmp_path / "preview.png", full_page=True)
    assert ProvisioningRequest.objects.filter(state="pending").count() == 0


def test_an_agent_finds_a_subscription_resets_it_and_sees_the_request_complete(
    browser, expect, live_server, agent, catalog, subscribe, tmp_path
):
    from providers.answers import record_answer

    sub = subscribe("AGRICULTURE")
    for request in ProvisioningRequest.objects.order_by("pk"):
        record_answer(request, accepted=True)
    SubscriptionService.objects.update(authorized=False)  # the platform lost the service
    card = sub.installed_items.get(kind="smartcard")

    page = browser.new_page(viewport={"width": 1280, "height": 900})
    log_in(page, live_server, agent)
    page.click("#utilities-entry a")
    page.fill("input[name=q]", card.serial_number)
    page.click("#utility-search input[type=submit]")
    page.click(f"text={sub.number}")
    page.click("a.utility-link:has-text('Reset single subscription')")
    page.select_option("#id_priority", "express")
    page.click("#utility-form input[type=submit]")

    row = page.locator("#utility-requests tr[data-request]")
    expect(row).to_have_count(1)
    expect(row.locator("td").nth(1)).to_have_text("ACTIVATE_SERVICE")
    expect(row.locator(".state")).to_have_text("Pending")
    page.evaluate("window.notReloaded = true")

    (made,) = ProvisioningRequest.objects.filter(trigger="utility")
    assert (made.ca_id, made.priority) == ("AF1", ProvisioningRequest.Priority.EXPRESS)
    record_answer(made, accepted=True)  # the platform's connector answers

    expect(row.locator(".state")).to_have_text("Completed")
    assert page.evaluate("window.notReloaded") is True
    page.screenshot(path=tmp_path / "utility-result.png", full_page=True)
