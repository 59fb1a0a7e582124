"""The Conax WS operations over kept-alive connections (``client._Transport``, ``http.client``
instead of requests): many calls share one TCP connection, over HTTP and HTTPS; a connection
the CAS closed while idle, or hung up on when it got our request, is replaced without the
caller noticing, yet a request is never sent twice on a new connection that failed; an answer
cut short by the timeout fails as a timeout; a proxy from the environment still carries the
calls.
"""

import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from providers.conax_ws import client
from providers.conax_ws.cas_state import CasState
from providers.conax_ws.simulator import TLS, Handler, Server, Simulator
from providers.registry import TransportError
from tests.fixtures import CONAX_WS_PASSWORD, CONAX_WS_PASSWORD_ENV

pytestmark = pytest.mark.django_db

CARD = "0100000001"


def connect(conax, url: str, **settings) -> client.ConaxClient:
    """The provider on the shipped WSDL (no HTTP for it), its calls sent to ``url``."""
    conax.provider.connection = {
        "endpoint_url": url,
        "username": "crm",
        "password_env": CONAX_WS_PASSWORD_ENV,
        "timeout_seconds": 2,
        **settings,
    }
    conax.provider.save()
    return client.client_for(conax.provider)


def add(soap: client.ConaxClient, request_id: str | None = None) -> dict:
    return soap.call(
        "AddSubscriptions",
        RequestId=request_id or str(uuid.uuid4()),
        CaClientIds={"CaClientId": [CARD]},
        ProductIds={"ProductId": ["AF1"]},
    )


@pytest.fixture
def cas(conax_ws_simulator):
    conax_ws_simulator.state.register([CARD])
    return conax_ws_simulator


def test_calls_share_one_kept_alive_connection(conax, cas):
    soap = connect(conax, cas.url)
    for _ in range(20):
        add(soap)
    assert cas.server.accepted == 1
    assert cas.active(CARD) == ["AF1"]


def test_calls_over_https_with_a_client_certificate_share_one_connection(conax, pki, monkeypatch):
    monkeypatch.setenv(CONAX_WS_PASSWORD_ENV, CONAX_WS_PASSWORD)
    tls = TLS(*pki.server, client_ca=str(pki.authority.path))
    sim = Simulator("crm", CONAX_WS_PASSWORD, known_cards=[CARD], tls=tls).start()
    try:
        certificate, key = pki.client
        soap = connect(
            conax,
            sim.url,
            server_ca_bundle_path=str(pki.authority.path),
            client_certificate_path=certificate,
            client_key_path=key,
        )
        for _ in range(10):
            add(soap)
        assert sim.server.accepted == 1
        assert sim.active(CARD) == ["AF1"]
    finally:
        sim.stop()


def test_a_connection_the_cas_closed_while_idle_is_made_anew(conax, cas):
    soap = connect(conax, cas.url)
    add(soap)
    cas.server.close_connections()  # the CAS hangs up on its idle kept-alive connections
    deadline = time.monotonic() + 5
    while cas.server.connections and time.monotonic() < deadline:
        time.sleep(0.01)
    request_id = str(uuid.uuid4())
    assert add(soap, request_id)["Duplicate"] is False
    assert cas.server.accepted == 2
    assert cas.state.requests[request_id] == 1


class HangsUp(Handler):
    """The simulator, except that it reads a connection's requests after the first few and
    hangs up instead of answering (as a CAS closing an idle connection just as our request
    comes)."""

    def do_POST(self):
        self.served = getattr(self, "served", 0) + 1  # one handler per connection
        if self.served <= self.server.answered_per_connection:
            return super().do_POST()
        self.rfile.read(int(self.headers["Content-Length"]))
        self.server.hung_up += 1
        self.close_connection = True


@pytest.fixture
def hanging(monkeypatch):
    """Start a CAS that answers ``answered`` requests per connection, then hangs up."""
    monkeypatch.setenv(CONAX_WS_PASSWORD_ENV, CONAX_WS_PASSWORD)
    servers = []

    def start(answered: int) -> Server:
        server = Server(("127.0.0.1", 0), CasState([CARD]), ("crm", CONAX_WS_PASSWORD))
        server.RequestHandlerClass = HangsUp
        server.answered_per_connection, server.hung_up = answered, 0
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()
        server.close_connections()


def test_a_request_the_cas_hung_up_on_is_sent_once_more_on_a_new_connection(conax, hanging):
    server = hanging(answered=1)
    soap = connect(conax, f"http://127.0.0.1:{server.server_address[1]}")
    ids = [str(uuid.uuid4()) for _ in range(3)]
    assert [add(soap, i)["Duplicate"] for i in ids] == [False, False, False]
    assert (server.accepted, server.hung_up) == (3, 2)
    assert server.state.requests == {i: 1 for i in ids}  # each applied once


def test_a_new_connection_hung_up_on_is_a_retried_failure_and_not_sent_again(conax, hanging):
    server = hanging(answered=0)
    address = f"127.0.0.1:{server.server_address[1]}"
    soap = connect(conax, f"http://{address}")
    with pytest.raises(TransportError) as err:
        add(soap)
    assert not err.value.permanent
    assert str(err.value) == (
        f"Could not connect to the CAS at {address} for AddSubscriptions: Remote end closed "
        "connection without response"
    )
    assert (server.accepted, server.hung_up) == (1, 1)


class StallsMidAnswer(BaseHTTPRequestHandler):
    """Sends the status, the headers and part of the body, then nothing for 3 s."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(200)
        self.send_header("Content-Type", "text/xml; charset=utf-8")
        self.send_header("Content-Length", "1000")
        self.end_headers()
        self.wfile.write(b'<?xml version="1.0"?><soap:Envelope')
        self.wfile.flush()
        time.sleep(3)


def test_an_answer_stalled_midway_is_a_timeout(conax, monkeypatch):
    monkeypatch.setenv(CONAX_WS_PASSWORD_ENV, CONAX_WS_PASSWORD)
    server = ThreadingHTTPServer(("127.0.0.1", 0), StallsMidAnswer)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        soap = connect(conax, f"http://127.0.0.1:{server.server_address[1]}", timeout_seconds=1)
        started = time.monotonic()
        with pytest.raises(TransportError) as err:
            add(soap)
        assert time.monotonic() - started < 2.5
    finally:
        server.shutdown()
        server.server_close()
    assert not err.value.permanent
    assert str(err.value) == "No answer within 1 s for AddSubscriptions"


def test_a_proxy_in_the_environment_carries_the_calls_unless_no_proxy_names_the_cas(
    conax, cas, monkeypatch
):
    for name in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setenv("http_proxy", "http://127.0.0.1:9")
    soap = connect(conax, cas.url)
    with pytest.raises(TransportError) as err:
        add(soap)
    address = cas.url.removeprefix("http://")
    assert str(err.value).startswith(
        f"Could not connect to the CAS at {address} for AddSubscriptions: "
    )
    assert cas.state.requests == {}
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    conax.provider.save()  # a new client, reading the environment afresh
    assert add(client.client_for(conax.provider))["Duplicate"] is False
