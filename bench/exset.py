"""The EXSET SMS figures: the Process Provisioning Requests run over the provider's
subscriptions, writing what it makes to TQUEUE as it goes, and the writing of Pending requests
as TQUEUE entries, into PostgreSQL and into MariaDB.

The SMS's databases are the bench's own: a database named ``Servers.database`` (by default
after the bench's: crm_bench → exset_bench) made on each server with TQUEUE as the SMS has it
(``tqueue.create_table``), and dropped afterwards.

``processing_run(report, workdir, subscriptions=1_000_000, servers=…)``: ``subscriptions``
load subscriptions at the provider "Bench EXSET SMS" (``bench.load``; as many added as are
missing), ``drift`` of them put out of step (``load.redrift``: every on service unauthorized,
needing an Add, every ended one authorized, needing a Remove), their authorizations re-dated
to the data's age (``conax_sms.age_to_today``: one day's worth of renewals due, as daily runs
leave them), and the built-in *Process Provisioning Requests* executed by a real Celery worker
on the ``batch`` queue. The run is what an operator sees: each chunk's requests are written
to TQUEUE in PostgreSQL once the chunk committed (the adapter's ``after_chunk``), so when the
run ends every request it made is an entry the SMS can take. Its floor is the same work by
hand: one SQL statement finding what is out of step (entitlements per card and CA ID, usage
services never wanted, renewals due, pairings of a card and the point's decoder) and
inserting the request rows with their parameters and the pairings' item rows (foreign keys
checked, rolled back), plus the entries it returns written into TQUEUE by one ``COPY``
(then emptied).

``tqueue_writing(report, records=1_000_000, servers=…)``: ``records`` Pending requests
(``exset_requests``: the run's, the utilities' and the message runs' mix) written as TQUEUE
entries by the shared pipeline (``export.export`` with ``queue.PIPELINE``, as the *Write
TQUEUE entries* run does) in batches of the provider's *Maximum number of entries in each
batch* (20,000): into PostgreSQL (target 50,000 entries/s), then the same requests again into
MariaDB (a figure without a target; left out, with a note, when no MariaDB answers). Floor:
the rows read in one SQL statement, and as many entries written by hand in one transaction
(``COPY`` on PostgreSQL, PyMySQL's multi-row ``INSERT`` on MariaDB).
"""

import contextlib
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from django.db import connection, transaction
from django.db.models import Count, Max
from django.utils import timezone

from catalogue.models import Distributor, Product, Provider
from providers import provider_settings, renewals
from providers.errors import TransportError
from providers.exset import commands as ec
from providers.exset import tqueue
from providers.exset.queue import PIPELINE
from providers.file_delivery import export as file_export
from providers.models import ProvisioningRequest, TransferFile
from runs import services
from runs.models import ProcessRun, RunDefinition
from subscriptions.demo import ensure_catalog
from subscriptions.models import InstalledItem, Subscription, SubscriptionService

from . import conax_sms, exset_requests, load, processes
from .report import Figure, Report

PROVIDER = "Bench EXSET SMS"
PROVIDER_TYPE = "exset"
TABLE = "TQUEUE"
DEFINITION = "Bench: EXSET SMS processing run"
TARGET_RUN_S = 60
TARGET_WRITE_PER_S = 50_000
RUN_NAME = "Process Provisioning Requests (EXSET SMS)"
WRITE_NAME = "EXSET TQUEUE writing"
LABELS = {"postgresql": "PostgreSQL", "mariadb": "MariaDB"}
Req = ProvisioningRequest


@dataclass(frozen=True)
class Servers:
    """Where the bench makes its SMS databases: server URLs without a database
    (``postgresql://user@host:port``, ``mysql://user@host:port``), and the database's name."""

    postgresql: str = "postgresql://postgres@127.0.0.1:5432"
    mariadb: str = "mysql://root@127.0.0.1:3306"
    database: str = ""

    def url(self, kind: str) -> str:
        return f"{getattr(self, kind)}/{self.database or default_database()}"

    def check(self) -> None:
        """``ValueError`` saying what is wrong with a server's URL or the database's name."""
        try:
            tqueue.check_identifier(self.database or default_database())
        except ValueError:
            raise ValueError(
                f"The SMS database name {self.database!r} is not a plain SQL name: letters, "
                "digits and _, not starting with a digit."
            ) from None
        for kind, dialect, example in (
            ("postgresql", tqueue.POSTGRESQL, "postgresql://user@host:port"),
            ("mariadb", tqueue.MYSQL, "mysql://user@host:port"),
        ):
            server = getattr(self, kind)
            try:
                right = tqueue.parse_url(self.url(kind)).dialect is dialect
            except ValueError:
                right = False
            if not right:
                raise ValueError(f"{server!r} is not a {LABELS[kind]} server URL ({example}).")


