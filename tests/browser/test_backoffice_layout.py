"""The back office on a 1280 x 800 screen: the wide lists fit (their cells wrap, and what is
still too wide scrolls inside the results box, never the page), and a refusal is the back
office's page with a way back. Screenshots in the test's tmp_path."""

from django.urls import reverse
from django.utils import timezone

from providers.models import ProvisioningRequest
from runs.models import ProcessRun, RunDefinition
from tests.browser.signing_in import log_in

WIDE_LISTS = {
    "requests": "admin:providers_provisioningrequest_changelist",
    "services": "admin:subscriptions_subscriptionservice_changelist",
    "installed items": "admin:subscriptions_installeditem_changelist",
    "runs": "admin:runs_processrun_changelist",
}


def widths(page) -> dict:
    return page.evaluate(
        """() => {
            const box = document.querySelector('#changelist-form .results');
            return {page: document.documentElement.scrollWidth,
                    table: box.scrollWidth, box: box.clientWidth,
                    rows: document.querySelectorAll('#result_list tbody tr').length};
        }"""
    )


def test_the_wide_lists_fit_1280_pixels(
    browser, expect, live_server, agent, subscribe, catalog, tmp_path
):
    subscribe("BUNDLE_A", ("AGRICULTURE", "TWIN1"))
    # Long words and a long error, as a Conax WS message request carries.
    ProvisioningRequest.objects.filter(pk=ProvisioningRequest.objects.first().pk).update(
        command="SEND_REPEATING_BARK_MESSAGE_TO_CLIENT",
        last_error="Connection refused by https://cas.example.net/ca-server/webservices/x",
    )
    definition = RunDefinition.objects.create(
        name="Conax WS: Reset Subscriptions after the outage of the night",
        run_type="reset_subscriptions",
        provider=catalog.provider,
        run_at=timezone.now(),
    )
    ProcessRun.objects.create(definition=definition, trigger="run_now", total=10)

    page = browser.new_page(viewport={"width": 1280, "height": 800})
    log_in(page, live_server, agent)
    for name, url in WIDE_LISTS.items():
        page.goto(live_server.url + reverse(url))
        page.screenshot(path=tmp_path / f"{name.replace(' ', '-')}.png")
        seen = widths(page)
        assert seen["rows"] >= 1, name
        assert seen["page"] <= 1280, (name, seen)
        # The table fits its box: no column is hidden behind a scroll bar.
        assert seen["table"] <= seen["box"], (name, seen)
        expect(page.locator("#changelist-filter")).to_be_in_viewport()


def test_a_refusal_leads_back(browser, expect, live_server, agent, tmp_path):
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    log_in(page, live_server, agent)
    requests = live_server.url + reverse("admin:providers_provisioningrequest_changelist")
    page.goto(requests)
    # A link to the scheduler, as an old bookmark or a colleague's message would give.
    beat = reverse("admin:django_celery_beat_periodictask_changelist")
    page.evaluate(f"location.href = '{beat}'")
    page.wait_for_url(live_server.url + beat)
    expect(page.locator("h1")).to_have_text("You may not open this page")
    page.screenshot(path=tmp_path / "403.png")
    page.click("#previous-page")
    page.wait_for_url(requests)
    page.go_back()
    page.click("#home-page")
    page.wait_for_url(live_server.url + reverse("admin:index"))
