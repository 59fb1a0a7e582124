"""A PostgreSQL cluster and a Redis server of a test's own, on ports of their own, for fault
injection: restarted, stopped or frozen by the test without touching anyone else's.

The product runs against them as processes (``migrate``, a web server, a Celery worker) with
``DATABASE_URL`` and ``CELERY_BROKER_URL`` pointing at them: settings are read at import, so
this test process (on the tests' usual database) cannot be moved onto them itself.
"""

import contextlib
import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from django.conf import settings

from bench import processes

PG_BIN = Path("/usr/lib/postgresql/15/bin")
REDIS_SERVER = shutil.which("redis-server")


def skip_without_servers() -> None:
    if not (PG_BIN / "initdb").exists():
        pytest.skip(f"No PostgreSQL 15 server binaries in {PG_BIN} (initdb) to start a cluster")
    if REDIS_SERVER is None:
        pytest.skip("No redis-server on PATH to start a Redis server")


class Postgres:
    """A throw-away cluster: trust authentication on 127.0.0.1, no fsync."""

    def __init__(self):
        # A folder of its own, not pytest's (which only its owner may enter).
        self.folder = Path(tempfile.mkdtemp(prefix="crm-faults-pg-"))
        self.data = self.folder / "data"
        self.log = self.folder / "postgres.log"
        self.port = processes.free_port()
        self.url = f"postgres://postgres@127.0.0.1:{self.port}/crm"
        # initdb and the server refuse to run as root: as the postgres account then.
        self.prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self.prefix:
            account = pwd.getpwnam("postgres")
            os.chown(self.folder, account.pw_uid, account.pw_gid)

    def _run(self, *command: str) -> None:
        done = subprocess.run([*self.prefix, *command], capture_output=True, text=True, timeout=120)
        if done.returncode:
            pytest.fail(f"{' '.join(command)} failed:\n{done.stdout}\n{done.stderr}")

    def _ctl(self, action: str, *more: str) -> None:
        options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(
            str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-w",
            "-t", "60", "-o", options, action, *more,
        )  # fmt: skip

    def start(self) -> None:
        if not self.data.exists():
            self._run(
                str(PG_BIN / "initdb"), "-D", str(self.data), "-U", "postgres",
                "--auth=trust", "-E", "UTF8", "--no-sync",
            )  # fmt: skip
            self._ctl("start")
            self._run(str(PG_BIN / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "crm")
        else:
            self._ctl("start")

    def restart(self) -> None:
        """What an operator's restart does: every connection is cut (``-m fast``)."""
        self._ctl("restart", "-m", "fast")

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self._ctl("stop", "-m", "immediate")
        shutil.rmtree(self.folder, ignore_errors=True)

    def query(self, sql: str, params=()) -> list[tuple]:
        import psycopg

        with psycopg.connect(self.url.replace("postgres://", "postgresql://")) as conn:
            return conn.execute(sql, params).fetchall()


class Redis:
    """A Redis server that keeps nothing on disk."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.port = processes.free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        log = (self.folder / "redis.log").open("ab")
        self.process = subprocess.Popen(
            [
                REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1",
                "--dir", str(self.folder), "--save", "", "--appendonly", "no",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        import redis

        client = redis.Redis(port=self.port, socket_timeout=2)
        deadline = time.monotonic() + 30
        while True:
            try:
                client.ping()
                return
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def stop(self) -> None:
        """Shut down: connections are refused until it starts again."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)  # a frozen server cannot stop otherwise
            self.process.terminate()
            self.process.wait(timeout=30)

    def freeze(self) -> None:
        """SIGSTOP: connections are still accepted (by the kernel), nothing is answered."""
        self.process.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        self.process.send_signal(signal.SIGCONT)


@contextlib.contextmanager
def servers(folder: Path) -> Iterator[tuple[Postgres, Redis]]:
    skip_without_servers()
    postgres, redis = Postgres(), Redis(folder)
    try:
        postgres.start()
        redis.start()
        yield postgres, redis
    finally:
        redis.stop()
        postgres.stop()


def environment(postgres: Postgres, redis: Redis, **more) -> dict:
    """The product's environment on the test's own servers (web server, worker, commands)."""
    return processes.environment(
        DATABASE_URL=postgres.url, CELERY_BROKER_URL=redis.url, REDIS_URL="", **more
    )


def manage(env: dict, *args: str, stdin: str | None = None) -> str:
    done = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=settings.BASE_DIR,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if done.returncode:
        pytest.fail(f"manage.py {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout


def shell(env: dict, script: str) -> str:
    """``manage.py shell`` runs the script; the last line it printed."""
    return manage(env, "shell", stdin=script).strip().splitlines()[-1]


# Run by ``manage.py shell`` on the test's own database: the demo catalogue, its Generic
# provider pushing to the test's platform, an agent with an API token, and subscriptions whose
# services the test stops and starts through the Web API.
SETUP = """
import json
from django.contrib.auth.models import Group, User
from rest_framework.authtoken.models import Token
from providers import provider_settings
from core import roles
from subscriptions import actions
from subscriptions.actions import ItemSpec
from subscriptions.demo import ensure_catalog
from subscriptions.models import CustomerAccount

catalog = ensure_catalog()
provider = catalog.provider
provider.connection = {"mode": "push", "push_url": PUSH_URL, "timeout_seconds": 2}
provider.parameters = {"max_attempts": 8}
provider_settings.full_clean(provider)
provider.save()
agent = User.objects.create_user("agent", is_staff=True)
agent.groups.add(Group.objects.get(name=roles.AGENT))
account = CustomerAccount.objects.create(number="ACC-1", name="Maria Georgiou")
services = []
for n in range(1, COUNT + 1):
    dist = catalog.distributors["MAIN"]
    items = [
        ItemSpec("smartcard", f"SC{n:06d}", f"CA-SC-{n:06d}", dist, "SC-01", "Smartcard"),
        ItemSpec("stb", f"STB{n:06d}", f"CA-STB-{n:06d}", dist, "STB-01", "Decoder"),
    ]
    change = actions.become_subscriber(
        account, catalog.types["RES"], [(catalog.products["AGRICULTURE"], dist)], items
    )
    services.append(change.subscription.services.get().pk)
token = Token.objects.create(user=agent).key
from runs.models import RunDefinition
operator = User.objects.create_user("operator", is_staff=True)
operator.groups.add(Group.objects.get(name=roles.OPERATOR))
archive = RunDefinition.objects.create(
    name="Archive", run_type="archive_requests", provider=provider,
    input_settings={"older_than_days": 30},
)
print(json.dumps({
    "token": token, "services": services, "provider": provider.name,
    "operator_token": Token.objects.create(user=operator).key, "definition": archive.pk,
}))
"""


def set_up(env: dict, push_url: str, count: int) -> dict:
    """Migrate the test's own database and fill it (``SETUP``); the token and service ids."""
    manage(env, "migrate", "--noinput")
    script = f"PUSH_URL = {push_url!r}\nCOUNT = {count}\n{SETUP}"
    return json.loads(shell(env, script))


def act(api: str, token: str, service_id: int, verb: str, timeout: float = 60) -> dict:
    """Stop or start a service through the Web API, as a client would; the answer's JSON."""
    answer = requests.post(
        f"{api}/api/v1/services/{service_id}/{verb}/",
        json={"reason": "fault test"},
        headers={"Authorization": f"Token {token}"},
        timeout=timeout,
    )
    assert answer.status_code == 200, (answer.status_code, answer.text[:2000])
    assert answer.headers["Content-Type"].startswith("application/json")
    return answer.json()
