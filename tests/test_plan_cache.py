"""Prepared statements on PostgreSQL: real-time work runs on generic plans, batch work
prepares nothing (each statement planned for its own values), and a connection goes back to
real-time work as it was."""

import pytest
from django.db import connection

from crm_provisioning.db import generic_plans
from providers import batch
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
