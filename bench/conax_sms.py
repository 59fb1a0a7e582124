"""The Conax SMS figures: the Process Provisioning Requests run over the provider's
subscriptions, and the export of Pending requests into request files uploaded over SFTP.

``processing_run(report, workdir, subscriptions=1_000_000)``: ``subscriptions`` load
subscriptions at the provider "Bench Conax SMS" (``bench.load``, provider type
conax_sms; as many added as are missing), ``drift`` of them put out of step
(``load.redrift``), and the built-in run type *Process Provisioning Requests* executed by a
real Celery worker on the ``batch`` queue (``runs.services.run_now``), renewals included (the
adapter's ``extra_commands``). The requests it made are deleted afterwards.

Its floor is the same work by hand in one SQL statement: find what is out of step — each
(service, card) whose provider side differs from the wanted state, once per CA ID; each
viewing point with an on service and devices to register; each on, authorized service whose
authorization date plus the renewal frequency is today or earlier, per initialized card and CA
ID — and insert as many request rows, with their parameters, into the real request table,
and the pairings' item rows (their members), foreign keys checked (rolled back, then
vacuumed away before the run).
The bench starts from no request Pending at the provider, so the reconciler's look-ups of
requests on their way find none and both write the same rows.

The load dates each authorization within the 60 days before it was generated; the bench moves
those dates forward by the data's age (``age_to_today``), so the share of renewals due stays
what it was on that day (about half of the on services, at the default renewal frequency of
one month: renewals are nine requests in ten).

``export(report, workdir, records=1_000_000)``: ``records`` Pending requests at the provider
(``bench.conax_sms_requests.pending_requests``: the processing run's mix of commands),
exported by the shared file-delivery pipeline (``providers.file_delivery.export``) into files of
at most the provider's *Maximum Number of Records in Each File* (20,000) uploaded over SFTP to
the Conax SMS simulator, which runs as a process of its own (``manage.py cas_simulator
conax-sms``, real SFTP on loopback, host key checked). The simulator is silent (its CAS picks
nothing up) while the figure is measured, so no CPU goes to answering during the measurement;
the files stay in its upload directory, where they are counted and read back afterwards. Its
floor is the raw I/O: reading the same rows in one SQL statement, plus as many files of the same
sizes written over one paramiko SFTP connection to the same simulator (``.part``, then renamed
into place). The requests and files it made are deleted afterwards.
"""

import contextlib
import os
import secrets
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import paramiko
from django.db import connection, transaction
from django.db.models import Count, F, Max
from django.utils import timezone

from catalogue.models import Distributor, Product, Provider
from providers import batch, provider_settings
from providers.conax_sms import file_format as ff
from providers.conax_sms.files import PIPELINE
from providers.conax_sms.simulator import RESPONSE_DIR, UPLOAD_DIR
from providers.file_delivery import export as file_export
from providers.models import ProvisioningRequest, TransferFile
from providers.reconciler import CAIds
from runs import services
from runs.models import ProcessRun, RunDefinition
from subscriptions.demo import ensure_catalog
from subscriptions.models import InstalledItem, Subscription, SubscriptionService

from . import conax_sms_requests, load, processes
from .report import Figure, Report

PROVIDER = "Bench Conax SMS"
PROVIDER_TYPE = "conax_sms"
USERNAME = "crm"
PASSWORD_ENV = "CRM_SECRET_CONAX_SMS_PASSWORD"  # noqa: S105 (the variable's name)
DEFINITION = "Bench: Conax SMS processing run"
TARGET_RUN_S = 60
TARGET_EXPORT_PER_S = 50_000
SIMULATOR_DIR = "bench-conax-sms"
RUN_NAME = "Process Provisioning Requests (Conax SMS)"
EXPORT_NAME = "Conax SMS file export"
Req = ProvisioningRequest


def _has_floors() -> bool:
    """The floors are written for PostgreSQL, where the benchmark's figures count."""
    return connection.vendor == "postgresql"


def ensure_provider() -> Provider:
    """The benchmark's Conax SMS provider (the Company ZX catalogue on it), enabled."""
    provider = ensure_catalog(PROVIDER, PROVIDER_TYPE).provider
    if provider.type != PROVIDER_TYPE:
        raise RuntimeError(f"Provider {PROVIDER!r} exists with type {provider.type!r}.")
    if not provider.enabled:
        provider.enabled = True
        provider.save(update_fields=["enabled"])
    return provider


