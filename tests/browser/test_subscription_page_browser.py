"""In a real browser, an agent on a subscription's page: reads the provider of each viewing
point, adds a service on one of the subscription's own viewing points (another provider's MAIN
is not offered), sees it authorized without reloading once the platform answers, sees a
rejection with the platform's reason appear the same way, and retries it.

Headless Chromium from Debian driven by Playwright against pytest-django's live server, as in
``conftest.py``; without either, skipped with the reason. The platform's answers go through
``providers.answers.record_answers``, the path every connector's answer takes.
"""

from django.urls import reverse

from providers.answers import Answer, record_answers
from subscriptions.demo import ensure_catalog
from tests.browser.signing_in import log_in


def answer(sub, accepted: bool, **reason) -> None:
    """The platform answers every Pending request of the subscription."""
    pending = sub.provisioning_requests.filter(state="pending").values_list("pk", flat=True)
    record_answers([Answer(pk, accepted, **reason) for pk in pending])


def test_an_agent_adds_a_service_and_watches_it_live(
    page, expect, live_server, agent, subscribe, tmp_path
):
    ensure_catalog("Conax WS", "conax_ws")  # another provider, with a MAIN of its own
    sub = subscribe("BUNDLE_A")
    answer(sub, True)
    url = reverse("admin:subscriptions_subscription_change", args=[sub.pk])
    status_url = reverse("admin:subscriptions_subscription_status", args=[sub.pk])
    polls = []
    page.on("request", lambda r: polls.append(r.url) if status_url in r.url else None)

    log_in(page, live_server, agent, url)

    # At a glance: the customer, the viewing point with its provider, the service authorized.
    expect(page.locator("#customer-name")).to_have_text("Maria Georgiou")
    expect(page.locator("#viewing-points h3")).to_have_text(["Generic — MAIN"])
    bundle = sub.services.get()
    expect(page.locator(f"#status-{bundle.pk}")).to_contain_text("Authorized")

    # Add service: only this subscription's provider is offered, nothing chosen beforehand.
    points = page.locator("#add-service-distributor option")
    expect(points.first).to_have_text("— choose —")
    assert "Conax WS — MAIN" not in points.all_text_contents()
    page.select_option("#add-service-distributor", label="Generic — MAIN")
    page.select_option("#add-service-product", label="Agriculture (AGRICULTURE)")
    page.click("#add-service input[type=submit]")
    expect(page.locator("ul.messagelist li.success")).to_contain_text(
        "Add service: done, 1 provisioning request made."
    )
    added = sub.services.get(product__code="AGRICULTURE")
    row = page.locator(f"#status-{added.pk}")
    expect(row).to_contain_text("Pending")
    expect(row).to_contain_text("Generic — MAIN")
    page.evaluate("window.notReloaded = true")

    # The platform takes it: the row turns Authorized by itself, and the polling stops.
    answer(sub, True)
    expect(row).to_contain_text("Authorized", timeout=10_000)
    assert page.evaluate("window.notReloaded") is True
    page.screenshot(path=tmp_path / "subscription-authorized.png", full_page=True)
    polled = len(polls)
    assert polled >= 1
    page.wait_for_timeout(4000)
    assert len(polls) == polled

    # A rejection: its reason shows without reloading, and Retry sends it again.
    page.select_option("#add-service-distributor", label="Generic — MAIN")
    page.select_option("#add-service-product", label="Religion (RELIGION)")
    page.click("#add-service input[type=submit]")
    religion = sub.services.get(product__code="RELIGION")
    row = page.locator(f"#status-{religion.pk}")
    expect(row).to_contain_text("Pending")
    page.evaluate("window.notReloaded = true")
    answer(sub, False, error_code="E042", error_description="Not entitled on this card")
    expect(row).to_contain_text(
        "Rejected by Generic: E042 — Not entitled on this card", timeout=10_000
    )
    assert page.evaluate("window.notReloaded") is True
    # Its buttons below follow: rolled back, it may be started again, not stopped.
    expect(page.locator(f"#service-{religion.pk}")).to_contain_text("Not Effective")
    expect(page.locator(f"#service-{religion.pk} input[value=Start]")).to_be_visible()
    page.screenshot(path=tmp_path / "subscription-rejected.png", full_page=True)

    row.locator("input[value=Retry]").click()
    expect(page.locator("ul.messagelist li.success")).to_contain_text("Start service: done")
    row = page.locator(f"#status-{religion.pk}")
    expect(row).to_contain_text("Pending")
    answer(sub, True)
    expect(row).to_contain_text("Authorized", timeout=10_000)
