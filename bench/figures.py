"""What the benchmark measures. Each function adds its figure(s) to the report, our time first,
then the floor: the same work by hand-written SQL (or raw I/O) in the same run."""

import time
from pathlib import Path

from django.db import connection, transaction
from django.db.models import Max

from catalogue.models import Distributor, Product, ProductCAId
from providers import batch
from providers.generic.connector import GenericConnector, Platform
from providers.models import ConnectorToken, ProvisioningRequest
from runs import services
from runs.models import ProcessRun, RunDefinition
from subscriptions.models import InstalledItem, Subscription, SubscriptionService

from . import processes
from .report import Figure, Report

TARGET_PREVIEW_S = 20
TARGET_RUN_S = 60
TARGET_GENERIC_PER_S = 5000
TARGET_WORKER_MB = 500
Req = ProvisioningRequest


def _ca_ids_per_product(provider) -> dict[int, int]:
    """How many CA IDs (requests) a service of each product fans out to at this provider."""
    flat = dict(
        ProductCAId.objects.filter(provider=provider).values_list("product_id", "product_id")
    )
    counts = {pk: 1 for pk in flat}
    for product in Product.objects.exclude(kind=Product.Kind.FLAT).prefetch_related("components"):
        counts[product.pk] = sum(1 for c in product.components.all() if c.pk in flat)
    return counts


def _out_of_step_sql(provider) -> tuple[str, list]:
    """By hand: (service, card) pairs whose provider side differs from the wanted state, each
    counted once per CA ID, plus viewing points with a card to pair."""
    counts = _ca_ids_per_product(provider)
    values = ", ".join(f"({pk}, {n})" for pk, n in counts.items()) or "(0, 0)"
    service = SubscriptionService._meta.db_table
    item = InstalledItem._meta.db_table
    distributors = list(Distributor.objects.filter(provider=provider).values_list("pk", flat=True))
    on = list(SubscriptionService.ON_STATES)
    sql = f"""
        SELECT
          (SELECT COALESCE(SUM(p.n), 0)
             FROM {service} s
             JOIN {item} c ON c.subscription_id = s.subscription_id
              AND c.distributor_id = s.distributor_id AND c.kind = 'smartcard'
              AND c.removed_at IS NULL
             JOIN (VALUES {values}) AS p(product_id, n) ON p.product_id = s.product_id
            WHERE s.distributor_id IN ({", ".join(["%s"] * len(distributors))})
              AND (s.state = ANY(%s)) <> (s.authorized AND c.initialized))
        + (SELECT COUNT(DISTINCT (c.subscription_id, c.distributor_id))
             FROM {item} c
             JOIN {service} s ON s.subscription_id = c.subscription_id
              AND s.distributor_id = c.distributor_id AND s.state = ANY(%s)
            WHERE c.removed_at IS NULL AND NOT c.initialized
              AND c.distributor_id IN ({", ".join(["%s"] * len(distributors))}))
    """  # noqa: S608  (table names from model metadata, values from the database)
    return sql, [*distributors, on, on, *distributors]


def _has_floors() -> bool:
    """The floors are written for PostgreSQL, where the benchmark's figures count."""
    return connection.vendor == "postgresql"


def _timed(work) -> tuple[float, object]:
    started = time.perf_counter()
    result = work()
    return time.perf_counter() - started, result


def reset_preview(report: Report, provider) -> int:
    """Reset Subscriptions preview over every subscription of the provider."""
    selection = batch.Selection(provider)

    def ours():
        rows = requests = 0
        for row in batch.preview(selection):
            rows += 1
            requests += len(row.requests)
        return rows, requests

    seconds, (rows, requests) = _timed(ours)
    sql, params = _out_of_step_sql(provider)

    def floor():
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchone()[0]

    floor_seconds, floor_requests = _timed(floor) if _has_floors() else (None, None)
    report.add(
        Figure(
            "Reset preview",
            seconds,
            "s",
            target=TARGET_PREVIEW_S,
            floor=floor_seconds,
            detail=f"{rows:,} subscriptions out of step, {requests:,} requests "
            f"(by hand: {floor_requests if floor_requests is not None else '-'})",
            counts={"out_of_step": rows, "requests": requests, "requests_by_hand": floor_requests},
        )
    )
    return requests


