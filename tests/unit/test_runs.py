"""Run definitions: validation, submit and cancel on beat's schedule, execution, lock, preview."""

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from django_celery_beat.models import ClockedSchedule, PeriodicTask

from bench import load
from catalogue.models import Provider
from providers import bulk
from providers.models import ProvisioningRequest
from runs import services
from runs.models import ProcessRun, RunDefinition
from subscriptions.models import SubscriptionService

Req = ProvisioningRequest


@pytest.fixture
def drifted(subscribe):
    """Three subscriptions whose services the provider lost (nothing pending for them)."""
    subs = [subscribe("BUNDLE_A"), subscribe("AGRICULTURE"), subscribe("BUNDLE_B")]
    for r in Req.objects.all():
        from providers.answers import record_answer

        record_answer(r, accepted=True)
    SubscriptionService.objects.update(authorized=False)
    return subs


def definition(catalog, **fields):
    values = {
        "name": "Nightly reset",
        "run_type": "reset_subscriptions",
        "provider": catalog.provider,
        "run_at": timezone.now() + timedelta(hours=1),
    }
    values.update(fields)
    return RunDefinition.objects.create(**values)


# --- Validation -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "errors"),
    [
        (
            {"run_type": "process_provisioning_requests"},
            {
                "run_type": [
                    "Generic does not offer Process Provisioning Requests (it offers: "
                    "Reset Subscriptions, Archive requests)."
                ]
            },
        ),
        (
            {"criteria": {"created_from": "2026-05-01", "created_to": "2026-04-01"}},
            {"criteria": ["created_to: The period ends before it starts."]},
        ),
        (
            {"criteria": {"subscription_types": ["XX"]}},
            {
                "criteria": [
                    "subscription_types: Select a valid choice. XX is not one of the "
                    "available choices."
                ]
            },
        ),
        ({"run_at": None}, {"run_at": ["Give the date and time to run at."]}),
        (
            {"schedule": "interval", "every": 5, "unit": "seconds"},
            {"every": ["Runs every few seconds would overlap; use at least 10 seconds."]},
        ),
        (
            {"schedule": "cron", "cron": "0 25 * * *"},
            {"cron": ["Not a valid cron expression: Invalid end range: 25 > 23."]},
        ),
        (
            {"schedule": "cron", "cron": "0 2 * *"},
            {
                "cron": [
                    "A cron expression has five fields: minute hour day-of-month month day-of-week."
                ]
            },
        ),
        (
            {"run_type": "archive_requests", "input_settings": {"older_than_days": 0}},
            {
                "input_settings": [
                    "older_than_days: Ensure this value is greater than or equal to 1."
                ]
            },
        ),
    ],
)
def test_validation_names_each_wrong_field(catalog, fields, errors):
    with pytest.raises(ValidationError) as err:
        services.validate(definition(catalog, **fields))
    assert err.value.message_dict == errors


def test_valid_settings_are_cleaned_with_their_defaults(catalog):
    d = definition(catalog, run_type="archive_requests")
    services.validate(d)
    assert d.input_settings == {"older_than_days": 90}
    d = definition(
        catalog, name="r", criteria={"subscription_types": ["RES"], "created_from": "2026-01-01"}
    )
    services.validate(d)
    assert d.criteria == {
        "created_from": "2026-01-01",
        "created_to": None,
        "subscription_types": ["RES"],
    }


# --- Submit and cancel ----------------------------------------------------------------------


def test_submit_schedules_on_beat_and_cancel_removes_it(catalog):
    d = definition(catalog)
    services.submit(d)
    d.refresh_from_db()
    task = d.periodic_task
    assert d.state == "submitted"
    assert (task.task, task.args, task.one_off, task.enabled) == (
        "runs.tasks.execute_definition",
        f"[{d.pk}]",
        True,
        True,
    )
    assert task.clocked.clocked_time == d.run_at
    assert services.next_run_time(d) == d.run_at

    services.cancel(d)
    d.refresh_from_db()
    assert d.state == "cancelled"
    assert not PeriodicTask.objects.filter(pk=task.pk).exists()
    assert not ClockedSchedule.objects.exists()
    assert services.next_run_time(d) is None

    with pytest.raises(services.RunError, match="only a submitted definition can be cancelled"):
        services.cancel(d)
    services.submit(d)  # a cancelled definition may be submitted again
    with pytest.raises(services.RunError, match="it cannot be submitted again"):
        services.submit(d)


def test_recurring_schedules(catalog):
    every = services.submit(definition(catalog, schedule="interval", every=2, unit="hours"))
    assert (every.periodic_task.interval.every, every.periodic_task.interval.period) == (2, "hours")
    assert timedelta(hours=1, minutes=59) < services.next_run_time(every) - timezone.now()
    nightly = services.submit(definition(catalog, name="n", schedule="cron", cron="30 2 * * 1-5"))
    cron = nightly.periodic_task.crontab
    assert (cron.minute, cron.hour, cron.day_of_week) == ("30", "2", "1-5")


