"""Conax Contego web services over real SOAP: the zeep client against the CAS simulator.

The seed's bundle examples end to end, checked by asking the CAS what each card holds; a
fault rejected and rolled back; a CAS down, slow, or down past the retry limit and repaired
by a reset; a repeated RequestId applied once; a WSDL or an answer with a DTD refused.
"""

import threading
import uuid
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.utils import timezone

from providers import engine, provider_settings, registry
from providers.conax_ws import client
from providers.conax_ws.adapter import ConaxWSAdapter
from providers.conax_ws.client import WSDL_FILE
from providers.models import ProvisioningRequest
from runs import services as runs
from runs.models import ProcessRun, RunDefinition
from subscriptions import actions
from subscriptions.models import SubscriptionService
from tests.fixtures import card_of, conax_ws_connection, deliver, requests_of

pytestmark = pytest.mark.django_db

Req = ProvisioningRequest


@pytest.fixture
def catalog(conax):  # this module's catalogue, where ``subscribe`` subscribes, is Conax WS
    return conax


def active(catalog, card: str) -> list[str]:
    """What the CAS says the card holds, asked over SOAP (Get Active Subscriptions)."""
    answer = client.client_for(catalog.provider).call(
        "GetActiveSubscriptions", RequestId=str(uuid.uuid4()), CaClientId=card
    )
    return sorted(s["ProductId"] for s in answer.get("Subscription") or [])


def service(sub, code):
    return sub.services.get(product__code=code, state__in=SubscriptionService.ON_STATES)


# --- The seed's examples ------------------------------------------------------------------------


def test_become_subscriber_with_bundle_a_pairs_and_entitles_the_card(conax, subscribe):
    sub = subscribe("BUNDLE_A")
    assert requests_of(sub) == [
        ("CREATE_PAIRING", "", "pending"),
        ("ADD_SUBSCRIPTIONS", "GFA1", "pending"),
        ("ADD_SUBSCRIPTIONS", "EFA2", "pending"),
    ]
    assert deliver(conax) == 3
    assert requests_of(sub) == [
        ("CREATE_PAIRING", "", "completed"),
        ("ADD_SUBSCRIPTIONS", "GFA1", "completed"),
        ("ADD_SUBSCRIPTIONS", "EFA2", "completed"),
    ]
    card, box = (
        sub.installed_items.get(kind="smartcard"),
        sub.installed_items.get(kind="stb"),
    )
    assert active(conax, card.ca_id) == ["EFA2", "GFA1"]
    pairing = Req.objects.get(subscription=sub, command="CREATE_PAIRING").response
    assert pairing["cards"] == [card.ca_id] and pairing["modules"] == [box.ca_id]
    card.refresh_from_db()
    assert card.initialized
    assert all(s.authorized for s in sub.services.all())


def test_swapping_bundle_a_for_agriculture(conax, subscribe):
    sub = subscribe("BUNDLE_A")
    deliver(conax)
    actions.swap_service(service(sub, "BUNDLE_A"), conax.products["AGRICULTURE"])
    assert sorted(requests_of(sub)[3:]) == [
        ("ADD_SUBSCRIPTIONS", "AF1", "pending"),
        ("CANCEL_SUBSCRIPTIONS", "EFA2", "pending"),
        ("CANCEL_SUBSCRIPTIONS", "GFA1", "pending"),
    ]
    assert deliver(conax) == 3
    assert active(conax, card_of(sub)) == ["AF1"]


def test_swapping_bundle_a_for_bundle_b(conax, subscribe):
    sub = subscribe("BUNDLE_A")
    other = subscribe("AGRICULTURE")  # another card, untouched by the swap
    deliver(conax)
    actions.swap_service(service(sub, "BUNDLE_A"), conax.products["BUNDLE_B"])
    assert sorted(requests_of(sub)[3:]) == [
        ("ADD_SUBSCRIPTIONS", "BFB2", "pending"),
        ("ADD_SUBSCRIPTIONS", "RFB1", "pending"),
        ("CANCEL_SUBSCRIPTIONS", "EFA2", "pending"),
        ("CANCEL_SUBSCRIPTIONS", "GFA1", "pending"),
    ]
    assert deliver(conax) == 4
    assert active(conax, card_of(sub)) == ["BFB2", "RFB1"]
    assert active(conax, card_of(other)) == ["AF1"]


