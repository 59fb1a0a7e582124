"""Prepared statements on PostgreSQL: real-time work may run on generic plans, batch work plans
every statement for its own values, and a connection goes back to real-time work as it was."""

import pytest
from django.db import connection

from providers import batch
from providers.models import ProvisioningRequest
from runs import services
from runs.models import ProcessRun, RunDefinition

pytestmark = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="PostgreSQL's prepared statements"
)


def plan_cache_mode() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SHOW plan_cache_mode")
        return cursor.fetchone()[0]


def test_connections_prepare_what_they_run_again(db):
    assert connection.settings_dict["OPTIONS"]["prepare_threshold"]
    assert plan_cache_mode() == "auto"


def test_a_preview_plans_each_statement_for_its_values(catalog, subscribe):
    subscribe("BUNDLE_A")
    subscribe("AGRICULTURE")
    # Their requests lost: both subscriptions are out of step, and the preview lists them.
    ProvisioningRequest.objects.all().delete()

    seen = [plan_cache_mode() for _ in batch.preview(batch.Selection(catalog.provider))]

    assert seen == ["force_custom_plan", "force_custom_plan"]
    assert plan_cache_mode() == "auto"


def test_a_run_part_plans_each_statement_for_its_values(catalog, subscribe):
    subscribe("BUNDLE_A")
    definition = RunDefinition.objects.create(
        name="Reset", run_type="reset_subscriptions", provider=catalog.provider
    )
    seen = []

    run = services.execute(
        definition.pk,
        ProcessRun.Trigger.RUN_NOW,
        on_progress=lambda run: seen.append(plan_cache_mode()),
    )

    assert run.status == ProcessRun.Status.COMPLETED
    assert seen and set(seen) == {"force_custom_plan"}
    assert plan_cache_mode() == "auto"
