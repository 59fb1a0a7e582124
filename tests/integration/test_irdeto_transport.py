"""Irdeto in real time: the adapter's calls over HTTP(S) to the KMS simulator.

Each subscription action's requests and what the KMS holds after them (asked of the
simulator's state); a refusal rejected and rolled back; a KMS down, then up, getting
everything once; an access token revoked between requests; HTTPS with our client
certificate; a KMS slower than the timeout, whose repeat is applied once; a sealed PIN.
"""

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from providers import engine, provider_settings, sealed
from providers.irdeto import client
from providers.irdeto.adapter import IrdetoAdapter
from providers.models import ProvisioningRequest
from providers.simulators import TLS
from subscriptions import actions
from subscriptions.models import SubscriptionService
from tests import workers
from tests.fixtures import (
    IRDETO_SECRET,
    IRDETO_SECRET_ENV,
    card_of,
    deliver,
    device,
    irdeto_connection,
    requests_of,
)

pytestmark = pytest.mark.django_db

Req = ProvisioningRequest


@pytest.fixture
def catalog(irdeto):  # this module's catalogue, where ``subscribe`` subscribes, is Irdeto
    return irdeto


def service(sub, code):
    return sub.services.get(product__code=code, state__in=SubscriptionService.ON_STATES)


def arrivals(sim, sub) -> dict[str, int]:
    """How many times each of the subscription's requests reached the KMS, by request."""
    with sim.state.lock:
        return {
            str(uid): sim.state.requests.get(str(uid), 0)
            for uid in sub.provisioning_requests.values_list("uid", flat=True)
        }


def control(sim, what: str, **query) -> dict:
    return requests.post(f"{sim.url}/control/{what}", params=query, timeout=5).json()


# --- Each action, and what the KMS holds after it -----------------------------------------------


def test_become_subscriber_pairs_the_devices_and_entitles_the_card(
    irdeto, subscribe, irdeto_simulator
):
    sub = subscribe("BUNDLE_A")
    assert requests_of(sub) == [
        ("PAIR_SECURE_CLIENTS", "", "pending"),
        ("ADD_ENTITLEMENT", "GFA1", "pending"),
        ("ADD_ENTITLEMENT", "EFA2", "pending"),
    ]
    assert deliver(irdeto) == 3
    assert [state for _c, _id, state in requests_of(sub)] == ["completed"] * 3
    card = sub.installed_items.get(kind="smartcard")
    box = sub.installed_items.get(kind="stb")
    assert irdeto_simulator.active(card.ca_id) == ["EFA2", "GFA1"]
    (pairing,) = irdeto_simulator.state.pairings.values()
    assert pairing == {"smartcards": [card.ca_id], "stbs": [box.ca_id]}
    pair = Req.objects.get(subscription=sub, command="PAIR_SECURE_CLIENTS")
    assert pair.response["smartcards"] == [card.ca_id] and pair.response["duplicate"] is False
    card.refresh_from_db()
    assert card.initialized
    assert all(s.authorized for s in sub.services.all())
    assert set(arrivals(irdeto_simulator, sub).values()) == {1}


