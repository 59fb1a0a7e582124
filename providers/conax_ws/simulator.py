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

import os
import ssl
import sys
from http import HTTPStatus
from pathlib import Path

from providers import simulators
from providers.extensions import SimulatorCommand
from providers.simulators import TLS

from .cas_soap import PORTS, answer
from .cas_state import CasState

WSDL_FILE = Path(__file__).with_name("wsdl") / "conax.wsdl"
WSDL_HOST = "http://localhost:8080"  # the placeholder host of the shipped WSDL's addresses
BASE_PATH = "/ca-server/webservices/"


class Handler(simulators.Handler):
    server_version = "ConaxContegoSimulator/7.5"

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

    def _get(self, url) -> None:
        if self._port(url.path) and url.query.lower() == "wsdl":
            if not self._basic_auth():
                return self._refuse()
            scheme = "https" if self.server.tls_context else "http"
            address = "{}:{}".format(*self.server.server_address[:2])
            host = f"{scheme}://{self.headers.get('Host') or address}"
            return self._send(
                HTTPStatus.OK,
                WSDL_FILE.read_text().replace(WSDL_HOST, host).encode(),
                "text/xml; charset=utf-8",
            )
        return self._plain(HTTPStatus.NOT_FOUND, "Not found")

    def _call(self, path: str, body: bytes, received_at: float) -> None:
        port = self._port(path)
        if port is None:
            return self._plain(HTTPStatus.NOT_FOUND, "Not found")
        if not self._basic_auth():
            return self._refuse()
        state = self.server.state
        if state.controls.down:
            return self._plain(HTTPStatus.SERVICE_UNAVAILABLE, "CAS is down")
        status, reply = answer(state, port, body, received_at)
        self._answer_late()
        self._send(status, reply, "text/xml; charset=utf-8")

    def _more_control(self, what: str, first, named: list[str]) -> bool:
        if what == "register":
            self.server.state.register(named)
            return True
        return False


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


class Simulator(simulators.Thread):
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
        state = CasState(known_cards, path=state_file)
        super().__init__(make_server(state, username=username, password=password, tls=tls), state)
        self.wsdl_url = f"{self.url}{BASE_PATH}subscription-management?wsdl"

    def active(self, card: str) -> list[str]:
        """Product ids active on a card now (for checks beside the SOAP query)."""
        with self.state.lock:
            return [s["product_id"] for s in self.state.active_subscriptions(card)]


# --- the management command -------------------------------------------------------------------


def add_arguments(parser) -> None:
    simulators.add_address_arguments(parser, 8090)
    parser.add_argument("--username", default="crm")
    parser.add_argument(
        "--password-env",
        default="CRM_SECRET_CONAX_WS_PASSWORD",
        help="Name of the environment variable holding the password clients must give.",
    )
    parser.add_argument(
        "--card", action="append", default=[], help="A CA client id known from the start."
    )
    simulators.add_serving_arguments(parser, "the CAS")


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
    simulators.serve_until_stopped(server, state)


SIMULATOR = SimulatorCommand(
    "conax-ws", "Conax Contego Web Services (SOAP over HTTP)", add_arguments, serve
)
