"""In a real browser, an agent at a Conax WS subscriber: asks the CAS simulator what the card
holds (Get Conax information, answered as a table), then sends a bark message, first too long
(the form says so and nothing is sent), then one that fits, and watches it reach the CAS.

Headless Chromium from Debian driven by Playwright against pytest-django's live server, as in
``conftest.py``; without either, skipped with the reason.
"""

import pytest

from providers.models import ProvisioningRequest
from tests.browser.signing_in import log_in
from tests.fixtures import card_of, deliver


@pytest.fixture
def catalog(conax):  # this module's catalogue, where ``subscribe`` subscribes, is Conax WS
    return conax


def test_an_agent_asks_the_cas_and_sends_a_bark_message(
    page, expect, live_server, agent, conax, subscribe, conax_ws_simulator, tmp_path
):
    sub = subscribe("BUNDLE_A")
    assert deliver(conax) == 3  # the CAS holds the card's pairing and Bundle A's services
    card = sub.installed_items.get(kind="smartcard")

    # The agent finds the subscriber by the card's serial number and opens the subscription.
    log_in(page, live_server, agent)
    page.click("#utilities-entry a")
    page.fill("input[name=q]", card.serial_number)
    page.click("#utility-search input[type=submit]")
    page.click(f"text={sub.number}")

    # Get Conax information: the active subscriptions, as the CAS says, in a table.
    page.click("a.utility-link:has-text('Get Conax information')")
    page.select_option("#id_type", "active_subscriptions")
    page.click("#utility-form input[type=submit]")
    expect(page.locator("ul.messagelist li.success")).to_have_text(
        f"Conax WS holds 2 active subscription(s) on card {card.ca_id}."
    )
    table = page.locator("table:has(caption:text-is('Answer'))")
    expect(table.locator("thead th")).to_have_text(["Service CA ID", "Code", "Description"])
    expect(table.locator("tbody tr")).to_have_count(2)
    expect(table.locator("tbody tr").nth(0).locator("td")).to_have_text(
        ["EFA2", "ENTERTAIN", "Entertain"]
    )
    expect(table.locator("tbody tr").nth(1).locator("td")).to_have_text(
        ["GFA1", "GEOLOGICAL", "Geological"]
    )
    page.screenshot(path=tmp_path / "conax-information.png", full_page=True)

    # A bark message one character too long: the form names the limit; nothing is sent.
    page.click(f"a:has-text('Other utilities for {sub.number}')")
    page.click("a.utility-link:has-text('Send mail & bark message')")
    page.select_option("#id_message_type", "bark")
    page.fill("#id_text", "B" * 130)
    page.click("#utility-form input[type=submit]")
    expect(page.locator("#utility-form .errorlist")).to_have_text(
        "A bark message holds at most 129 characters; this one has 130."
    )
    expect(page.locator("#id_text")).to_have_value("B" * 130)  # kept, to shorten
    assert not ProvisioningRequest.objects.filter(command__startswith="SEND_").exists()
    page.screenshot(path=tmp_path / "bark-too-long.png", full_page=True)

    # Shortened, it goes: Pending, then Completed once the CAS has it on the card's screen.
    page.fill("#id_text", "Free preview of Bundle B tonight")
    page.click("#utility-form input[type=submit]")
    row = page.locator("#utility-requests tr[data-request]")
    expect(row.locator("td").nth(1)).to_have_text("SEND_BARK_MESSAGE_TO_CLIENT")
    expect(row.locator(".state")).to_have_text("Pending")
    assert deliver(conax) == 1
    expect(row.locator(".state")).to_have_text("Completed")
    (shown,) = conax_ws_simulator.state.cards[card_of(sub)]["screen"]
    assert (shown["text"], shown["display_seconds"]) == ("Free preview of Bundle B tonight", 20)


def test_an_agent_walks_through_a_call(
    page, expect, live_server, agent, conax, subscribe, conax_ws_simulator, tmp_path
):
    """Issue 27's walk-through: found by a part of the customer's name and by the card's
    serial, read at a glance, a service added on the right provider and seen authorized
    without reloading, a message sent and seen in the history with the agent's name."""
    sub = subscribe("BUNDLE_A")
    assert deliver(conax) == 3
    card = sub.installed_items.get(kind="smartcard")
    listing = "/admin/subscriptions/subscription/"
    log_in(page, live_server, agent, listing)

    # Found by a part of the name ("Georgiou" of Maria Georgiou), with customer and state.
    page.fill("#searchbar", "eorgio")
    page.click("#changelist-search input[type=submit]")
    row = page.locator(f"#result_list tr:has-text('{sub.number}')")
    expect(row).to_contain_text("Maria Georgiou")
    expect(row).to_contain_text("Effective")
    # And by the card's serial number, in small letters.
    page.fill("#searchbar", card.serial_number.lower())
    page.click("#changelist-search input[type=submit]")
    page.click(f"#result_list a:text-is('{sub.number}')")

    # At a glance: the viewing point with its provider, the services authorized.
    expect(page.locator("#viewing-points h3")).to_have_text(["Conax WS — MAIN"])
    for service in sub.services.all():
        expect(page.locator(f"#status-{service.pk}")).to_contain_text("Authorized")

    # A service added on the subscription's own provider, authorized once the CAS has it.
    page.select_option("#add-service-distributor", label="Conax WS — MAIN")
    page.select_option("#add-service-product", label="Agriculture (AGRICULTURE)")
    page.click("#add-service input[type=submit]")
    added = sub.services.get(product__code="AGRICULTURE")
    row = page.locator(f"#status-{added.pk}")
    expect(row).to_contain_text("Pending")
    page.evaluate("window.notReloaded = true")
    assert deliver(conax) == 1
    expect(row).to_contain_text("Authorized", timeout=10_000)
    assert page.evaluate("window.notReloaded") is True

    # A bark message from the subscription's utilities, then seen in its history.
    page.click("#utilities-link")
    page.click("a.utility-link:has-text('Send mail & bark message')")
    page.select_option("#id_message_type", "bark")
    page.fill("#id_text", "Your new channel is on")
    page.click("#utility-form input[type=submit]")
    expect(page.locator("#utility-requests tr[data-request] .state")).to_have_text("Pending")
    assert deliver(conax) == 1
    page.goto(f"{live_server.url}/admin/subscriptions/subscription/{sub.pk}/change/")
    latest = page.locator("#subscription-history tbody tr").first
    expect(latest).to_contain_text("Message sent")
    expect(latest.locator("td.history-by")).to_have_text(agent.username)
    page.screenshot(path=tmp_path / "walk-through.png", full_page=True)
