"""Isolation of failures: a request that fails is retried on its own, and the other cards'
requests of its batch are delivered in the same pass; a card's later requests still wait behind
its failed one. An answer the product can never read is Failed at once, with the reason, and
retriable from the back office.

Faults come from a real HTTP server of the test's own (``Gate``) in front of the Conax WS
simulator or the Generic push platform: it forwards every request, except those naming a
marked card, which get a raw answer of its choosing.
"""

import contextlib
import http.client
import threading
import time
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import pytest
from django.urls import reverse

from providers import delivery
from providers.conax_ws.client import MAX_ANSWER_BYTES
from providers.generic import adapter as generic
from providers.models import ProvisioningRequest
from tests.fixtures import card_of, conax_ws_connection, deliver

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast_path")]

Req = ProvisioningRequest
SOAP = "http://schemas.xmlsoap.org/soap/envelope/"
CX = "http://www.conax.com/contego/ca-server/webservices/7.5"


def raw(body: bytes, *, status="200 OK", kind="text/xml", framing="length", header="") -> bytes:
    """A whole HTTP answer as bytes: its body framed by a length, in chunks, or by the close."""
    head = f"HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nConnection: close\r\n{header}"
    if framing == "length":
        return f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body
    if framing == "chunked":
        size = 64 * 1024
        chunks = [body[i : i + size] for i in range(0, len(body), size)]
        return (
            f"{head}Transfer-Encoding: chunked\r\n\r\n".encode()
            + b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks)
            + b"0\r\n\r\n"
        )
    return f"{head}\r\n".encode() + body  # until the connection closes


class Gate:
    """A real HTTP server in front of ``upstream``: forwards each POST, except those whose body
    names one of ``cards``, which get ``answer`` (raw bytes) and the connection closed."""

    def __init__(self, upstream: str):
        self.upstream = urlsplit(upstream).netloc
        self.cards: set[str] = set()
        self.answer = b""
        self.delay = 0.0  # seconds before a marked card's answer
        gate = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if any(card.encode() in body for card in gate.cards):
                    self.close_connection = True
                    time.sleep(gate.delay)
                    with contextlib.suppress(OSError):  # refused unread: the client hung up
                        self.wfile.write(gate.answer)
                    return
                self.forward(body)

            def forward(self, body: bytes) -> None:
                upstream = http.client.HTTPConnection(gate.upstream, timeout=10)
                skip = {"host", "connection", "content-length", "transfer-encoding"}
                headers = {k: v for k, v in self.headers.items() if k.lower() not in skip}
                try:
                    upstream.request("POST", self.path, body, headers)
                    reply = upstream.getresponse()
                    content = reply.read()
                finally:
                    upstream.close()
                self.send_response(reply.status)
                for name, value in reply.getheaders():
                    if name.lower() not in skip | {"server", "date"}:
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                self.wfile.write(content)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def cas_gate(conax, conax_ws_simulator, settings):
    """The Conax WS provider sends its calls through a gate (the WSDL still comes from the
    simulator); a failed send is retried a minute later, not within the same pass."""
    settings.PROVISIONING_RETRY_SECONDS = 60
    gate = Gate(conax_ws_simulator.url)
    conax.provider.connection = conax_ws_connection(conax_ws_simulator, endpoint_url=gate.url)
    conax.provider.save()
    yield gate
    gate.close()


@pytest.fixture
def push_gate(push_provider, platform, settings):
    settings.PROVISIONING_RETRY_SECONDS = 60
    gate = Gate(platform.url)
    push_provider.connection = {**push_provider.connection, "push_url": f"{gate.url}/requests"}
    push_provider.save()
    yield gate
    gate.close()


def states(sub) -> list[tuple[str, str, int]]:
    return list(
        sub.provisioning_requests.order_by("pk").values_list("command", "state", "attempts")
    )


def received_by_cas(simulator, sub) -> list[str]:
    """The RequestIds the CAS received naming the subscription's card, in arrival order."""
    with simulator.state.lock:
        return [r["request_id"] for r in simulator.state.received if card_of(sub) in r["cards"]]


def uids(sub) -> list[str]:
    return [str(u) for u in sub.provisioning_requests.order_by("pk").values_list("uid", flat=True)]


def retry_from_the_back_office(client, operator, requests) -> None:
    client.force_login(operator)
    url = reverse("admin:providers_provisioningrequest_changelist")
    selected = [r.pk for r in requests]
    client.post(url, {"action": "retry_failed", "_selected_action": selected})


# --- A failure that may pass: retried on its own --------------------------------------------