def default_database() -> str:
    """The SMS databases' name, after the bench's own database (crm_bench → exset_bench)."""
    name = connection.settings_dict["NAME"] if connection.vendor == "postgresql" else "bench"
    return tqueue.check_identifier(f"exset_{re.sub(r'^(test_)?(crm_)?', '', str(name))}"[:63])


def _has_floors() -> bool:
    return connection.vendor == "postgresql"


# --- the SMS's databases ------------------------------------------------------------------------


def admin_connection(url: str):
    """An autocommit connection to the server of ``url`` (outside its database); raises
    ``TransportError`` naming the server when it does not answer."""
    target = tqueue.parse_url(url)
    try:
        if target.dialect is tqueue.POSTGRESQL:
            import psycopg

            return psycopg.connect(
                host=target.host,
                port=target.port,
                user=target.user or None,
                dbname="postgres",
                autocommit=True,
                connect_timeout=5,
            )
        import pymysql

        return pymysql.connect(
            host=target.host,
            port=target.port,
            user=target.user or None,
            autocommit=True,
            connect_timeout=5,
        )
    except Exception as exc:  # whichever driver's error: the server does not answer
        where = f"{target.dialect.name} server at {target.host}:{target.port}"
        raise TransportError(f"No {where}: {exc}") from None


def _quoted(target: tqueue.Target) -> str:
    quote = target.dialect.quote
    return f"{quote}{tqueue.check_identifier(target.database)}{quote}"


def _drop(admin, target: tqueue.Target) -> None:
    force = " WITH (FORCE)" if target.dialect is tqueue.POSTGRESQL else ""
    with admin.cursor() as cursor:
        cursor.execute(f"DROP DATABASE IF EXISTS {_quoted(target)}{force}")


@contextlib.contextmanager
def sms_database(url: str) -> Iterator[str]:
    """The database ``url`` names made anew on its server, with an empty TQUEUE; yields the
    URL, and drops the database on leaving. ``TransportError`` when the server does not
    answer."""
    target = tqueue.parse_url(url)
    admin = admin_connection(url)
    try:
        _drop(admin, target)
        with admin.cursor() as cursor:
            cursor.execute(f"CREATE DATABASE {_quoted(target)}")
        database = tqueue.open_database(url, TABLE)
        try:
            database.create_table()
        finally:
            database.close()
        yield url
    finally:
        _drop(admin, target)
        admin.close()


def _entries(url: str) -> tuple[int, int, set[str]]:
    """(entries, batches, entry ids) in the SMS database's TQUEUE."""
    database = tqueue.open_database(url, TABLE)
    try:
        table, entry, batch = database.table, database.column("entry_id"), database.column("batch")
        count, batches = database.execute(
            f"SELECT COUNT(*), COUNT(DISTINCT {batch}) FROM {table}"  # noqa: S608
        ).fetchone()
        ids = {str(e) for (e,) in database.execute(f"SELECT {entry} FROM {table}").fetchall()}  # noqa: S608
        database.conn.rollback()
    finally:
        database.close()
    return count, batches, ids


