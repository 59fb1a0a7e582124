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
import signal
import sys
import threading
import time
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from providers.extensions import SimulatorCommand
from providers.simulators import Controls

from . import tqueue
from .sms_state import SmsState

logger = logging.getLogger(__name__)

NEW, UNDER_PROCESSING = tqueue.NEW, tqueue.UNDER_PROCESSING
COLUMNS = ("entry_id", "batch", "sequence", "priority", "command", "subscription", "card_ca_id")
CODE_MAX, TEXT_MAX = 40, 400  # error_code / error_text column sizes


def _processed_at(database: tqueue.Database):
    """Now, in UTC, as the TIMESTAMP column takes it (SQLite keeps it as text)."""
    now = tqueue.utc(datetime.now(UTC))
    return now.isoformat(sep=" ") if database.dialect is tqueue.SQLITE else now


class Worker(threading.Thread):
    """The SMS's loop over the TQUEUE table, in a thread with its own connection."""

    def __init__(self, state: SmsState, connect_, table: str, interval: float, claim: int):
        super().__init__(name="exset-sms", daemon=True)
        self.state, self.connect = state, connect_
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
        db = self.connection
        names = ", ".join(db.column(c) for c in (*COLUMNS, "parameters"))
        sql = (
            f"SELECT {names} FROM {db.table} WHERE {db.column('status')} = %s "
            f"ORDER BY {db.column('priority')}, {db.column('sequence')}"
        )
        params: list = [status]
        if limit is not None:
            sql += " LIMIT %s"
            params.append(limit)
        cursor = db.execute(sql, params)
        rows = [dict(zip((*COLUMNS, "parameters"), row, strict=True)) for row in cursor]
        db.conn.commit()
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
        db = self.connection
        candidates = self._select(NEW, self.claim)
        status = db.column("status")
        taken = []
        for entry in candidates:
            cursor = db.execute(
                f"UPDATE {db.table} SET {status} = %s "
                f"WHERE {db.column('entry_id')} = %s AND {status} = %s",
                (UNDER_PROCESSING, entry["entry_id"], NEW),
            )
            if cursor.rowcount == 1:
                taken.append(entry)
        db.conn.commit()
        return taken

    def _answer(self, entries: list[dict], *, resumed: bool) -> bool:
        db = self.connection
        q = db.column
        for entry in entries:
            slow = self.state.controls.slow_seconds
            if slow and self.stopped.wait(slow):
                return True  # stopping: the rest stay 'Under Processing', finished on restart
            with self.state.lock:
                outcome = self.state.handle(entry, resumed=resumed)
                self.state.save()  # before the answer commits: a restart never applies twice
            db.execute(
                f"UPDATE {db.table} SET {q('status')} = %s, {q('error_code')} = %s, "
                f"{q('error_text')} = %s, {q('processed_at')} = %s WHERE {q('entry_id')} = %s",
                (
                    outcome.status,
                    outcome.error_code and outcome.error_code[:CODE_MAX],
                    outcome.error_text and outcome.error_text[:TEXT_MAX],
                    _processed_at(db),
                    entry["entry_id"],
                ),
            )
            db.conn.commit()
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
                    state.controls = Controls("cards")
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
        self.database_url, self.table = database_url, tqueue.check_identifier(table)
        self._password = password
        self.state = SmsState(state_file)
        self.worker = Worker(self.state, self.connect, table, interval, claim)
        self.server = Server((host, port), self)
        self.url = "http://{}:{}".format(*self.server.server_address[:2])
        self._http = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def connect(self) -> tqueue.Database:
        return tqueue.open_database(self.database_url, self.table, self._password, create=True)

    def start(self) -> "Simulator":
        """Create the table if missing (a bad URL or table raises here), then serve."""
        database = self.connect()
        try:
            tqueue.create_table(database)
        finally:
            database.close()
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
