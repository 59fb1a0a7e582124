"""Fixtures for the Conax Contego web services tests: the SOAP CAS simulator on a free port of
this process, and the Company ZX catalogue at a Conax WS provider pointing at it.

A test module takes the fixtures it uses by name (``conax = conax_ws_fixtures.conax``), which
keeps them out of ``conftest.py`` and visible where they are used.
"""

import pytest

from providers import delivery
from providers.conax_ws.simulator import Simulator
from providers.models import ProvisioningRequest
from subscriptions import actions
from subscriptions.demo import ensure_catalog

from .conftest import card_and_box

PASSWORD_ENV = "CONAX_WS_TEST_PASSWORD"
PASSWORD = "cas-test-pass"


@pytest.fixture
def simulator(monkeypatch):
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)
    sim = Simulator("crm", PASSWORD).start()
    yield sim
    sim.stop()


def connection(sim: Simulator, **extra) -> dict:
    return {
        "wsdl_url": sim.wsdl_url,
        "username": "crm",
        "password_env": PASSWORD_ENV,
        "timeout_seconds": 2,
        **extra,
    }


@pytest.fixture
def conax(db, simulator, settings):
    """The catalogue at "Conax WS", connected to the simulator; three attempts, retried fast."""
    settings.PROVISIONING_RETRY_SECONDS = 0
    catalog = ensure_catalog("Conax WS", "conax_ws")
    provider = catalog.provider
    provider.connection = connection(simulator)
    provider.parameters = {"max_attempts": 3}
    provider.full_clean()
    provider.save()
    return catalog


@pytest.fixture
def conax_subscribe(conax, account):
    """Become subscriber at Conax WS: products on a viewing point, with a card and a box."""

    def make(*product_codes, distributor="MAIN", number=None):
        dist = conax.distributors[distributor]
        return actions.become_subscriber(
            account,
            conax.types["RES"],
            [(conax.products[code], dist) for code in product_codes],
            card_and_box(dist),
            number=number,
        ).subscription

    return make


def card_of(subscription) -> str:
    return subscription.installed_items.get(kind="smartcard", removed_at=None).ca_id


def deliver(catalog) -> int:
    """Everything due, delivered in this process (Refresh the provider: tests change it)."""
    catalog.provider.refresh_from_db()
    return delivery.deliver_due(catalog.provider)


def requests_of(subscription) -> list[tuple[str, str, str]]:
    return [
        (r.command, r.ca_id, r.state)
        for r in ProvisioningRequest.objects.filter(subscription=subscription).order_by("pk")
    ]
