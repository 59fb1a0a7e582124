"""Prepared statements on PostgreSQL: real-time work runs on generic plans, batch work
prepares nothing (each statement planned for its own values), and a connection goes back to
real-time work as it was."""

import re

import pytest
from django.db import connection
from psycopg import sql as psycopg_sql

from core.db import SHORT_STATEMENT_BYTES, generic_plans
from crm_provisioning.subscriptions_api import action_result
from providers import batch, reconciler
from providers.models import ProvisioningRequest
from runs import services
from runs.models import ProcessRun, RunDefinition
from subscriptions import actions
from subscriptions.signals import action_performed

pytestmark = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="PostgreSQL's prepared statements"
)


def prepares() -> bool:
    """Whether this connection prepares the statements it runs again."""
    connection.ensure_connection()
    return connection.connection.prepare_threshold is not None


def test_connections_prepare_what_they_run_again(db):
    assert connection.settings_dict["OPTIONS"]["prepare_threshold"]
    assert prepares()


def test_a_preview_plans_each_statement_for_its_values(catalog, subscribe):
    subscribe("BUNDLE_A")
    subscribe("AGRICULTURE")
    # Their requests lost: both subscriptions are out of step, and the preview lists them.
    ProvisioningRequest.objects.all().delete()

    seen = [prepares() for _ in batch.preview(batch.Selection(catalog.provider))]

    assert seen == [False, False]
    assert prepares()


def test_a_run_part_plans_each_statement_for_its_values(catalog, subscribe):
    subscribe("BUNDLE_A")
    definition = RunDefinition.objects.create(
        name="Reset", run_type="reset_subscriptions", provider=catalog.provider
    )
    seen = []

    run = services.execute(
        definition.pk,
        ProcessRun.Trigger.RUN_NOW,
        on_progress=lambda run: seen.append(prepares()),
    )

    assert run.status == ProcessRun.Status.COMPLETED
    assert seen and set(seen) == {False}
    assert prepares()


def plan_cache_mode() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SHOW plan_cache_mode")
        return cursor.fetchone()[0]


# Committed for real (the action's transaction is the outermost), as in the web server.
@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("fast_path")
def test_an_action_runs_on_generic_plans_and_leaves_the_connection_as_it_was(subscribe):
    sub = subscribe("AGRICULTURE")
    service = sub.services.get()
    seen = []

    def during(sender, change, **kwargs):
        seen.append(plan_cache_mode())

    action_performed.connect(during)
    try:
        actions.stop_service(service.pk, reason="test")
        actions.start_service(service.pk, reason="test")
    finally:
        action_performed.disconnect(during)

    assert seen == ["force_generic_plan", "force_generic_plan"]
    assert plan_cache_mode() == "auto"


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("fast_path")
def test_a_refused_action_leaves_the_connection_as_it_was(subscribe):
    sub = subscribe("AGRICULTURE")
    service = sub.services.get()

    with pytest.raises(actions.ActionError):
        actions.start_service(service.pk, reason="already on")

    assert plan_cache_mode() == "auto"


def test_a_delivery_loop_runs_on_generic_plans_until_it_ends(db):
    with generic_plans():
        inside = plan_cache_mode()
    assert (inside, plan_cache_mode()) == ("force_generic_plan", "auto")

    with pytest.raises(ValueError), generic_plans():
        raise ValueError("a failure inside")
    assert plan_cache_mode() == "auto"


def _copies(request_id: int, count: int, *, state: str, subscription_id: int) -> None:
    """``count`` copies of a request row (new uids), in ``state``, for that subscription."""
    table = ProvisioningRequest._meta.db_table
    columns = [
        f.column for f in ProvisioningRequest._meta.concrete_fields if f.column not in ("id",)
    ]
    given = {"state": state, "subscription_id": subscription_id}
    select = ", ".join(
        "gen_random_uuid()" if c == "uid" else "%s" if c in given else f"r.{c}" for c in columns
    )
    params = [given[c] for c in columns if c in given]
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} ({', '.join(columns)}) "
            f"SELECT {select} FROM {table} r, generate_series(1, %s) WHERE r.id = %s",
            [*params, count, request_id],
        )


def _generic_plan(sql: str, params: list) -> str:
    """EXPLAIN of ``sql`` as a prepared statement on its generic plan, as actions run it."""
    raw = connection.connection
    numbered = iter(range(1, len(params) + 1))
    text = re.sub(r"%s", lambda _: f"${next(numbered)}", sql)
    literals = ", ".join(psycopg_sql.Literal(p).as_string(raw) for p in params)
    with raw.cursor() as cursor:
        cursor.execute("SET plan_cache_mode = force_generic_plan")
        cursor.execute(f"PREPARE generic_plan_test AS {text}")
        try:
            cursor.execute(f"EXPLAIN EXECUTE generic_plan_test({literals})")
            return "\n".join(row[0] for row in cursor.fetchall())
        finally:
            cursor.execute("DEALLOCATE generic_plan_test")
            cursor.execute("RESET plan_cache_mode")


def test_an_actions_plan_never_reads_the_pending_queue_on_stale_statistics(catalog, subscribe):
    sub, other = subscribe("AGRICULTURE"), subscribe("AGRICULTURE")
    service = sub.services.get()
    request = ProvisioningRequest.objects.filter(subscription=sub).first()
    # Many answered requests, few Pending, and the planner told so ...
    _copies(request.pk, 20_000, state="completed", subscription_id=other.pk)
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {ProvisioningRequest._meta.db_table}")
    # ... then a run makes tens of thousands Pending before the next ANALYZE.
    _copies(request.pk, 20_000, state="pending", subscription_id=other.pk)
    seen = []

    def observe(execute, sql, params, many, context):
        seen.append((sql, list(params or ())))
        return execute(sql, params, many, context)

    with connection.execute_wrapper(observe):
        reconciler.plan_action(
            catalog.provider, sub, reconciler.Scope(service_ids=frozenset({service.pk}))
        )
    reading_requests = [
        (sql, params) for sql, params in seen if ProvisioningRequest._meta.db_table in sql
    ]

    assert reading_requests  # the entitlements' and the pairings' statements
    for sql, params in reading_requests:
        assert "request_pending_queue" not in _generic_plan(sql, params), sql


@pytest.mark.django_db(transaction=True)
def test_an_actions_statements_are_short_enough_for_psycopg_to_keep_their_conversion(
    subscribe,
):
    sub = subscribe("BUNDLE_A")
    service = sub.services.get()
    seen = []

    def observe(execute, sql, params, many, context):
        seen.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(observe):
        change = actions.stop_service(service.pk, reason="test")
        action_result(change)
        change = actions.start_service(service.pk, reason="test")
        action_result(change)

    assert change.request_ids
    longest = max(seen, key=len)
    assert len(longest.encode()) <= SHORT_STATEMENT_BYTES, longest


def test_a_search_prepares_nothing_however_often_it_is_made(subscribe):
    # A generic plan is made for any pattern: it read every customer instead of the trigram
    # indexes once a search box had been used a few times.
    from subscriptions import search

    sub = subscribe("AGRICULTURE")
    for _ in range(8):
        assert search.find(sub.number[2:]).subscription_ids == [sub.pk]
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE %s",
            ["%subscriptions_customeraccount%LIKE%"],
        )
        assert cursor.fetchone()[0] == 0
    assert prepares()
