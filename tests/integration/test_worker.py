"""A real Celery worker with embedded beat, against the test database.

Beat (the django-celery-beat database scheduler) sends the heartbeat task through the broker,
the worker runs it and the task writes to the database this test reads: worker, beat, broker
and database are live together, with no eager mode and nothing patched. On the embedded
default the broker is a folder of this test's own; with ``CELERY_BROKER_URL`` set (Redis) the
worker uses that broker.
"""

import pytest

from runs.models import WorkerHeartbeat
from tests import workers

BEATS_WANTED = 2


@pytest.mark.worker
def test_worker_and_beat_write_heartbeats(transactional_db, tmp_path):
    assert not WorkerHeartbeat.objects.exists()
    worker = workers.start(tmp_path, beat=True, HEARTBEAT_SECONDS="1")
    log_path = tmp_path / "worker.log"
    try:
        workers.wait_until(
            lambda: (
                worker.poll() is not None
                or WorkerHeartbeat.objects.filter(beats__gte=BEATS_WANTED).exists()
            ),
            seconds=60,
            what=f"{BEATS_WANTED} heartbeats",
            logs=[log_path],
        )
        assert worker.poll() is None, log_path.read_text(errors="replace")[-3000:]
    finally:
        exit_code = workers.stop(worker)

    assert exit_code == 0, "the worker did not shut down cleanly on SIGTERM"

    log_text = log_path.read_text(errors="replace")
    assert "beat: Starting..." in log_text
    assert "Sending due task worker-heartbeat (runs.tasks.heartbeat)" in log_text
    assert "Task runs.tasks.heartbeat[" in log_text and "succeeded" in log_text
    # A worker on every queue beats once per queue: the dashboard tells real-time from batch.
    assert set(WorkerHeartbeat.objects.values_list("queue", flat=True)) == {"celery", "batch"}