# --- Faults, duplicates --------------------------------------------------------------------------


def test_a_soap_fault_rejects_the_request_and_rolls_the_service_back(
    conax, subscribe, conax_ws_simulator
):
    sub = subscribe("AGRICULTURE")
    deliver(conax)
    card = card_of(sub)
    conax_ws_simulator.state.controls.reject_cards = frozenset({card})
    actions.add_service(sub, conax.products["BUNDLE_B"], conax.main)
    deliver(conax)
    rejected = Req.objects.filter(
        subscription=sub, state="rejected", command="ADD_SUBSCRIPTIONS"
    ).order_by("pk")
    assert [(r.command, r.ca_id, r.error_code, r.last_error) for r in rejected] == [
        ("ADD_SUBSCRIPTIONS", "RFB1", "CA_CLIENT_BLOCKED", f"CA client {card} is blocked."),
        ("ADD_SUBSCRIPTIONS", "BFB2", "CA_CLIENT_BLOCKED", f"CA client {card} is blocked."),
    ]
    bundle = sub.services.get(product__code="BUNDLE_B")
    assert bundle.state == "not_effective" and not bundle.authorized
    rollback = sub.events.filter(action="provisioning_rollback").order_by("pk").first()
    assert rollback.reason.startswith(f"Request {rejected[0].uid} (ADD_SUBSCRIPTIONS) rejected")
    assert "CA_CLIENT_BLOCKED" in rollback.reason
    conax_ws_simulator.state.controls.reject_cards = frozenset()
    assert active(conax, card) == ["AF1"]


def test_a_card_the_cas_does_not_know_is_refused_with_its_fault(
    conax, subscribe, conax_ws_simulator
):
    sub = subscribe("AGRICULTURE")
    deliver(conax)
    conax_ws_simulator.state.clear()  # the CAS lost its data: it no longer knows the card
    actions.add_service(sub, conax.products["BUNDLE_A"], conax.main)
    deliver(conax)
    first = Req.objects.get(subscription=sub, ca_id="GFA1", command="ADD_SUBSCRIPTIONS")
    assert (first.state, first.error_code, first.last_error) == (
        "rejected",
        "UNKNOWN_CA_CLIENT",
        f"CA client {card_of(sub)} is unknown to the CAS.",
    )
    assert sub.services.get(product__code="BUNDLE_A").state == "not_effective"


def test_the_same_request_id_twice_is_applied_once(conax, subscribe, conax_ws_simulator):
    sub = subscribe("AGRICULTURE")
    deliver(conax)
    card = sub.installed_items.get(kind="smartcard")
    request = engine.create_request(
        conax.provider,
        "SEND_MAIL_MESSAGE_TO_CLIENT",
        {"card_ca_id": card.ca_id, "text": "Your bill is ready."},
        trigger="utility",
        subscription=sub,
        installed_item=card,
        deliver_now=False,
    )
    adapter = ConaxWSAdapter(conax.provider)
    first, second = adapter.send(request), adapter.send(request)
    assert first.accepted and second.accepted
    assert (first.response["duplicate"], second.response["duplicate"]) == (False, True)
    with conax_ws_simulator.state.lock:
        assert conax_ws_simulator.state.requests[str(request.uid)] == 2
        assert conax_ws_simulator.state.duplicates == 1
        assert [m["text"] for m in conax_ws_simulator.state.cards[card.ca_id]["mailbox"]] == [
            "Your bill is ready."
        ]


