"""In a real browser, an agent at an Irdeto subscriber uses each of its utilities once: a
message whose text ANSI cannot carry (the form names the character, nothing is sent), sent
again in Unicode to the box's screen; the box's parental PIN (never shown back); Query secure
client, answered in nine headed tables; the card's sector re-authorized; and Reset single
subscription. Each request is watched until the KMS simulator has it.

Headless Chromium from Debian driven by Playwright against pytest-django's live server, as in
``conftest.py``; without either, skipped with the reason.
"""

import pytest
from django.urls import reverse

from providers.models import ProvisioningRequest
from tests.browser.signing_in import log_in
from tests.fixtures import deliver


@pytest.fixture
def catalog(irdeto):  # this module's catalogue, where ``subscribe`` subscribes, is Irdeto
    return irdeto


def test_an_agent_uses_each_irdeto_utility(
    page, expect, live_server, agent, irdeto, subscribe, irdeto_simulator, tmp_path
):
    kms = irdeto_simulator.state
    sub = subscribe("BUNDLE_A")
    assert deliver(irdeto) == 3  # the KMS holds the pairing and Bundle A's entitlements
    card = sub.installed_items.get(kind="smartcard")
    stb = sub.installed_items.get(kind="stb")

    log_in(page, live_server, agent)
    page.click("#utilities-entry a")
    page.fill("input[name=q]", stb.serial_number)
    page.click("#utility-search input[type=submit]")
    page.click(f"text={sub.number}")

    def open_utility(name: str) -> None:
        page.goto(f"{live_server.url}{reverse('admin:utilities-subscription', args=[sub.pk])}")
        page.click(f'a.utility-link:has-text("{name}")')

    def watch_until_completed(command: str) -> None:
        row = page.locator("#utility-requests tr[data-request]")
        expect(row.locator("td").nth(1)).to_have_text(command)
        expect(row.locator(".state")).to_have_text("Pending")
        assert deliver(irdeto) == 1
        expect(row.locator(".state")).to_have_text("Completed")

    # Send single message: ANSI cannot carry "ő"; the form says which, and nothing is sent.
    open_utility("Send single message")
    page.select_option("#id_message_type", "message")
    page.select_option("#id_device", stb.ca_id)
    page.fill("#id_text", "Szőlő: free preview tonight")
    page.click("#utility-form input[type=submit]")
    expect(page.locator("#utility-form .errorlist")).to_have_text(
        "'ő' (U+0151, character 3) has no ANSI (Windows-1252) code: choose Unicode, or leave "
        "it out."
    )
    assert not ProvisioningRequest.objects.filter(command="SEND_SCREEN_MESSAGE").exists()
    page.screenshot(path=tmp_path / "irdeto-message-refused.png", full_page=True)
    page.select_option("#id_text_mode", "UNICODE")
    page.click("#utility-form input[type=submit]")
    expect(page.locator("ul.messagelist li.success")).to_have_text(
        f"An on-screen message to set-top box {stb.ca_id} (Unicode, 54 bytes) is on its way "
        "to Irdeto."
    )
    watch_until_completed("SEND_SCREEN_MESSAGE")
    assert [m["text"] for m in kms.clients[stb.ca_id]["screen"]] == ["Szőlő: free preview tonight"]

    # Set parental PIN: the box is the only device that holds one; the PIN is never shown.
    open_utility("Set parental PIN")
    expect(page.locator("#id_device option")).to_have_count(2)  # "—" and the box
    page.fill("#id_pin", "4826")
    page.click("#utility-form input[type=submit]")
    expect(page.locator("ul.messagelist li.success")).to_have_text(
        f"The parental PIN of set-top box {stb.ca_id} will be set to the given PIN."
    )
    assert "4826" not in page.content()
    watch_until_completed("SET_PARENTAL_PIN")
    assert kms.clients[stb.ca_id]["pin"] == "4826"

    # Query secure client: the KMS's nine sections, each a table under its heading.
    open_utility("Query secure client")
    page.select_option("#id_device", card.ca_id)
    page.click("#utility-form input[type=submit]")
    expect(page.locator("ul.messagelist li.success")).to_have_text(
        f"Irdeto describes smartcard {card.ca_id} in 9 sections."
    )
    expect(page.locator(".answer-section caption")).to_have_text(
        [
            "Basic information",
            "Pairing information",
            "Entitlements information",
            "Security information",
            "Anchoring information",
            "TMS attribute information",
            "Sector information",
            "PVR information",
            "Device domain information",
        ]
    )
    entitlements = page.locator(
        ".answer-section table:has(caption:text-is('Entitlements information'))"
    )
    expect(entitlements.locator("tbody tr")).to_have_count(2)
    expect(entitlements.locator("tbody tr").nth(0).locator("td").nth(0)).to_have_text("EFA2")
    page.screenshot(path=tmp_path / "irdeto-query.png", full_page=True)

    # Re-authorize the card's sector.
    open_utility("Re-authorize secure client's sector")
    page.select_option("#id_device", card.ca_id)
    page.click("#utility-form input[type=submit]")
    expect(page.locator("ul.messagelist li.success")).to_have_text(
        f"The sector of smartcard {card.ca_id} will be re-authorized at Irdeto."
    )
    watch_until_completed("REAUTHORIZE_SECTOR")
    assert kms.clients[card.ca_id]["sector"]["reauthorizations"] == 1

    # Reset single subscription: the KMS holds what the subscription wants.
    open_utility("Reset single subscription")
    page.click("#utility-form input[type=submit]")
    expect(page.locator("ul.messagelist li.success")).to_contain_text(
        f"{sub.number} is in step with Irdeto"
    )
