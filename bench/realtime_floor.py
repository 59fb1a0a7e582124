"""The real-time figure's floor: the same work as an action and its delivery, done by hand.

What our real-time path does for one action, and what the floor does instead:

- the action: an HTTP POST to gunicorn, the token's look-up, the service's change and its
  request written in one transaction, and a wake-up for the worker. Here ``application``, a bare
  WSGI function under the same gunicorn (as many processes): the token read, the service row
  written and the request inserted (the card read in the same statement), by hand-written SQL
  in one transaction, then one datagram to the sender;
- the delivery: a worker claims the provider's Pending requests, sends each to the CAS (SOAP,
  JSON) and records the answers. Here ``send``, a process of its own: on each datagram it
  claims the Pending requests by one statement, POSTs a hand-written activation for each
  (``Cas.call``: an AddSubscriptions envelope, an ADD_ENTITLEMENT body) on a kept-alive
  connection to the same simulator, and marks them completed by one statement.

Nothing is parsed or checked that the work does not need: no framework, no ORM, no WSDL, no
token refresh, no rollback, history or reconciliation. Its requests are ordinary rows of the
request table (so that the writes meet the same indexes) marked ``trigger_name = FLOOR``;
``realtime`` deletes them afterwards, and the services keep their states (only ``updated_at``
is written).

Run as ``python -m bench.realtime_floor SOCKET PROVIDER_ID SIMULATOR_URL CAS`` for the sender
(``CAS`` a provider type of ``realtime_cas.BY_CODE``; the secret in its ``secret_env``);
gunicorn loads ``bench.realtime_floor:application``.
"""

import contextlib
import http.client
import json
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

import django
from django.apps import apps

# gunicorn and ``python -m`` load this module before Django is set up; the bench has set it up.
if not apps.ready:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "crm_provisioning.settings")
    django.setup()

from django.conf import settings
from django.db import connection, transaction

from . import processes
from .realtime_cas import BY_CODE, Cas

FLOOR = "bench floor"
SOCKET_ENV = "BENCH_FLOOR_SOCKET"
PROVIDER_ENV = "BENCH_FLOOR_PROVIDER"
COMMAND_ENV = "BENCH_FLOOR_COMMAND"
PRODUCT = "AF1"  # the CA ID the floor's requests carry and activate

USER_SQL = (
    "SELECT t.user_id FROM authtoken_token t JOIN auth_user u ON u.id = t.user_id "
    "WHERE t.key = %s AND u.is_active"
)
SERVICE_SQL = (
    "UPDATE subscriptions_subscriptionservice SET updated_at = %s WHERE id = %s "
    "RETURNING subscription_id, distributor_id"
)
REQUEST_SQL = (
    "INSERT INTO providers_provisioningrequest (uid, command, operation, ca_id, parameters, "
    "provider_id, distributor_id, subscription_id, service_id, installed_item_id, priority, "
    "trigger, trigger_name, state, attempts, last_error, error_code, rollback, created_at, "
    "updated_at) SELECT %s, %s, 'activate', %s, '{}', %s, %s, %s, %s, i.id, "
    "5, 'action', %s, 'pending', 0, '', '', '{}', %s, %s FROM subscriptions_installeditem i "
    "WHERE i.subscription_id = %s AND i.distributor_id = %s AND i.kind = 'smartcard' "
    "AND i.removed_at IS NULL LIMIT 1"
)
# Two statements where PostgreSQL could take one (UPDATE … FROM … RETURNING the card): SQLite
# returns only the updated table's columns. Once per claim of several requests.
CLAIM_SQL = (
    "UPDATE providers_provisioningrequest SET attempts = attempts + 1, sent_at = %s "
    "WHERE provider_id = %s AND state = 'pending' AND trigger_name = %s AND sent_at IS NULL "
    "RETURNING id, uid, installed_item_id"
)
CARDS_SQL = "SELECT id, ca_id FROM subscriptions_installeditem WHERE id IN ({ids})"
ANSWER_SQL = (
    "UPDATE providers_provisioningrequest SET state = 'completed', answered_at = %s, "
    "updated_at = %s WHERE id IN ({ids})"
)


def _marks(values: list) -> str:
    return ", ".join(["%s"] * len(values))


def _now():
    return connection.ops.adapt_datetimefield_value(datetime.now(tz=UTC))


def _act(key: str, service_id: int, provider_id: int, command: str) -> str | None:
    """The action's writes; the request's uid, or None when the token or service is unknown."""
    uid = uuid.uuid4()
    now = _now()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(USER_SQL, [key])
        if cursor.fetchone() is None:
            return None
        cursor.execute(SERVICE_SQL, [now, service_id])
        found = cursor.fetchone()
        if found is None:
            return None
        subscription_id, distributor_id = found
        values = [uid.hex, command, PRODUCT, provider_id, distributor_id, subscription_id]
        values += [service_id, FLOOR]
        cursor.execute(REQUEST_SQL, [*values, now, now, subscription_id, distributor_id])
    return str(uid)


