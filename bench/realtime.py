"""The real-time figure: subscription actions through the Web API, delivered by a real-time
Celery worker to a real-time CA system's simulator (Conax Contego WS, Irdeto KMS) — actions/s,
and the latency from each request's commit to the CAS's receipt (p50, p99).

``realtime(report, workdir, actions=10_000)`` measures on an idle system, with the Conax WS
simulator (``cas=realtime_cas.IRDETO``: with the Irdeto one; ``bench.realtime_cas`` holds what
differs between them);
``realtime(report, workdir, under_load=lambda: reset_run_load(generic, workdir))`` measures
the same while Reset Subscriptions runs over the Generic provider's subscriptions execute, one
after the other for the whole measurement, on a batch worker of their own, and names the
figures "… under a reset run".

What runs, as processes on the benchmark's database and broker:

- the simulator (``manage.py cas_simulator conax-ws`` or ``irdeto``) on a free port, knowing
  the cards (and, for Irdeto, the entitlements the data says they hold);
- gunicorn (``processes.web_server``: a sync worker process per core, as deployed);
- one Celery worker on the ``realtime`` queue with ``WORKER_PROCESSES`` pool processes.

The actions: ``CLIENTS`` threads, each posting by hand (``_post``) with a person's API token
(role agent), stop or start (whichever the service's state allows) one service each, a
flat product on a viewing point with one smartcard, at the provider "Bench Conax WS" (or
"Bench Irdeto") — so each action makes exactly one request (CancelSubscriptions /
AddSubscriptions; REMOVE_ENTITLEMENT / ADD_ENTITLEMENT), and no two actions touch one card.
Subscriptions come from the load generator (``bench.load``, the provider's type, none out of
step); as many are added as the actions need.

Measured: actions/s from the first send to the simulator's receipt of the last request;
latency per request from its row's ``created_at`` to the simulator's ``received_at`` (both
``time.time()`` of this machine's clock). ``created_at`` is written inside the action's
transaction a few milliseconds before it commits, so the latency is slightly overstated,
never understated; the moment the API call returns comes *after* the commit and after the
response is serialized, and the worker often delivers before that — taking it would
understate the latency (or make it negative).

The floor of actions/s is the same work by hand (``bench.realtime_floor``): as many actions
posted the same way by as many clients to a bare WSGI function under the same gunicorn, each
written by hand-written SQL in one transaction (the token read, the service row written, the
request inserted) and delivered by a bare sender (claim, a hand-written call per request: a
SOAP envelope, a JSON body; one answer statement) to the same simulator, on the idle system,
measured the same way (first send to receipt of the last). The detail also gives the raw rate
alone: as many hand-written activations sent straight to the simulator, which is what the CAS
itself can take. Latency has no floor: a bare call's transit time is not the same work as
commit → queue → worker → CAS, and a ratio to it would say nothing.
"""

import contextlib
import json
import math
import os
import secrets
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

import requests
from django.conf import settings
from django.contrib.auth.models import Group, User
from django.db import connection, transaction
from django.db.models import Count, Max, Q
from rest_framework.authtoken.models import Token

from catalogue.models import Product, ProductCAId, Provider
from core import roles
from providers import provider_settings
from providers.models import ProvisioningRequest
from runs import services
from runs.models import ProcessRun, RunDefinition
from subscriptions.demo import ensure_catalog
from subscriptions.models import InstalledItem, Subscription, SubscriptionService

from . import conax_sms, load, processes, realtime_floor
from .realtime_cas import CONAX_WS, Card, Cas
from .report import Figure, Report

BENCH_USER = "bench-realtime"
TARGET_PER_S = 200
TARGET_P99_MS = 250
TARGET_P99_LOADED_MS = 500
# Client threads: twice gunicorn's processes here (one per core, ``gunicorn.conf.py``), so
# that one is always waiting for each. More clients only add threads taking turns on the same
# two cores.
CLIENTS = 4
# Real-time worker pool processes. One ``deliver`` task per provider runs at a time
# (``providers.wakeups``), so a second process only waits for another provider's work; here it
# took turns with the first and cost CPU. And while one process is sending, the requests
# committed meanwhile wait for its next claim, which takes them together: one claim and one
# answer transaction for several requests.
WORKER_PROCESSES = 1
# Actions sent (and delivered) before measuring: every gunicorn process and worker process
# has loaded its code, opened its connections and built its client.
WARM_UP = 16
Req = ProvisioningRequest
Svc = SubscriptionService.State


