"""Runs with a real worker and beat: scheduled through django-celery-beat's database schedule,
and a worker killed in the middle of a run."""

import time
from collections import Counter
from datetime import timedelta

import pytest
from django.utils import timezone

from providers.answers import record_answer
from providers.models import ProvisioningRequest
from runs import services
from runs.models import ProcessRun, RunDefinition
from subscriptions.models import SubscriptionService
from tests import workers

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]
Req = ProvisioningRequest


def drift(subs):
    for r in Req.objects.filter(state="pending").order_by("pk"):
        record_answer(r, accepted=True)
    SubscriptionService.objects.filter(subscription__in=subs).update(authorized=False)


def reset_definition(catalog, **fields):
    return RunDefinition.objects.create(
        name=fields.pop("name", "Reset"),
        run_type="reset_subscriptions",
        provider=catalog.provider,
        **fields,
    )


def runs_of(definition, **filters):
    return list(definition.process_runs.filter(**filters).order_by("pk"))


def test_a_once_definition_runs_once_at_its_time(catalog, subscribe, tmp_path):
    subs = [subscribe("BUNDLE_A"), subscribe("AGRICULTURE")]
    drift(subs)
    worker = workers.start(tmp_path, beat=True)
    logs = [tmp_path / "worker.log"]
    try:
        d = services.submit(reset_definition(catalog, run_at=timezone.now() + timedelta(seconds=4)))
        assert runs_of(d) == []
        workers.wait_until(
            lambda: runs_of(d, status="completed"), seconds=60, what="the scheduled run", logs=logs
        )
        time.sleep(6)  # a once definition does not come back
    finally:
        workers.stop(worker)
    (run,) = runs_of(d)
    assert (run.trigger, run.examined, run.created) == ("schedule", 2, 3)
    assert run.started_at >= d.run_at
    d.refresh_from_db()
    assert d.state == "completed" and d.periodic_task is None
    assert "Sending due task Run definition" in (tmp_path / "worker.log").read_text()


def test_a_recurring_definition_runs_again_until_cancelled(catalog, subscribe, tmp_path):
    subscribe("AGRICULTURE")
    worker = workers.start(tmp_path, beat=True)
    logs = [tmp_path / "worker.log"]
    try:
        d = services.submit(
            reset_definition(catalog, schedule="interval", every=10, unit="seconds")
        )
        workers.wait_until(
            lambda: len(runs_of(d, status="completed")) >= 2, seconds=60, what="two runs", logs=logs
        )
        services.cancel(d)
        workers.wait_until(
            lambda: not runs_of(d, status="running"),
            seconds=30,
            what="the last run to end",
            logs=logs,
        )
        after_cancel = len(runs_of(d))
        time.sleep(15)  # longer than the interval
    finally:
        workers.stop(worker)
    assert len(runs_of(d)) == after_cancel
    first, second = runs_of(d)[:2]
    assert timedelta(seconds=8) < second.started_at - first.started_at < timedelta(seconds=20)


def test_a_worker_killed_mid_run_leaves_it_failed_and_a_rerun_creates_nothing_twice(
    catalog, subscribe, tmp_path, settings
):
    settings.RUN_STALE_SECONDS = 3  # here and in the worker: a silent run is soon seen dead
    subs = [subscribe("BUNDLE_A") for _ in range(120)]
    drift(subs)
    d = reset_definition(catalog)
    wanted = sum(len(row.what) for row in services.preview(d, limit=1000)[0])
    assert wanted == 240

    worker = workers.start(tmp_path, RUN_CHUNK_SIZE="1", RUN_STALE_SECONDS="3")
    logs = [tmp_path / "worker.log"]
    try:
        services.run_now(d)
        workers.wait_until(
            lambda: ProcessRun.objects.filter(definition=d, examined__gte=10).exists(),
            seconds=60,
            what="the run under way",
            logs=logs,
        )
    finally:
        workers.kill(worker)  # a crash mid-run (and never a worker left behind)
    run = ProcessRun.objects.get(definition=d)
    assert run.status == "running" and 10 <= run.examined < 120

    # Its heartbeat goes stale: the sweeper marks it Failed, with what it had done.
    workers.wait_until(
        lambda: services.fail_stale_runs() or not runs_of(d, status="running"),
        seconds=30,
        what="the dead run to be seen as stale",
    )
    run.refresh_from_db()
    assert run.status == "failed"
    assert (
        f"so far: examined {run.examined} of 120 subscriptions; created {run.created} requests: "
        f"{run.created} activations. Run it again"
    ) in run.message
    done_before = Req.objects.filter(state="pending").count()
    assert done_before == run.created

    rerun = services.execute(d.pk, ProcessRun.Trigger.RUN_NOW)

    assert rerun.status == "completed"
    assert rerun.created == wanted - done_before
    keys = Counter(
        Req.objects.filter(state="pending").values_list("service_id", "installed_item_id", "ca_id")
    )
    assert len(keys) == wanted and set(keys.values()) == {1}
    assert list(services.preview(d)[0]) == []


def test_two_workers_share_one_run_part_by_part_and_nothing_is_created_twice(
    catalog, subscribe, tmp_path
):
    subs = [subscribe("BUNDLE_A") for _ in range(60)]
    drift(subs)
    d = reset_definition(catalog)
    wanted = sum(len(row.what) for row in services.preview(d, limit=1000)[0])
    assert wanted == 120

    small = {"RUN_PART_SIZE": "6", "RUN_CHUNK_SIZE": "2"}
    pair = [workers.start(tmp_path, name=f"w{i}", **small) for i in (1, 2)]
    logs = [tmp_path / "w1.log", tmp_path / "w2.log"]
    try:
        workers.wait_until(
            lambda: (
                all(" ready." in p.read_text() for p in logs if p.exists())
                and all(p.exists() for p in logs)
            ),
            seconds=60,
            what="both workers ready",
            logs=logs,
        )
        services.run_now(d)
        workers.wait_until(
            lambda: runs_of(d, status="completed"), seconds=120, what="the run", logs=logs
        )
    finally:
        for worker in pair:
            workers.stop(worker)
    (run,) = runs_of(d)
    parts = list(run.parts.all())
    assert len(parts) >= 10 and all(p.finished_at for p in parts)
    assert len({p.worker for p in parts}) == 2  # both workers took parts of the one run
    assert (run.examined, run.created, run.errors) == (60, wanted, 0)
    # Each part's counts add up on the one run.
    assert (
        run.message
        == f"Examined 60 subscriptions; created {wanted} requests: {wanted} activations."
    )
    keys = Counter(
        Req.objects.filter(state="pending").values_list("service_id", "installed_item_id", "ca_id")
    )
    assert len(keys) == wanted and set(keys.values()) == {1}
