"""An Irdeto KMS simulator: a real HTTP(S) server speaking ``protocol.py``.

``python manage.py cas_simulator irdeto --port 8091 --client-id crm --client-secret-env VAR``
serves the token endpoint (``POST /oauth/token``: client credentials in HTTP Basic auth,
``grant_type=client_credentials``; tokens expire after ``--token-ttl`` seconds) and every call
under ``/kms/v1/`` with Bearer auth (401 for a missing, unknown or expired token), and keeps a
KMS's state (``kms_state.KmsState``): per secure client its entitlements, pairing, PIN,
sector, mailbox and screen messages. It refuses with the protocol's codes, answers a repeated
``requestId`` as before without applying it again, and refuses a body that is not a JSON
object. Connections are kept alive (HTTP/1.1), as a pooled client expects.

HTTPS, as a production KMS: ``--tls-cert FILE --tls-key FILE`` serve TLS with that server
certificate; ``--client-ca FILE`` also requires every client to show a certificate issued by
that authority. ``--state-file FILE`` keeps the state across restarts (written in the
background at most twice a second, and on exit).

Misbehaving on purpose, for the tests and the demo (no auth on these, so bind to localhost;
over HTTPS with ``--client-ca`` they need a client certificate like the rest):

- ``POST /control/down`` / ``POST /control/up``: answer every call and token request with
  HTTP 503;
- ``POST /control/slow?seconds=N``: apply each call, then wait N s before answering (a client
  that times out sends it again, and the requestId makes the repeat harmless);
- ``POST /control/reject?share=0.3&devices=SC1,SC2``: refuse (``REFUSED_BY_KMS``) that share of
  calls (chosen by request id, so a request is always answered the same way) and every call
  naming those devices; ``share=0`` and no ``devices`` stop it;
- ``POST /control/expire-tokens``: revoke every access token now (the next call gets 401);
- ``POST /control/register?devices=SC1,SC2[&kind=stb]``: make secure clients known without
  pairing them;
- ``POST /control/clear``: forget everything; ``GET /control/state``: the whole state as JSON,
  with how many times each request id arrived (``requests``), every arrival in order, and the
  tokens (``live``, ``fetched`` since start, calls ``refused`` with 401).

Measuring, for the benchmark: ``GET /control/received`` — ``[[request_id, received_at], …]``
in arrival order, one per call that reached the KMS (repeats included; not those answered
401 or 503, nor those without a requestId), ``received_at`` being ``time.time()`` when it came
in; ``?clear=1`` returns it and forgets it in one step; ``DELETE /control/received`` forgets
it (the KMS's state stays). As the Conax WS simulator's.

In tests: ``Simulator(client_id, client_secret).start()`` serves on a free port in a thread
(``tls=TLS(cert, key, client_ca)`` for HTTPS, ``state_file=``, ``token_ttl=``).
"""

import base64
import hmac
import json
import os
import secrets
import signal
import ssl
import sys
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from providers import simulators
from providers.extensions import SimulatorCommand
from providers.simulators import TLS

from . import protocol
from .kms_state import COMMANDS, KmsState

MAX_BODY = 1_000_000
DEFAULT_TOKEN_TTL = 3600


