"""A Conax Contego web services CAS simulator: a real SOAP 1.1 server of ``wsdl/conax.wsdl``.

``python manage.py cas_simulator conax-ws --port 8090 --username crm --password-env VAR``
serves the ports under ``/ca-server/webservices/…`` (and the WSDL at ``…?wsdl``, addresses
rewritten to this server), checks HTTP Basic auth (401 otherwise), and keeps a CAS's state
(``cas_state.CasState``): entitlements with end dates, pairings, mailbox and screen messages,
PINs, fingerprints. It faults on unknown cards and malformed input, answers a repeated
RequestId as before without applying it again, and refuses any request carrying a DTD
(``cas_soap.py`` reads and writes the envelopes). Connections are kept alive (HTTP/1.1), as a
client's pooled session expects.

HTTPS, as a production CAS: ``--tls-cert FILE --tls-key FILE`` serve TLS with that server
certificate; ``--client-ca FILE`` also requires every client to show a certificate issued by
that authority (a client without one, or with one from another authority, gets a TLS alert
and no answer). ``--state-file FILE`` keeps the state across restarts (written in the
background at most twice a second, and on exit).

Misbehaving on purpose, for the tests and the demo (no Basic auth on these, so bind to
localhost; over HTTPS with ``--client-ca`` they need a client certificate like the rest):

- ``POST /control/down`` / ``POST /control/up``: answer every SOAP request with HTTP 503;
- ``POST /control/slow?seconds=N``: apply each request, then wait N s before answering (a
  client that times out sends it again, and the RequestId makes the repeat harmless);
- ``POST /control/reject?share=0.3&cards=CA1,CA2``: fault that share of requests (chosen by
  request id, so a request is always answered the same way) and every request naming those
  cards; ``share=0`` and no ``cards`` stop it;
- ``POST /control/register?cards=CA1,CA2``: make cards known without pairing them;
- ``POST /control/clear``: forget everything; ``GET /control/state``: the whole state as JSON,
  with how many times each request id arrived (``requests``) and every arrival in order.

Measuring, for the benchmark (latency from a request's commit to its arrival at the CAS):

- ``GET /control/received``: ``[[request_id, received_at], …]`` in arrival order, one entry
  per SOAP request that reached the CAS (repeats included; not those answered 503 while
  down, nor those too malformed to carry a RequestId); ``received_at`` is the wall-clock
  ``time.time()`` at which the request came in, before it was parsed or applied. The log is
  kept in memory (never in the state file) until cleared; ``?clear=1`` returns it and
  forgets it in one step;
- ``DELETE /control/received``: forget them (the CAS's state stays).

In tests: ``Simulator(username, password).start()`` serves on a free port in a thread
(``tls=TLS(cert, key, client_ca)`` for HTTPS, ``state_file=`` to keep the state).
"""

import base64
import hmac
import json
import os
import signal
import ssl
import sys
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from providers import simulators
from providers.extensions import SimulatorCommand
from providers.simulators import TLS

from .cas_soap import PORTS, answer
from .cas_state import CasState

WSDL_FILE = Path(__file__).with_name("wsdl") / "conax.wsdl"
WSDL_HOST = "http://localhost:8080"  # the placeholder host of the shipped WSDL's addresses
BASE_PATH = "/ca-server/webservices/"
MAX_BODY = 1_000_000