@dataclass(frozen=True)
class Target:
    """One action to send: stop or start one service, which makes one request to one card."""

    service_id: int
    stop: bool
    card: str
    product: str  # the service's CA ID at the provider


@dataclass
class Sent:
    target: Target
    sent_at: float
    returned_at: float
    status: int
    uids: list[str] = field(default_factory=list)
    error: str = ""


# --- the simulator ------------------------------------------------------------------------------


@contextlib.contextmanager
def simulator(cas: Cas, workdir: Path, secret: str) -> Iterator[str]:
    """``manage.py cas_simulator …`` of ``cas`` on a free port (state in memory); yields its
    URL."""
    with processes.simulator(
        workdir / f"bench-{cas.code.replace('_', '-')}.log",
        cas.simulator_args(),
        {cas.secret_env: secret},
        [cas.address],
        cas.label,
    ) as (address,):
        yield address.group(1)


def _received(url: str, *, clear: bool = True) -> list[tuple[str, float]]:
    answer = requests.get(
        f"{url}/control/received", params={"clear": "1"} if clear else {}, timeout=60
    )
    answer.raise_for_status()
    return [(request_id, at) for request_id, at in answer.json()]


def _wait_received(
    url: str, uids: set[str], seconds: float, got: dict[str, float] | None = None
) -> dict[str, float]:
    """Collect the simulator's receipts (first arrival per request id) until every one of
    ``uids`` has arrived; raises when they have not within ``seconds``."""
    got = {} if got is None else got
    deadline = time.monotonic() + seconds
    while True:
        for request_id, at in _received(url):
            got.setdefault(request_id, at)
        missing = uids - got.keys()
        if not missing:
            return got
        if time.monotonic() > deadline:
            states = dict(
                Req.objects.filter(uid__in=list(missing)[:1000])
                .values_list("state")
                .annotate(n=Count("id"))
            )
            raise RuntimeError(
                f"{len(missing):,} of {len(uids):,} requests did not reach the simulator within "
                f"{seconds:.0f} s (their states: {states})"
            )
        time.sleep(0.25)


# --- the data -----------------------------------------------------------------------------------


def ensure_provider(cas: Cas, url: str) -> Provider:
    """The benchmark's provider of ``cas``, pointing at the simulator on ``url``."""
    catalog = ensure_catalog(cas.provider, cas.code)
    provider = catalog.provider
    if provider.type != cas.code:
        raise RuntimeError(f"Provider {cas.provider!r} exists with type {provider.type!r}.")
    wanted = cas.connection(url)
    if provider.connection != wanted or not provider.enabled or not provider.parameters:
        provider.connection = wanted
        provider.parameters = provider.parameters or {"max_attempts": 8}
        provider.enabled = True
        provider_settings.full_clean(provider)
        provider.save()
    return provider


def _eligible(provider: Provider, count: int) -> list[Target]:
    """Up to ``count`` services an action can switch with exactly one request: a flat product
    on an Effective load subscription, in step with the provider (Effective and authorized, or
    Not Effective and not), on a viewing point with exactly one smartcard, paired, and nothing
    Pending for the subscription at the provider; one per subscription, so that no two
    actions wait for the same subscription's lock."""
    flat = Product.objects.filter(kind=Product.Kind.FLAT, ca_ids__provider=provider)
    candidates = list(
        SubscriptionService.objects.filter(
            distributor__provider=provider,
            product__in=flat,
            subscription__state=Subscription.State.EFFECTIVE,
            subscription__number__startswith=load.PREFIX,
        )
        .filter(
            Q(state=Svc.EFFECTIVE, authorized=True) | Q(state=Svc.NOT_EFFECTIVE, authorized=False)
        )
        .order_by("id")
        .values_list("id", "subscription_id", "distributor_id", "state", "product_id")[
            : count * 2 + 100
        ]
    )
    ca_ids = dict(ProductCAId.objects.filter(provider=provider).values_list("product_id", "ca_id"))
    subscriptions = {c[1] for c in candidates}
    cards: dict[tuple[int, int], list[tuple[str, bool]]] = {}
    pending: set[int] = set()
    ids = sorted(subscriptions)
    for start in range(0, len(ids), 1000):
        chunk = ids[start : start + 1000]
        for sub, distributor, ca_id, initialized in InstalledItem.objects.filter(
            subscription_id__in=chunk, kind="smartcard", removed_at__isnull=True
        ).values_list("subscription_id", "distributor_id", "ca_id", "initialized"):
            cards.setdefault((sub, distributor), []).append((ca_id, initialized))
        pending.update(
            Req.objects.filter(
                subscription_id__in=chunk, provider=provider, state=Req.State.PENDING
            ).values_list("subscription_id", flat=True)
        )
    found: list[Target] = []
    used: set[int] = set()
    for service_id, sub, distributor, state, product in candidates:
        held = cards.get((sub, distributor), [])
        if sub in pending or len(held) != 1 or not held[0][1] or sub in used:
            continue
        used.add(sub)
        found.append(Target(service_id, state == Svc.EFFECTIVE, held[0][0], ca_ids[product]))
        if len(found) == count:
            break
    return found


