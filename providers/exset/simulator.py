"""An EXSET SMS simulator: the SMS side of the TQUEUE table, over a real database.

EXSET's SMS takes our requests from its own database's TQUEUE table. This simulator plays it:
a loop polls the table, takes 'New' entries lowest priority first, then by sequence, marks
them 'Under Processing' (committed), applies each to its subscriber state (``sms_state.py``:
entitlements, pairings, infocas messages, fingerprints, recalls, broadcasts) and sets it
'Done' or 'Error' (``error_code``, ``error_text``) with ``processed_at``, one commit per
entry. Entries it had taken before a restart ('Under Processing') are finished first. It
creates the table (the contract's DDL, below) when it starts.

A control HTTP server (no auth: bind it to localhost), shaped as the Conax WS simulator's:

- ``GET /control/state``: every card, the broadcasts, the counts, how many times each
  entry_id arrived (``received``) and the answer each got; ``?card=CA_ID``: one card;
- ``POST /control/down`` / ``POST /control/up``: stop / resume taking entries (they stay
  'New');
- ``POST /control/slow?seconds=N``: wait N s on each entry while it is 'Under Processing';
- ``POST /control/reject?share=0.3&cards=CA1,CA2``: answer 'Error' to that share of entries
  (chosen by entry_id) and to every entry naming those cards; ``share=0`` and no ``cards``
  stop it;
- ``POST /control/reset``: forget every card, broadcast and entry, and behave again.

In tests: ``Simulator(database_url, table=..., password=None).start()`` polls in a thread and
serves the control endpoints on a free port (``simulator.url``); ``stop()`` ends both. From
the command line: ``python manage.py cas_simulator exset --database-url
sqlite:///var/exset/tqueue.sqlite3 --control-port 8005``.
"""

import contextlib
import json
import logging
import os
import re
import signal
import sqlite3
import sys
import threading
import time
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from providers.extensions import SimulatorCommand

from .sms_state import Controls, SmsState

logger = logging.getLogger(__name__)

NEW, UNDER_PROCESSING = "New", "Under Processing"
COLUMNS = ("entry_id", "batch", "sequence", "priority", "command", "subscription", "card_ca_id")
TABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
CODE_MAX, TEXT_MAX = 40, 400  # error_code / error_text column sizes


# --- The contract's TQUEUE access ---------------------------------------------------------------
# CONTRACT (issue 25): providers/exset/tqueue.py owns ``connect`` and ``create_table``; once it
# is merged, import them from there and delete this section (``placeholder`` stays).


def connect(database_url: str, password: str | None = None):
    """A DB-API connection to the SMS's database: ``sqlite:///relative/path`` or
    ``sqlite:////absolute/path``, ``postgresql://user@host:port/name``. The password comes
    apart (from the environment), never inside the URL."""
    url = urlsplit(database_url)
    if url.password:
        raise ValueError("Give the database password through the environment, not in the URL.")
    if url.scheme == "sqlite":
        path = Path(url.path[1:])
        if not url.path[1:]:
            raise ValueError(f"{database_url}: give the SQLite file, sqlite:///path/to/file.")
        path.parent.mkdir(parents=True, exist_ok=True)
        return sqlite3.connect(path, timeout=30)
    if url.scheme in ("postgres", "postgresql"):
        import psycopg

        return psycopg.connect(database_url, **({"password": password} if password else {}))
    raise ValueError(f"{database_url}: give a sqlite:/// or postgresql:// URL.")


def create_table(connection, table: str) -> None:
    """The contract's TQUEUE table and its indexes, if missing."""
    table = checked_table(table)
    with_index = [
        ("status", "status, priority, sequence"),
        ("batch", "batch, status"),
        ("read_as", "read_as"),
        ("subscription", "subscription, status"),
    ]
    cursor = connection.cursor()
    cursor.execute(
        f"""CREATE TABLE IF NOT EXISTS {table} (
            entry_id VARCHAR(36) PRIMARY KEY,
            batch VARCHAR(64) NOT NULL,
            sequence BIGINT NOT NULL,
            priority SMALLINT NOT NULL,
            command VARCHAR(40) NOT NULL,
            subscription VARCHAR(64) NULL,
            card_ca_id VARCHAR(64) NULL,
            parameters TEXT NOT NULL,
            created_at TIMESTAMP,
            status VARCHAR(20) NOT NULL DEFAULT 'New',
            error_code VARCHAR(40) NULL,
            error_text VARCHAR(400) NULL,
            processed_at TIMESTAMP NULL,
            read_as VARCHAR(80) NULL,
            read_done SMALLINT NOT NULL DEFAULT 0
        )"""
    )
    for name, columns in with_index:
        cursor.execute(f"CREATE INDEX IF NOT EXISTS {table}_{name} ON {table} ({columns})")
    connection.commit()


# --- end of the contract's part -----------------------------------------------------------------