def clean_slate(provider: Provider) -> None:
    """No request and no file at the benchmark's provider: what an earlier (perhaps
    interrupted) measurement left is bench data only."""
    delete_requests(Req.objects.filter(provider=provider))
    TransferFile.objects.filter(provider=provider).delete()
    # Dead rows of an interrupted measurement, too (a floor's insert, rolled back).
    vacuum()


def delete_requests(requests) -> int:
    """Delete requests and their item rows in two statements (a million of them through the
    ORM's collector would take minutes)."""
    through = Req.items.through
    if connection.vendor == "postgresql":
        # Statistics from before the rows were written would plan the deletes for an empty
        # table (a nested loop over every item row for each request).
        with connection.cursor() as cursor:
            for model in (Req, through):
                cursor.execute(f"ANALYZE {connection.ops.quote_name(model._meta.db_table)}")
    ids = requests.order_by().values("pk")
    through.objects.filter(provisioningrequest_id__in=ids).delete()
    count = requests.order_by()._raw_delete(requests.db)
    if count:
        # As autovacuum would, before the next measurement: statistics of a table of dead
        # rows (none live, thousands of pages) plan the reconciler's look-ups of requests on
        # their way as scans of every Pending request, for each card.
        vacuum()
    return count


def vacuum(*models) -> None:
    """VACUUM ANALYZE the request tables, or ``models``' (PostgreSQL, outside a transaction):
    the benchmark writes and removes millions of rows, and its database server may run no
    autovacuum (ours does not) to tidy up after it."""
    if connection.vendor != "postgresql" or connection.in_atomic_block:
        return
    with connection.cursor() as cursor:
        for model in models or (Req, Req.items.through):
            cursor.execute(f"VACUUM ANALYZE {connection.ops.quote_name(model._meta.db_table)}")


# --- the processing run -------------------------------------------------------------------------


def ensure_subscriptions(provider: Provider, count: int) -> int:
    """At least ``count`` load subscriptions at the provider, adding the missing ones after
    the load subscriptions already there (``load.generate`` counts every one, whatever its
    provider); returns how many the provider has."""
    selection = batch.Selection(provider)
    have = selection.subscriptions().count()
    if have < count:
        total = Subscription.objects.filter(number__startswith=load.PREFIX).count()
        load.generate(
            total + count - have, provider_name=provider.name, provider_type=provider.type, drift=0
        )
        have = selection.subscriptions().count()
    return have


def age_to_today(provider: Provider) -> int:
    """Move the load's authorization dates at the provider forward by the data's age in whole
    days; returns the days. The load dates each authorization within the month before it was
    generated (``load.RENEWAL_MONTHS``), as daily processing runs leave them, so on that day
    one day's worth, about one on service in thirty, is due a renewal; on older
    data more would be, up to all of them, and the figure would change with the age of the
    database rather than with the product."""
    services = SubscriptionService.objects.filter(
        distributor__provider=provider,
        subscription__number__startswith=load.PREFIX,
        authorization_date__isnull=False,
    )
    newest = services.filter(state__in=SubscriptionService.ON_STATES).aggregate(
        newest=Max("authorization_date")
    )["newest"]
    if newest is None:
        return 0
    days = (timezone.now() - newest).days
    if days >= 1:
        services.update(authorization_date=F("authorization_date") + timedelta(days=days))
    return max(days, 0)


def analyze() -> None:
    """Fresh planner statistics for the tables the run reads and writes, as autovacuum keeps
    them in production."""
    if connection.vendor != "postgresql":
        return
    tables = [
        Req._meta.db_table,
        Req.items.through._meta.db_table,
        SubscriptionService._meta.db_table,
        InstalledItem._meta.db_table,
    ]
    with connection.cursor() as cursor:
        for table in tables:
            cursor.execute(f"ANALYZE {connection.ops.quote_name(table)}")


def ca_id_values(provider: Provider, params: list) -> str:
    """(product id, CA ID) rows of every product at the provider, a bundle once per component
    CA ID, as SQL VALUES (the values as parameters)."""
    ca_ids = CAIds.of_provider(provider.pk)
    rows = []
    for product_id in ca_ids.products():
        for ca_id in ca_ids[product_id]:
            rows.append("(%s::bigint, %s::text)")
            params.extend([product_id, ca_id])
    return ", ".join(rows) or "(0::bigint, ''::text)"