_waker = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)


def application(environ, start_response):
    """POST /api/v1/services/<id>/<verb>/ with ``Authorization: Token …``: the action's work by
    hand; answers as the API does (the request made, in ``requests``)."""
    if environ["REQUEST_METHOD"] != "POST":
        start_response("200 OK", [("Content-Length", "0")])
        return [b""]
    environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
    service_id = int(environ["PATH_INFO"].split("/")[4])
    key = environ.get("HTTP_AUTHORIZATION", "").removeprefix("Token ")
    uid = _act(key, service_id, int(os.environ[PROVIDER_ENV]), os.environ[COMMAND_ENV])
    if uid is None:
        start_response("404 Not Found", [("Content-Length", "0")])
        return [b""]
    with contextlib.suppress(OSError):  # the sender also looks every second
        _waker.sendto(b"1", os.environ[SOCKET_ENV])
    body = json.dumps({"requests": [{"uid": uid, "service": service_id}]}).encode()
    start_response(
        "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
    )
    return [body]


def send(path: str, provider_id: int, url: str, cas: Cas, secret: str) -> None:
    """The sender: on each wake-up (or every second), claim, send and answer; until killed."""
    wake = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    wake.bind(path)
    wake.settimeout(1.0)
    address = urlsplit(url)
    headers = cas.headers(url, secret)
    kept = http.client.HTTPConnection(address.hostname, address.port, timeout=30)
    print("floor sender ready", flush=True)
    while True:
        with contextlib.suppress(TimeoutError):
            wake.recv(16)
        wake.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            while True:  # every wake-up so far: one claim takes them all
                wake.recv(16)
        wake.settimeout(1.0)
        with connection.cursor() as cursor:
            cursor.execute(CLAIM_SQL, [_now(), provider_id, FLOOR])
            claimed = cursor.fetchall()
            if not claimed:
                continue
            items = sorted({row[2] for row in claimed})
            cursor.execute(CARDS_SQL.format(ids=_marks(items)), items)
            cards = dict(cursor.fetchall())
        start = datetime.now(tz=UTC).isoformat()
        for _, uid, item in claimed:
            # SQLite keeps a uuid as 32 hex digits: the CAS gets the form the API answered.
            request_id = uuid.UUID(str(uid))
            where, body = cas.call(str(request_id), cards[item], PRODUCT, start)
            kept.request("POST", where, body, headers)
            answer = kept.getresponse()
            text = answer.read()
            if answer.status != 200:
                raise RuntimeError(
                    f"The simulator answered {answer.status} to request {request_id}: "
                    f"{text[:300].decode(errors='replace')}"
                )
        now = _now()
        with connection.cursor() as cursor:
            ids = [row[0] for row in claimed]
            cursor.execute(ANSWER_SQL.format(ids=_marks(ids)), [now, now, *ids])


@contextlib.contextmanager
def running(cas: Cas, workdir: Path, provider_id: int, url: str) -> Iterator[str]:
    """The floor's web server and sender for ``cas``, on this process's database; yields the
    web server's URL. The sender's secret comes from ``$<cas.secret_env>`` (as the worker's
    does)."""
    path = workdir / f"bench-floor-{os.getpid()}.sock"
    path.unlink(missing_ok=True)
    log = workdir / "bench-floor.log"
    env = {SOCKET_ENV: str(path), PROVIDER_ENV: str(provider_id), COMMAND_ENV: cas.activate}
    args = [str(path), str(provider_id), url, cas.code]
    with log.open("ab") as out:
        sender = subprocess.Popen(  # noqa: S603 (our own module, our own arguments)
            [sys.executable, "-m", "bench.realtime_floor", *args],
            cwd=settings.BASE_DIR,
            env=processes.environment(**env),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 60
        while not path.exists():
            if sender.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"The floor's sender did not start; see {log}")
            time.sleep(0.1)
        with processes.web_server(log, app="bench.realtime_floor:application", env=env) as api:
            yield api
        if sender.poll() is not None:
            raise RuntimeError(f"The floor's sender stopped; see {log}")
    finally:
        processes.stop(sender)
        path.unlink(missing_ok=True)


if __name__ == "__main__":
    socket_path, provider, simulator_url, code = sys.argv[1:5]
    platform = BY_CODE[code]
    send(socket_path, int(provider), simulator_url, platform, os.environ[platform.secret_env])
