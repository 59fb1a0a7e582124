"""The SMS's TQUEUE table, in the SMS's own database: PostgreSQL (psycopg), MySQL / MariaDB
(PyMySQL) or SQLite (the standard library) — plain SQL through one small dialect table.

- ``parse_url`` reads the provider's ``database_url`` (never with a password: it comes from the
  variable ``password_env`` names); ``open_database`` connects; ``create_table`` makes the
  table as the SMS has it (idempotent: for the simulator and the tests, the SMS's side).
- ``connect(provider)`` is the pipeline's channel (``TqueueChannel``): a batch is staged by
  writing its entries, idempotently by ``entry_id`` (our request uid) and committed, so a run
  that dies before recording the batch never makes an entry twice; there is nothing to
  publish. Answers are read back by *readings*: the finished (Done / Error) entries of a batch
  not read yet are claimed under a name (``read_as`` = ``<batch>.<n>``), fetched, and marked
  read (``read_done``) once applied; a run that dies in between finds the same reading, with
  the same rows, and the pipeline only marks it read.

Every error of the database becomes a ``TransportError`` naming the database (never the
password).

Two things follow from writing idempotently by entry_id: after a run died between writing and
recording a batch, its entries keep the batch name they were first written under (the next
batch usually takes the same name; the answers are matched by entry_id whatever it says); and a
reading's number counts the readings of its batch still in the table, so an SMS that deletes
read entries may see a name again (the pipeline then takes it as an answer sent again, and
applies nothing twice).
"""

import hashlib
import json
import re
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import unquote, urlsplit

from providers import env_secrets
from providers.errors import TransportError
from providers.file_delivery.channel import Channel

TIMEOUT_SECONDS = 10
# How long SQLite waits for the other process's write (the SMS's, or ours) to finish.
SQLITE_BUSY_SECONDS = 30
NEW, UNDER_PROCESSING, DONE, ERROR = "New", "Under Processing", "Done", "Error"
FINISHED = (DONE, ERROR)
# What we write, in this order (``Layout.write`` gives rows of these).
WRITTEN = (
    "entry_id",
    "batch",
    "sequence",
    "priority",
    "command",
    "subscription",
    "card_ca_id",
    "parameters",
    "created_at",
)
COLUMNS = (
    *WRITTEN,
    "status",
    "error_code",
    "error_text",
    "processed_at",
    "read_as",
    "read_done",
)
# What an answer reading holds per entry.
READ = ("entry_id", "status", "error_code", "error_text")
# PostgreSQL: where entries go before TQUEUE when some may be there already (``_copy``).
INCOMING = "tqueue_incoming"
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")


@dataclass(frozen=True)
class Dialect:
    name: str
    placeholder: str
    quote: str
    timestamp: str
    # Appended to the INSERT: an entry already there (by entry_id) is left as it is.
    keep_existing: str
    # MySQL has no CREATE INDEX IF NOT EXISTS: its indexes are made with the table.
    table_suffix: str = ""
    inline_indexes: bool = False


POSTGRESQL = Dialect("PostgreSQL", "%s", '"', "TIMESTAMP", 'ON CONFLICT ("entry_id") DO NOTHING')
MYSQL = Dialect(
    "MySQL",
    "%s",
    "`",
    # Microseconds, as the other two keep: the order entries were finished in is kept.
    "DATETIME(6)",
    "ON DUPLICATE KEY UPDATE `entry_id` = `entry_id`",
    table_suffix=" ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
    inline_indexes=True,
)
SQLITE = Dialect("SQLite", "?", '"', "TIMESTAMP", 'ON CONFLICT ("entry_id") DO NOTHING')
SCHEMES = {
    "postgresql": POSTGRESQL,
    "postgres": POSTGRESQL,
    "mysql": MYSQL,
    "mariadb": MYSQL,
    "sqlite": SQLITE,
}
INDEXES = (
    ("by_status", ("status", "priority", "sequence")),
    ("by_batch", ("batch", "status")),
    ("by_reading", ("read_as",)),
    ("by_subscription", ("subscription", "status")),
)