def test_a_slow_cas_times_out_and_the_repeat_is_not_applied_twice(
    conax, subscribe, conax_ws_simulator, settings
):
    settings.PROVISIONING_RETRY_SECONDS = 60
    conax.provider.connection = conax_ws_connection(conax_ws_simulator, timeout_seconds=1)
    conax.provider.save()
    sub = subscribe("AGRICULTURE")
    conax_ws_simulator.state.controls.slow_seconds = 1.5  # applied, but answered too late
    deliver(conax)
    pairing = Req.objects.get(subscription=sub, command="CREATE_PAIRING")
    assert pairing.state == "pending"
    assert pairing.last_error == "Attempt 1 failed: No answer within 1 s for CreatePairing"
    conax_ws_simulator.state.controls.slow_seconds = 0
    Req.objects.filter(subscription=sub).update(next_attempt_at=None)
    deliver(conax)
    assert [r[2] for r in requests_of(sub)] == ["completed", "completed"]
    pairing.refresh_from_db()
    assert pairing.response["duplicate"] is True  # the CAS had applied it the first time
    assert len(conax_ws_simulator.state.pairings) == 1
    assert active(conax, card_of(sub)) == ["AF1"]


# --- Down, retried, failed, reset -------------------------------------------------------------


def test_a_cas_that_does_not_listen_is_retried_with_the_reason(
    conax, subscribe, conax_ws_simulator, settings
):
    settings.PROVISIONING_RETRY_SECONDS = 60
    deliver(conax)
    client.client_for(conax.provider)  # the WSDL loaded while the CAS was there
    address = conax_ws_simulator.url.removeprefix("http://")
    conax_ws_simulator.stop()
    sub = subscribe("AGRICULTURE")
    deliver(conax)
    pairing = Req.objects.get(subscription=sub, command="CREATE_PAIRING")
    assert (pairing.state, pairing.attempts) == ("pending", 1)  # to be sent again
    assert pairing.last_error == (
        f"Attempt 1 failed: Could not connect to the CAS at {address} for CreatePairing: "
        "Connection refused"
    )


def test_a_cas_down_during_actions_gets_every_request_in_order_when_it_is_back(
    conax, subscribe, conax_ws_simulator, settings
):
    settings.PROVISIONING_RETRY_SECONDS = 1
    conax.provider.parameters = {"max_attempts": 5}
    conax.provider.save()
    conax_ws_simulator.state.controls.down = True
    subs = [subscribe("BUNDLE_A"), subscribe("BUNDLE_B"), subscribe("BUNDLE_B")]
    assert deliver(conax) == 0
    pending = Req.objects.filter(state="pending")
    assert pending.count() == 9
    # Two requests were tried: a second failure in a row says the CAS is down, and the rest
    # waits with it, unsent (each card's later requests behind its first one).
    assert sorted(pending.values_list("command", "attempts")) == [
        *[("ADD_SUBSCRIPTIONS", 0)] * 6,
        ("CREATE_PAIRING", 0),
        ("CREATE_PAIRING", 1),
        ("CREATE_PAIRING", 1),
    ]
    for sub in subs[:2]:
        assert Req.objects.get(subscription=sub, command="CREATE_PAIRING").last_error == (
            "Attempt 1 failed: HTTP 503 from the CAS for CreatePairing"
        )
    assert Req.objects.get(subscription=subs[2], command="CREATE_PAIRING").last_error == ""
    conax_ws_simulator.state.controls.down = False
    Req.objects.update(next_attempt_at=None)  # the backoff has passed
    assert deliver(conax) == 9
    assert set(Req.objects.values_list("state", flat=True)) == {"completed"}
    for sub in subs:
        sent = [
            r["request_id"] for r in conax_ws_simulator.state.received if card_of(sub) in r["cards"]
        ]
        in_order = [
            str(u) for u in sub.provisioning_requests.order_by("pk").values_list("uid", flat=True)
        ]
        assert sent == in_order
    assert active(conax, card_of(subs[0])) == ["EFA2", "GFA1"]
    assert active(conax, card_of(subs[1])) == ["BFB2", "RFB1"]