def checked_table(table: str) -> str:
    """The table's name, safe to put in a statement (it cannot be a parameter)."""
    if not TABLE_NAME.fullmatch(table or ""):
        raise ValueError(f"Table name {table!r}: letters, digits and _ only.")
    return table


def placeholder(connection) -> str:
    """The connection's parameter marker: sqlite3's qmark, the others' format style."""
    return "?" if isinstance(connection, sqlite3.Connection) else "%s"


def _processed_at(connection):
    """Now, in UTC, as the TIMESTAMP column takes it (SQLite keeps it as text)."""
    now = datetime.now(UTC).replace(tzinfo=None)
    return now.isoformat(sep=" ") if isinstance(connection, sqlite3.Connection) else now


class Worker(threading.Thread):
    """The SMS's loop over the TQUEUE table, in a thread with its own connection."""

    def __init__(self, state: SmsState, connect_, table: str, interval: float, claim: int):
        super().__init__(name="exset-sms", daemon=True)
        self.state, self.connect, self.table = state, connect_, checked_table(table)
        self.interval, self.claim = interval, claim
        self.stopped = threading.Event()
        self.connection = None
        # Entries taken before a restart or a lost connection are finished first (those
        # already applied are answered as they were, not applied again).
        self.resumed = False
        self.last_error = ""

    def run(self) -> None:
        while not self.stopped.is_set():
            try:
                if self.connection is None:
                    self.connection = self.connect()
                busy = self.round()
                self.last_error = ""
            except Exception as exc:  # the database may come back: try again
                self.last_error = f"{type(exc).__name__}: {exc}"
                logger.warning("EXSET SMS simulator: %s", self.last_error)
                self._close()
                busy = False
            if not busy:
                self.stopped.wait(self.interval)
        self._close()

    def _close(self) -> None:
        if self.connection is not None:
            with contextlib.suppress(Exception):  # a broken connection: nothing to close
                self.connection.close()
            self.connection = None
            self.resumed = False

    def _select(self, status: str, limit: int | None) -> list[dict]:
        mark = placeholder(self.connection)
        sql = (
            f"SELECT {', '.join(COLUMNS)}, parameters FROM {self.table} WHERE status = {mark} "  # noqa: S608 - checked name
            "ORDER BY priority, sequence"
        )
        params: list = [status]
        if limit is not None:
            sql += f" LIMIT {mark}"
            params.append(limit)
        cursor = self.connection.cursor()
        cursor.execute(sql, params)
        rows = [dict(zip((*COLUMNS, "parameters"), row, strict=True)) for row in cursor]
        self.connection.commit()
        return rows

    def round(self) -> bool:
        """Take and answer one batch; False when there was nothing to do."""
        if not self.resumed:
            self._answer(self._select(UNDER_PROCESSING, None), resumed=True)
            self.resumed = True
            return True
        if self.state.controls.down:
            return False
        entries = self._take()
        return self._answer(entries, resumed=False)

    def _take(self) -> list[dict]:
        """Mark the next 'New' entries 'Under Processing', in one commit."""
        mark = placeholder(self.connection)
        candidates = self._select(NEW, self.claim)
        cursor = self.connection.cursor()
        taken = []
        for entry in candidates:
            cursor.execute(
                f"UPDATE {self.table} SET status = {mark} "  # noqa: S608 - checked name
                f"WHERE entry_id = {mark} AND status = {mark}",
                (UNDER_PROCESSING, entry["entry_id"], NEW),
            )
            if cursor.rowcount == 1:
                taken.append(entry)
        self.connection.commit()
        return taken

    def _answer(self, entries: list[dict], *, resumed: bool) -> bool:
        mark = placeholder(self.connection)
        cursor = self.connection.cursor()
        for entry in entries:
            slow = self.state.controls.slow_seconds
            if slow and self.stopped.wait(slow):
                return True  # stopping: the rest stay 'Under Processing', finished on restart
            with self.state.lock:
                outcome = self.state.handle(entry, resumed=resumed)
                self.state.save()  # before the answer commits: a restart never applies twice
            cursor.execute(
                f"UPDATE {self.table} SET status = {mark}, error_code = {mark}, "  # noqa: S608
                f"error_text = {mark}, processed_at = {mark} WHERE entry_id = {mark}",
                (
                    outcome.status,
                    outcome.error_code and outcome.error_code[:CODE_MAX],
                    outcome.error_text and outcome.error_text[:TEXT_MAX],
                    _processed_at(self.connection),
                    entry["entry_id"],
                ),
            )
            self.connection.commit()
        return bool(entries)


# --- the control endpoints ------------------------------------------------------------------