class Handler(BaseHTTPRequestHandler):
    server_version = "IrdetoKmsSimulator/1.0"
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

    def _json(self, value, status: int = HTTPStatus.OK, headers=()) -> None:
        body = json.dumps(value, default=str).encode()
        self._send(status, body, "application/json", headers)

    def _plain(self, status: int, text: str) -> None:
        self._send(status, text.encode(), "text/plain")

    # --- GET, DELETE: the control endpoints -------------------------------------------------

    def do_GET(self):
        url = urlsplit(self.path)
        state = self.server.state
        if url.path == "/control/state":
            with state.lock:
                snapshot = state.snapshot()
            return self._json({**snapshot, "tokens": self.server.tokens.as_dict()})
        if url.path == "/control/received":
            with state.lock:
                received = [[r["request_id"], r["received_at"]] for r in state.received]
                if parse_qs(url.query).get("clear") == ["1"]:
                    state.received = []
            return self._json(received)
        return self._plain(HTTPStatus.NOT_FOUND, "Not found")

    def do_DELETE(self):
        if urlsplit(self.path).path != "/control/received":
            return self._plain(HTTPStatus.NOT_FOUND, "Not found")
        state = self.server.state
        with state.lock:
            cleared, state.received = len(state.received), []
        self._json({"cleared": cleared})

    # --- POST: tokens, calls, controls ------------------------------------------------------

    def do_POST(self):
        received_at = time.time()
        url = urlsplit(self.path)
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = MAX_BODY + 1
        if length > MAX_BODY:
            self.close_connection = True  # the unread body would be taken for the next request
            return self._plain(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "Too large")
        body = self.rfile.read(length)
        if url.path.startswith("/control/"):
            return self._control(url.path[len("/control/") :], parse_qs(url.query))
        if url.path == protocol.OAUTH_PATH:
            return self._token(body)
        path = url.path[len(protocol.API_PREFIX) :]
        if not url.path.startswith(protocol.API_PREFIX) or path not in COMMANDS:
            return self._plain(HTTPStatus.NOT_FOUND, "Not found")
        state = self.server.state
        if state.controls.down:
            return self._plain(HTTPStatus.SERVICE_UNAVAILABLE, "KMS is down")
        if not self.server.tokens.valid(self.headers.get("Authorization", "")):
            return self._json(
                protocol.refusal_body("INVALID_TOKEN", "The access token is missing or expired."),
                HTTPStatus.UNAUTHORIZED,
                [("WWW-Authenticate", 'Bearer error="invalid_token"')],
            )
        try:
            call = json.loads(body)
        except ValueError as exc:  # not UTF-8, or not JSON
            return self._json(
                protocol.refusal_body(protocol.INVALID_REQUEST, f"The body is not JSON: {exc}."),
                HTTPStatus.BAD_REQUEST,
            )
        with state.lock:
            status, answer = state.handle(path, call, received_at)
        if state.controls.slow_seconds:
            time.sleep(state.controls.slow_seconds)
        self._json(answer, status)

    def _token(self, body: bytes) -> None:
        if self.server.state.controls.down:
            return self._plain(HTTPStatus.SERVICE_UNAVAILABLE, "KMS is down")
        form = parse_qs(body.decode("latin-1"))
        if form.get("grant_type") != ["client_credentials"]:
            return self._json({"error": "unsupported_grant_type"}, HTTPStatus.BAD_REQUEST)
        if not self._client_authenticated():
            return self._json(
                {"error": "invalid_client"},
                HTTPStatus.UNAUTHORIZED,
                [("WWW-Authenticate", 'Basic realm="kms"')],
            )
        token, ttl = self.server.tokens.issue()
        self._json({"access_token": token, "token_type": "Bearer", "expires_in": ttl})

    def _client_authenticated(self) -> bool:
        header = self.headers.get("Authorization", "")
        if not header.startswith("Basic "):
            return False
        try:
            given, _, secret = base64.b64decode(header[6:]).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return False
        want_id, want_secret = self.server.credentials
        return hmac.compare_digest(given.encode(), want_id.encode()) & hmac.compare_digest(
            secret.encode(), want_secret.encode()
        )

    def _control(self, what: str, query: dict) -> None:
        state = self.server.state

        def first(name: str, default: str = "") -> str:
            return query.get(name, [default])[0]

        def devices() -> list[str]:
            return [d for d in first("devices").split(",") if d]

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
                    controls.reject_devices = frozenset(devices())
                elif what == "expire-tokens":
                    self.server.tokens.revoke_all()
                elif what == "register":
                    state.register(devices(), first("kind", "smartcard"))
                elif what == "clear":
                    state.clear()
                    state.mark_changed()
                else:
                    return self._plain(HTTPStatus.NOT_FOUND, "Unknown control")
            except ValueError as exc:
                return self._plain(HTTPStatus.BAD_REQUEST, str(exc))
            body = {**controls.as_dict(), "tokens": self.server.tokens.as_dict()}
        self._json(body)


class Tokens:
    """The access tokens issued, with when each expires (``time.monotonic()``)."""

    def __init__(self, ttl: float):
        self.ttl = ttl
        self.issued: dict[str, float] = {}
        self.fetched = 0  # since start: how many tokens clients asked for
        self.refused = 0  # since start: calls answered 401
        self.lock = threading.Lock()

    def issue(self) -> tuple[str, float]:
        token = secrets.token_urlsafe(24)
        with self.lock:
            now = time.monotonic()
            # Forget the expired ones as new ones come: as small as the live set.
            self.issued = {t: at for t, at in self.issued.items() if at > now}
            self.issued[token] = now + self.ttl
            self.fetched += 1
        return token, self.ttl

    def valid(self, header: str) -> bool:
        if not header.startswith("Bearer "):
            with self.lock:
                self.refused += 1
            return False
        with self.lock:
            expires = self.issued.get(header[len("Bearer ") :].strip())
            if expires is not None and time.monotonic() < expires:
                return True
            self.refused += 1
            return False

    def revoke_all(self) -> None:
        with self.lock:
            self.issued = {}

    def as_dict(self) -> dict:
        with self.lock:
            now = time.monotonic()
            live = sum(1 for at in self.issued.values() if at > now)
            return {"live": live, "fetched": self.fetched, "refused": self.refused}


