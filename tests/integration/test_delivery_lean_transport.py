"""The Conax WS transport reads the worker's environment once, yet as requests would: a proxy
set there carries the calls to the CAS, unless NO_PROXY names the CAS's host."""

import pytest

from providers.models import ProvisioningRequest
from tests.fixtures import deliver, requests_of

pytestmark = pytest.mark.django_db

# Nothing listens on the discard port: a call sent through this proxy cannot get through.
DEAD_PROXY = "http://127.0.0.1:9"


@pytest.fixture
def catalog(conax):  # this module's catalogue, where ``subscribe`` subscribes, is Conax WS
    return conax


@pytest.fixture
def proxied(monkeypatch):
    for name in ("NO_PROXY", "no_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", DEAD_PROXY)
    monkeypatch.setenv("http_proxy", DEAD_PROXY)
    return monkeypatch


def test_a_proxy_in_the_environment_carries_the_calls(conax, subscribe, proxied):
    sub = subscribe("AGRICULTURE")
    assert deliver(conax) == 0
    pairing = ProvisioningRequest.objects.get(subscription=sub, command="CREATE_PAIRING")
    assert (pairing.state, pairing.attempts) == ("pending", 1)
    assert pairing.last_error.startswith("Attempt 1 failed: Could not load the WSDL http://")


def test_no_proxy_in_the_environment_lets_the_calls_go_straight(conax, subscribe, proxied):
    proxied.setenv("NO_PROXY", "127.0.0.1")
    sub = subscribe("AGRICULTURE")
    assert deliver(conax) == 2
    assert requests_of(sub) == [
        ("CREATE_PAIRING", "", "completed"),
        ("ADD_SUBSCRIPTIONS", "AF1", "completed"),
    ]
