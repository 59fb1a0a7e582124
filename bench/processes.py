"""The real parts a benchmark runs against: a web server and Celery workers, as processes on the
benchmark's own database and broker, and the memory they used."""

import contextlib
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import requests
from django.conf import settings
from django.db import connection


def database_url() -> str:
    """The database this process uses, as a DATABASE_URL for another process."""
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{Path(db['NAME']).resolve()}"
    if connection.vendor == "postgresql":
        auth = quote(db["USER"] or "", safe="")
        if db["PASSWORD"]:
            auth += ":" + quote(db["PASSWORD"], safe="")
        host = db["HOST"] or ""
        port = f":{db['PORT']}" if db["PORT"] else ""
        return f"postgres://{auth}@{host}{port}/{quote(db['NAME'], safe='')}"
    raise RuntimeError(f"No DATABASE_URL for database engine {db['ENGINE']}")


def environment(**extra) -> dict:
    """The environment of the bench's worker and web server: the product as deployed, with
    DEBUG off (DEBUG keeps every SQL statement in memory, which would skew time and memory)."""
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "DEBUG": "false",
        "SECRET_KEY": os.environ.get("SECRET_KEY") or secrets.token_urlsafe(40),
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "SECURE_SSL_REDIRECT": "false",  # plain HTTP on loopback, no TLS proxy in front
        **extra,
    }
    if settings.CELERY_BROKER_URL == "filesystem://":
        env["CELERY_BROKER_DIR"] = str(settings.BROKER_DIR)
    return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


@contextlib.contextmanager
def web_server(
    log: Path, workers: int | None = None, app: str | None = None, env: dict | None = None
) -> Iterator[str]:
    """gunicorn serving the product as deployed (``gunicorn.conf.py``: a sync worker process
    per core); yields its base URL once it answers. ``workers``: that many processes instead;
    ``app``: another WSGI application (``module:name``); ``env``: more environment."""
    port = free_port()
    more = [*(["--workers", str(workers)] if workers else []), *([app] if app else [])]
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", *more],
            cwd=settings.BASE_DIR,
            env=environment(**(env or {})),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                # The first request loads the application: slow on a busy machine.
                requests.get(f"{url}/admin/login/", timeout=30)
                break
            except (requests.ConnectionError, requests.Timeout):
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"The web server did not start; see {log}") from None
                time.sleep(0.2)
        yield url
    finally:
        stop(process)


def collect_static(root: Path, log: Path) -> None:
    """``manage.py collectstatic`` into ``root`` as the deployed server wants it (DEBUG off:
    hashed names and their manifest), for a web server started with ``STATIC_ROOT=root``."""
    with log.open("ab") as out:
        done = subprocess.run(
            [sys.executable, "manage.py", "collectstatic", "--noinput", "-v", "0"],
            cwd=settings.BASE_DIR,
            env=environment(STATIC_ROOT=str(root)),
            stdout=out,
            stderr=subprocess.STDOUT,
            check=False,
        )
    if done.returncode:
        raise RuntimeError(f"collectstatic failed; see {log}")


@contextlib.contextmanager
def worker(log: Path, queues: str, concurrency: int = 1, name: str = "bench"):
    """A Celery worker process on the given queues; yields the Popen."""
    with log.open("ab") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "crm_provisioning",
                "worker",
                "-l",
                "info",
                "-Q",
                queues,
                "--concurrency",
                str(concurrency),
                "--without-gossip",
                "--without-mingle",
                "--hostname",
                f"{name}-{os.getpid()}@%h",
            ],
            cwd=settings.BASE_DIR,
            env=environment(),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield process
    finally:
        stop(process)


@contextlib.contextmanager
def simulator(log: Path, args: list[str], env: dict, patterns: list[str], what: str):
    """``manage.py cas_simulator <args>``, its output appended to ``log``; yields the match of
    each regular expression in ``patterns`` once all have appeared in what it printed since
    it started (its address, its host key), and stops it on leaving."""
    offset = log.stat().st_size if log.exists() else 0
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "manage.py", "cas_simulator", *args],
            cwd=settings.BASE_DIR,
            env=environment(**env),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            with log.open("rb") as written:
                written.seek(offset)
                text = written.read().decode(errors="replace")
            found = [re.search(pattern, text) for pattern in patterns]
            if all(found):
                break
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"The {what} simulator did not start; see {log}")
            time.sleep(0.1)
        yield found
    finally:
        stop(process)


def peak_memory_mb(pid: int) -> float:
    """The highest resident memory (VmHWM) of a process and its children, in MB (Linux)."""
    peak = 0
    for each in [pid, *_children(pid)]:
        try:
            with open(f"/proc/{each}/status") as status:
                for line in status:
                    if line.startswith("VmHWM:"):
                        peak = max(peak, int(line.split()[1]))
        except OSError:
            continue
    return peak / 1024


def _children(pid: int) -> list[int]:
    found = []
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as children:
            for child in children.read().split():
                found.append(int(child))
                found.extend(_children(int(child)))
    except OSError:
        pass
    return found


def wait_for_run(definition, after: int, worker: subprocess.Popen, log: Path, seconds: float):
    """The definition's first process run after id ``after`` once it has ended; raises when the
    worker stops or ``seconds`` pass first."""
    from runs.models import ProcessRun

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        run = (
            ProcessRun.objects.filter(definition=definition, pk__gt=after)
            .exclude(status__in=ProcessRun.UNFINISHED)
            .first()
        )
        if run is not None:
            return run
        if worker.poll() is not None:
            raise RuntimeError(f"The worker stopped; see {log}")
        time.sleep(0.5)
    raise RuntimeError(f"The run did not finish within {seconds:.0f} s; see {log}")