def floor_sql(provider: Provider, today) -> tuple[str, list]:
    """By hand, one statement: every request the run makes (entitlements, pairings,
    renewals), with its parameters, inserted into the request table, and the pairings' item
    rows (their members); it selects the numbers of request and item rows. (A pairing is
    always written as a new one, anchored on its first device: the load makes none to add
    to.)"""
    t = {
        "request": Req._meta.db_table,
        "request_items": Req.items.through._meta.db_table,
        "service": SubscriptionService._meta.db_table,
        "item": InstalledItem._meta.db_table,
        "subscription": Subscription._meta.db_table,
        "distributor": Distributor._meta.db_table,
        "product": Product._meta.db_table,
    }
    months = int(provider_settings.parameter(provider, "renewal_frequency_months"))
    on = list(SubscriptionService.ON_STATES)
    tz = timezone.get_current_timezone_name()
    params: list = []
    values = ca_id_values(provider, params)
    params += [on, on, on, tz, months, today, provider.pk]  # the entitlements and renewals
    params += [provider.pk, on]  # the pairings
    params += [provider.pk]  # the insert
    sql = f"""
        WITH ca(product_id, ca_id) AS (VALUES {values}),
        wanted AS (
            -- Entitlements out of step and renewals due: one pass over the services and
            -- their cards (a service and card is never both).
            SELECT subscription_id, distributor_id, service_id, item_id, op, ca_id,
                   jsonb_build_object('service_ca_id', ca_id, 'product_code', product_code,
                                      'card_ca_id', card_ca_id,
                                      'card_serial_number', card_serial) AS parameters,
                   ARRAY[item_id] AS members
              FROM (
                SELECT s.subscription_id, s.distributor_id, s.id AS service_id,
                       c.id AS item_id, ca.ca_id, p.code AS product_code,
                       c.ca_id AS card_ca_id, c.serial_number AS card_serial,
                       CASE WHEN (s.state = ANY(%s) AND c.removed_at IS NULL)
                                 <> (s.authorized AND c.initialized)
                            THEN CASE WHEN s.state = ANY(%s) AND c.removed_at IS NULL
                                      THEN 'activate' ELSE 'deactivate' END
                            WHEN s.state = ANY(%s) AND s.authorized AND c.initialized
                                 AND c.removed_at IS NULL
                                 AND (s.authorization_date AT TIME ZONE %s)::date
                                     + make_interval(months => %s) <= %s::date
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
            SELECT i.subscription_id, i.distributor_id, NULL, min(i.id), 'create_pairing', '',
                   jsonb_build_object('devices', jsonb_agg(jsonb_build_object(
                       'kind', i.kind, 'ca_id', i.ca_id, 'serial_number', i.serial_number,
                       'product_code', i.product_code) ORDER BY i.id)),
                   array_agg(i.id ORDER BY i.id)
              FROM {t["item"]} i
              JOIN {t["distributor"]} d ON d.id = i.distributor_id AND d.provider_id = %s
             WHERE i.removed_at IS NULL AND NOT i.initialized
               AND EXISTS (SELECT 1 FROM {t["service"]} s
                            WHERE s.subscription_id = i.subscription_id
                              AND s.distributor_id = i.distributor_id AND s.state = ANY(%s))
             GROUP BY i.subscription_id, i.distributor_id
        ),
        made AS (
            INSERT INTO {t["request"]} (uid, command, operation, ca_id, parameters,
                provider_id, distributor_id, subscription_id, service_id, installed_item_id,
                priority, trigger, trigger_name, state, attempts, last_error, error_code,
                rollback, created_at, updated_at)
            SELECT gen_random_uuid(),
                   CASE w.op WHEN 'activate' THEN 'ADD_SUBSCRIPTION'
                             WHEN 'deactivate' THEN 'CANCEL_SUBSCRIPTION'
                             WHEN 'renew' THEN 'RENEW_SUBSCRIPTION'
                             ELSE 'CREATE_PAIRING' END,
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
            RETURNING id, operation, rollback
        ),
        linked AS (
            -- Item rows for the pairings' members only, as the run writes them: a request
            -- to one card names it in installed_item.
            INSERT INTO {t["request_items"]} (provisioningrequest_id, installeditem_id)
            SELECT m.id, member::bigint
              FROM made m,
                   jsonb_array_elements_text(m.rollback -> 'leave_uninitialized') AS member
             WHERE m.operation = 'create_pairing'
            RETURNING 1
        )
        SELECT (SELECT count(*) FROM made), (SELECT count(*) FROM linked)
    """  # noqa: S608  (table names from model metadata, values as parameters)
    return sql, params