def test_a_once_definition_in_the_past_is_refused(catalog):
    d = definition(catalog, run_at=timezone.now() - timedelta(minutes=1))
    with pytest.raises(services.RunError, match="which has passed; choose a later time"):
        services.submit(d)
    d.refresh_from_db()
    assert d.state == "draft" and d.periodic_task is None


# --- Execution ------------------------------------------------------------------------------


def test_a_reset_run_logs_counts_and_links_the_requests_it_created(catalog, drifted):
    d = definition(catalog)
    run = services.execute(d.pk, ProcessRun.Trigger.RUN_NOW)
    assert (run.status, run.total, run.examined, run.created, run.errors) == (
        "completed",
        3,
        3,
        5,
        0,
    )
    # What it did, by what the requests do.
    assert run.message == "Examined 3 subscriptions; created 5 requests: 5 activations."
    assert services.count_rows(run) == [
        ("examined", "Subscriptions examined", 3),
        ("created", "Requests created", 5),
        ("create_pairing", "New pairings", 0),
        ("add_to_pairing", "Added to a pairing", 0),
        ("deactivate", "Deactivations", 0),
        ("activate", "Activations", 5),
        ("renew", "Renewals", 0),
        ("superseded", "Failed requests superseded", 0),
    ]
    assert set(run.requests.values_list("ca_id", flat=True)) == {
        "GFA1",
        "EFA2",
        "AF1",
        "RFB1",
        "BFB2",
    }
    assert run.finished_at and run.heartbeat_at


def test_problems_are_logged_per_subscription_and_the_rest_goes_ahead(catalog, drifted):
    from catalogue.models import ProductCAId

    ProductCAId.objects.filter(ca_id="AF1").delete()
    run = services.execute(definition(catalog).pk, ProcessRun.Trigger.RUN_NOW)
    assert run.status == "completed_with_errors"
    (error,) = run.error_log.all()
    assert error.subscription == drifted[1]
    assert error.message == "AGRICULTURE has no CA ID at provider Generic."
    assert run.created == 4


def test_the_same_definition_never_runs_twice_at_once(catalog, drifted):
    d = definition(catalog)
    running = ProcessRun.objects.create(
        definition=d, trigger="schedule", heartbeat_at=timezone.now()
    )
    assert services.execute(d.pk, "run_now") is None
    skipped = d.process_runs.exclude(pk=running.pk).get()
    assert skipped.status == "skipped"
    assert skipped.message.startswith(
        f"Nightly reset is already running (process run #{running.pk}, started "
    )
    assert not Req.objects.filter(state="pending").exists()


def test_run_now_while_running_skips_its_queued_row(
    catalog, drifted, django_capture_on_commit_callbacks
):
    d = definition(catalog)
    running = ProcessRun.objects.create(
        definition=d, trigger="schedule", heartbeat_at=timezone.now()
    )
    with django_capture_on_commit_callbacks(execute=False):
        queued = services.run_now(d)
    assert queued.status == "queued"

    assert services.execute(d.pk, "run_now", run_id=queued.pk) is None
    queued.refresh_from_db()
    assert queued.status == "skipped"
    assert queued.message.startswith(f"Nightly reset is already running (process run #{running.pk}")
    assert d.process_runs.count() == 2  # the queued row is the skipped one, not a third


def test_a_run_whose_worker_died_is_failed_and_the_next_one_goes_ahead(catalog, drifted, settings):
    d = definition(catalog)
    dead = ProcessRun.objects.create(
        definition=d,
        trigger="schedule",
        examined=1,
        created=2,
        heartbeat_at=timezone.now() - timedelta(hours=1),
    )
    assert services.fail_stale_runs() == 1
    dead.refresh_from_db()
    assert dead.status == "failed"
    assert "so far: examined 1 subscription; created 2 requests. Run it again" in dead.message
    assert services.execute(d.pk, "run_now").status == "completed"


def test_preview_pages_and_writes_nothing(catalog, drifted):
    d = definition(catalog)
    first, more = services.preview(d, limit=2)
    assert [r.subscription for r in first] == [s.number for s in drifted[:2]]
    assert more
    rest, more = services.preview(d, offset=2, limit=2)
    assert [r.subscription for r in rest] == [drifted[2].number] and not more
    assert [q["command"] for q in first[0].what] == ["ACTIVATE_SERVICE", "ACTIVATE_SERVICE"]
    # Why: what the subscription wants against what the provider holds.
    assert {q["reason"] for q in first[0].what} == {
        "Activate BUNDLE_A: service Effective, not authorized at the provider"
    }
    assert not Req.objects.filter(state="pending").exists()
    assert not ProcessRun.objects.exists()


def test_archive_has_no_preview(catalog):
    with pytest.raises(services.RunError, match="Archive requests has no preview"):
        services.preview(definition(catalog, run_type="archive_requests"))


def test_run_definition_command(catalog, drifted, capsys):
    definition(catalog)
    call_command("run_definition", "Nightly reset")
    out = capsys.readouterr().out
    assert "Examined 3 subscriptions; created 5 requests: 5 activations." in out
    assert ProcessRun.objects.get().trigger == "command"


