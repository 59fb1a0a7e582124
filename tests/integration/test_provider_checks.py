"""An adapter's health check (Conax WS, Generic; Conax SMS: test_conax_sms_check.py) (``check()``), against the real simulators: whether the platform
answers as configured, in a sentence a person can read."""

from datetime import timedelta

import requests
from django.utils import timezone
from rest_framework.test import APIClient

from providers import registry
from providers.extensions import Health
from providers.models import ConnectorToken


def check(provider):
    return registry.adapter_for(provider).check()


def test_conax_ws_answers_a_query(conax, conax_ws_simulator):
    health = check(conax.provider)
    assert health.ok, health.message
    assert (
        health.message
        == f"The CAS at {conax_ws_simulator.url.partition('//')[2]} answered a query."
    )
    with conax_ws_simulator.state.lock:
        assert conax_ws_simulator.state.cards == {}  # asked, nothing changed


def test_conax_ws_down_or_refusing_our_password(conax, conax_ws_simulator, monkeypatch):
    requests.post(f"{conax_ws_simulator.url}/control/down", timeout=5)
    health = check(conax.provider)
    assert not health.ok
    assert health.message.startswith(
        "Conax WS cannot be reached (the platform answered with an error): HTTP 503"
    )
    requests.post(f"{conax_ws_simulator.url}/control/up", timeout=5)
    monkeypatch.setenv("CRM_SECRET_WRONG", "not-the-password")
    provider = conax.provider
    provider.connection = {**provider.connection, "password_env": "CRM_SECRET_WRONG"}
    provider.save()
    health = check(provider)
    assert not health.ok
    assert "(authentication refused)" in health.message and "401" in health.message


def test_generic_tells_when_its_connector_last_called(catalog):
    provider = catalog.provider
    assert check(provider) == Health(None, "No check: the connector of Generic never called.")
    _token, key = ConnectorToken.issue(provider, "connector")
    connector = APIClient()
    connector.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    assert connector.get("/api/v1/generic/pending/").status_code == 200
    health = check(provider)
    assert health.ok and health.message == "The connector of Generic last called just now."
    ConnectorToken.objects.update(last_used_at=timezone.now() - timedelta(hours=3))
    health = check(provider)
    assert not health.ok and health.message == "The connector of Generic last called 3 hours ago."
    provider.connection = {**provider.connection, "mode": "push", "push_url": "http://x.invalid"}
    assert check(provider) == Health(None, "No check: Generic pushes to the connector.")
