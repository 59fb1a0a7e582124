"""In a real browser, an operator adds a Conax WS provider: picks the type, gets its settings as
fields, saves, then tests the connection against the CAS simulator, up and down.

Headless Chromium from Debian driven by Playwright against pytest-django's live server, as in
``test_browser.py``; without either, skipped with the reason.
"""

import os
import shutil

import pytest
from django.db import connections
from django.urls import reverse

from catalogue.models import Provider
from tests.fixtures import CONAX_WS_PASSWORD_ENV

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
def page(live_server, monkeypatch):
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        yield browser.new_page(viewport={"width": 1280, "height": 1000})
        browser.close()
        connections.close_all()


def test_an_operator_adds_a_provider_and_tests_its_connection(
    page, live_server, operator, conax_ws_simulator
):
    expect = sync_api.expect
    page.goto(f"{live_server.url}{reverse('admin:login')}?next={reverse('admin:index')}")
    page.fill("#id_username", operator.username)
    page.fill("#id_password", "pw-" + operator.username)
    page.click("input[type=submit]")

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