def reset_run(report: Report, provider, workdir: Path, *, worker_processes: int = 1) -> ProcessRun:
    """A Reset Subscriptions run executed by a real Celery worker (batch queue) with this many
    pool processes, which share the run's parts: its time, the requests it created, and the
    worker's peak memory."""
    plural = "es" if worker_processes > 1 else ""
    name = f"Reset run, {worker_processes} worker process{plural}"
    definition, _ = RunDefinition.objects.get_or_create(
        name="Bench: reset run",
        defaults={"run_type": "reset_subscriptions", "provider": provider},
    )
    before = ProcessRun.objects.filter(definition=definition).aggregate(last=Max("pk"))["last"] or 0
    floor_seconds = _insert_floor(provider) if _has_floors() else None
    with processes.worker(
        workdir / "bench-worker.log", "batch", concurrency=worker_processes, name="bench-batch"
    ) as worker:
        with transaction.atomic():
            services.run_now(definition)
        run = processes.wait_for_run(definition, before, worker, workdir / "bench-worker.log", 3600)
        memory = processes.peak_memory_mb(worker.pid)
    if run is None or run.status != ProcessRun.Status.COMPLETED:
        raise RuntimeError(f"The run did not complete: {run and run.status} {run and run.message}")
    seconds = (run.finished_at - run.started_at).total_seconds()
    report.add(
        Figure(
            name,
            seconds,
            "s",
            target=TARGET_RUN_S,
            floor=floor_seconds,
            detail=f"{run.examined:,} subscriptions examined, {run.created:,} requests created",
            counts={"examined": run.examined, "created": run.created},
        )
    )
    report.add(
        Figure(
            f"Worker peak memory, {name[0].lower()}{name[1:]}",
            memory,
            "MB",
            target=TARGET_WORKER_MB,
            detail="VmHWM of the worker and its pool processes, the highest of them",
        )
    )
    return run


def _insert_floor(provider) -> float:
    """By hand: find what is out of step and write its requests, with the parameters the
    platform needs and the card each goes to, into the real tables, in one statement (rolled
    back). The same rows a run writes for entitlements; viewing points to pair get one row
    each, as a run's pairing does."""
    flat = dict(ProductCAId.objects.filter(provider=provider).values_list("product_id", "ca_id"))
    ca_ids = [(pk, ca) for pk, ca in flat.items()]
    for product in Product.objects.exclude(kind=Product.Kind.FLAT).prefetch_related("components"):
        ca_ids += [(product.pk, flat[c.pk]) for c in product.components.all() if c.pk in flat]
    values = ", ".join(["(%s, %s)"] * len(ca_ids)) or "(0, '')"
    t = {
        "request": Req._meta.db_table,
        "items": Req.items.through._meta.db_table,
        "service": SubscriptionService._meta.db_table,
        "item": InstalledItem._meta.db_table,
        "subscription": Subscription._meta.db_table,
        "product": Product._meta.db_table,
        "distributor": Distributor._meta.db_table,
    }
    distributors = list(Distributor.objects.filter(provider=provider).values_list("pk", flat=True))
    marks = ", ".join(["%s"] * len(distributors))
    on = list(SubscriptionService.ON_STATES)
    sql = f"""
        WITH wanted AS (
            SELECT s.id AS service_id, s.subscription_id, s.distributor_id, s.product_id,
                   c.id AS item_id, c.ca_id AS card_ca_id, c.serial_number, k.ca_id,
                   s.state = ANY(%s) AS switch_on
              FROM {t["service"]} s
              JOIN {t["item"]} c ON c.subscription_id = s.subscription_id
               AND c.distributor_id = s.distributor_id AND c.kind = 'smartcard'
               AND c.removed_at IS NULL
              JOIN (VALUES {values}) AS k(product_id, ca_id) ON k.product_id = s.product_id
             WHERE s.distributor_id IN ({marks})
               AND (s.state = ANY(%s)) <> (s.authorized AND c.initialized)
        ), pairing AS (
            SELECT DISTINCT ON (c.subscription_id, c.distributor_id)
                   c.subscription_id, c.distributor_id, c.id AS item_id
              FROM {t["item"]} c
              JOIN {t["service"]} s ON s.subscription_id = c.subscription_id
               AND s.distributor_id = c.distributor_id AND s.state = ANY(%s)
             WHERE c.removed_at IS NULL AND NOT c.initialized AND c.distributor_id IN ({marks})
        ), made AS (
            INSERT INTO {t["request"]} (uid, command, operation, ca_id, parameters,
                provider_id, distributor_id, subscription_id, service_id, installed_item_id,
                priority, trigger, trigger_name, state, attempts, last_error, error_code,
                rollback, created_at, updated_at)
            SELECT gen_random_uuid(),
                   CASE WHEN w.switch_on THEN 'ACTIVATE_SERVICE' ELSE 'DEACTIVATE_SERVICE' END,
                   CASE WHEN w.switch_on THEN 'activate' ELSE 'deactivate' END, w.ca_id,
                   jsonb_build_object('subscription', sub.number, 'distributor', d.code,
                       'service_ca_id', w.ca_id, 'product_code', p.code,
                       'card_ca_id', w.card_ca_id, 'card_serial_number', w.serial_number),
                   %s, w.distributor_id, w.subscription_id, w.service_id, w.item_id,
                   5, 'run', 'bench floor', 'pending', 0, '', '',
                   jsonb_build_object('service', w.service_id), now(), now()
              FROM wanted w
              JOIN {t["subscription"]} sub ON sub.id = w.subscription_id
              JOIN {t["distributor"]} d ON d.id = w.distributor_id
              JOIN {t["product"]} p ON p.id = w.product_id
            UNION ALL
            SELECT gen_random_uuid(), 'CREATE_PAIRING', 'create_pairing', '',
                   jsonb_build_object('subscription', sub.number, 'distributor', d.code),
                   %s, g.distributor_id, g.subscription_id, NULL, g.item_id,
                   5, 'run', 'bench floor', 'pending', 0, '', '', '{{}}', now(), now()
              FROM pairing g
              JOIN {t["subscription"]} sub ON sub.id = g.subscription_id
              JOIN {t["distributor"]} d ON d.id = g.distributor_id
            RETURNING id, installed_item_id, operation
        )
        -- Item rows for the pairings only, as a run writes them (a request to one card
        -- names it in installed_item).
        INSERT INTO {t["items"]} (provisioningrequest_id, installeditem_id)
        SELECT id, installed_item_id FROM made WHERE operation = 'create_pairing'
    """  # noqa: S608  (table names from model metadata, values as parameters)
    params = [
        on,
        *[v for pair in ca_ids for v in pair],
        *distributors,
        on,
        on,
        *distributors,
        provider.pk,
        provider.pk,
    ]
    started = time.perf_counter()
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
        transaction.set_rollback(True)
    return time.perf_counter() - started