def ensure_targets(provider: Provider, count: int) -> list[Target]:
    """``count`` targets, adding load subscriptions at the provider until there are enough.

    ``load.generate`` counts every load subscription (``LD-…``) whatever its provider, so the
    ones added here come after those already there (the bench loads its Generic subscriptions
    first)."""
    for _ in range(10):
        found = _eligible(provider, count)
        if len(found) >= count:
            return found
        # About one eligible service for every two load subscriptions.
        more = (count - len(found)) * 2 + 50
        total = Subscription.objects.filter(number__startswith=load.PREFIX).count()
        load.generate(
            total + more, provider_name=provider.name, provider_type=provider.type, drift=0
        )
    raise RuntimeError(f"Could not make {count:,} services to switch at {provider.name}")


def _analyze() -> None:
    """Fresh planner statistics for the request tables, as autovacuum keeps them in
    production: a table that grew from empty since its last analyze gets plans for an empty
    table (PostgreSQL hashed every installed item to find one request's cards)."""
    if connection.vendor != "postgresql":
        return
    through = Req.items.through._meta.db_table
    with connection.cursor() as cursor:
        for table in (Req._meta.db_table, through):
            cursor.execute(f"ANALYZE {connection.ops.quote_name(table)}")


def _token() -> str:
    """An API token of a person with the agent role (created once)."""
    user, _ = User.objects.get_or_create(username=BENCH_USER, defaults={"is_active": True})
    user.groups.add(Group.objects.get(name=roles.AGENT))
    token, _ = Token.objects.get_or_create(user=user)
    return token.key


# --- sending ------------------------------------------------------------------------------------


def _post(host: str, port: int, request: bytes) -> tuple[int, bytes]:
    """One HTTP/1.0 call on a connection of its own (gunicorn's sync workers close it
    anyway): the status and the body. By hand rather than with ``http.client``: the clients
    share the two cores with what they measure, and with it they took about two thirds more
    CPU per action."""
    with socket.create_connection((host, port), timeout=60) as sock:
        sock.sendall(request)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    answer = b"".join(chunks)
    status_line, _, rest = answer.partition(b"\r\n")
    _, _, content = rest.partition(b"\r\n\r\n")
    return int(status_line.split()[1]), content