def test_other_providers_offer_their_own_run_types(db):
    from runs import types

    sms = Provider.objects.create(name="SMS", type="conax_sms")
    assert [t.code for t in types.for_provider(sms)] == [
        "process_provisioning_requests",
        "conax_sms_export_files",
        "conax_sms_error_handling",
        "conax_sms_messages",
        "archive_requests",
    ]


def test_deleting_a_definition_takes_its_schedule_and_keeps_a_history(catalog, drifted):
    d = services.submit(definition(catalog))
    task_id = d.periodic_task_id
    services.delete(d)
    assert not PeriodicTask.objects.filter(pk=task_id).exists()
    ran = definition(catalog, name="Ran")
    services.execute(ran.pk, "run_now")
    with pytest.raises(services.RunError, match="has process runs; cancel it instead"):
        services.delete(ran)


def test_a_submitted_once_definition_cannot_be_moved_into_the_past(catalog):
    d = services.submit(definition(catalog))
    d.run_at = timezone.now() - timedelta(minutes=5)
    with pytest.raises(services.RunError, match="which has passed"):
        services.reschedule(d)


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's planner statistics")
@pytest.mark.django_db(transaction=True)
def test_a_run_that_made_many_requests_leaves_the_planner_knowing_they_are_pending():
    """Statistics taken before the run (none at all here) would have the planner expect next
    to no Pending request, and plan delivery's per-card check as a scan of all of them."""
    load.generate(1200, drift=1.0)  # every subscription out of step
    provider = Provider.objects.get(name="Generic")
    pending = ProvisioningRequest.objects.filter(state="pending")
    before = bulk.estimated_rows(pending)
    d = RunDefinition.objects.create(
        name="Reset all", run_type="reset_subscriptions", provider=provider
    )

    run = services.execute(d.pk, ProcessRun.Trigger.RUN_NOW)

    assert run.created >= services.REFRESH_STATISTICS_AFTER
    assert before < run.created // 2
    assert bulk.estimated_rows(pending) >= run.created // 2


# --- What a run did, in its own terms --------------------------------------------------------


def test_an_archive_run_says_how_many_it_archived(catalog, drifted, operator):
    Req.objects.update(created_at=timezone.now() - timedelta(days=40))
    finished = Req.objects.filter(state__in=("completed", "rejected")).count()
    assert finished >= 5
    d = definition(catalog, run_type="archive_requests", input_settings={"older_than_days": 30})

    run = services.execute(d.pk, ProcessRun.Trigger.RUN_NOW)

    assert (run.status, run.counts) == ("completed", {"archived": finished})
    assert run.message == f"Archived {finished} requests."
    assert services.count_rows(run) == [("archived", "Requests archived", finished)]
    # The run's page shows its own counts, not "requests created".
    client = Client()
    client.force_login(operator)
    body = client.get(reverse("admin:runs_processrun_change", args=[run.pk])).content.decode()
    assert f'Requests archived</th><td id="run-count-archived">{finished}</td>' in body
    assert f"Archived {finished} requests (100%) · 0 errors" in body
    assert "Requests created</th>" not in body
    data = client.get(reverse("admin:runs_processrun_progress", args=[run.pk])).json()
    assert data["counts"] == [{"key": "archived", "label": "Requests archived", "value": finished}]


def test_a_run_with_counts_of_its_own_that_died_says_what_it_had_done(catalog):
    d = definition(catalog, run_type="archive_requests", input_settings={"older_than_days": 30})
    dead = ProcessRun.objects.create(
        definition=d,
        trigger="schedule",
        counts={"archived": 5000},
        heartbeat_at=timezone.now() - timedelta(hours=1),
    )
    assert services.fail_stale_runs() == 1
    dead.refresh_from_db()
    assert "); so far: archived 5000 requests. Run it again to finish" in dead.message


def test_scheduled_runs_with_nothing_to_do_are_counted_not_listed(catalog, operator):
    d = definition(catalog, run_type="archive_requests", input_settings={"older_than_days": 30})

    assert services.execute(d.pk, ProcessRun.Trigger.SCHEDULE) is None
    assert services.execute(d.pk, ProcessRun.Trigger.SCHEDULE) is None
    d.refresh_from_db()
    assert d.empty_runs == 2 and d.last_empty_at is not None
    assert not ProcessRun.objects.exists()
    # Asked for by hand, even an empty run is shown: the operator is waiting for it.
    by_hand = services.execute(d.pk, ProcessRun.Trigger.RUN_NOW)
    assert (by_hand.status, by_hand.message) == ("completed", "Archived 0 requests.")

    client = Client()
    client.force_login(operator)
    body = client.get(reverse("admin:runs_rundefinition_change", args=[d.pk])).content.decode()
    assert "Besides these, 2 scheduled runs found nothing to do (the last at " in body
    assert f"2, the last at {timezone.localtime(d.last_empty_at):%Y-%m-%d %H:%M:%S %Z}" in body
    runs = client.get(reverse("admin:runs_processrun_changelist")).content.decode()
    assert runs.count("Archived 0 requests") == 1