def generic_round_trip(report: Report, provider, workdir: Path) -> None:
    """The reference connector pulls every Pending request of the Generic provider through the
    Web API and answers each (gunicorn serving)."""
    pending = Req.objects.filter(provider=provider, state=Req.State.PENDING)
    count = pending.count()
    if not count:
        return
    floor_seconds = _round_trip_floor(provider) if _has_floors() else None
    _, key = ConnectorToken.issue(provider, "bench")
    with processes.web_server(workdir / "bench-web.log") as url:
        connector = GenericConnector(url, key, Platform(), page_size=1000)
        started = time.perf_counter()
        taken = 0
        while batch_taken := connector.poll_once():
            taken += batch_taken
        seconds = time.perf_counter() - started
    left = pending.count()
    report.add(
        Figure(
            "Generic round trip",
            taken / seconds,
            "requests/s",
            target=TARGET_GENERIC_PER_S,
            direction="min",
            floor=count / floor_seconds if floor_seconds else None,
            detail=f"{taken:,} requests pulled and answered over HTTP; {left:,} left Pending",
            counts={"answered": taken, "left_pending": left},
        )
    )


def _round_trip_floor(provider) -> float:
    """By hand: page through the Pending requests 1000 at a time and mark each page answered,
    in SQL (rolled back)."""
    table = Req._meta.db_table
    started = time.perf_counter()
    with transaction.atomic():
        with connection.cursor() as cursor:
            last = 0
            while True:
                cursor.execute(
                    f"SELECT id, uid, command, parameters FROM {table} "  # noqa: S608
                    "WHERE provider_id = %s AND state = 'pending' AND id > %s "
                    "ORDER BY id LIMIT 1000",
                    [provider.pk, last],
                )
                rows = cursor.fetchall()
                if not rows:
                    break
                last = rows[-1][0]
                cursor.execute(
                    f"UPDATE {table} SET state = 'completed', answered_at = now() "  # noqa: S608
                    "WHERE id = ANY(%s)",
                    [[r[0] for r in rows]],
                )
        transaction.set_rollback(True)
    return time.perf_counter() - started