class Handler(BaseHTTPRequestHandler):
    server_version = "ConaxContegoSimulator/7.5"
    protocol_version = "HTTP/1.1"  # keep-alive: a pooled client reuses its connections
    timeout = 120  # an idle kept-alive connection is closed after this long
    # Headers and body go out in two writes; with Nagle's algorithm the second waits for the
    # client's delayed ACK (40 ms) on a kept-alive connection.
    disable_nagle_algorithm = True

    def log_message(self, format, *args):
        if self.server.verbose:
            super().log_message(format, *args)

    def _send(self, status: int, body: bytes, content_type: str, headers=()) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def _json(self, value) -> None:
        self._send(HTTPStatus.OK, json.dumps(value, default=str).encode(), "application/json")

    def _authorized(self) -> bool:
        header = self.headers.get("Authorization", "")
        if header.startswith("Basic "):
            try:
                user, _, password = base64.b64decode(header[6:]).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                return False
            want_user, want_password = self.server.credentials
            return hmac.compare_digest(user.encode(), want_user.encode()) & hmac.compare_digest(
                password.encode(), want_password.encode()
            )
        return False

    def _refuse(self) -> None:
        self._send(
            HTTPStatus.UNAUTHORIZED,
            b"Authentication required",
            "text/plain",
            [("WWW-Authenticate", 'Basic realm="ca-server"')],
        )

    def _port(self, path: str) -> str | None:
        if path.startswith(BASE_PATH) and path[len(BASE_PATH) :] in PORTS:
            return path[len(BASE_PATH) :]
        return None

    def do_GET(self):
        url = urlsplit(self.path)
        state = self.server.state
        if url.path == "/control/state":
            with state.lock:
                return self._json(state.snapshot())
        if url.path == "/control/received":
            with state.lock:
                received = [[r["request_id"], r["received_at"]] for r in state.received]
                if parse_qs(url.query).get("clear") == ["1"]:
                    state.received = []
            return self._json(received)
        if self._port(url.path) and url.query.lower() == "wsdl":
            if not self._authorized():
                return self._refuse()
            scheme = "https" if self.server.tls_context else "http"
            address = "{}:{}".format(*self.server.server_address[:2])
            host = f"{scheme}://{self.headers.get('Host') or address}"
            return self._send(
                HTTPStatus.OK,
                WSDL_FILE.read_text().replace(WSDL_HOST, host).encode(),
                "text/xml; charset=utf-8",
            )
        return self._send(HTTPStatus.NOT_FOUND, b"Not found", "text/plain")

    def do_DELETE(self):
        if urlsplit(self.path).path != "/control/received":
            return self._send(HTTPStatus.NOT_FOUND, b"Not found", "text/plain")
        state = self.server.state
        with state.lock:
            cleared, state.received = len(state.received), []
        self._json({"cleared": cleared})

    def do_POST(self):
        received_at = time.time()
        url = urlsplit(self.path)
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = MAX_BODY + 1
        if length > MAX_BODY:
            self.close_connection = True  # the unread body would be taken for the next request
            return self._send(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, b"Too large", "text/plain")
        body = self.rfile.read(length)
        if url.path.startswith("/control/"):
            return self._control(url.path[len("/control/") :], parse_qs(url.query))
        port = self._port(url.path)
        if port is None:
            return self._send(HTTPStatus.NOT_FOUND, b"Not found", "text/plain")
        if not self._authorized():
            return self._refuse()
        state = self.server.state
        if state.controls.down:
            return self._send(HTTPStatus.SERVICE_UNAVAILABLE, b"CAS is down", "text/plain")
        status, reply = answer(state, port, body, received_at)
        if state.controls.slow_seconds:
            time.sleep(state.controls.slow_seconds)
        self._send(status, reply, "text/xml; charset=utf-8")

    def _control(self, what: str, query: dict) -> None:
        state = self.server.state

        def first(name: str, default: str = "") -> str:
            return query.get(name, [default])[0]

        with state.lock:
            controls = state.controls
            try:
                if what == "down":
                    controls.down = True
                elif what == "up":
                    controls.down = False
                elif what == "slow":
                    controls.slow_seconds = float(first("seconds", "0"))
                elif what == "reject":
                    controls.reject_share = float(first("share", "0"))
                    cards = first("cards")
                    controls.reject_cards = frozenset(c for c in cards.split(",") if c)
                elif what == "register":
                    state.register(c for c in first("cards").split(",") if c)
                elif what == "clear":
                    state.clear()
                    state.mark_changed()
                else:
                    return self._send(HTTPStatus.NOT_FOUND, b"Unknown control", "text/plain")
            except ValueError as exc:
                return self._send(HTTPStatus.BAD_REQUEST, str(exc).encode(), "text/plain")
            body = controls.as_dict()
        self._json(body)


class Server(simulators.Server):
    def __init__(self, address, state: CasState, credentials, tls: TLS | None = None):
        super().__init__(address, Handler, tls)
        self.state = state
        self.credentials = credentials


def make_server(
    state: CasState,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    username: str,
    password: str,
    tls: TLS | None = None,
) -> Server:
    return Server((host, port), state, (username, password), tls)


class Simulator:
    """The simulator in this process, on a free port, for tests."""

    def __init__(
        self,
        username: str,
        password: str,
        *,
        known_cards=(),
        tls: TLS | None = None,
        state_file: str | Path | None = None,
    ):
        self.state = CasState(known_cards, path=state_file)
        self.server = make_server(self.state, username=username, password=password, tls=tls)
        self.url = self.server.base_url
        self.wsdl_url = f"{self.url}{BASE_PATH}subscription-management?wsdl"
        self._thread = simulators.Thread(self.server, self.state)

    def start(self) -> "Simulator":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._thread.stop()

    def active(self, card: str) -> list[str]:
        """Product ids active on a card now (for checks beside the SOAP query)."""
        with self.state.lock:
            return [s["product_id"] for s in self.state.active_subscriptions(card)]


# --- the management command -------------------------------------------------------------------


def add_arguments(parser) -> None:
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8090, help="0: any free port.")
    parser.add_argument("--username", default="crm")
    parser.add_argument(
        "--password-env",
        default="CRM_SECRET_CONAX_WS_PASSWORD",
        help="Name of the environment variable holding the password clients must give.",
    )
    parser.add_argument(
        "--card", action="append", default=[], help="A CA client id known from the start."
    )
    parser.add_argument(
        "--state-file", default="", help="Keep the CAS's state in this JSON file across restarts."
    )
    simulators.add_tls_arguments(parser)
    parser.add_argument("--verbose", action="store_true", help="Log every HTTP request.")


def _stop_on_sigterm(signum, frame):
    # Leave serve_forever through the finally below, which writes the state file.
    raise KeyboardInterrupt


def serve(options: dict, stdout) -> None:
    password = os.environ.get(options["password_env"])
    if not password:
        sys.exit(f"Set the password in ${options['password_env']} (see --password-env).")
    tls = simulators.tls_of(options)
    state = CasState(options["card"], path=options["state_file"] or None)
    try:
        server = make_server(
            state,
            host=options["host"],
            port=options["port"],
            username=options["username"],
            password=password,
            tls=tls,
        )
    except (OSError, ssl.SSLError) as exc:
        sys.exit(f"Cannot serve: {exc}")
    server.verbose = options["verbose"]
    host, port = server.server_address[:2]
    base = f"{'https' if tls else 'http'}://{host}:{port}"
    client_check = f"; client certificates from {tls.client_ca}" if tls and tls.client_ca else ""
    stdout.write(
        f"Conax Contego WS simulator on {base}{BASE_PATH}… "
        f"(WSDL: {base}{BASE_PATH}subscription-management?wsdl; "
        f"user {options['username']}; state {options['state_file'] or 'in memory'}"
        f"{client_check})\n"
    )
    stdout.flush()
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    state.start_saving()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        state.close()


SIMULATOR = SimulatorCommand(
    "conax-ws", "Conax Contego Web Services (SOAP over HTTP)", add_arguments, serve
)