class Server(simulators.Server):
    def __init__(self, address, state: KmsState, credentials, tls: TLS | None, token_ttl):
        super().__init__(address, Handler, tls)
        self.state = state
        self.credentials = credentials
        self.tokens = Tokens(token_ttl)


def make_server(
    state: KmsState,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    client_id: str,
    client_secret: str,
    tls: TLS | None = None,
    token_ttl: float = DEFAULT_TOKEN_TTL,
) -> Server:
    return Server((host, port), state, (client_id, client_secret), tls, token_ttl)


class Simulator:
    """The simulator in this process, on a free port, for tests."""

    def __init__(
        self,
        client_id: str,
        client_secret: str,
        *,
        known_devices=(),
        tls: TLS | None = None,
        state_file: str | Path | None = None,
        token_ttl: float = DEFAULT_TOKEN_TTL,
    ):
        self.state = KmsState(known_devices, path=state_file)
        self.server = make_server(
            self.state,
            client_id=client_id,
            client_secret=client_secret,
            tls=tls,
            token_ttl=token_ttl,
        )
        self.url = self.server.base_url
        self.token_url = self.url + protocol.OAUTH_PATH
        self._thread = simulators.Thread(self.server, self.state)

    def start(self) -> "Simulator":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._thread.stop()

    def active(self, device: str) -> list[str]:
        """Product ids entitled on a secure client now (beside asking over the API)."""
        with self.state.lock:
            return self.state.active(device)

    def client(self, device: str) -> dict:
        with self.state.lock:
            return json.loads(json.dumps(self.state.clients[device]))


# --- the management command -------------------------------------------------------------------


def add_arguments(parser) -> None:
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8091, help="0: any free port.")
    parser.add_argument("--client-id", default="crm")
    parser.add_argument(
        "--client-secret-env",
        default="CRM_SECRET_IRDETO_CLIENT_SECRET",
        help="Name of the environment variable holding the client secret clients must give.",
    )
    parser.add_argument(
        "--token-ttl",
        type=float,
        default=DEFAULT_TOKEN_TTL,
        help="Seconds an access token lasts (default %(default)s).",
    )
    parser.add_argument(
        "--device", action="append", default=[], help="A secure client id known from the start."
    )
    parser.add_argument(
        "--state-file", default="", help="Keep the KMS's state in this JSON file across restarts."
    )
    simulators.add_tls_arguments(parser)
    parser.add_argument("--verbose", action="store_true", help="Log every HTTP request.")


def _stop_on_sigterm(signum, frame):
    # Leave serve_forever through the finally below, which writes the state file.
    raise KeyboardInterrupt


def serve(options: dict, stdout) -> None:
    secret = os.environ.get(options["client_secret_env"])
    if not secret:
        sys.exit(f"Set the client secret in ${options['client_secret_env']} (--client-secret-env).")
    if options["token_ttl"] <= 0:
        sys.exit("--token-ttl: give a number of seconds above 0.")
    tls = simulators.tls_of(options)
    state = KmsState(options["device"], path=options["state_file"] or None)
    try:
        server = make_server(
            state,
            host=options["host"],
            port=options["port"],
            client_id=options["client_id"],
            client_secret=secret,
            tls=tls,
            token_ttl=options["token_ttl"],
        )
    except (OSError, ssl.SSLError) as exc:
        sys.exit(f"Cannot serve: {exc}")
    server.verbose = options["verbose"]
    base = server.base_url
    client_check = f"; client certificates from {tls.client_ca}" if tls and tls.client_ca else ""
    stdout.write(
        f"Irdeto KMS simulator on {base}{protocol.API_PREFIX}… "
        f"(tokens: {base}{protocol.OAUTH_PATH}, client {options['client_id']}, "
        f"{options['token_ttl']:g} s; "
        f"state {options['state_file'] or 'in memory'}{client_check})\n"
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


SIMULATOR = SimulatorCommand("irdeto", "Irdeto KMS (JSON over HTTPS, OAuth2)", add_arguments, serve)
