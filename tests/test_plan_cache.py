"""Prepared statements on PostgreSQL: real-time work may run on generic plans, batch work
prepares nothing (each statement planned for its own values), and a connection goes back to
real-time work as it was."""

import pytest
from django.db import connection

from providers import batch
from providers.models import ProvisioningRequest
from runs import services
from runs.models import ProcessRun, RunDefinition

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
