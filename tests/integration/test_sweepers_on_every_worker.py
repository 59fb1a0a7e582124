"""The stale-run sweeper and the heartbeat reach every kind of worker: a batch worker alone (the
real-time worker down, or failing every task) still fails a run whose worker went silent, and
shows its own sign of life."""

from datetime import timedelta

import pytest
from django.utils import timezone

from runs.models import ProcessRun, RunDefinition, WorkerHeartbeat
from tests import workers

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def test_a_batch_worker_alone_fails_a_stale_run_and_beats(catalog, tmp_path):
    definition = RunDefinition.objects.create(
        name="Reset all", run_type="reset_subscriptions", provider=catalog.provider
    )
    # A run whose worker died an hour ago, with no real-time worker left to sweep it.
    run = ProcessRun.objects.create(
        definition=definition,
        trigger=ProcessRun.Trigger.RUN_NOW,
        heartbeat_at=timezone.now() - timedelta(hours=1),
    )
    worker = workers.start(
        tmp_path, beat=True, queues="batch", SWEEP_SECONDS="1", HEARTBEAT_SECONDS="1"
    )
    try:
        workers.wait_until(
            lambda: (
                ProcessRun.objects.get(pk=run.pk).status == ProcessRun.Status.FAILED
                and WorkerHeartbeat.objects.exists()
            ),
            seconds=60,
            what="the stale run failed and a heartbeat, by the batch worker",
            logs=[tmp_path / "worker.log"],
        )
    finally:
        workers.stop(worker)
    run.refresh_from_db()
    assert run.message.startswith("The worker stopped during the run")