def _write_by_hand(url: str, rows: list[tuple]) -> float:
    """By hand: ``rows`` (``tqueue.WRITTEN``) into TQUEUE in one transaction — ``COPY`` on
    PostgreSQL, PyMySQL's multi-row ``INSERT`` on MariaDB — timed; then emptied again."""
    database = tqueue.open_database(url, TABLE)
    try:
        names = ", ".join(database.column(c) for c in tqueue.WRITTEN)
        started = time.perf_counter()
        with database.conn.cursor() as cursor:
            if database.dialect is tqueue.POSTGRESQL:
                with cursor.copy(f"COPY {database.table} ({names}) FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row(row)
            else:
                marks = ", ".join(["%s"] * len(tqueue.WRITTEN))
                cursor.executemany(
                    f"INSERT INTO {database.table} ({names}) VALUES ({marks})",  # noqa: S608
                    rows,
                )
        database.conn.commit()
        seconds = time.perf_counter() - started
        (written,) = database.execute(f"SELECT COUNT(*) FROM {database.table}").fetchone()  # noqa: S608
        if written != len(rows):
            raise RuntimeError(f"By hand, {written:,} entries were written, not {len(rows):,}.")
        # Emptied without leaving dead rows in the table and its indexes for the next writer.
        database.execute(f"TRUNCATE TABLE {database.table}")
        database.conn.commit()
    finally:
        database.close()
    return seconds


# --- the provider -------------------------------------------------------------------------------


def ensure_provider() -> Provider:
    """The benchmark's EXSET SMS provider (the Company ZX catalogue on it), enabled."""
    provider = ensure_catalog(PROVIDER, PROVIDER_TYPE).provider
    if provider.type != PROVIDER_TYPE:
        raise RuntimeError(f"Provider {PROVIDER!r} exists with type {provider.type!r}.")
    if not provider.enabled:
        provider.enabled = True
        provider.save(update_fields=["enabled"])
    return provider


def _point_at(provider: Provider, url: str) -> None:
    provider.connection = {"database_url": url, "table": TABLE}
    provider_settings.full_clean(provider)
    provider.save()


# --- the processing run -------------------------------------------------------------------------


def floor_sql(provider: Provider, today) -> tuple[str, list]:
    """By hand, one statement: every request the run makes (Add, Remove and Renew per card and
    CA ID, a pairing per viewing point with a device to register), with its parameters,
    inserted into the request table with the pairings' item rows; it selects each request's
    TQUEUE entry (``tqueue.WRITTEN`` but batch and created_at) and the number of item rows."""
    t = {
        "request": Req._meta.db_table,
        "request_items": Req.items.through._meta.db_table,
        "service": SubscriptionService._meta.db_table,
        "item": InstalledItem._meta.db_table,
        "subscription": Subscription._meta.db_table,
        "distributor": Distributor._meta.db_table,
        "product": Product._meta.db_table,
    }
    on = list(SubscriptionService.ON_STATES)
    usage = Product.ServiceType.USAGE
    # As ``renewals.renewals`` decides it: authorized before the day after the last due day.
    due_before = timezone.make_aware(
        datetime.combine(
            renewals.last_due_day(ec.renewal_period(provider), today) + timedelta(days=1),
            datetime.min.time(),
        )
    )
    params: list = []
    values = conax_sms.ca_id_values(provider, params)
    params += [on, usage, on, usage, on, usage, due_before, provider.pk]  # entitlements
    params += [ec.PAIR, provider.pk, on]  # pairings
    params += [ec.ADD, ec.REMOVE, ec.RENEW, ec.PAIR_UNPAIR, provider.pk]  # the insert
    sql = f"""
        WITH ca(product_id, ca_id) AS (VALUES {values}),
        wanted AS (
            -- Entitlements out of step and renewals due, per card and CA ID (never both).
            SELECT subscription_id, distributor_id, service_id, item_id, op, ca_id,
                   jsonb_build_object('service_ca_id', ca_id, 'product_code', product_code,
                                      'card_ca_id', card_ca_id,
                                      'card_serial_number', card_serial) AS parameters,
                   ARRAY[]::bigint[] AS members
              FROM (
                SELECT s.subscription_id, s.distributor_id, s.id AS service_id,
                       c.id AS item_id, ca.ca_id, p.code AS product_code,
                       c.ca_id AS card_ca_id, c.serial_number AS card_serial,
                       CASE WHEN (s.state = ANY(%s) AND c.removed_at IS NULL
                                  AND p.service_type <> %s)
                                 <> (s.authorized AND c.initialized)
                            THEN CASE WHEN s.state = ANY(%s) AND c.removed_at IS NULL
                                           AND p.service_type <> %s
                                      THEN 'activate' ELSE 'deactivate' END
                            WHEN s.state = ANY(%s) AND s.authorized AND c.initialized
                                 AND c.removed_at IS NULL AND p.service_type <> %s
                                 AND s.authorization_date < %s::timestamptz
                            THEN 'renew' END AS op
                  FROM {t["service"]} s
                  JOIN {t["distributor"]} d ON d.id = s.distributor_id AND d.provider_id = %s
                  JOIN {t["item"]} c ON c.subscription_id = s.subscription_id
                   AND c.distributor_id = s.distributor_id AND c.kind = 'smartcard'
                  JOIN {t["product"]} p ON p.id = s.product_id
                  JOIN ca ON ca.product_id = s.product_id
              ) entitlement
             WHERE op IS NOT NULL
            UNION ALL
            -- A viewing point with an on service and a device to register: its card paired
            -- with its decoder.
            SELECT c.subscription_id, c.distributor_id, NULL, c.id, 'create_pairing', '',
                   jsonb_build_object('action', %s::text, 'card_ca_id', c.ca_id,
                                      'decoder_ca_id', b.ca_id),
                   ARRAY[c.id, b.id]
              FROM {t["item"]} c
              JOIN {t["distributor"]} d ON d.id = c.distributor_id AND d.provider_id = %s
              JOIN {t["item"]} b ON b.subscription_id = c.subscription_id
               AND b.distributor_id = c.distributor_id AND b.kind = 'stb'
               AND b.removed_at IS NULL
             WHERE c.kind = 'smartcard' AND c.removed_at IS NULL
               AND NOT (c.initialized AND b.initialized)
               AND EXISTS (SELECT 1 FROM {t["service"]} s
                            WHERE s.subscription_id = c.subscription_id
                              AND s.distributor_id = c.distributor_id AND s.state = ANY(%s))
        ),
        made AS (
            INSERT INTO {t["request"]} (uid, command, operation, ca_id, parameters,
                provider_id, distributor_id, subscription_id, service_id, installed_item_id,
                priority, trigger, trigger_name, state, attempts, last_error, error_code,
                rollback, created_at, updated_at)
            SELECT gen_random_uuid(),
                   CASE w.op WHEN 'activate' THEN %s::text WHEN 'deactivate' THEN %s::text
                             WHEN 'renew' THEN %s::text ELSE %s::text END,
                   w.op, w.ca_id,
                   w.parameters || jsonb_build_object('subscription', sub.number,
                                                      'distributor', d.code),
                   %s, w.distributor_id, w.subscription_id, w.service_id, w.item_id,
                   5, 'run', 'process_provisioning_requests', 'pending', 0, '', '',
                   CASE w.op WHEN 'activate'
                             THEN jsonb_build_object('switch_off_service', w.service_id)
                             WHEN 'create_pairing'
                             THEN jsonb_build_object('leave_uninitialized', to_jsonb(w.members))
                             ELSE '{{}}'::jsonb END,
                   now(), now()
              FROM wanted w
              JOIN {t["subscription"]} sub ON sub.id = w.subscription_id
              JOIN {t["distributor"]} d ON d.id = w.distributor_id
            RETURNING id, uid, priority, command, parameters, operation, rollback
        ),
        linked AS (
            INSERT INTO {t["request_items"]} (provisioningrequest_id, installeditem_id)
            SELECT m.id, member::bigint
              FROM made m,
                   jsonb_array_elements_text(m.rollback -> 'leave_uninitialized') AS member
             WHERE m.operation = 'create_pairing'
            RETURNING 1
        )
        SELECT m.uid::text, m.id, m.priority, m.command, m.parameters ->> 'subscription',
               m.parameters ->> 'card_ca_id', m.parameters::text,
               (SELECT count(*) FROM linked)
          FROM made m
    """  # noqa: S608  (table names from model metadata, values as parameters)
    return sql, params


def processing_floor(provider: Provider, today, url: str) -> tuple[float, int, int]:
    """The floor's seconds, request rows and item rows: the statement (rolled back) and its
    entries written into TQUEUE by hand."""
    sql, params = floor_sql(provider, today)
    started = time.perf_counter()
    with transaction.atomic():
        with connection.cursor() as cursor:
            # Foreign keys checked as the run's chunks have them checked (at their commit).
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            cursor.execute(sql, params)
            made = cursor.fetchall()
        seconds = time.perf_counter() - started
        transaction.set_rollback(True)
    conax_sms.vacuum()  # the rolled-back rows, as autovacuum would have them gone
    at = tqueue.utc(timezone.now())
    rows = [(uid, "FLOOR", *entry, at) for uid, *entry, _items in made]
    seconds += _write_by_hand(url, rows)
    return seconds, len(made), made[0][-1] if made else 0


def processing_run(
    report: Report,
    workdir: Path,
    *,
    subscriptions: int,
    drift: float = 0.05,
    servers: Servers | None = None,
) -> ProcessRun:
    """Process Provisioning Requests over ``subscriptions`` load subscriptions at the EXSET
    provider, ``drift`` of them out of step, on a real worker (one pool process), writing
    TQUEUE in a PostgreSQL database of the bench's own; adds the figure (with its floor on
    PostgreSQL) and returns the run (whose requests are deleted again)."""
    servers = servers or Servers()
    workdir.mkdir(parents=True, exist_ok=True)
    provider = ensure_provider()
    conax_sms.clean_slate(provider)
    have = conax_sms.ensure_subscriptions(provider, subscriptions)
    aged = conax_sms.age_to_today(provider)
    drifted = load.redrift(PROVIDER, drift) if drift else 0
    conax_sms.analyze()
    today = timezone.localdate()
    definition, _ = RunDefinition.objects.get_or_create(
        name=DEFINITION,
        defaults={"run_type": "process_provisioning_requests", "provider": provider},
    )
    # A run left Running by an interrupted benchmark would make this one skip.
    ProcessRun.objects.filter(definition=definition, status__in=ProcessRun.UNFINISHED).update(
        status=ProcessRun.Status.FAILED,
        finished_at=timezone.now(),
        message="Left running by an interrupted benchmark.",
    )
    before = ProcessRun.objects.filter(definition=definition).aggregate(last=Max("pk"))["last"] or 0
    log = workdir / "bench-worker-exset.log"
    floor_seconds = floor_requests = floor_items = None
    run = None
    with sms_database(servers.url("postgresql")) as url:
        _point_at(provider, url)
        if _has_floors():
            floor_seconds, floor_requests, floor_items = processing_floor(provider, today, url)
        try:
            with processes.worker(log, "batch", name="bench-exset") as worker:
                with transaction.atomic():
                    services.run_now(definition)
                run = processes.wait_for_run(definition, before, worker, log, 3600)
                memory = processes.peak_memory_mb(worker.pid)
            if run.status != ProcessRun.Status.COMPLETED:
                raise RuntimeError(f"The run did not complete: {run.status} {run.message}")
            made = Req.objects.filter(process_run=run)
            by_command = dict(made.values_list("command").annotate(n=Count("id")).order_by())
            uids = {str(u) for u in made.values_list("uid", flat=True)}
            batches = TransferFile.objects.filter(provider=provider, process_run=run)
            uploaded = batches.filter(state=TransferFile.State.UPLOADED).count()
            waiting = file_export.waiting(provider)
            entries, in_tqueue, ids = _entries(url)
        finally:
            if run is not None:
                conax_sms.delete_requests(Req.objects.filter(process_run=run))
            TransferFile.objects.filter(provider=provider).delete()
    missing = len(uids - ids)
    seconds = (run.finished_at - run.started_at).total_seconds()
    redated = f"; authorizations re-dated {aged} days, the load's age" if aged else ""
    kinds = ", ".join(f"{by_command[c]:,} {c}" for c in sorted(by_command))
    by_hand = (
        f"the same {floor_requests:,} requests and their {floor_items:,} item rows found and "
        "written by one SQL statement, foreign keys checked (rolled back), and their entries "
        "written into TQUEUE by one COPY"
        if floor_requests is not None
        else "-"
    )
    report.add(
        Figure(
            f"{RUN_NAME}, 1 worker process",
            seconds,
            "s",
            target=TARGET_RUN_S,
            floor=floor_seconds,
            detail=f"{run.examined:,} subscriptions examined ({have:,} at the provider, "
            f"{drifted:,} put out of step{redated}), {run.created:,} requests created "
            f"({kinds or 'none'}) by a batch worker with 1 pool process (peak memory "
            f"{memory:,.0f} MB) and written per chunk to TQUEUE in PostgreSQL: {entries:,} "
            f"entries in {in_tqueue:,} batches ({uploaded:,} recorded written), {missing:,} "
            f"requests missing, {waiting:,} left waiting; floor: {by_hand}",
            counts={
                "examined": run.examined,
                "at_provider": have,
                "out_of_step": drifted,
                "created": run.created,
                "by_command": by_command,
                "entries": entries,
                "batches": in_tqueue,
                "batches_written": uploaded,
                "missing": missing,
                "waiting": waiting,
                "requests_by_hand": floor_requests,
            },
        )
    )
    return run


# --- TQUEUE writing -----------------------------------------------------------------------------


def _read_floor(provider: Provider) -> tuple[float, list[tuple]]:
    """By hand: the waiting rows in one statement, Express first, as entries
    (``tqueue.WRITTEN`` but batch and created_at)."""
    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT uid::text, id, priority, command, parameters ->> 'subscription', "  # noqa: S608
            "COALESCE(parameters ->> 'card_ca_id', parameters ->> 'new_ca_id'), "
            f"parameters::text FROM {Req._meta.db_table} "
            "WHERE provider_id = %s AND state = 'pending' ORDER BY priority, id",
            [provider.pk],
        )
        rows = cursor.fetchall()
    return time.perf_counter() - started, rows


