"""What the HTTP simulators of platforms share: a kept-alive HTTP/1.1 server, HTTPS with an
optional client certificate check, a state kept in a file written in the background, the
misbehaviour controls, the log of request ids and arrivals, and a request handler with the
``/control/…`` endpoints they all answer.

A simulator module (``conax_ws/simulator.py``, ``irdeto/simulator.py``) brings its protocol
(a ``Handler`` subclass) and its state (a ``RequestState`` subclass); the serving, the TLS
handshake, the state file and the controls are done here once.
"""

import base64
import contextlib
import hashlib
import hmac
import json
import os
import signal
import socket
import ssl
import sys
import threading
import time
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

HANDSHAKE_SECONDS = 10
SAVE_EVERY = 0.5  # seconds between writes of a state file, at most
MAX_BODY = 1_000_000  # bytes of a request body, at most


@dataclass(frozen=True)
class TLS:
    """HTTPS: the server's certificate and key; with ``client_ca``, a client certificate
    issued by that authority is required."""

    certificate: str
    key: str | None = None
    client_ca: str | None = None

    def context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(self.certificate, self.key)
        if self.client_ca:
            context.verify_mode = ssl.CERT_REQUIRED
            context.load_verify_locations(self.client_ca)
        return context


def tls_of(options: dict) -> TLS | None:
    """The TLS a simulator's command line asks for (``--tls-cert``, ``--tls-key``,
    ``--client-ca``); exits with the reason when the options do not fit."""
    if not options["tls_cert"]:
        if options["tls_key"] or options["client_ca"]:
            sys.exit("--tls-key and --client-ca need --tls-cert.")
        return None
    for option in ("tls_cert", "tls_key", "client_ca"):
        if options[option] and not os.path.isfile(options[option]):
            sys.exit(f"--{option.replace('_', '-')} {options[option]}: no such file.")
    return TLS(options["tls_cert"], options["tls_key"] or None, options["client_ca"] or None)


def add_address_arguments(parser, port: int) -> None:
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=port, help="0: any free port.")


def add_serving_arguments(parser, platform: str) -> None:
    """``--state-file`` (``platform``: whose state, as "the KMS"), TLS and ``--verbose``."""
    parser.add_argument(
        "--state-file",
        default="",
        help=f"Keep {platform}'s state in this JSON file across restarts.",
    )
    add_tls_arguments(parser)
    parser.add_argument("--verbose", action="store_true", help="Log every HTTP request.")


def add_tls_arguments(parser) -> None:
    parser.add_argument("--tls-cert", default="", help="Serve HTTPS with this certificate (PEM).")
    parser.add_argument(
        "--tls-key", default="", help="The certificate's private key (PEM), if not in its file."
    )
    parser.add_argument(
        "--client-ca",
        default="",
        help="Require a TLS client certificate issued by this authority (PEM); needs --tls-cert.",
    )


def _linger(connection: ssl.SSLSocket) -> None:
    """After a refused handshake: stop sending, and read what the client still sends until
    it hangs up. Closing with its request unread would send a TCP reset, which can reach the
    client before our TLS alert and leave it with a bare "connection reset" instead of the
    reason."""
    raw = socket.socket(fileno=connection.detach())
    try:
        raw.shutdown(socket.SHUT_WR)
        raw.settimeout(1)
        while raw.recv(65536):
            pass
    except OSError:
        pass
    finally:
        raw.close()


class Server(ThreadingHTTPServer):
    """A threading HTTP server, over TLS when given one; it keeps its open connections so
    that ``close_connections`` can hang up on kept-alive clients."""

    daemon_threads = True

    def __init__(self, address, handler, tls: TLS | None = None):
        self.tls_context = tls.context() if tls else None  # unusable files: before binding
        super().__init__(address, handler)
        self.verbose = False
        self.accepted = 0  # connections, since start: a pooled client opens few
        self.connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()

    @property
    def base_url(self) -> str:
        host, port = self.server_address[:2]
        return f"{'https' if self.tls_context else 'http'}://{host}:{port}"

    def get_request(self):
        connection, address = super().get_request()
        self.accepted += 1
        if self.tls_context is not None:
            # The handshake is made in the connection's own thread (finish_request), so a
            # slow or refused client never holds up the accepting loop.
            connection = self.tls_context.wrap_socket(
                connection, server_side=True, do_handshake_on_connect=False
            )
        return connection, address

    def finish_request(self, request, client_address):
        if self.tls_context is not None:
            request.settimeout(HANDSHAKE_SECONDS)
            try:
                request.do_handshake()
            except (ssl.SSLError, OSError) as exc:
                if self.verbose:
                    sys.stderr.write(f"TLS handshake from {client_address[0]} refused: {exc}\n")
                _linger(request)
                return
        with self._connections_lock:
            self.connections.add(request)
        try:
            super().finish_request(request, client_address)
        finally:
            with self._connections_lock:
                self.connections.discard(request)

    def close_connections(self) -> None:
        """Hang up on every kept-alive client (their threads are waiting for a next
        request)."""
        with self._connections_lock:
            for connection in self.connections:
                # The plain socket's shutdown, under TLS too: it wakes the connection's thread
                # with an end of stream instead of pulling its TLS state away.
                with contextlib.suppress(OSError):
                    socket.socket.shutdown(connection, socket.SHUT_RDWR)

    def handle_error(self, request, client_address):
        if isinstance(sys.exc_info()[1], ConnectionError | ssl.SSLError | TimeoutError):
            return  # the client gave up or hung up: nothing to report
        super().handle_error(request, client_address)