def _send_all(
    api: str, key: str, targets: list[Target], clients: int, rate: float | None = None
) -> list[Sent]:
    """Every target's action, from ``clients`` threads each with its own session: as fast as
    the answers come back, or (``rate``) the n-th action not before n / rate seconds."""
    results: list[list[Sent]] = [[] for _ in range(clients)]
    began = time.time()

    address = urlsplit(api)
    head = (
        "POST /api/v1/services/{id}/{verb}/ HTTP/1.0\r\n"
        f"Host: {address.netloc}\r\nAuthorization: Token {key}\r\n"
        "Content-Type: application/json\r\nContent-Length: {length}\r\n\r\n"
    )
    body = json.dumps({"reason": "bench: real-time"}).encode()

    def client(index: int) -> None:
        for n in range(index, len(targets), clients):
            target = targets[n]
            if rate:
                time.sleep(max(0.0, began + n / rate - time.time()))
            verb = "stop" if target.stop else "start"
            request = head.format(id=target.service_id, verb=verb, length=len(body)).encode()
            sent_at = time.time()
            try:
                status, content = _post(address.hostname, address.port, request + body)
            except OSError as exc:
                results[index].append(Sent(target, sent_at, time.time(), 0, error=str(exc)))
                continue
            returned_at = time.time()
            sent = Sent(target, sent_at, returned_at, status)
            if status == 200:
                # Only this service's: the answer also lists what a concurrent action on the
                # same subscription made (one target per subscription avoids that).
                made = json.loads(content)["requests"]
                sent.uids = [r["uid"] for r in made if r["service"] == target.service_id]
            else:
                sent.error = content[:300].decode(errors="replace")
            results[index].append(sent)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    sent = [s for each in results for s in each]
    failed = [s for s in sent if s.status != 200 or len(s.uids) != 1]
    if failed:
        first = failed[0]
        raise RuntimeError(
            f"{len(failed):,} of {len(sent):,} actions did not make exactly one request; the "
            f"first: service {first.target.service_id} HTTP {first.status} "
            f"{first.error or first.uids}"
        )
    return sent


def _moments(uids: list[str]) -> dict[str, tuple[float, float | None]]:
    """Each request's created_at, and when a worker last claimed it to send (sent_at)."""
    found: dict[str, tuple[float, float | None]] = {}
    for start in range(0, len(uids), 1000):
        for uid, created, claimed in Req.objects.filter(
            uid__in=uids[start : start + 1000]
        ).values_list("uid", "created_at", "sent_at"):
            found[str(uid)] = (created.timestamp(), claimed.timestamp() if claimed else None)
    return found


def _wait_answered(uids: list[str], seconds: float = 120) -> dict[str, int]:
    """Wait until none of the requests is Pending; their states, counted."""
    deadline = time.monotonic() + seconds
    while True:
        states: dict[str, int] = {}
        for start in range(0, len(uids), 1000):
            for state in Req.objects.filter(uid__in=uids[start : start + 1000]).values_list(
                "state", flat=True
            ):
                states[state] = states.get(state, 0) + 1
        if not states.get(Req.State.PENDING) or time.monotonic() > deadline:
            return states
        time.sleep(0.25)


# --- the floors: the same work by hand, and the raw calls alone ---------------------------------


def same_work_floor(
    cas: Cas,
    workdir: Path,
    provider: Provider,
    url: str,
    key: str,
    targets: list[Target],
    clients: int,
) -> float:
    """By hand (``bench.realtime_floor``): the actions of ``targets`` (the first ``WARM_UP``
    of them to warm up) posted by ``clients`` threads as the measurement posts them, each
    written by hand-written SQL and delivered by a bare sender to the simulator; actions per
    second from the first send to the simulator's receipt of the last. Its requests are
    deleted afterwards and the services keep their states."""
    try:
        with realtime_floor.running(cas, workdir, provider.pk, url) as api:
            warm = _send_all(api, key, targets[:WARM_UP], min(clients, WARM_UP))
            _wait_received(url, {s.uids[0] for s in warm}, 120)
            _received(url)  # forget the warm-up's receipts
            began = time.time()
            sent = _send_all(api, key, targets[WARM_UP:], clients)
            uids = {s.uids[0] for s in sent}
            got = _wait_received(url, uids, max(120, len(uids) / 20))
    finally:
        conax_sms.delete_requests(Req.objects.filter(trigger_name=realtime_floor.FLOOR))
        # Each service row written once more: tidied up as autovacuum would, before ours.
        conax_sms.vacuum(SubscriptionService)
    return len(uids) / (max(got[u] for u in uids) - began)