def test_down_past_the_retry_limit_fails_and_a_reset_run_repairs_exactly_those(
    conax, subscribe, conax_ws_simulator
):
    fine = subscribe("AGRICULTURE")
    deliver(conax)
    conax_ws_simulator.state.controls.down = True
    lost = [subscribe("BUNDLE_A"), subscribe("BUNDLE_B")]
    # No backoff in these tests. Each delivery stops at the first failure (the CAS is down);
    # the sweeper would wake the next one: three attempts each, then Failed.
    for _ in range(6 * 3):
        deliver(conax)
    failed = Req.objects.filter(state="failed")
    assert failed.count() == 6
    assert set(failed.values_list("subscription", flat=True)) == {s.pk for s in lost}
    assert failed.filter(command="CREATE_PAIRING").first().last_error == (
        "Attempt 3 failed: HTTP 503 from the CAS for CreatePairing. Gave up after 3 attempts."
    )
    conax_ws_simulator.state.controls.down = False
    definition = RunDefinition.objects.create(
        name="Reset after the outage",
        run_type="reset_subscriptions",
        provider=conax.provider,
        run_at=timezone.now() + timedelta(hours=1),
    )
    run = runs.execute(definition.pk, ProcessRun.Trigger.RUN_NOW)
    assert (run.status, run.examined, run.created) == ("completed", 3, 6)
    made = Req.objects.filter(process_run=run)
    assert set(made.values_list("subscription", flat=True)) == {s.pk for s in lost}
    assert deliver(conax) == 6
    assert active(conax, card_of(lost[0])) == ["EFA2", "GFA1"]
    assert active(conax, card_of(lost[1])) == ["BFB2", "RFB1"]
    assert active(conax, card_of(fine)) == ["AF1"]
    assert not made.exclude(state="completed").exists()


def test_one_client_per_provider_keeps_its_connection_to_the_cas(
    conax, subscribe, conax_ws_simulator
):
    first = subscribe("BUNDLE_A")
    second = subscribe("BUNDLE_B")
    assert deliver(conax) == 6
    assert active(conax, card_of(first)) == ["EFA2", "GFA1"]
    assert active(conax, card_of(second)) == ["BFB2", "RFB1"]
    # The WSDL over the session's connection; the eight calls over one kept-alive connection.
    assert conax_ws_simulator.server.accepted == 2


def test_a_changed_setting_makes_a_new_client_and_bad_credentials_fail_at_once(
    conax, subscribe, conax_ws_simulator, monkeypatch
):
    first = client.client_for(conax.provider)
    assert client.client_for(conax.provider) is first  # parsed once, reused
    monkeypatch.setenv("CRM_SECRET_CONAX_WS_WRONG", "not-the-password")
    conax.provider.connection = {
        # The shipped WSDL, pointed at the simulator by the endpoint URL.
        "endpoint_url": conax_ws_simulator.url,
        "username": "crm",
        "password_env": "CRM_SECRET_CONAX_WS_WRONG",
    }
    provider_settings.full_clean(conax.provider)
    conax.provider.save()
    assert client.client_for(conax.provider) is not first
    sub = subscribe("AGRICULTURE")
    deliver(conax)
    pairing = Req.objects.get(subscription=sub, command="CREATE_PAIRING")
    assert (pairing.state, pairing.attempts) == ("failed", 1)
    assert pairing.last_error.startswith(
        "Attempt 1 failed: The CAS refused our credentials (HTTP 401) for CreatePairing"
    )


# --- XML that is never parsed -----------------------------------------------------------------

DTD = '<!DOCTYPE definitions [<!ENTITY secret SYSTEM "file:///etc/passwd">]>\n'
BOMB = '<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY secret "&lol;&lol;&lol;&lol;">]>\n'


class SchemaHost(BaseHTTPRequestHandler):
    """A host a WSDL imports a schema from; it notes every request."""

    SCHEMA = (
        b'<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema" targetNamespace="urn:extra">'
        b'<xs:element name="Note" type="xs:string"/></xs:schema>'
    )
    seen: list = []

    def log_message(self, *args):
        pass

    def do_GET(self):
        self.seen.append(self.path)
        self.send_response(200)
        self.send_header("Content-Type", "text/xml")
        self.send_header("Content-Length", str(len(self.SCHEMA)))
        self.end_headers()
        self.wfile.write(self.SCHEMA)


