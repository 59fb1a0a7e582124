"""In a real browser, an agent finds a subscription from the subscription list's search box by
part of the customer's name and by a card's serial number, reads the customer and the state in
the results, and opens the subscription.

Headless Chromium from Debian driven by Playwright against pytest-django's live server, as in
``conftest.py``; without either, skipped with the reason.
"""

from django.urls import reverse

from subscriptions import actions
from subscriptions.models import CustomerAccount, InstalledItem
from tests.browser.signing_in import log_in
from tests.fixtures import card_and_box


def test_an_agent_finds_a_subscription_by_name_part_and_by_card(
    browser, expect, live_server, agent, subscribe, catalog
):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    log_in(page, live_server, agent)
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