def raw_floor(
    cas: Cas, url: str, secret: str, targets: list[Target], count: int, clients: int
) -> float:
    """By hand: ``count`` activations (written as strings: ``cas.call``) POSTed straight to
    the simulator by ``clients`` threads; requests per second from the first send to the
    simulator's receipt of the last."""
    start = datetime.now(tz=UTC).isoformat()
    ids = [str(uuid.uuid4()) for _ in range(count)]
    calls = [
        cas.call(ids[i], targets[i % len(targets)].card, targets[i % len(targets)].product, start)
        for i in range(count)
    ]
    headers = cas.headers(url, secret)
    errors: list[str] = []

    def client(index: int) -> None:
        with requests.Session() as session:
            session.headers.update(headers)
            for path, body in calls[index::clients]:
                answer = session.post(f"{url}{path}", data=body, timeout=30)
                if answer.status_code != 200:
                    errors.append(answer.text[:300])

    _received(url)  # start from an empty log
    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    began = time.time()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise RuntimeError(f"{len(errors)} {cas.raw} failed; the first: {errors[0]}")
    got = _wait_received(url, set(ids), 60)
    return count / (max(got[i] for i in ids) - began)


# --- the figure ---------------------------------------------------------------------------------


def _percentile(ordered: list[float], share: float) -> float:
    """Nearest rank; NaN of nothing."""
    if not ordered:
        return math.nan
    return ordered[max(math.ceil(share * len(ordered)) - 1, 0)]