def test_a_wsdl_that_imports_from_the_network_is_refused_and_nothing_fetched(
    conax, subscribe, tmp_path
):
    host = ThreadingHTTPServer(("127.0.0.1", 0), SchemaHost)
    threading.Thread(target=host.serve_forever, daemon=True).start()
    schema = f"http://127.0.0.1:{host.server_address[1]}/extra.xsd"
    opening = 'elementFormDefault="qualified">'
    wsdl = tmp_path / "importing.wsdl"
    wsdl.write_text(
        WSDL_FILE.read_text().replace(
            opening, f'{opening}<xs:import namespace="urn:extra" schemaLocation="{schema}"/>', 1
        )
    )
    try:
        conax.provider.connection = {**conax.provider.connection, "wsdl_url": str(wsdl)}
        conax.provider.save()
        sub = subscribe("AGRICULTURE")
        deliver(conax)
    finally:
        host.shutdown()
        host.server_close()
    pairing = Req.objects.get(subscription=sub, command="CREATE_PAIRING")
    assert (pairing.state, pairing.attempts) == ("failed", 1)
    assert pairing.last_error.startswith(
        f"Attempt 1 failed: Refused the WSDL at {wsdl}: it carries an external reference, "
        f"which is never parsed (ExternalReferenceForbidden(url='{schema}'))"
    )
    assert SchemaHost.seen == []  # nothing fetched (nor our credentials sent) from there


@pytest.mark.parametrize("doctype", [DTD, BOMB], ids=["external-entity", "entity-expansion"])
def test_a_wsdl_with_a_dtd_or_entities_is_refused(conax, subscribe, tmp_path, doctype):
    wsdl = WSDL_FILE.read_text().replace("\n", "\n" + doctype, 1)
    path = tmp_path / "evil.wsdl"
    path.write_text(wsdl)
    conax.provider.connection = {**conax.provider.connection, "wsdl_url": str(path)}
    conax.provider.save()
    sub = subscribe("AGRICULTURE")
    deliver(conax)
    pairing = Req.objects.get(subscription=sub, command="CREATE_PAIRING")
    assert pairing.state == "failed" and pairing.attempts == 1  # permanent: never retried
    assert pairing.last_error.startswith(
        f"Attempt 1 failed: Refused the WSDL at {path}: it carries a DTD, which is never parsed"
    )


class EvilCas(BaseHTTPRequestHandler):
    """Answers every SOAP call with an acknowledgement that carries a DTD."""

    body = b""

    def log_message(self, *args):
        pass

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(200)
        self.send_header("Content-Type", "text/xml")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)


@pytest.mark.parametrize("doctype", [DTD, BOMB], ids=["external-entity", "entity-expansion"])
def test_an_answer_with_a_dtd_or_entities_is_refused(conax, subscribe, doctype):
    handler = type(
        "Handler",
        (EvilCas,),
        {
            "body": (
                '<?xml version="1.0"?>\n' + doctype + "<soap:Envelope xmlns:soap="
                '"http://schemas.xmlsoap.org/soap/envelope/"><soap:Body>'
                '<cx:CreatePairingResponse xmlns:cx="http://www.conax.com/contego/ca-server/'
                'webservices/7.5"><cx:RequestId>&secret;</cx:RequestId>'
                "</cx:CreatePairingResponse></soap:Body></soap:Envelope>"
            ).encode()
        },
    )
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        conax.provider.connection = {
            **conax.provider.connection,
            "wsdl_url": "",
            "endpoint_url": f"http://127.0.0.1:{server.server_address[1]}",
        }
        conax.provider.save()
        sub = subscribe("AGRICULTURE")
        deliver(conax)
    finally:
        server.shutdown()
        server.server_close()
    pairing = Req.objects.get(subscription=sub, command="CREATE_PAIRING")
    assert (pairing.state, pairing.attempts) == ("failed", 1)
    assert pairing.last_error.startswith(
        "Attempt 1 failed: Refused the CAS's answer for CreatePairing: it carries a DTD"
    )