@dataclass(frozen=True)
class Target:
    """Where TQUEUE is: a database server's database, or an SQLite file."""

    dialect: Dialect
    database: str  # the database's name, or the SQLite file's path
    host: str = ""
    port: int | None = None
    user: str = ""

    @property
    def label(self) -> str:
        """How messages name it."""
        if self.dialect is SQLITE:
            return f"SQLite database {self.database}"
        return f"{self.dialect.name} database {self.database} at {self.host}:{self.port}"


def check_identifier(name: str) -> str:
    """``name`` if it is a plain SQL name (safe to quote in any of the dialects)."""
    if not _IDENTIFIER.fullmatch(name or ""):
        raise ValueError(
            f"{name!r} is not a plain SQL table name: letters, digits and _, not starting with a "
            "digit, at most 63 characters."
        )
    return name


def parse_url(url: str) -> Target:
    """The database a ``database_url`` names; ``ValueError`` saying what is wrong (never
    repeating a password the URL holds)."""
    url = (url or "").strip()
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    dialect = SCHEMES.get(scheme)
    if dialect is None:
        raise ValueError(
            "The SMS database URL must start with postgresql://, mysql:// (MariaDB too) or "
            "sqlite:///."
        )
    parts = urlsplit(url)
    if parts.password is not None:
        raise ValueError(
            "The SMS database URL holds a password: remove it from the URL and name the "
            "environment variable holding it in Password variable."
        )
    if parts.query or parts.fragment:
        raise ValueError("The SMS database URL takes no options (nothing after ? or #).")
    if dialect is SQLITE:
        # As dj-database-url reads it: sqlite:///relative/path, sqlite:////absolute/path.
        path = unquote(parts.path[1:])
        if parts.netloc or not path:
            raise ValueError(
                "An SQLite URL names a file: sqlite:///relative/path.sqlite3 or "
                "sqlite:////absolute/path.sqlite3."
            )
        return Target(SQLITE, path)
    database = unquote(parts.path.lstrip("/"))
    try:
        port = parts.port or (5432 if dialect is POSTGRESQL else 3306)
    except ValueError:
        raise ValueError("The SMS database URL's port is not a number.") from None
    if not parts.hostname or not database or "/" in database:
        raise ValueError(
            f"A {dialect.name} URL names a server and a database: "
            f"{scheme}://user@host:port/database."
        )
    return Target(dialect, database, parts.hostname, port, unquote(parts.username or ""))


def _quote(dialect: Dialect, name: str) -> str:
    return f"{dialect.quote}{check_identifier(name)}{dialect.quote}"


def _hidden(text: str, password: str | None) -> str:
    return text.replace(password, "***") if password else text


def _driver_errors(dialect: Dialect) -> tuple[type[Exception], ...]:
    if dialect is POSTGRESQL:
        import psycopg

        return (psycopg.Error,)
    if dialect is MYSQL:
        import pymysql

        return (pymysql.Error,)
    return (sqlite3.Error,)


