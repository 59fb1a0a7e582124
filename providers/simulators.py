"""What the HTTP simulators of platforms share: a kept-alive HTTP/1.1 server, HTTPS with an
optional client certificate check, and a state kept in a file written in the background.

A simulator module (``conax_ws/simulator.py``, ``irdeto/simulator.py``) brings its request
handler and its state; the serving, the TLS handshake and the state file are done here once.
"""

import contextlib
import json
import os
import socket
import ssl
import sys
import threading
from dataclasses import dataclass
from http.server import ThreadingHTTPServer
from pathlib import Path

HANDSHAKE_SECONDS = 10
SAVE_EVERY = 0.5  # seconds between writes of a state file, at most


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


class Thread:
    """A server run in this process on a thread, for tests; ``stop`` ends it and its
    connections and writes the state's last changes."""

    def __init__(self, server: Server, state: SavedState):
        self.server, self.state = server, state
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def start(self) -> None:
        self.state.start_saving()
        self._thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.server.close_connections()
        self.state.close()