def test_a_card_the_cas_fails_retries_alone_and_the_other_cards_go_on_in_the_same_pass(
    conax, subscribe, conax_ws_simulator, cas_gate
):
    subs = [subscribe("BUNDLE_A", catalog=conax) for _ in range(4)]
    stuck = subs[0]  # its pairing is the first request of the batch
    cas_gate.cards = {card_of(stuck)}
    cas_gate.answer = raw(b"Internal error", status="500 Internal Server Error", kind="text/plain")

    assert deliver(conax) == 9  # one pass: every other card's three requests

    for sub in subs[1:]:
        assert [s for _c, s, _a in states(sub)] == ["completed"] * 3
        assert received_by_cas(conax_ws_simulator, sub) == uids(sub)
    # The failed one waits for its retry; its card's later requests wait behind it, unsent.
    assert states(stuck) == [
        ("CREATE_PAIRING", "pending", 1),
        ("ADD_SUBSCRIPTIONS", "pending", 0),
        ("ADD_SUBSCRIPTIONS", "pending", 0),
    ]
    pairing = stuck.provisioning_requests.get(command="CREATE_PAIRING")
    assert pairing.last_error == "Attempt 1 failed: HTTP 500 from the CAS for CreatePairing"
    assert pairing.next_attempt_at > pairing.sent_at
    assert received_by_cas(conax_ws_simulator, stuck) == []
    assert deliver(conax) == 0  # nothing of that card is due before its retry time

    cas_gate.cards = set()
    Req.objects.filter(pk=pairing.pk).update(next_attempt_at=None)  # its retry time has come
    assert deliver(conax) == 3
    assert [s for _c, s, _a in states(stuck)] == ["completed"] * 3
    assert received_by_cas(conax_ws_simulator, stuck) == uids(stuck)  # in the card's order


def test_a_card_the_push_platform_fails_retries_alone(
    push_provider, platform, subscribe, push_gate
):
    subs = [subscribe("BUNDLE_A") for _ in range(3)]
    stuck = subs[1]
    push_gate.cards = {card_of(stuck)}
    push_gate.answer = raw(b"", status="503 Service Unavailable", kind="text/plain")

    assert delivery.drain(push_provider).answered == 6

    for sub in (subs[0], subs[2]):
        assert {s for _c, s, _a in states(sub)} == {"completed"}
    assert states(stuck) == [
        ("CREATE_PAIRING", "pending", 1),
        ("ACTIVATE_SERVICE", "pending", 0),
        ("ACTIVATE_SERVICE", "pending", 0),
    ]
    assert stuck.provisioning_requests.get(command="CREATE_PAIRING").last_error == (
        "Attempt 1 failed: HTTP 503 from the connector"
    )
    assert not set(uids(stuck)) & set(platform.state()["received"])

    push_gate.cards = set()
    Req.objects.filter(subscription=stuck).update(next_attempt_at=None)
    assert delivery.drain(push_provider).answered == 3
    assert set(platform.state()["applied"]) == {u for sub in subs for u in uids(sub)}


def test_a_platform_failing_everything_costs_two_attempts_a_pass_not_one_per_request(
    push_provider, platform, subscribe, settings
):
    settings.PROVISIONING_RETRY_SECONDS = 60
    subs = [subscribe("AGRICULTURE") for _ in range(4)]
    platform.online = False

    assert delivery.drain(push_provider).answered == 0

    # Two failures in a row: the platform is failing. The rest waits with them, unsent.
    tried = Req.objects.filter(attempts=1)
    assert tried.count() == 2
    assert set(tried.values_list("last_error", flat=True)) == {
        "Attempt 1 failed: HTTP 503 from the connector"
    }
    assert not Req.objects.exclude(state="pending").exists()
    assert list(delivery.due(push_provider)) == []  # all wait for the retry time
    platform.online = True
    Req.objects.update(next_attempt_at=None)
    assert delivery.drain(push_provider).answered == 2 * len(subs)
    assert set(Req.objects.values_list("state", flat=True)) == {"completed"}


def test_failures_that_take_half_the_lease_give_the_rest_back_to_be_claimed_anew(
    conax, subscribe, cas_gate, settings
):
    settings.PROVISIONING_LEASE_SECONDS = 1
    subs = [subscribe("AGRICULTURE", catalog=conax) for _ in range(3)]
    stuck = subs[0]
    cas_gate.cards, cas_gate.delay = {card_of(stuck)}, 0.6  # over half the lease
    cas_gate.answer = raw(b"Internal error", status="500 Internal Server Error", kind="text/plain")

    assert deliver(conax) == 4

    pairing = stuck.provisioning_requests.get(command="CREATE_PAIRING")
    assert (pairing.state, pairing.attempts) == ("pending", 1)
    failed_at = pairing.next_attempt_at - timedelta(seconds=60)
    for sub in subs[1:]:
        # Given back unsent when the failure was recorded, claimed again with a fresh lease:
        # sent after it, the attempt that was given back not counted.
        first = sub.provisioning_requests.get(command="CREATE_PAIRING")
        assert (first.state, first.attempts) == ("completed", 1)
        assert first.sent_at > failed_at


# --- An answer that can never be read: Failed at once ---------------------------------------