def realtime(
    report: Report,
    workdir: Path,
    *,
    cas: Cas = CONAX_WS,
    actions: int = 10_000,
    under_load: Callable[[], contextlib.AbstractContextManager] | None = None,
    load_name: str = "a reset run",
    clients: int = CLIENTS,
    worker_processes: int = WORKER_PROCESSES,
    rate: float | None = None,
    say: Callable[[str], None] | None = None,
) -> dict:
    """Send ``actions`` actions through the Web API and measure their delivery to the
    simulator of ``cas``; adds three figures (actions/s, latency p50, latency p99; named with
    ``cas.figure``) to the report and returns the raw numbers.

    ``under_load``: a callable returning a context manager that starts a load and keeps it
    running while the actions are sent (e.g. ``lambda: reset_run_load(provider, workdir)``);
    the figures are then named "… under a reset run" (``load_name``) and held to the loaded
    latency target. When the yielded value has ``window()`` (epoch seconds the load ran, read
    after the context closed), the detail says how much of the measurement it covered.

    ``rate``: offer the actions at this many per second (the clients wait for their turn)
    instead of as fast as the answers come back; the latency is then the latency at that
    load, not at saturation.

    Needs the provider's secret in ``$<cas.secret_env>`` for the worker and the simulator;
    one is made (and set in this process's environment) when it is not there.
    ``say``: called with a line at each step (the bench's progress)."""
    say = say or (lambda line: None)
    workdir.mkdir(parents=True, exist_ok=True)
    secret = os.environ.get(cas.secret_env) or secrets.token_urlsafe(16)
    os.environ[cas.secret_env] = secret  # the worker takes its environment from ours
    loaded = under_load is not None
    suffix = f" under {load_name}" if loaded else ""
    with simulator(cas, workdir, secret) as sim:
        provider = ensure_provider(cas, sim)
        targets = ensure_targets(provider, actions + WARM_UP)
        _analyze()
        cas.prepare(sim, secret, [Card(t.card, t.product if t.stop else None) for t in targets])
        key = _token()
        measured = targets[WARM_UP:]
        say(f"  {len(targets):,} services to switch; floor: {actions:,} actions by hand …")
        floor = same_work_floor(cas, workdir, provider, sim, key, targets, clients)
        raw = raw_floor(cas, sim, secret, targets, actions, clients)
        say(
            f"  floor {floor:,.0f} actions/s ({cas.raw} alone {raw:,.0f}/s); starting "
            "gunicorn and the real-time worker …"
        )
        with (
            processes.web_server(workdir / "bench-web-realtime.log") as api,
            processes.worker(
                workdir / "bench-worker-realtime.log",
                "realtime",
                concurrency=worker_processes,
                name="bench-realtime",
            ) as worker,
        ):
            warm = _send_all(api, key, targets[:WARM_UP], min(clients, WARM_UP))
            _wait_received(sim, {s.uids[0] for s in warm}, 120)
            _wait_answered([s.uids[0] for s in warm])
            _received(sim)  # forget the warm-up's receipts
            with under_load() if loaded else contextlib.nullcontext() as load_info:
                say(f"  {actions:,} actions{suffix} …")
                began = time.time()
                sent = _send_all(api, key, measured, clients, rate)
                uids = [s.uids[0] for s in sent]
                received = _wait_received(sim, set(uids), max(120, actions / 20))
                ended = max(received[u] for u in uids)
            states = _wait_answered(uids)
            if worker.poll() is not None:
                raise RuntimeError("The real-time worker stopped; see its log")
    moments = _moments(uids)
    latencies = sorted((received[u] - moments[u][0]) * 1000 for u in uids)
    # Of which: from the row's creation to a worker's claim (wake-up, queue, claim), and from
    # the claim to the CAS's receipt (building and sending the call).
    waits = sorted((moments[u][1] - moments[u][0]) * 1000 for u in uids if moments[u][1])
    transits = sorted((received[u] - moments[u][1]) * 1000 for u in uids if moments[u][1])
    calls = sorted((s.returned_at - s.sent_at) * 1000 for s in sent)
    before_return = sum(received[s.uids[0]] < s.returned_at for s in sent)
    per_s = len(uids) / (ended - began)
    p50, p99 = _percentile(latencies, 0.50), _percentile(latencies, 0.99)
    stops = sum(t.stop for t in measured)
    overlap = ""
    covered = None
    window = getattr(load_info, "window", None)
    if callable(window):
        start, end = window()
        covered = max(0.0, min(end, ended) - max(start, began)) / (ended - began)
        runs = getattr(load_info, "runs", None)
        times = f" ({len(runs)} runs, one after the other)" if runs and len(runs) > 1 else ""
        overlap = (
            f"; {load_name}{times} was executing for {covered:.0%} of it, giving way to the "
            f"actions (working {settings.RUN_SHARE_UNDER_REALTIME}% of the time while they flow)"
        )
    paced = f"; offered at {rate:g} actions/s" if rate else ""
    states_text = ", ".join(f"{n:,} {state}" for state, n in sorted(states.items()))
    report.add(
        Figure(
            f"Real-time actions{cas.figure}{suffix}",
            per_s,
            "actions/s",
            target=TARGET_PER_S,
            direction="min",
            floor=floor,
            detail=f"{len(uids):,} actions through the Web API ({stops:,} stop, "
            f"{len(uids) - stops:,} start service) from {clients} clients, delivered by "
            f"{worker_processes} real-time worker process{'es' * (worker_processes != 1)} to the "
            f"{cas.label} simulator in "
            f"{ended - began:.1f} s (first send to the last receipt){paced}{overlap}; requests "
            f"{states_text}; floor: as many actions' work by hand, on the idle system "
            f"(bench.realtime_floor: bare WSGI under the same gunicorn, hand-written SQL, a "
            f"bare sender); {cas.raw} alone, straight to the simulator: {raw:,.0f}/s",
            counts={
                "actions": len(uids),
                "stop": stops,
                "start": len(uids) - stops,
                "states": states,
                cas.raw_key: raw,
                "share_under_load": covered,
            },
        )
    )
    common = (
        f"from the request row's created_at (in the action's transaction, just before commit) "
        f"to the simulator's receipt, {len(latencies):,} requests; max "
        f"{latencies[-1]:.0f} ms; of it, created → a worker's claim p50 "
        f"{_percentile(waits, 0.5):.0f} / p99 {_percentile(waits, 0.99):.0f} ms, claim → "
        f"receipt p50 {_percentile(transits, 0.5):.0f} / p99 {_percentile(transits, 0.99):.0f} "
        f"ms; {before_return / len(sent):.0%} arrived before the API call had "
        f"returned{paced}{overlap}"
    )
    latency = {"requests": len(latencies), "max_ms": latencies[-1]}
    report.add(
        Figure(
            f"Real-time latency p50{cas.figure}{suffix}", p50, "ms", detail=common, counts=latency
        )
    )
    report.add(
        Figure(
            f"Real-time latency p99{cas.figure}{suffix}",
            p99,
            "ms",
            target=TARGET_P99_LOADED_MS if loaded else TARGET_P99_MS,
            detail=common,
            counts=latency,
        )
    )
    return {
        "actions": len(uids),
        "seconds": ended - began,
        "per_s": per_s,
        "floor_per_s": floor,
        "raw_per_s": raw,
        "p50_ms": p50,
        "p99_ms": p99,
        "max_ms": latencies[-1],
        "api_call_p50_ms": _percentile(calls, 0.50),
        "api_call_p99_ms": _percentile(calls, 0.99),
        "to_claim_p50_ms": _percentile(waits, 0.5),
        "to_claim_p99_ms": _percentile(waits, 0.99),
        "claim_to_receipt_p50_ms": _percentile(transits, 0.5),
        "claim_to_receipt_p99_ms": _percentile(transits, 0.99),
        "states": states,
        "latencies_ms": latencies,
    }