def test_adding_removing_and_swapping_services(irdeto, subscribe, irdeto_simulator):
    sub = subscribe("AGRICULTURE")
    deliver(irdeto)
    card = card_of(sub)

    actions.add_service(sub, irdeto.products["BUNDLE_B"], irdeto.main)
    assert deliver(irdeto) == 2
    assert irdeto_simulator.active(card) == ["AF1", "BFB2", "RFB1"]

    actions.remove_service(service(sub, "AGRICULTURE"))
    assert requests_of(sub)[-1] == ("REMOVE_ENTITLEMENT", "AF1", "pending")
    assert deliver(irdeto) == 1
    assert irdeto_simulator.active(card) == ["BFB2", "RFB1"]

    actions.swap_service(service(sub, "BUNDLE_B"), irdeto.products["BUNDLE_A"])
    assert sorted(requests_of(sub)[-4:]) == [
        ("ADD_ENTITLEMENT", "EFA2", "pending"),
        ("ADD_ENTITLEMENT", "GFA1", "pending"),
        ("REMOVE_ENTITLEMENT", "BFB2", "pending"),
        ("REMOVE_ENTITLEMENT", "RFB1", "pending"),
    ]
    assert deliver(irdeto) == 4
    assert irdeto_simulator.active(card) == ["EFA2", "GFA1"]
    # A removed entitlement stays on record with its end: the request's date.
    held = irdeto_simulator.client(card)["entitlements"]
    removal = Req.objects.filter(subscription=sub, ca_id="AF1").latest("pk")
    assert held["AF1"]["end"] == removal.created_at.isoformat()
    assert set(arrivals(irdeto_simulator, sub).values()) == {1}


def test_deactivating_and_activating_the_subscription(irdeto, subscribe, irdeto_simulator):
    sub = subscribe("BUNDLE_A")
    deliver(irdeto)
    card = card_of(sub)
    actions.deactivate(sub)
    assert sorted(requests_of(sub)[3:]) == [
        ("REMOVE_ENTITLEMENT", "EFA2", "pending"),
        ("REMOVE_ENTITLEMENT", "GFA1", "pending"),
    ]
    assert deliver(irdeto) == 2
    assert irdeto_simulator.active(card) == []
    actions.activate(sub)
    assert deliver(irdeto) == 2
    assert irdeto_simulator.active(card) == ["EFA2", "GFA1"]
    assert all(s.authorized for s in sub.services.all())


def test_swapping_the_card_moves_the_pairing_and_the_entitlements(
    irdeto, subscribe, irdeto_simulator
):
    sub = subscribe("AGRICULTURE")
    deliver(irdeto)
    old = sub.installed_items.get(kind="smartcard")
    box = sub.installed_items.get(kind="stb")
    new = device("smartcard", old.distributor)
    actions.swap_installed_item(old, new.serial_number, new.ca_id)
    deliver(irdeto)
    assert not Req.objects.filter(subscription=sub).exclude(state="completed").exists()
    assert irdeto_simulator.active(new.ca_id) == ["AF1"]
    assert irdeto_simulator.active(old.ca_id) == []
    with irdeto_simulator.state.lock:
        pairing_id = irdeto_simulator.state.pairing_of(new.ca_id)
        assert irdeto_simulator.state.pairings[pairing_id]["stbs"] == [box.ca_id]
        # The old card is left out of the box's pairing (alone in what is left of it).
        assert irdeto_simulator.state.pairing_of(old.ca_id) != pairing_id
    assert sub.installed_items.get(ca_id=new.ca_id).initialized


def test_adding_a_card_pairs_it_with_the_others_and_entitles_it(
    irdeto, subscribe, irdeto_simulator
):
    sub = subscribe("AGRICULTURE")
    deliver(irdeto)
    first = card_of(sub)
    spec = device("smartcard", irdeto.main)
    actions.add_installed_item(sub, spec)
    commands = [c for c, _id, state in requests_of(sub)[2:]]
    assert commands == ["ADD_TO_PAIRING", "ADD_ENTITLEMENT"]
    assert deliver(irdeto) == 2
    assert irdeto_simulator.active(spec.ca_id) == ["AF1"]
    assert irdeto_simulator.active(first) == ["AF1"]
    with irdeto_simulator.state.lock:
        state = irdeto_simulator.state
        assert state.pairing_of(spec.ca_id) == state.pairing_of(first)
    assert sub.installed_items.get(ca_id=spec.ca_id).initialized


# --- Refusals ----------------------------------------------------------------------------------