class Database:
    """One open connection to the SMS's database and its TQUEUE table. Each method commits
    what it wrote; any error of the database is a ``TransportError`` naming it."""

    def __init__(self, target: Target, table: str, password: str | None = None, *, create=False):
        self.target, self.dialect = target, target.dialect
        self.table = _quote(self.dialect, table)
        self.table_name = table
        self._password = password
        self._errors = _driver_errors(self.dialect)
        with self.errors("cannot connect"):
            self.conn = self._connect(create)

    def _connect(self, create: bool):
        target = self.target
        if self.dialect is POSTGRESQL:
            import psycopg

            return psycopg.connect(
                host=target.host,
                port=target.port,
                user=target.user or None,
                password=self._password or None,
                dbname=target.database,
                connect_timeout=TIMEOUT_SECONDS,
            )
        if self.dialect is MYSQL:
            import pymysql

            return pymysql.connect(
                host=target.host,
                port=target.port,
                user=target.user or None,
                password=self._password or "",
                database=target.database,
                connect_timeout=TIMEOUT_SECONDS,
                read_timeout=60,
                write_timeout=60,
                charset="utf8mb4",
                autocommit=False,
            )
        path = Path(target.database)
        if create:
            path.parent.mkdir(parents=True, exist_ok=True)
        elif not path.exists():
            # sqlite3 would make an empty file: a wrong path must say so instead.
            raise sqlite3.OperationalError(f"there is no file {path}")
        # timeout: the busy timeout, waiting for the other process's write to end.
        conn = sqlite3.connect(path, timeout=SQLITE_BUSY_SECONDS)
        # WAL: the SMS's process and our workers read while the other writes.
        conn.execute("PRAGMA journal_mode=WAL")
        return conn

    @contextmanager
    def errors(self, doing: str) -> Iterator[None]:
        """Errors of the database as ``TransportError``s naming it and what was being done."""
        try:
            yield
        except self._errors as exc:
            conn = getattr(self, "conn", None)
            if conn is not None:
                with suppress(self._errors):
                    conn.rollback()
            message = _hidden(str(exc).strip() or type(exc).__name__, self._password)
            raise TransportError(f"{self.target.label}: {doing}: {message}") from None

    def execute(self, sql: str, params: Sequence = ()):
        """``sql`` written with %s placeholders, in this dialect's; returns the cursor."""
        cursor = self.conn.cursor()
        if self.dialect.placeholder != "%s":
            sql = sql.replace("%s", self.dialect.placeholder)
        cursor.execute(sql, tuple(params))
        return cursor

    def column(self, name: str) -> str:
        return _quote(self.dialect, name)

    def close(self) -> None:
        with suppress(self._errors):
            self.conn.close()

    # --- The SMS's side ---------------------------------------------------------------------

    def create_table(self, table: str | None = None) -> None:
        """TQUEUE as the SMS has it (nothing changes if it exists); ``table``: another name
        than the connection's."""
        d, q = self.dialect, self.column
        table = table or self.table_name
        quoted = q(table)
        columns = [
            f"{q('entry_id')} VARCHAR(36) NOT NULL PRIMARY KEY",
            f"{q('batch')} VARCHAR(64) NOT NULL",
            f"{q('sequence')} BIGINT NOT NULL",
            f"{q('priority')} SMALLINT NOT NULL",
            f"{q('command')} VARCHAR(40) NOT NULL",
            f"{q('subscription')} VARCHAR(64) NULL",
            f"{q('card_ca_id')} VARCHAR(64) NULL",
            f"{q('parameters')} TEXT NOT NULL",
            f"{q('created_at')} {d.timestamp} NULL",
            f"{q('status')} VARCHAR(20) NOT NULL DEFAULT '{NEW}'",
            f"{q('error_code')} VARCHAR(40) NULL",
            f"{q('error_text')} VARCHAR(400) NULL",
            f"{q('processed_at')} {d.timestamp} NULL",
            f"{q('read_as')} VARCHAR(80) NULL",
            f"{q('read_done')} SMALLINT NOT NULL DEFAULT 0",
        ]
        if d.inline_indexes:
            columns += [
                f"INDEX {q(name)} ({', '.join(q(c) for c in cols)})" for name, cols in INDEXES
            ]
        with self.errors(f"cannot create table {table}"):
            self.execute(
                f"CREATE TABLE IF NOT EXISTS {quoted} ({', '.join(columns)}){d.table_suffix}"
            )
            if not d.inline_indexes:
                for name, cols in INDEXES:
                    # Index names are per schema here: the table's name makes them its own.
                    index = q(f"{table}_{name}"[:63])
                    self.execute(
                        f"CREATE INDEX IF NOT EXISTS {index} ON {quoted} "
                        f"({', '.join(q(c) for c in cols)})"
                    )
            self.conn.commit()

    # --- What we do -------------------------------------------------------------------------

    def missing_columns(self) -> list[str]:
        """The TQUEUE columns the table lacks (``TransportError`` when it is not there)."""
        with self.errors(f"cannot read table {self.table_name}"):
            cursor = self.execute(f"SELECT * FROM {self.table} WHERE 1 = 0")
            found = {column[0].lower() for column in cursor.description}
            self.conn.rollback()
        return [c for c in COLUMNS if c not in found]

    def count_new(self) -> int:
        with self.errors(f"cannot count entries of {self.table_name}"):
            (count,) = self.execute(
                f"SELECT COUNT(*) FROM {self.table} WHERE {self.column('status')} = %s",
                [NEW],
            ).fetchone()
            self.conn.rollback()
        return count

    def write(self, rows: list[tuple]) -> None:
        """Entries (``WRITTEN`` columns), each once by entry_id; committed when it returns."""
        names = ", ".join(self.column(c) for c in WRITTEN)
        with self.errors(f"cannot write entries into {self.table_name}"):
            if self.dialect is POSTGRESQL:
                self._copy(names, rows)
            else:
                marks = ", ".join([self.dialect.placeholder] * len(WRITTEN))
                if self.dialect is SQLITE:
                    # The driver's datetime adapter is deprecated: its text, as it would write.
                    rows = [(*row[:-1], row[-1].isoformat(sep=" ")) for row in rows]
                # PyMySQL sends this as multi-row INSERTs (ON DUPLICATE KEY included).
                self.conn.cursor().executemany(
                    f"INSERT INTO {self.table} ({names}) VALUES ({marks}) "
                    f"{self.dialect.keep_existing}",
                    rows,
                )
            self.conn.commit()

    def _copy(self, names: str, rows: list[tuple]) -> None:
        """PostgreSQL: the rows by COPY, several times faster than INSERTs. COPY cannot skip
        entries already there (a run died after writing them): then the rows go by COPY into
        a temporary table, and on into TQUEUE skipping those."""
        import psycopg

        try:
            with self.conn.cursor() as cursor:
                self._copy_into(cursor, self.table, names, rows)
            return
        except psycopg.errors.UniqueViolation:
            self.conn.rollback()
        with self.conn.cursor() as cursor:
            cursor.execute(
                f"CREATE TEMPORARY TABLE {INCOMING} ON COMMIT DROP "
                f"AS SELECT {names} FROM {self.table} WITH NO DATA"
            )
            self._copy_into(cursor, INCOMING, names, rows)
            cursor.execute(
                f"INSERT INTO {self.table} ({names}) SELECT {names} FROM {INCOMING} "
                f"{self.dialect.keep_existing}"
            )

    @staticmethod
    def _copy_into(cursor, table: str, names: str, rows: list[tuple]) -> None:
        with cursor.copy(f"COPY {table} ({names}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)

    def has_batch(self, batch: str) -> bool:
        with self.errors(f"cannot look for batch {batch} in {self.table_name}"):
            found = self.execute(
                f"SELECT 1 FROM {self.table} WHERE {self.column('batch')} = %s LIMIT 1",
                [batch],
            ).fetchone()
            self.conn.rollback()
        return found is not None

    def claim_readings(self) -> list[str]:
        """The readings to apply, in order: those an earlier run claimed and did not finish,
        then one new reading per batch with finished entries not read yet."""
        q = self.column
        status, batch, read_as = q("status"), q("batch"), q("read_as")
        finished = ", ".join(["%s"] * len(FINISHED))
        with self.errors(f"cannot read answers from {self.table_name}"):
            left = [
                name
                for (name,) in self.execute(
                    f"SELECT DISTINCT {read_as} FROM {self.table} "
                    f"WHERE {read_as} IS NOT NULL AND {q('read_done')} = 0"
                ).fetchall()
            ]
            batches = [
                name
                for (name,) in self.execute(
                    f"SELECT DISTINCT {batch} FROM {self.table} "
                    f"WHERE {status} IN ({finished}) AND {read_as} IS NULL",
                    FINISHED,
                ).fetchall()
            ]
            claimed = []
            for name in sorted(batches):
                earlier = self.execute(
                    f"SELECT DISTINCT {read_as} FROM {self.table} "
                    f"WHERE {batch} = %s AND {read_as} IS NOT NULL",
                    [name],
                ).fetchall()
                reading = f"{name}.{1 + max((_number(r) for (r,) in earlier), default=0)}"
                self.execute(
                    f"UPDATE {self.table} SET {read_as} = %s "
                    f"WHERE {batch} = %s AND {status} IN ({finished}) AND {read_as} IS NULL",
                    [reading, name, *FINISHED],
                )
                claimed.append(reading)
            self.conn.commit()
        return sorted(left, key=_reading_order) + claimed

    def reading(self, name: str) -> "Reading":
        with self.errors(f"cannot read answers {name} from {self.table_name}"):
            rows = self.execute(
                f"SELECT {', '.join(self.column(c) for c in READ)} FROM {self.table} "
                f"WHERE {self.column('read_as')} = %s "
                f"ORDER BY {self.column('sequence')}, {self.column('entry_id')}",
                [name],
            ).fetchall()
            self.conn.rollback()
        return Reading(name, batch_of(name), [tuple(row) for row in rows])

    def mark_read(self, name: str) -> None:
        with self.errors(f"cannot mark answers {name} read in {self.table_name}"):
            self.execute(
                f"UPDATE {self.table} SET {self.column('read_done')} = 1 "
                f"WHERE {self.column('read_as')} = %s",
                [name],
            )
            self.conn.commit()


def _number(reading: str) -> int:
    suffix = reading.rsplit(".", 1)[-1]
    return int(suffix) if suffix.isdigit() else 0


def _reading_order(reading: str) -> tuple[str, int]:
    return batch_of(reading), _number(reading)


def batch_of(reading: str) -> str:
    """The batch a reading (``<batch>.<n>``) answers."""
    return reading.rsplit(".", 1)[0]


@dataclass(frozen=True)
class Reading:
    """Finished entries of one batch, read back: (entry_id, status, error_code, error_text)."""

    name: str
    batch: str
    rows: list[tuple]

    def checksum(self) -> str:
        return hashlib.sha256(json.dumps(self.rows).encode()).hexdigest()


def open_database(url: str, table: str, password: str | None = None, *, create=False):
    """The database ``url`` names, connected (``ValueError`` for a bad URL or table name,
    ``TransportError`` when it cannot be reached). ``create``: an SQLite file may be new."""
    return Database(parse_url(url), check_identifier(table), password, create=create)


def create_table(conn: Database, table: str | None = None) -> None:
    """The SMS's side: make TQUEUE (``table``: default the connection's), idempotently."""
    conn.create_table(table)


def open_for(provider) -> Database:
    """The provider's SMS database, as its connection settings name it."""
    settings = provider.connection or {}
    password = None
    if settings.get("password_env"):
        password = env_secrets.read(settings["password_env"], "SMS database password")
    try:
        target = parse_url(settings.get("database_url", ""))
        table = check_identifier(settings.get("table") or "TQUEUE")
    except ValueError as exc:
        raise TransportError(f"{provider.name}: {exc}", permanent=True) from None
    return Database(target, table, password)


class TqueueChannel(Channel):
    """The pipeline's channel over TQUEUE (see the module's docstring)."""

    found_published = (
        "Written to TQUEUE by an earlier run that stopped before recording it; not written again."
    )

    def __init__(self, database: Database):
        self.database = database

    def stage(self, name: str, payload: list[tuple]) -> None:
        self.database.write(payload)

    def publish(self, name: str) -> None:
        pass  # written entries are the SMS's to take: nothing is left to do

    def staged(self, name: str) -> bool:
        return self.database.has_batch(name)

    def answers(self) -> list[str]:
        return self.database.claim_readings()

    def fetch(self, name: str) -> Reading:
        return self.database.reading(name)

    def archive(self, name: str, *, refused: bool) -> None:
        self.database.mark_read(name)

    def close(self) -> None:
        self.database.close()


def connect(provider) -> TqueueChannel:
    return TqueueChannel(open_for(provider))


def utc(moment: datetime) -> datetime:
    """As TQUEUE's timestamps hold it: UTC, without a zone."""
    return moment.astimezone(UTC).replace(tzinfo=None)