# --- the load: a reset run on a batch worker ----------------------------------------------------


@dataclass
class RunLoad:
    """What ``reset_run_load`` yields: the runs executed so far (the first has started)."""

    runs: list[ProcessRun] = field(default_factory=list)

    def window(self) -> tuple[float, float]:
        """Epoch seconds from the first run's start to the last one's end (or now)."""
        if not self.runs:
            return time.time(), time.time()
        last = self.runs[-1]
        finished = last.finished_at.timestamp() if last.finished_at else time.time()
        return self.runs[0].started_at.timestamp(), finished


def _started_after(definition: RunDefinition, after: int, worker, log: Path) -> ProcessRun:
    deadline = time.monotonic() + 120
    while True:
        run = ProcessRun.objects.filter(definition=definition, pk__gt=after).order_by("pk").first()
        if run is not None:
            return run
        if worker.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"The reset run did not start; see {log}")
        time.sleep(0.1)


def _finished(run: ProcessRun, worker, log: Path, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while True:
        run.refresh_from_db()
        if run.status not in ProcessRun.UNFINISHED:
            if run.status not in (ProcessRun.Status.COMPLETED, ProcessRun.Status.SKIPPED):
                raise RuntimeError(f"The reset run ended {run.status}: {run.message}")
            return
        if worker.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"The reset run did not finish; see {log}")
        time.sleep(0.5)


@contextlib.contextmanager
def reset_run_load(
    provider: Provider,
    workdir: Path,
    *,
    drift: float | None = 0.05,
    worker_processes: int = 1,
    keep_requests: bool = False,
    seconds: float = 3600,
) -> Iterator[RunLoad]:
    """Reset Subscriptions runs over ``provider``'s subscriptions, one after the other on a
    batch worker of their own (``worker_processes`` pool processes), for as long as the
    context lasts: yields once the first has started; on leaving, waits for the one executing
    to finish and (unless ``keep_requests``) deletes the requests they made, so the data is as
    before. ``drift``: first put that share of the provider's load subscriptions out of step
    (``load.redrift``), so that the first run writes requests as well as reads; the runs after
    it find those requests Pending and read every subscription again, writing nothing."""
    if drift:
        load.redrift(provider.name, drift)
    definition, _ = RunDefinition.objects.get_or_create(
        name="Bench: reset run under real-time load",
        defaults={"run_type": "reset_subscriptions", "provider": provider},
    )
    log = workdir / "bench-worker-batch-load.log"
    info = RunLoad()
    leaving = threading.Event()
    failed: list[BaseException] = []
    with processes.worker(
        log, "batch", concurrency=worker_processes, name="bench-batch-load"
    ) as worker:

        def one_run() -> ProcessRun:
            after = ProcessRun.objects.filter(definition=definition).aggregate(m=Max("pk"))["m"]
            with transaction.atomic():
                services.run_now(definition)
            run = _started_after(definition, after or 0, worker, log)
            info.runs.append(run)
            return run

        def keep_running(run: ProcessRun) -> None:
            try:
                while True:
                    _finished(run, worker, log, seconds)
                    if leaving.is_set():
                        return
                    run = one_run()
            except BaseException as error:  # reported when the context closes
                failed.append(error)
            finally:
                connection.close()  # this thread's own database connection

        runner = threading.Thread(target=keep_running, args=(one_run(),), daemon=True)
        runner.start()
        try:
            yield info
        finally:
            leaving.set()
            runner.join(seconds)
            if not keep_requests:
                conax_sms.delete_requests(Req.objects.filter(process_run__in=info.runs))
    if failed:
        raise RuntimeError(f"The reset runs under load failed: {failed[0]}") from failed[0]
