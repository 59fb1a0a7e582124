"""In a real browser, an operator adds a Conax WS provider: picks the type, gets its settings as
fields, saves, then tests the connection against the CAS simulator, up and down.

Headless Chromium from Debian driven by Playwright against pytest-django's live server, as in
``conftest.py``; without either, skipped with the reason.
"""

from django.urls import reverse

from catalogue.models import Provider
from tests.browser.signing_in import log_in
from tests.fixtures import CONAX_WS_PASSWORD_ENV


def test_an_operator_adds_a_provider_and_tests_its_connection(
    page, expect, live_server, operator, conax_ws_simulator
):
    log_in(page, live_server, operator)

    page.goto(f"{live_server.url}{reverse('admin:catalogue_provider_add')}")
    expect(page.get_by_text("Pick the provider type")).to_be_visible()
    page.select_option("#id_type", "conax_ws")
    # The page comes back with the type's own fields, defaults filled in.
    expect(page.locator("#id_connection__timeout_seconds")).to_have_value("10")
    expect(page.get_by_text("Password variable")).to_be_visible()
    page.fill("#id_name", "Browser CAS")
    page.fill("#id_connection__wsdl_url", conax_ws_simulator.wsdl_url)
    page.fill("#id_connection__username", "crm")
    page.fill("#id_connection__password_env", CONAX_WS_PASSWORD_ENV)
    page.fill("#id_parameters__max_attempts", "99")
    page.click("input[name=_continue]")
    expect(page.locator(".errorlist")).to_contain_text(
        "Ensure this value is less than or equal to 50."
    )
    page.fill("#id_parameters__max_attempts", "4")
    page.click("input[name=_continue]")
    expect(page.locator(".messagelist")).to_contain_text("was added successfully")
    provider = Provider.objects.get(name="Browser CAS")
    assert provider.parameters == {"max_attempts": 4}

    page.click("input[value='Test connection']")
    expect(page.locator(".messagelist .success")).to_contain_text("Test connection OK: The CAS at")
    conax_ws_simulator.state.controls.down = True
    page.click("input[value='Test connection']")
    expect(page.locator(".messagelist .error")).to_contain_text(
        "Browser CAS cannot be reached (the platform answered with an error): HTTP 503"
    )
