"""Real Celery workers for tests: started as processes against the test database."""

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings

from bench import processes


def database_url() -> str:
    """The test database (not the development one) as a DATABASE_URL for another process.
    On SQLite the tests use a file (settings: TEST NAME), so that another process can open it."""
    try:
        return processes.database_url()
    except RuntimeError as error:
        pytest.fail(str(error))


def start(
    tmp_path: Path, *, beat: bool = False, name: str = "worker", queues: str = "", **env
) -> subprocess.Popen:
    """A ``celery worker`` process (with beat if asked) on the test database and the tests'
    broker, so it runs what the code under test sends; on every queue, or on ``queues`` only
    (``-Q``). Its log is ``tmp_path/<name>.log``."""
    environment = {**os.environ, "DATABASE_URL": database_url(), **env}
    if settings.CELERY_BROKER_URL == "filesystem://":
        environment["CELERY_BROKER_DIR"] = str(settings.BROKER_DIR)
    command = [
        sys.executable, "-m", "celery", "-A", "crm_provisioning", "worker", "-l", "info",
        "--concurrency", "1", "--without-gossip", "--without-mingle",
        "--hostname", f"{name}-{os.getpid()}@%h",
    ]  # fmt: skip
    if beat:
        command.append("-B")
    if queues:
        command += ["-Q", queues]
    log = (tmp_path / f"{name}.log").open("ab")
    return subprocess.Popen(
        command,
        cwd=settings.BASE_DIR,
        env=environment,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group, so a kill takes the pool too
    )


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


def kill(worker: subprocess.Popen) -> None:
    """A crash: SIGKILL to the worker and its pool, no chance to finish anything."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(worker.pid, signal.SIGKILL)
    worker.wait(timeout=10)


def wait_until(condition, *, seconds: float, what: str, logs: list[Path] = ()) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    tails = "\n".join(p.read_text(errors="replace")[-2500:] for p in logs if p.exists())
    pytest.fail(f"Not within {seconds} s: {what}\n{tails}")
