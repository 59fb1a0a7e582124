"""In a real browser, an agent finds a subscription from the subscription list's search box by
part of the customer's name and by a card's serial number, reads the customer and the state in
the results, and opens the subscription.

Headless Chromium from Debian driven by Playwright against pytest-django's live server, as in
``test_browser.py``; without either, skipped with the reason.
"""

import os
import shutil

import pytest
from django.db import connections
from django.urls import reverse

from subscriptions import actions
from subscriptions.models import CustomerAccount, InstalledItem
from tests.fixtures import card_and_box

CHROMIUM = "/usr/bin/chromium"

sync_api = pytest.importorskip(
    "playwright.sync_api",
    reason="Playwright is not installed (pip install -c constraints.txt -e '.[test]').",
)
pytestmark = pytest.mark.skipif(
    not (os.path.exists(CHROMIUM) and shutil.which(CHROMIUM)),
    reason=f"{CHROMIUM} is missing (as root: apt-get install -y chromium; ./dev test does it).",
)


@pytest.fixture
def page(live_server, monkeypatch, agent):
    # Playwright's sync API keeps an event loop in this thread; the test's own ORM calls are
    # plain synchronous code all the same.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(f"{live_server.url}{reverse('admin:login')}")
        page.fill("#id_username", agent.username)
        page.fill("#id_password", "pw-" + agent.username)
        page.click("input[type=submit]")
        page.wait_for_url(f"{live_server.url}{reverse('admin:index')}")
        yield page
        browser.close()
        # The ORM's connection lives in Playwright's loop context: close it with the test.
        connections.close_all()


def test_an_agent_finds_a_subscription_by_name_part_and_by_card(
    page, live_server, subscribe, catalog
):
    expect = sync_api.expect
    wanted = subscribe("AGRICULTURE", number="ZX-000019")
    other = CustomerAccount.objects.create(number="ACC-2", name="Andreas Pappas")
    actions.become_subscriber(
        other,
        catalog.types["RES"],
        [(catalog.products["AGRICULTURE"], catalog.main)],
        card_and_box(catalog.main),
        number="ZX-000020",
    )
    card = InstalledItem.objects.get(subscription=wanted, kind="smartcard")

    page.goto(f"{live_server.url}{reverse('admin:subscriptions_subscription_changelist')}")
    expect(page.locator("#changelist-search .help")).to_contain_text("Any part")
    page.fill("#searchbar", "georgiou")
    page.press("#searchbar", "Enter")
    row = page.locator("#result_list tbody tr")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("ZX-000019")
    expect(row).to_contain_text("Maria Georgiou")
    expect(row).to_contain_text("Effective")
    expect(page.locator("#result_list")).not_to_contain_text("ZX-000020")

    page.fill("#searchbar", card.serial_number.lower())
    page.press("#searchbar", "Enter")
    expect(row).to_have_count(1)
    row.locator("a", has_text="ZX-000019").click()
    expect(page.locator("h1, h2").first).to_contain_text("ZX-000019")