def test_the_simulator_refuses_a_request_with_a_dtd_and_asks_for_credentials(conax_ws_simulator):
    import requests

    url = f"{conax_ws_simulator.url}/ca-server/webservices/ca-pin"
    body = (
        '<?xml version="1.0"?>' + DTD + '<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/'
        'soap/envelope/"><soap:Body/></soap:Envelope>'
    )
    assert requests.post(url, data=body, timeout=5).status_code == 401
    reply = requests.post(url, data=body, auth=("crm", "cas-test-pass"), timeout=5)
    assert reply.status_code == 500
    assert b"<faultstring>A request may not carry a DTD.</faultstring>" in reply.content
    assert b"MALFORMED_REQUEST" in reply.content
    assert requests.get(f"{url}?wsdl", auth=("crm", "cas-test-pass"), timeout=5).ok


def test_an_unknown_command_fails_at_once(conax):
    request = Req(command="SOMETHING_ELSE", parameters={}, provider=conax.provider)
    with pytest.raises(registry.TransportError) as err:
        ConaxWSAdapter(conax.provider).send(request)
    assert err.value.permanent
    assert str(err.value) == "SOMETHING_ELSE is not a Conax Contego web services command."


def test_a_share_of_requests_is_rejected_and_each_always_the_same_way(
    conax, subscribe, conax_ws_simulator
):
    sub = subscribe("AGRICULTURE")
    deliver(conax)
    card = sub.installed_items.get(kind="smartcard")
    conax_ws_simulator.state.controls.reject_share = 0.5
    made = [
        engine.create_request(
            conax.provider,
            "SEND_BARK_MESSAGE_TO_CLIENT",
            {"card_ca_id": card.ca_id, "text": f"Message {n}", "display_duration_seconds": 20},
            trigger="utility",
            subscription=sub,
            installed_item=card,
            deliver_now=False,
        )
        for n in range(20)
    ]
    adapter = ConaxWSAdapter(conax.provider)
    first = [adapter.send(r).accepted for r in made]
    assert 0 < first.count(False) < 20
    assert [adapter.send(r).accepted for r in made] == first
    refused = next(adapter.send(r) for r, ok in zip(made, first, strict=True) if not ok)
    assert (refused.error_code, refused.error_description) == (
        "REQUEST_REJECTED",
        "The CAS rejected the request (simulated rejection of 50%).",
    )
    assert len(conax_ws_simulator.state.cards[card.ca_id]["screen"]) == first.count(True)


def test_the_simulator_faults_on_malformed_input(conax_ws_simulator):
    import requests

    envelope = (
        '<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/" '
        'xmlns:cx="http://www.conax.com/contego/ca-server/webservices/7.5"><soap:Body>'
        "{}</soap:Body></soap:Envelope>"
    )
    url = f"{conax_ws_simulator.url}/ca-server/webservices/"
    auth = ("crm", "cas-test-pass")
    for port, body, fault in [
        ("ca-pin", "<cx:UpdateCaPinToDefaultValue/>", "RequestId is missing."),
        (
            "ca-pin",
            "<cx:UpdateCaPinToGivenValue><cx:RequestId>r1</cx:RequestId><cx:CaClientIds>"
            "<cx:CaClientId>C1</cx:CaClientId></cx:CaClientIds><cx:Pin>12a4</cx:Pin>"
            "</cx:UpdateCaPinToGivenValue>",
            "A CA PIN is 4 digits.",
        ),
        (
            "pairing",
            "<cx:AddSubscriptions><cx:RequestId>r2</cx:RequestId></cx:AddSubscriptions>",
            "AddSubscriptions is not an operation of pairing.",
        ),
        ("fingerprint", "<not-xml", "Not well-formed XML"),
    ]:
        reply = requests.post(url + port, data=envelope.format(body), auth=auth, timeout=5)
        assert reply.status_code == 500
        assert f"<faultstring>{fault}" in reply.text