def _writing(report: Report, provider: Provider, kind: str, url: str, records: int, expected):
    """One figure: every Pending request of the provider written into the TQUEUE at ``url``."""
    _point_at(provider, url)
    limit = int(provider_settings.parameter(provider, "max_records_per_file"))
    floor_seconds = None
    if _has_floors():
        read_seconds, rows = _read_floor(provider)
        if len(rows) != records:
            raise RuntimeError(f"The floor read {len(rows):,} rows, not {records:,}.")
        at = tqueue.utc(timezone.now())
        floor_seconds = read_seconds + _write_by_hand(
            url, [(uid, "FLOOR", *entry, at) for uid, *entry in rows]
        )
    started = time.perf_counter()
    result = file_export.export(PIPELINE, provider)
    seconds = time.perf_counter() - started
    batches = TransferFile.objects.filter(provider=provider, direction=TransferFile.Direction.OUT)
    uploaded = batches.filter(state=TransferFile.State.UPLOADED).count()
    entries, in_tqueue, ids = _entries(url)
    missing = len(expected - ids)
    per_s = result.records / seconds if seconds else 0.0
    by_hand = (
        "the rows read in one SQL statement and as many entries written in one transaction ("
        + ("COPY" if kind == "postgresql" else "PyMySQL's multi-row INSERT")
        + ")"
        if floor_seconds
        else "-"
    )
    report.add(
        Figure(
            f"{WRITE_NAME}, {LABELS[kind]}",
            per_s,
            "entries/s",
            target=TARGET_WRITE_PER_S if kind == "postgresql" else None,
            direction="min",
            floor=records / floor_seconds if floor_seconds else None,
            detail=f"{result.records:,} of {records:,} Pending requests written as TQUEUE "
            f"entries in {seconds:.1f} s, in {uploaded:,} batches of at most {limit:,}; in "
            f"TQUEUE: {entries:,} entries in {in_tqueue:,} batches, {missing:,} requests "
            f"missing; floor: {by_hand}",
            counts={
                "pending": records,
                "written": result.records,
                "failed": result.failed,
                "batches": uploaded,
                "max_entries_per_batch": limit,
                "entries": entries,
                "batches_in_tqueue": in_tqueue,
                "missing": missing,
            },
        )
    )