def test_a_refusal_rejects_the_request_with_the_kms_code_and_rolls_the_service_back(
    irdeto, subscribe, irdeto_simulator
):
    sub = subscribe("AGRICULTURE")
    deliver(irdeto)
    card = card_of(sub)
    control(irdeto_simulator, "reject", devices=card)
    actions.add_service(sub, irdeto.products["BUNDLE_B"], irdeto.main)
    deliver(irdeto)
    rejected = Req.objects.filter(
        subscription=sub, state="rejected", command="ADD_ENTITLEMENT"
    ).order_by("pk")
    assert [(r.command, r.ca_id, r.error_code, r.last_error) for r in rejected] == [
        ("ADD_ENTITLEMENT", ca_id, "REFUSED_BY_KMS", f"Secure client {card} is blocked.")
        for ca_id in ("RFB1", "BFB2")
    ]
    bundle = sub.services.get(product__code="BUNDLE_B")
    assert bundle.state == "not_effective" and not bundle.authorized
    rollback = sub.events.filter(action="provisioning_rollback").order_by("pk").first()
    assert "REFUSED_BY_KMS" in rollback.reason
    control(irdeto_simulator, "reject")
    assert irdeto_simulator.active(card) == ["AF1"]


def test_a_device_the_kms_does_not_know_is_refused_with_its_code(
    irdeto, subscribe, irdeto_simulator
):
    sub = subscribe("AGRICULTURE")
    deliver(irdeto)
    control(irdeto_simulator, "clear")  # the KMS lost its data: it no longer knows the card
    actions.add_service(sub, irdeto.products["BUNDLE_A"], irdeto.main)
    deliver(irdeto)
    first = Req.objects.get(subscription=sub, ca_id="GFA1", command="ADD_ENTITLEMENT")
    assert (first.state, first.error_code, first.last_error) == (
        "rejected",
        "UNKNOWN_SECURE_CLIENT",
        f"Secure client {card_of(sub)} is unknown to the KMS.",
    )
    assert sub.services.get(product__code="BUNDLE_A").state == "not_effective"


# --- Down, tokens, slow -------------------------------------------------------------------------


def test_a_kms_down_then_up_gets_every_request_once_and_in_order(
    irdeto, subscribe, irdeto_simulator, settings
):
    settings.PROVISIONING_RETRY_SECONDS = 1
    irdeto.provider.parameters = {"max_attempts": 5}
    irdeto.provider.save()
    control(irdeto_simulator, "down")
    subs = [subscribe("BUNDLE_A"), subscribe("BUNDLE_B"), subscribe("AGRICULTURE")]
    assert deliver(irdeto) == 0
    pending = Req.objects.filter(state="pending")
    assert pending.count() == 8
    tried = pending.filter(attempts=1).order_by("pk")
    assert tried.count() == 2  # two failures in a row: the KMS is down, the rest waits
    assert tried.first().last_error == (
        f"Attempt 1 failed: HTTP 503 from the KMS fetching a token at {irdeto_simulator.token_url}"
    )
    control(irdeto_simulator, "up")
    Req.objects.update(next_attempt_at=None)  # the backoff has passed
    assert deliver(irdeto) == 8
    assert set(Req.objects.values_list("state", flat=True)) == {"completed"}
    for sub in subs:
        assert set(arrivals(irdeto_simulator, sub).values()) == {1}
        with irdeto_simulator.state.lock:
            sent = [
                r["request_id"]
                for r in irdeto_simulator.state.received
                if card_of(sub) in r["devices"]
            ]
        in_order = sub.provisioning_requests.order_by("pk").values_list("uid", flat=True)
        assert sent == [str(u) for u in in_order]
    assert irdeto_simulator.active(card_of(subs[0])) == ["EFA2", "GFA1"]