class SavedState:
    """A simulator's state, optionally kept in a JSON file across restarts.

    A change only marks the state changed; a background thread writes the whole file at most
    every ``SAVE_EVERY`` seconds (and ``close`` writes the last changes), because writing it
    per request would make every request cost as much as the whole state. A subclass gives
    ``_persisted()`` (what the file holds) and ``_load(data)``, and calls ``_open`` once its
    empty state is set."""

    def __init__(self, path: str | Path | None = None):
        self.lock = threading.RLock()
        self.path = Path(path) if path else None
        self.writes = 0  # of the state file, since start
        self._changed = False
        self._writing = threading.Lock()  # one writer at a time, so files land in order
        self._stop = threading.Event()
        self._saver: threading.Thread | None = None

    def _open(self) -> None:
        if self.path and self.path.exists():
            self._load(json.loads(self.path.read_text()))

    def _persisted(self) -> dict:
        raise NotImplementedError

    def _load(self, data: dict) -> None:
        raise NotImplementedError

    def mark_changed(self) -> None:
        """Mark the state changed: the saver thread writes it within ``SAVE_EVERY`` s."""
        self._changed = True

    def flush(self) -> None:
        """Write the state file now, if there is one and anything changed since the last
        write. The state is serialised under the lock and written outside it."""
        if self.path is None:
            return
        with self._writing:
            with self.lock:
                if not self._changed:
                    return
                data = json.dumps(self._persisted())
                self._changed = False
            temporary = self.path.with_suffix(".tmp")
            temporary.write_text(data)
            os.replace(temporary, self.path)
            self.writes += 1

    def start_saving(self, every: float = SAVE_EVERY) -> None:
        """Write changes to the state file in the background, at most every ``every`` s."""
        if self.path is None or self._saver is not None:
            return

        def run():
            while not self._stop.wait(every):
                self.flush()

        self._saver = threading.Thread(target=run, name="simulator-state-saver", daemon=True)
        self._saver.start()

    def close(self) -> None:
        """Stop the saver and write the last changes."""
        self._stop.set()
        if self._saver is not None:
            self._saver.join()
        self.flush()


