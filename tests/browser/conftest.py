"""The browser tests' set-up: headless Chromium from Debian (``apt-get install chromium``;
``./dev test`` installs it when it can) driven by Playwright's Python package, against
pytest-django's live server. Playwright's own browser downloads are never used. Without either,
every test in this folder is skipped and says why."""

import os
import shutil
from pathlib import Path

import pytest
from django.db import connections

try:
    from playwright import sync_api
except ImportError:
    sync_api = None

CHROMIUM = "/usr/bin/chromium"
HERE = Path(__file__).parent


def missing() -> str | None:
    """Why these tests cannot run here, or None."""
    if sync_api is None:
        return "Playwright is not installed (pip install -c constraints.txt -e '.[test]')."
    if not (os.path.exists(CHROMIUM) and shutil.which(CHROMIUM)):
        return f"{CHROMIUM} is missing (as root: apt-get install -y chromium; ./dev test does it)."
    return None


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    reason = missing()
    if reason is None:
        return
    for item in items:
        if HERE in Path(item.path).parents:
            item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture
def browser(live_server, monkeypatch):
    # Playwright's sync API keeps an event loop in this thread; the test's own ORM calls are
    # plain synchronous code all the same.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        yield browser
        browser.close()
        # While Playwright's loop runs, the ORM keeps its connection in that loop's context;
        # close it here, or it would outlive the test and hold the test database open.
        connections.close_all()


@pytest.fixture
def page(browser):
    """A page on a 1280 x 1000 screen; a test that wants another opens its own from ``browser``."""
    return browser.new_page(viewport={"width": 1280, "height": 1000})


@pytest.fixture
def expect():
    """Playwright's assertions, which wait until what they expect shows."""
    return sync_api.expect
