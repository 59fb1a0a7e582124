"""A new PIN set from a utility (Conax WS's Reset smartcard PIN, Irdeto's Set parental PIN):
the CA simulator receives it, and nobody else ever reads it — not the Web API, not the
request's admin page, not the logs — and the request keeps it (sealed) only until answered."""

import logging
import re

import pytest
from rest_framework.test import APIClient

from providers import delivery, sealed
from providers.models import ProvisioningRequest
from tests.fixtures import deliver

pytestmark = pytest.mark.django_db

Req = ProvisioningRequest
PIN = "4826"

# Per provider: its catalogue fixture, simulator fixture, utility, the device kind its PIN
# goes to, and the simulator's record of that device.
PROVIDERS = {
    "conax_ws": ("conax", "conax_ws_simulator", "conax_ws_reset_pin", "smartcard", "cards"),
    "irdeto": ("irdeto", "irdeto_simulator", "irdeto_set_parental_pin", "stb", "clients"),
}


@pytest.fixture(params=list(PROVIDERS))
def kind(request):
    return request.param


@pytest.fixture
def catalog(request, kind):
    return request.getfixturevalue(PROVIDERS[kind][0])


@pytest.fixture
def simulator(request, kind):
    return request.getfixturevalue(PROVIDERS[kind][1]).state


@pytest.fixture
def api(agent) -> APIClient:
    client = APIClient()
    client.force_authenticate(agent)
    return client


@pytest.fixture
def sub(catalog, subscribe):
    made = subscribe("BUNDLE_A")
    deliver(catalog)
    return made


def device(sub, kind):
    return sub.installed_items.get(kind=PROVIDERS[kind][3])


def pin_at_simulator(simulator, kind, ca_id):
    return getattr(simulator, PROVIDERS[kind][4])[ca_id]["pin"]


def reset_pin(api, catalog, sub, kind) -> dict:
    fields = {"pin": PIN}
    if kind == "conax_ws":
        fields["reset_to"] = "new"
    response = api.post(
        f"/api/v1/utilities/{PROVIDERS[kind][2]}/",
        {"subscription": sub.pk, "provider": catalog.provider.pk, "fields": fields},
        format="json",
    )
    assert response.status_code == 201, response.content
    return response.json()


def shows_pin(text: str) -> bool:
    # As a value of its own: a uuid or a token may hold the same digits among letters.
    return re.search(rf"(?<![0-9A-Za-z]){PIN}(?![0-9A-Za-z])", text) is not None


@pytest.mark.usefixtures("fast_path")  # the acceptance drops the PIN on either path
def test_the_pin_reaches_the_ca_and_nothing_else_shows_it(
    api, client, agent, catalog, sub, kind, simulator, caplog
):
    caplog.set_level(logging.DEBUG)
    body = reset_pin(api, catalog, sub, kind)
    assert not shows_pin(str(body))
    (made,) = body["requests"]
    assert made["parameters"][sealed.PIN] == sealed.MASK
    request = Req.objects.get(pk=made["id"])
    # Stored sealed, never in clear, until the CA has it.
    assert "pin" not in request.parameters and sealed.unseal(request.parameters[sealed.PIN]) == PIN
    shown = api.get(f"/api/v1/requests/{request.pk}/").json()
    assert shown["parameters"][sealed.PIN] == sealed.MASK
    assert shown["created_by"] == agent.pk
    client.force_login(agent)
    page = client.get(f"/admin/providers/provisioningrequest/{request.pk}/change/")
    html = page.content.decode()
    assert page.status_code == 200 and sealed.MASK in html
    assert request.parameters[sealed.PIN] not in html and not shows_pin(html)

    deliver(catalog)
    ca_id = device(sub, kind).ca_id
    assert pin_at_simulator(simulator, kind, ca_id) == PIN
    request.refresh_from_db()
    assert request.state == "completed"
    # Answered: the request keeps no PIN, sealed or not.
    assert sealed.PIN not in request.parameters and request.parameters["subscription"]
    assert not shows_pin(str(request.parameters) + str(request.response) + request.last_error)
    assert not shows_pin(caplog.text)


def test_a_rejected_request_drops_its_pin(api, catalog, sub, kind, simulator):
    ca_id = device(sub, kind).ca_id
    controls = simulator.controls
    if kind == "conax_ws":
        controls.reject_cards = frozenset({ca_id})
    else:
        controls.reject_devices = frozenset({ca_id})
    (made,) = reset_pin(api, catalog, sub, kind)["requests"]
    deliver(catalog)
    request = Req.objects.get(pk=made["id"])
    assert request.state == "rejected"
    assert sealed.PIN not in request.parameters


def test_a_failed_request_keeps_its_sealed_pin_for_a_retry(api, catalog, sub, kind, simulator):
    simulator.controls.down = True
    (made,) = reset_pin(api, catalog, sub, kind)["requests"]
    request = Req.objects.get(pk=made["id"])
    for _attempt in range(6):  # three attempts (the fixture's), retried at once
        deliver(catalog)
    request.refresh_from_db()
    assert request.state == "failed"
    assert sealed.unseal(request.parameters[sealed.PIN]) == PIN
    simulator.controls.down = False
    assert delivery.retry(Req.objects.filter(pk=request.pk)) == 1
    deliver(catalog)
    request.refresh_from_db()
    assert request.state == "completed" and sealed.PIN not in request.parameters
    assert pin_at_simulator(simulator, kind, device(sub, kind).ca_id) == PIN


def test_the_history_says_who_reset_the_pin(api, catalog, sub, kind):
    reset_pin(api, catalog, sub, kind)
    history = api.get(f"/api/v1/subscriptions/{sub.pk}/history/").json()
    name = "Card" if kind == "conax_ws" else "Set-top box"
    serial = device(sub, kind).serial_number
    assert history[0]["changes"] == [
        f"PIN reset on {name.lower()} {serial} ({catalog.provider.name})"
    ]
    assert (history[0]["by_kind"], history[0]["by"]) == ("person", "agent")
    assert not shows_pin(str(history))