def draw(key: str) -> float:
    """A number from 0 to 1 fixed by ``key``: refusing the keys drawn below a share answers
    the same request the same way every time."""
    return int(hashlib.sha256(key.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF


class Controls:
    """How a simulator misbehaves, set through ``/control/…``: down, slow, and refusing a
    share of requests and every request naming given devices. ``devices`` is what the
    platform calls them: the query parameter (``cards=``) and the field (``reject_cards``)."""

    def __init__(self, devices: str):
        self.devices = devices
        self.down = False
        self.slow_seconds = 0.0
        self.reject_share = 0.0
        self.rejected = frozenset()

    @property
    def rejected(self) -> frozenset[str]:
        return getattr(self, f"reject_{self.devices}")

    @rejected.setter
    def rejected(self, ids) -> None:
        setattr(self, f"reject_{self.devices}", frozenset(ids))

    def blocked(self, ids) -> list[str]:
        """Those of ``ids`` to refuse, in order."""
        return sorted(set(ids) & self.rejected)

    def refuses_share(self, request_id: str) -> bool:
        return bool(self.reject_share) and draw(request_id) < self.reject_share

    def as_dict(self) -> dict:
        return {
            "down": self.down,
            "slow_seconds": self.slow_seconds,
            "reject_share": self.reject_share,
            f"reject_{self.devices}": sorted(self.rejected),
        }


class RequestState(SavedState):
    """A simulated platform's state that answers requests by id: its ``controls``, the answer
    each request id got (``answered``: a repeat is answered as before), how many times each
    arrived (``requests``), repeats (``duplicates``) and every arrival in order with the
    wall-clock time it came in (``received``: a log, kept in memory, not in the state file).
    A subclass names its devices (``DEVICES``) and calls ``_clear_requests`` in its ``clear``;
    its ``_persisted`` and ``_load`` include ``_persisted_requests`` and ``_load_requests``."""

    DEVICES = "devices"

    def __init__(self, path: str | Path | None = None):
        super().__init__(path)
        self.controls = Controls(self.DEVICES)

    def _clear_requests(self) -> None:
        self.answered: dict[str, dict] = {}
        self.requests: dict[str, int] = {}
        self.received: list[dict] = []
        self.duplicates = 0

    def _arrived(self, request_id: str, received_at: float | None, first, **details) -> None:
        """Log one arrival of ``request_id`` (``first``: its earlier answer, if a repeat)."""
        self.requests[request_id] = self.requests.get(request_id, 0) + 1
        self.received.append(
            {
                "request_id": request_id,
                "received_at": received_at if received_at is not None else time.time(),
                **details,
                "duplicate": bool(first),
            }
        )
        if first is not None:
            self.duplicates += 1

    def _persisted_requests(self) -> dict:
        return {"answered": self.answered, "requests": self.requests, "duplicates": self.duplicates}

    def _load_requests(self, data: dict) -> None:
        self.answered = data.get("answered", {})
        self.requests = data.get("requests", {})
        self.duplicates = data.get("duplicates", 0)

    def snapshot(self) -> dict:
        """Everything, for ``/control/state``."""
        return {
            **self._persisted(),
            "received": self.received,
            "controls": self.controls.as_dict(),
            "state_file": {"path": str(self.path) if self.path else None, "writes": self.writes},
        }


class Handler(BaseHTTPRequestHandler):
    """A simulator's HTTP basics and the ``/control/…`` endpoints every one answers (down,
    up, slow, reject, clear; ``GET /control/state``; ``GET``/``DELETE /control/received``).
    A subclass answers its protocol's calls (``_call``, and ``_get`` for other GETs) and its
    own controls (``_more_control``); ``_extras`` adds to the state and control answers. Its
    server has ``state`` (a ``RequestState``) and ``credentials`` (for ``_basic_auth``)."""

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

    def _basic_auth(self) -> bool:
        """Whether the request carries the server's ``credentials`` in HTTP Basic auth."""
        header = self.headers.get("Authorization", "")
        if not header.startswith("Basic "):
            return False
        try:
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return False
        want_user, want_password = self.server.credentials
        return hmac.compare_digest(user.encode(), want_user.encode()) & hmac.compare_digest(
            password.encode(), want_password.encode()
        )

    def _answer_late(self) -> None:
        """Wait as ``/control/slow`` asks, after applying a call and before answering it."""
        if self.server.state.controls.slow_seconds:
            time.sleep(self.server.state.controls.slow_seconds)

    def _extras(self) -> dict:
        return {}

    def _get(self, url) -> None:
        self._plain(HTTPStatus.NOT_FOUND, "Not found")

    def _call(self, path: str, body: bytes, received_at: float) -> None:
        self._plain(HTTPStatus.NOT_FOUND, "Not found")

    def _more_control(self, what: str, first, named: list[str]) -> bool:
        """Apply a control of this simulator's own; False if ``what`` is none."""
        return False

    def do_GET(self):
        url = urlsplit(self.path)
        state = self.server.state
        if url.path == "/control/state":
            with state.lock:
                return self._json({**state.snapshot(), **self._extras()})
        if url.path == "/control/received":
            with state.lock:
                received = [[r["request_id"], r["received_at"]] for r in state.received]
                if parse_qs(url.query).get("clear") == ["1"]:
                    state.received = []
            return self._json(received)
        return self._get(url)

    def do_DELETE(self):
        if urlsplit(self.path).path != "/control/received":
            return self._plain(HTTPStatus.NOT_FOUND, "Not found")
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
            return self._plain(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "Too large")
        body = self.rfile.read(length)
        if url.path.startswith("/control/"):
            return self._control(url.path[len("/control/") :], parse_qs(url.query))
        return self._call(url.path, body, received_at)

    def _control(self, what: str, query: dict) -> None:
        state = self.server.state

        def first(name: str, default: str = "") -> str:
            return query.get(name, [default])[0]

        with state.lock:
            controls = state.controls
            named = [d for d in first(controls.devices).split(",") if d]
            try:
                if what == "down":
                    controls.down = True
                elif what == "up":
                    controls.down = False
                elif what == "slow":
                    controls.slow_seconds = float(first("seconds", "0"))
                elif what == "reject":
                    controls.reject_share = float(first("share", "0"))
                    controls.rejected = named
                elif what == "clear":
                    state.clear()
                    state.mark_changed()
                elif not self._more_control(what, first, named):
                    return self._plain(HTTPStatus.NOT_FOUND, "Unknown control")
            except ValueError as exc:
                return self._plain(HTTPStatus.BAD_REQUEST, str(exc))
            body = {**controls.as_dict(), **self._extras()}
        self._json(body)


def _stop_on_sigterm(signum, frame):
    # Leave serve_forever through the finally below, which writes the state file.
    raise KeyboardInterrupt


def serve_until_stopped(server: Server, state: SavedState) -> None:
    """Serve (for the management command) until interrupted or sent SIGTERM, then write the
    state's last changes."""
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    state.start_saving()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        state.close()


class Thread:
    """A server run in this process on a thread, for tests; ``stop`` ends it and its
    connections and writes the state's last changes. A simulator's in-process class builds
    on it."""

    def __init__(self, server: Server, state: SavedState):
        self.server, self.state = server, state
        self.url = server.base_url
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def start(self):
        self.state.start_saving()
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.server.close_connections()
        self.state.close()