def processing_floor(provider: Provider, today) -> tuple[float, int, int]:
    """The floor's seconds, request rows and item rows (rolled back)."""
    sql, params = floor_sql(provider, today)
    started = time.perf_counter()
    with transaction.atomic():
        with connection.cursor() as cursor:
            # The request table's foreign keys are checked at commit; a rolled-back
            # statement would skip them: check them as the run's chunks do.
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            cursor.execute(sql, params)
            requests, items = cursor.fetchone()
        seconds = time.perf_counter() - started
        transaction.set_rollback(True)
    # The rolled-back rows are dead rows in the request tables and their indexes, which the
    # run would wade through: gone, as autovacuum would have them.
    vacuum()
    return seconds, requests, items


def processing_run(
    report: Report,
    workdir: Path,
    *,
    subscriptions: int,
    drift: float = 0.05,
    worker_processes: int = 1,
) -> ProcessRun:
    """Process Provisioning Requests over ``subscriptions`` load subscriptions at the Conax SMS
    provider, ``drift`` of them out of step, on a real worker with ``worker_processes`` pool
    processes; adds the figure (with its SQL floor on PostgreSQL) and returns the run (whose
    requests are deleted again)."""
    workdir.mkdir(parents=True, exist_ok=True)
    provider = ensure_provider()
    clean_slate(provider)
    have = ensure_subscriptions(provider, subscriptions)
    aged = age_to_today(provider)
    drifted = load.redrift(PROVIDER, drift) if drift else 0
    analyze()
    today = timezone.localdate()
    floor_seconds = floor_requests = floor_items = None
    if _has_floors():
        floor_seconds, floor_requests, floor_items = processing_floor(provider, today)
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
    log = workdir / "bench-worker-conax-sms.log"
    run = None
    try:
        with processes.worker(
            log, "batch", concurrency=worker_processes, name="bench-conax-sms"
        ) as worker:
            with transaction.atomic():
                services.run_now(definition)
            run = processes.wait_for_run(definition, before, worker, log, 3600)
            memory = processes.peak_memory_mb(worker.pid)
        if run.status != ProcessRun.Status.COMPLETED:
            raise RuntimeError(f"The run did not complete: {run.status} {run.message}")
        made = Req.objects.filter(process_run=run)
        by_operation = dict(made.values_list("operation").annotate(n=Count("id")).order_by())
    finally:
        if run is not None:
            delete_requests(Req.objects.filter(process_run=run))
    seconds = (run.finished_at - run.started_at).total_seconds()
    plural = "es" if worker_processes > 1 else ""
    redated = f"; authorizations re-dated {aged} days, the load's age" if aged else ""
    kinds = ", ".join(f"{by_operation[op]:,} {op.replace('_', ' ')}" for op in sorted(by_operation))
    by_hand = (
        f"the same {floor_requests:,} requests and their {floor_items:,} item rows found and "
        "written by one SQL statement, foreign keys checked (rolled back)"
        if floor_requests is not None
        else "-"
    )
    report.add(
        Figure(
            f"{RUN_NAME}, {worker_processes} worker process{plural}",
            seconds,
            "s",
            target=TARGET_RUN_S,
            floor=floor_seconds,
            detail=f"{run.examined:,} subscriptions examined ({have:,} at the provider, "
            f"{drifted:,} put out of step{redated}), {run.created:,} requests created "
            f"({kinds or 'none'}) by a batch worker with {worker_processes} pool "
            f"process{plural} (peak memory {memory:,.0f} MB); floor: {by_hand}",
            counts={
                "examined": run.examined,
                "at_provider": have,
                "out_of_step": drifted,
                "created": run.created,
                "by_operation": by_operation,
                "pool_processes": worker_processes,
                "requests_by_hand": floor_requests,
            },
        )
    )
    return run


# --- the export ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sim:
    """The simulator process's SFTP server, and the directory its files are in."""

    host: str
    port: int
    host_key: str
    files: Path  # the servers' root: in/ and out/ beneath

    @property
    def upload_dir(self) -> Path:
        return self.files / UPLOAD_DIR