class Handler(BaseHTTPRequestHandler):
    server_version = "ExsetSmsSimulator/1"

    def log_message(self, format, *args):
        if self.server.verbose:
            super().log_message(format, *args)

    def _send(self, status: int, body: bytes, content_type: str = "text/plain") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _json(self, value) -> None:
        self._send(HTTPStatus.OK, json.dumps(value, default=str).encode(), "application/json")

    def do_GET(self):
        url = urlsplit(self.path)
        if url.path != "/control/state":
            return self._send(HTTPStatus.NOT_FOUND, b"Not found")
        card = parse_qs(url.query).get("card", [None])[0]
        simulator = self.server.simulator
        with simulator.state.lock:
            body = simulator.state.snapshot(card)
        if card is None:
            body["database"] = {"table": simulator.table, "error": simulator.worker.last_error}
        self._json(body)

    def do_POST(self):
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        state = self.server.simulator.state

        def first(name: str, default: str = "") -> str:
            return query.get(name, [default])[0]

        with state.lock:
            controls = state.controls
            what = url.path.removeprefix("/control/")
            try:
                if what == "down":
                    controls.down = True
                elif what == "up":
                    controls.down = False
                elif what == "slow":
                    controls.slow_seconds = _number(first("seconds", "0"), "seconds", None)
                elif what == "reject":
                    controls.reject_share = _number(first("share", "0"), "share", 1)
                    cards = first("cards")
                    controls.reject_cards = frozenset(c for c in cards.split(",") if c)
                elif what == "reset":
                    state.reset()
                    state.controls = Controls()
                    state.save()
                else:
                    return self._send(HTTPStatus.NOT_FOUND, b"Unknown control")
            except ValueError as exc:
                return self._send(HTTPStatus.BAD_REQUEST, str(exc).encode())
            body = state.controls.as_dict()
        self._json(body)


def _number(text: str, name: str, maximum: float | None) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{name}={text!r}: give a number.") from None
    if value < 0 or (maximum is not None and value > maximum):
        raise ValueError(f"{name}={text}: give 0 to {maximum if maximum else 'any'}.")
    return value


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address, simulator: "Simulator"):
        super().__init__(address, Handler)
        self.simulator = simulator
        self.verbose = False


class Simulator:
    """The SMS on one database's TQUEUE table, and its control endpoints on ``url``."""

    def __init__(
        self,
        database_url: str,
        table: str = "TQUEUE",
        password: str | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        interval: float = 0.05,
        claim: int = 100,
        state_file: str | Path | None = None,
    ):
        self.database_url, self.table = database_url, checked_table(table)
        self._password = password
        self.state = SmsState(state_file)
        self.worker = Worker(self.state, self.connect, table, interval, claim)
        self.server = Server((host, port), self)
        self.url = "http://{}:{}".format(*self.server.server_address[:2])
        self._http = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def connect(self):
        return connect(self.database_url, self._password)

    def start(self) -> "Simulator":
        """Create the table if missing (a bad URL or table raises here), then serve."""
        connection = self.connect()
        try:
            create_table(connection, self.table)
        finally:
            connection.close()
        self.worker.start()
        self._http.start()
        return self

    def stop(self) -> None:
        self.worker.stopped.set()
        self.worker.join(timeout=30)
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> "Simulator":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


# --- manage.py cas_simulator exset ----------------------------------------------------------


def add_arguments(parser) -> None:
    parser.add_argument(
        "--database-url",
        default="sqlite:///var/exset/tqueue.sqlite3",
        help="The SMS's database (sqlite:///file or postgresql://user@host/name), no password.",
    )
    parser.add_argument("--table", default="TQUEUE")
    parser.add_argument(
        "--password-env", default="", help="Environment variable holding the database password."
    )
    parser.add_argument("--host", default="127.0.0.1", help="Where the control server listens.")
    parser.add_argument("--control-port", type=int, default=8005, help="0: any free port.")
    parser.add_argument("--interval", type=float, default=1.0, help="Seconds between polls.")
    parser.add_argument(
        "--state-file", default="", help="Keep the SMS's state in this JSON file across restarts."
    )
    parser.add_argument("--verbose", action="store_true", help="Log every control request.")


def _stop_on_sigterm(signum, frame):
    raise KeyboardInterrupt


def serve(options: dict, stdout) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    password = None
    if options["password_env"]:
        password = os.environ.get(options["password_env"])
        if not password:
            sys.exit(f"Set the database password in ${options['password_env']}.")
    try:
        simulator = Simulator(
            options["database_url"],
            options["table"],
            password,
            host=options["host"],
            port=options["control_port"],
            interval=options["interval"],
            state_file=options["state_file"] or None,
        )
        simulator.start()
    except Exception as exc:  # a bad URL, table or port: say it and stop
        sys.exit(f"Cannot start the EXSET SMS simulator: {exc}")
    simulator.server.verbose = options["verbose"]
    stdout.write(
        f"EXSET SMS simulator on {options['database_url']} (table {simulator.table}); "
        f"control {simulator.url}/control/state; state {options['state_file'] or 'in memory'}\n"
    )
    stdout.flush()
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    try:
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        simulator.stop()


SIMULATOR = SimulatorCommand(
    "exset", "EXSET SMS (entries in its database's TQUEUE table)", add_arguments, serve
)