LAUGHS = "".join(
    f'<!ENTITY lol{n} "{f"&lol{n - 1};" * 10}">' if n else '<!ENTITY lol0 "lol">' for n in range(10)
)
ACKNOWLEDGEMENT = (
    f'<soap:Envelope xmlns:soap="{SOAP}"><soap:Body><cx:CreatePairingResponse xmlns:cx="{CX}">'
    "<cx:RequestId>{}</cx:RequestId></cx:CreatePairingResponse></soap:Body></soap:Envelope>"
)
OVERSIZED = b"<x>" + b"x" * MAX_ANSWER_BYTES + b"</x>"
UNREADABLE = {
    "oversized": (
        raw(OVERSIZED),
        f"Refused the CAS's answer for CreatePairing: over {MAX_ANSWER_BYTES} bytes "
        f"({len(OVERSIZED)} bytes announced), never read",
    ),
    "oversized-chunked": (
        raw(OVERSIZED, framing="chunked"),
        f"Refused the CAS's answer for CreatePairing: over {MAX_ANSWER_BYTES} bytes "
        "(sent without a length), never read",
    ),
    "oversized-until-closed": (
        raw(OVERSIZED, framing="close"),
        f"Refused the CAS's answer for CreatePairing: over {MAX_ANSWER_BYTES} bytes "
        "(sent without a length), never read",
    ),
    "oversized-header": (
        raw(b"", header=f"X-Padding: {'x' * 70000}\r\n"),
        "Refused the CAS's answer for CreatePairing: got more than 65536 bytes when reading "
        "header line, never read",
    ),
    "entity-bomb": (
        raw(
            f'<?xml version="1.0"?>\n<!DOCTYPE lolz [{LAUGHS}]>\n'.encode()
            + ACKNOWLEDGEMENT.format("&lol9;").encode()
        ),
        "Unreadable answer from the CAS for CreatePairing: Server returned response (200) "
        "with invalid XML: Invalid XML content received (Maximum entity amplification "
        "factor exceeded",
    ),
    "not-xml": (
        raw(b"Service temporarily unavailable", kind="text/plain"),
        "Unreadable answer from the CAS for CreatePairing: Server returned response (200) "
        "with invalid XML: Invalid XML content received (Start tag expected, '<' not "
        "found, line 1, column 1)",
    ),
    "not-soap": (
        raw(b"<html><body>Welcome to the proxy</body></html>", kind="text/html"),
        "Unreadable answer from the CAS for CreatePairing: The XML returned by the server "
        f"does not contain a valid {{{SOAP}}}Envelope root element. The root element found "
        "is html",
    ),
}


@pytest.mark.parametrize("kind", UNREADABLE)
def test_an_answer_the_product_can_never_read_fails_the_request_at_once(
    conax, subscribe, conax_ws_simulator, cas_gate, client, operator, kind
):
    answer, reason = UNREADABLE[kind]
    subs = [subscribe("AGRICULTURE", catalog=conax) for _ in range(3)]
    broken = subs[0]
    cas_gate.cards, cas_gate.answer = {card_of(broken)}, answer

    # The pairing is Failed at once; with it no longer Pending, the card's next request goes
    # out in the same pass (and fails the same way). The other cards are not held back.
    assert deliver(conax) == 4

    for sub in subs[1:]:
        assert [s for _c, s, _a in states(sub)] == ["completed", "completed"]
    assert states(broken) == [("CREATE_PAIRING", "failed", 1), ("ADD_SUBSCRIPTIONS", "failed", 1)]
    pairing = broken.provisioning_requests.get(command="CREATE_PAIRING")
    assert pairing.last_error.startswith(f"Attempt 1 failed: {reason}")
    assert pairing.last_error.endswith("Gave up after 1 attempts.")

    # Once the CAS is sorted out, the operator retries them from the back office.
    cas_gate.cards = set()
    retry_from_the_back_office(client, operator, broken.provisioning_requests.all())
    assert deliver(conax) == 2
    assert [s for _c, s, _a in states(broken)] == ["completed", "completed"]
    assert received_by_cas(conax_ws_simulator, broken) == uids(broken)


@pytest.mark.parametrize("framing", ["length", "chunked"])
def test_an_oversized_push_answer_fails_the_request_at_once(
    push_provider, platform, subscribe, push_gate, framing
):
    big = b'{"status": "ACCEPTED", "padding": "' + b"x" * generic.MAX_ANSWER_BYTES + b'"}'
    broken, fine = subscribe("AGRICULTURE"), subscribe("AGRICULTURE")
    push_gate.cards = {card_of(broken)}
    push_gate.answer = raw(big, kind="application/json", framing=framing)

    assert delivery.drain(push_provider).answered == 2

    assert [s for _c, s, _a in states(fine)] == ["completed", "completed"]
    pairing = broken.provisioning_requests.get(command="CREATE_PAIRING")
    assert (pairing.state, pairing.attempts) == ("failed", 1)
    detail = f"{len(big)} bytes announced" if framing == "length" else "sent without a length"
    assert pairing.last_error == (
        f"Attempt 1 failed: Refused the connector's answer: over {generic.MAX_ANSWER_BYTES} "
        f"bytes ({detail}), never read. Gave up after 1 attempts."
    )