@contextlib.contextmanager
def simulator(workdir: Path, password: str, *, silent: bool = True) -> Iterator[Sim]:
    """``manage.py cas_simulator conax-sms`` on a free SFTP port (no FTP), its files under
    ``workdir/bench-conax-sms`` (emptied first; the host key kept); yields it once it serves.
    ``silent``: its CAS picks up and answers nothing."""
    root = workdir / SIMULATOR_DIR
    shutil.rmtree(root / "files", ignore_errors=True)
    (root / "cas-state.json").unlink(missing_ok=True)
    root.mkdir(parents=True, exist_ok=True)
    args = [
        "conax-sms",
        "--root",
        str(root),
        "--sftp-port",
        "0",
        "--ftp-port",
        "-1",
        "--username",
        USERNAME,
        "--password-env",
        PASSWORD_ENV,
    ]
    if silent:
        args.append("--silent")
    with processes.simulator(
        workdir / "bench-conax-sms.log",
        args,
        {PASSWORD_ENV: password},
        [r"SFTP port (\d+)", r"host key: (\S+ \S+)"],
        "Conax SMS",
    ) as (port, key):
        yield Sim("127.0.0.1", int(port.group(1)), key.group(1), root / "files")


def _pending(provider: Provider):
    return Req.objects.filter(provider=provider, state=Req.State.PENDING)


def _point_at(provider: Provider, sim: Sim) -> None:
    provider.connection = {
        "protocol": "sftp",
        "host": sim.host,
        "port": sim.port,
        "username": USERNAME,
        "password_env": PASSWORD_ENV,
        "host_key": sim.host_key,
        "upload_directory": f"/{UPLOAD_DIR}",
        "response_directory": f"/{RESPONSE_DIR}",
    }
    provider_settings.full_clean(provider)
    provider.save()


def _read_floor(provider: Provider) -> tuple[float, int]:
    """By hand: the waiting rows in one statement, Express first, with what a line needs (as
    the export reads them: the card and service CA IDs, all the parameters only for the few
    commands whose line needs more)."""
    table = Req._meta.db_table
    entitlements = ", ".join(f"'{command}'" for command in ff.LINE_PARAMETERS)
    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT id, uid::text, command, parameters ->> 'card_ca_id', "  # noqa: S608
            "parameters ->> 'service_ca_id', "
            f"CASE WHEN command IN ({entitlements}) THEN NULL ELSE parameters END "
            f"FROM {table} WHERE provider_id = %s AND state = 'pending' ORDER BY priority, id",
            [provider.pk],
        )
        rows = len(cursor.fetchall())
    return time.perf_counter() - started, rows


def _sftp_floor(sim: Sim, password: str, sizes: list[int]) -> float:
    """By hand: files of these sizes written over one paramiko SFTP connection to the
    simulator, host key checked, each as ``.part`` and renamed into place."""
    directory = "/bench-floor"
    (sim.files / directory.lstrip("/")).mkdir(exist_ok=True)
    started = time.perf_counter()
    ssh = paramiko.Transport((sim.host, sim.port))
    try:
        ssh.start_client(timeout=30)
        key = ssh.get_remote_server_key()
        if f"{key.get_name()} {key.get_base64()}" != sim.host_key:
            raise RuntimeError("The simulator presented another host key.")
        ssh.auth_password(USERNAME, password)
        sftp = paramiko.SFTPClient.from_transport(ssh)
        for number, size in enumerate(sizes, start=1):
            data = b"D" * size
            path = f"{directory}/FLOOR_{number:08d}{ff.REQUEST_SUFFIX}"
            with sftp.open(path + ff.PARTIAL_SUFFIX, "wb", bufsize=1 << 20) as remote:
                remote.set_pipelined(True)
                remote.write(data)
            sftp.posix_rename(path + ff.PARTIAL_SUFFIX, path)
    finally:
        ssh.close()
    return time.perf_counter() - started


def _at_simulator(sim: Sim, names: list[str]) -> tuple[int, int, set[str]]:
    """(files, records, request uids) of the named request files in the simulator's upload
    directory, each parsed as the CAS parses it (its trailer's count and checksum checked)."""
    files, records, uids = 0, 0, set()
    for name in names:
        path = sim.upload_dir / name
        if not path.exists():
            continue
        _name, lines = ff.parse_request(path.read_bytes())
        files += 1
        records += len(lines)
        uids.update(r.uid for r in lines)
    return files, records, uids