def test_a_token_revoked_between_requests_is_renewed_and_nothing_lost_or_repeated(
    irdeto, subscribe, irdeto_simulator
):
    first = subscribe("BUNDLE_A")
    assert deliver(irdeto) == 3
    assert control(irdeto_simulator, "expire-tokens")["tokens"]["live"] == 0
    second = subscribe("BUNDLE_B")
    actions.add_service(first, irdeto.products["AGRICULTURE"], irdeto.main)
    assert deliver(irdeto) == 4
    assert set(Req.objects.values_list("state", flat=True)) == {"completed"}
    tokens = requests.get(f"{irdeto_simulator.url}/control/state", timeout=5).json()["tokens"]
    # The first call with the revoked token got 401; a new token, and the call once more.
    assert (tokens["fetched"], tokens["refused"]) == (2, 1)
    for sub in (first, second):
        assert set(arrivals(irdeto_simulator, sub).values()) == {1}
    assert irdeto_simulator.active(card_of(first)) == ["AF1", "EFA2", "GFA1"]
    assert irdeto_simulator.active(card_of(second)) == ["BFB2", "RFB1"]


def test_a_token_is_renewed_shortly_before_it_expires(irdeto, subscribe):
    from providers.irdeto.simulator import Simulator

    sim = Simulator("crm", IRDETO_SECRET, token_ttl=2).start()
    try:
        irdeto.provider.connection = irdeto_connection(sim)
        irdeto.provider.save()
        sub = subscribe("AGRICULTURE")
        assert deliver(irdeto) == 2
        # Renewed a tenth of its life before the KMS lets it go: never refused.
        time.sleep(1.85)
        actions.add_service(sub, irdeto.products["BUNDLE_B"], irdeto.main)
        assert deliver(irdeto) == 2
        tokens = requests.get(f"{sim.url}/control/state", timeout=5).json()["tokens"]
        assert (tokens["fetched"], tokens["refused"]) == (2, 0)
        assert sim.active(card_of(sub)) == ["AF1", "BFB2", "RFB1"]
    finally:
        sim.stop()


def test_a_slow_kms_times_out_and_the_repeat_is_applied_once(
    irdeto, subscribe, irdeto_simulator, settings
):
    settings.PROVISIONING_RETRY_SECONDS = 60
    irdeto.provider.connection = irdeto_connection(irdeto_simulator, timeout_seconds=1)
    irdeto.provider.save()
    client.client_for(irdeto.provider).token()  # the token in time; then the calls are slow
    sub = subscribe("AGRICULTURE")
    control(irdeto_simulator, "slow", seconds="1.5")  # applied, but answered too late
    deliver(irdeto)
    pairing = Req.objects.get(subscription=sub, command="PAIR_SECURE_CLIENTS")
    assert pairing.state == "pending"
    assert pairing.last_error == "Attempt 1 failed: No answer within 1 s for pairings/create"
    control(irdeto_simulator, "slow", seconds="0")
    Req.objects.filter(subscription=sub).update(next_attempt_at=None)
    deliver(irdeto)
    assert [r[2] for r in requests_of(sub)] == ["completed", "completed"]
    pairing.refresh_from_db()
    assert pairing.response["duplicate"] is True  # the KMS had applied it the first time
    assert arrivals(irdeto_simulator, sub)[str(pairing.uid)] == 2
    assert len(irdeto_simulator.state.pairings) == 1
    assert irdeto_simulator.active(card_of(sub)) == ["AF1"]


def test_wrong_client_credentials_fail_at_once_with_the_reason(irdeto, subscribe, monkeypatch):
    monkeypatch.setenv("CRM_SECRET_IRDETO_WRONG", "not-the-secret")
    irdeto.provider.connection = {
        **irdeto.provider.connection,
        "client_secret_env": "CRM_SECRET_IRDETO_WRONG",
    }
    provider_settings.full_clean(irdeto.provider)
    irdeto.provider.save()
    sub = subscribe("AGRICULTURE")
    deliver(irdeto)
    pairing = Req.objects.get(subscription=sub, command="PAIR_SECURE_CLIENTS")
    assert (pairing.state, pairing.attempts) == ("failed", 1)
    assert pairing.last_error.startswith(
        "Attempt 1 failed: The KMS refused our client credentials (HTTP 401, invalid_client) "
        "fetching a token at"
    )
    assert "not-the-secret" not in pairing.last_error


