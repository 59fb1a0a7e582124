"""A real Celery worker with embedded beat, against the test database.

Beat (the django-celery-beat database scheduler) sends the heartbeat task through the broker,
the worker runs it and the task writes to the database this test reads: worker, beat, broker
and database are live together, with no eager mode and nothing patched. On the embedded
default the broker is a folder of this test's own; with ``CELERY_BROKER_URL`` set (Redis) the
worker uses that broker.
"""

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

import pytest
from django.conf import settings
from django.db import connection

from runs.models import WorkerHeartbeat

BEATS_WANTED = 2
WAIT_SECONDS = 60


def database_url() -> str:
    """The test database (not the development one) as a DATABASE_URL for another process."""
    db = connection.settings_dict
    if db["ENGINE"] == "django.db.backends.sqlite3":
        # Tests use a file (settings: TEST NAME), so that another process can open it.
        return f"sqlite:///{Path(db['NAME']).resolve()}"
    if db["ENGINE"].startswith("django.db.backends.postgresql"):
        auth = quote(db["USER"] or "", safe="")
        if db["PASSWORD"]:
            auth += ":" + quote(db["PASSWORD"], safe="")
        host = db["HOST"] or ""
        port = f":{db['PORT']}" if db["PORT"] else ""
        return f"postgres://{auth}@{host}{port}/{quote(db['NAME'], safe='')}"
    pytest.fail(f"No DATABASE_URL for engine {db['ENGINE']}")


def stop(worker: subprocess.Popen) -> int:
    """Warm shutdown (SIGTERM); if that hangs, kill the worker's whole process group (its pool
    and beat processes). Returns the worker's exit code."""
    if worker.poll() is None:
        worker.send_signal(signal.SIGTERM)
        try:
            return worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(worker.pid, signal.SIGKILL)
    return worker.wait(timeout=10)


@pytest.mark.worker
def test_worker_and_beat_write_heartbeats(transactional_db, tmp_path):
    env = {**os.environ, "DATABASE_URL": database_url(), "HEARTBEAT_SECONDS": "1"}
    if settings.CELERY_BROKER_URL == "filesystem://":
        env["CELERY_BROKER_DIR"] = str(tmp_path / "broker")
    log_path = tmp_path / "worker.log"
    assert not WorkerHeartbeat.objects.exists()

    with log_path.open("wb") as log:
        worker = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "crm_provisioning",
                "worker",
                "-B",
                "-l",
                "info",
                "--concurrency",
                "1",
                "--without-gossip",
                "--without-mingle",
                "--hostname",
                f"test-worker-{os.getpid()}@%h",
            ],
            cwd=settings.BASE_DIR,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + WAIT_SECONDS
        heartbeat = None
        while time.monotonic() < deadline and worker.poll() is None:
            heartbeat = WorkerHeartbeat.objects.filter(beats__gte=BEATS_WANTED).first()
            if heartbeat:
                break
            time.sleep(0.5)
        log_tail = log_path.read_text(errors="replace")[-3000:]
        assert worker.poll() is None, f"the worker exited early:\n{log_tail}"
        assert heartbeat, f"no {BEATS_WANTED} heartbeats in {WAIT_SECONDS} s:\n{log_tail}"
    finally:
        exit_code = stop(worker)

    assert exit_code == 0, "the worker did not shut down cleanly on SIGTERM"

    log_text = log_path.read_text(errors="replace")
    assert "beat: Starting..." in log_text
    assert "Sending due task worker-heartbeat (runs.tasks.heartbeat)" in log_text
    assert "Task runs.tasks.heartbeat[" in log_text and "succeeded" in log_text
    assert heartbeat.last_seen is not None