def export(report: Report, workdir: Path, *, records: int, keep_files: bool = False) -> dict:
    """Export ``records`` Pending requests of the Conax SMS provider into request files over
    SFTP to the simulator (a process of its own); adds the figure (records/s, with the raw I/O
    floor on PostgreSQL) and returns the raw numbers. The requests and their file records are
    deleted afterwards, and (unless ``keep_files``) the files at the simulator too.

    Needs the simulator's password in ``$CRM_SECRET_CONAX_SMS_PASSWORD`` (the provider's
    transport reads it there); one is made, and set in this process's environment, when it is
    not set."""
    workdir.mkdir(parents=True, exist_ok=True)
    password = os.environ.get(PASSWORD_ENV) or secrets.token_urlsafe(16)
    os.environ[PASSWORD_ENV] = password
    provider = ensure_provider()
    clean_slate(provider)
    limit = int(provider_settings.parameter(provider, "max_records_per_file"))
    read_seconds = sftp_seconds = None
    try:
        with simulator(workdir, password) as sim:
            _point_at(provider, sim)
            conax_sms_requests.pending_requests(provider, records)
            expected = {str(u) for u in _pending(provider).values_list("uid", flat=True)}
            if _has_floors():
                read_seconds, read_rows = _read_floor(provider)
                if read_rows != records:
                    raise RuntimeError(f"The floor read {read_rows:,} rows, not {records:,}")
            started = time.perf_counter()
            exported = file_export.export(PIPELINE, provider).records
            seconds = time.perf_counter() - started
            files = list(
                TransferFile.objects.filter(provider=provider, direction=TransferFile.Direction.OUT)
                .order_by("pk")
                .values_list("name", "records", "state")
            )
            names = [name for name, _records, _state in files]
            sizes = [(sim.upload_dir / name).stat().st_size for name in names]
            if read_seconds is not None:
                sftp_seconds = _sftp_floor(sim, password, sizes)
        on_server, lines, uids = _at_simulator(sim, names)
        uploaded = sum(state == TransferFile.State.UPLOADED for _n, _r, state in files)
    finally:
        delete_requests(Req.objects.filter(provider=provider))
        TransferFile.objects.filter(provider=provider).delete()
        if not keep_files:
            shutil.rmtree(workdir / SIMULATOR_DIR / "files", ignore_errors=True)
    missing = len(expected - uids)
    per_s = exported / seconds if seconds else 0.0
    floor_seconds = read_seconds + sftp_seconds if read_seconds is not None else None
    floor_text = (
        f"{read_seconds:.1f} s reading the rows in one SQL statement + {sftp_seconds:.1f} s "
        "writing as many files of the same sizes over one paramiko SFTP connection"
        if floor_seconds is not None
        else "-"
    )
    report.add(
        Figure(
            EXPORT_NAME,
            per_s,
            "records/s",
            target=TARGET_EXPORT_PER_S,
            direction="min",
            floor=records / floor_seconds if floor_seconds else None,
            detail=f"{exported:,} of {records:,} Pending requests exported in {seconds:.1f} s "
            f"as {len(files):,} files of at most {limit:,} records ({sum(sizes) / 1e6:,.1f} MB, "
            f"{uploaded:,} Uploaded) over SFTP to the simulator (a process of its own, host key "
            f"checked); at the simulator: {on_server:,} files, {lines:,} records, {missing:,} "
            f"requests missing; floor: {floor_text}",
            counts={
                "pending": records,
                "exported": exported,
                "files": len(files),
                "max_records_per_file": limit,
                "uploaded": uploaded,
                "files_at_simulator": on_server,
                "records_at_simulator": lines,
                "missing": missing,
            },
        )
    )
    return {
        "records": exported,
        "seconds": seconds,
        "per_s": per_s,
        "floor_seconds": floor_seconds,
        "files": len(files),
        "uploaded": uploaded,
        "files_at_simulator": on_server,
        "records_at_simulator": lines,
        "missing": missing,
        "bytes": sum(sizes),
        "names": names,
        "directory": workdir / SIMULATOR_DIR / "files" / UPLOAD_DIR,
    }