def test_one_client_per_provider_keeps_its_connection(irdeto, subscribe, irdeto_simulator):
    first = client.client_for(irdeto.provider)
    assert client.client_for(irdeto.provider) is first
    subscribe("BUNDLE_A")
    subscribe("BUNDLE_B")
    assert deliver(irdeto) == 6
    assert irdeto_simulator.server.accepted == 1  # the token and six calls, kept alive
    irdeto.provider.connection = irdeto_connection(irdeto_simulator, timeout_seconds=3)
    irdeto.provider.save()
    assert client.client_for(irdeto.provider) is not first  # settings changed: made anew


# --- HTTPS with our client certificate ---------------------------------------------------------


@pytest.fixture
def irdeto_tls_simulator(monkeypatch, pki):
    from providers.irdeto.simulator import Simulator

    monkeypatch.setenv(IRDETO_SECRET_ENV, IRDETO_SECRET)
    sim = Simulator("crm", IRDETO_SECRET, tls=TLS(*pki.server, client_ca=str(pki.authority.path)))
    yield sim.start()
    sim.stop()


def connect_tls(irdeto, sim, pki, certificate=None) -> None:
    connection = irdeto_connection(sim, server_ca_bundle_path=str(pki.authority.path))
    if certificate:
        connection["client_certificate_path"], connection["client_key_path"] = certificate
    irdeto.provider.connection = connection
    provider_settings.full_clean(irdeto.provider)
    irdeto.provider.save()


def test_over_https_with_our_client_certificate_the_kms_takes_the_requests(
    irdeto, subscribe, irdeto_tls_simulator, pki
):
    assert irdeto_tls_simulator.url.startswith("https://127.0.0.1:")
    connect_tls(irdeto, irdeto_tls_simulator, pki, certificate=pki.client)
    sub = subscribe("AGRICULTURE")
    assert deliver(irdeto) == 2
    assert [r[2] for r in requests_of(sub)] == ["completed", "completed"]
    assert irdeto_tls_simulator.active(card_of(sub)) == ["AF1"]
    assert IrdetoAdapter(irdeto.provider).check().ok


@pytest.mark.parametrize("certificate", [None, "stranger"])
def test_without_a_certificate_the_kms_takes_the_request_fails_at_once_with_why(
    irdeto, subscribe, irdeto_tls_simulator, pki, certificate
):
    connect_tls(irdeto, irdeto_tls_simulator, pki, certificate=certificate and pki.stranger)
    sub = subscribe("AGRICULTURE")
    deliver(irdeto)
    pairing = Req.objects.get(subscription=sub, command="PAIR_SECURE_CLIENTS")
    assert (pairing.state, pairing.attempts) == ("failed", 1)
    expected = (
        "The KMS requires a TLS client certificate fetching a token"
        if certificate is None
        else "The KMS refused our TLS client certificate fetching a token"
    )
    assert pairing.last_error.startswith(f"Attempt 1 failed: {expected}")


# --- Check, and a sealed PIN -----------------------------------------------------------------


def test_check_says_whether_the_kms_answers(irdeto, irdeto_simulator):
    health = IrdetoAdapter(irdeto.provider).check()
    address = irdeto_simulator.url.removeprefix("http://")
    assert (health.ok, health.message) == (True, f"The KMS at {address} answered a query.")
    with irdeto_simulator.state.lock:
        assert irdeto_simulator.state.clients == {}  # nothing changed there
    irdeto_simulator.stop()
    health = IrdetoAdapter(irdeto.provider).check()
    assert not health.ok
    assert health.message.startswith(
        "Irdeto cannot be reached (connection refused): Could not connect to the KMS"
    )