def tqueue_writing(
    report: Report, *, records: int, servers: Servers | None = None, say=print
) -> None:
    """``records`` Pending requests of the EXSET provider written as TQUEUE entries into a
    PostgreSQL database, then the same requests again into a MariaDB one (when one answers;
    a note otherwise); a figure each (entries/s, with its floor when the bench's own
    database is PostgreSQL). The requests and batches are deleted afterwards."""
    servers = servers or Servers()
    provider = ensure_provider()
    conax_sms.clean_slate(provider)
    try:
        exset_requests.pending_requests(provider, records)
        uids = Req.objects.filter(provider=provider).values_list("uid", flat=True)
        expected = {str(u) for u in uids}
        for kind in ("postgresql", "mariadb"):
            url = servers.url(kind)
            try:
                admin_connection(url).close()
            except TransportError as exc:
                if kind == "postgresql":
                    raise
                note = f"{WRITE_NAME}, {LABELS[kind]}: not measured. {exc}"
                report.notes.append(note)
                say(note)
                continue
            # The batches forgotten: every request waits to be written again.
            TransferFile.objects.filter(provider=provider).delete()
            with sms_database(url) as made:
                _writing(report, provider, kind, made, records, expected)
    finally:
        conax_sms.delete_requests(Req.objects.filter(provider=provider))
        TransferFile.objects.filter(provider=provider).delete()