def test_a_sealed_pin_reaches_the_kms_and_nowhere_else(irdeto, subscribe, irdeto_simulator):
    sub = subscribe("AGRICULTURE")
    deliver(irdeto)
    card = sub.installed_items.get(kind="smartcard")
    request = engine.create_request(
        irdeto.provider,
        "SET_PARENTAL_PIN",
        {"device_ca_id": card.ca_id, "pin_sealed": sealed.seal("4321")},
        trigger="utility",
        subscription=sub,
        installed_item=card,
        deliver_now=False,
    )
    deliver(irdeto)
    request.refresh_from_db()
    assert request.state == "completed"
    assert irdeto_simulator.client(card.ca_id)["pin"] == "4321"
    assert "4321" not in str(request.parameters) + str(request.response)


def test_an_unknown_command_fails_at_once(irdeto, subscribe):
    sub = subscribe("AGRICULTURE")
    deliver(irdeto)
    card = sub.installed_items.get(kind="smartcard")
    request = engine.create_request(
        irdeto.provider,
        "FORMAT_HARD_DISK",
        {"device_ca_id": card.ca_id},
        trigger="utility",
        subscription=sub,
        installed_item=card,
        deliver_now=False,
    )
    deliver(irdeto)
    request.refresh_from_db()
    assert request.state == "failed"
    assert request.last_error.startswith(
        "Attempt 1 failed: FORMAT_HARD_DISK is not an Irdeto KMS command."
    )


# --- Through a real worker ---------------------------------------------------------------------


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_actions_reach_the_kms_through_a_real_worker_with_its_secret_from_the_environment(
    irdeto, subscribe, irdeto_simulator, tmp_path
):
    worker = workers.start(tmp_path)  # the client secret's variable is in its environment
    log = tmp_path / "worker.log"

    def all_completed() -> bool:
        found = set(Req.objects.values_list("state", flat=True))
        return found == {"completed"}

    try:
        sub = subscribe("BUNDLE_A")  # commits: the worker is woken to send
        workers.wait_until(all_completed, seconds=60, what="delivery", logs=[log])
        control(irdeto_simulator, "expire-tokens")  # the worker's token, revoked
        actions.add_service(sub, irdeto.products["AGRICULTURE"], irdeto.main)
        workers.wait_until(all_completed, seconds=60, what="delivery", logs=[log])
    finally:
        workers.stop(worker)
    assert irdeto_simulator.active(card_of(sub)) == ["AF1", "EFA2", "GFA1"]
    assert set(arrivals(irdeto_simulator, sub).values()) == {1}
    tokens = requests.get(f"{irdeto_simulator.url}/control/state", timeout=5).json()["tokens"]
    assert (tokens["fetched"], tokens["refused"]) == (2, 1)
    assert IRDETO_SECRET not in log.read_text()


class Flood(BaseHTTPRequestHandler):
    """A KMS gone wrong: every call answered with 2 MiB."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = b'{"requestId": "' + b"x" * (2 << 20) + b'"}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def test_an_answer_too_large_is_refused_unread_and_fails_at_once(
    irdeto, subscribe, irdeto_simulator
):
    flood = ThreadingHTTPServer(("127.0.0.1", 0), Flood)
    threading.Thread(target=flood.serve_forever, daemon=True).start()
    try:
        irdeto.provider.connection = irdeto_connection(
            irdeto_simulator,
            endpoint_url=f"http://127.0.0.1:{flood.server_address[1]}",
            token_url=irdeto_simulator.token_url,  # tokens from the KMS, calls to the flood
        )
        provider_settings.full_clean(irdeto.provider)
        irdeto.provider.save()
        sub = subscribe("AGRICULTURE")
        deliver(irdeto)
    finally:
        flood.shutdown()
        flood.server_close()
    pairing = Req.objects.get(subscription=sub, command="PAIR_SECURE_CLIENTS")
    assert (pairing.state, pairing.attempts) == ("failed", 1)
    assert pairing.last_error.startswith(
        "Attempt 1 failed: Refused the KMS's answer for pairings/create: over 1048576 bytes, "
        "never read"
    )
