"""Realistic load for benchmarks: many subscriptions written straight into the tables, fast.

``generate(n, provider=…, drift=…)`` adds subscriptions ``LD-0000001`` … on the Company ZX
catalogue (``subscriptions.demo``) of one provider: a mix of flat products and bundles on 1 to 4
viewing points, a smartcard and a set-top box per viewing point, every service state, and the
provider's side (``authorized`` / ``initialized``) in step with the wanted state except for a
chosen share of subscriptions, which are left out of step the way a lost answer or a missed
run leaves them.

This bypasses ``subscriptions.actions`` on purpose: a million subscriptions through the actions
would take hours and would also create a million provisioning requests. The rows are what the
actions would have left once the provider had answered everything. On PostgreSQL the rows go in
with ``COPY`` (ids reserved up front, sequences moved past them); elsewhere with batched
inserts. The plan is a pure function of the subscription's position and the seed, so two runs
with the same arguments make the same data.
"""

import csv
import io
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta

from django.db import connection, models, transaction
from django.utils import timezone

from providers.conax_sms.adapter import last_due_day
from subscriptions.demo import OFFERS, VIEWING_POINTS, ensure_catalog
from subscriptions.models import CustomerAccount, InstalledItem, Subscription, SubscriptionService

PREFIX = "LD-"
SEED = 8_000_000
EPOCH = datetime(2024, 1, 1, tzinfo=UTC)
CHUNK = 20_000
# Authorizations fall on the days from the latest whose renewal at this frequency is due today
# (``last_due_day``) to today: one day's worth is due, about one service in thirty, whatever
# the date, as a daily processing run leaves them. (A fixed span of 31 days made two days due
# after a month of 30 and four after February, and the bench's Conax SMS figure changed with
# the calendar. A daily run's real steady state varies too, from no day due on 29 to 31 March
# to four on 28 February; the load keeps to the usual day.)
RENEWAL_MONTHS = 1

Sub = Subscription.State
Svc = SubscriptionService.State

# Subscription state, with weights, and the state its current services are in.
SUBSCRIPTION_STATES = [
    (Sub.EFFECTIVE, 80, Svc.EFFECTIVE),
    (Sub.NOT_EFFECTIVE, 7, Svc.NOT_EFFECTIVE),
    (Sub.IN_RESTING, 4, Svc.IN_RESTING),
    (Sub.SHORT_TERM_EFFECTIVE, 3, Svc.SHORT_TERM_EFFECTIVE),
    (Sub.SHORT_TERM_NOT_EFFECTIVE, 3, Svc.SHORT_TERM_NOT_EFFECTIVE),
    (Sub.TERMINATED, 3, Svc.CANCELLED),
]
VIEWING_POINT_COUNTS = [(1, 62), (2, 20), (3, 11), (4, 7)]
# Ended services kept as history beside the current ones, on some subscriptions.
HISTORY_STATES = [Svc.SWAPPED, Svc.REGRETTED, Svc.REMOVED]


@dataclass
class Generated:
    subscriptions: int = 0
    services: int = 0
    items: int = 0
    drifted: int = 0


def _reserve(model: type[models.Model], count: int) -> int:
    """Reserve ``count`` consecutive ids of ``model``'s table; returns the first."""
    table = model._meta.db_table
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT pg_get_serial_sequence(%s, 'id')", [table])
            sequence = cursor.fetchone()[0]
            cursor.execute("SELECT nextval(%s)", [sequence])
            first = cursor.fetchone()[0]
            cursor.execute("SELECT setval(%s, %s)", [sequence, first + count - 1])
            return first
        quoted = connection.ops.quote_name(table)
        cursor.execute(f"SELECT COALESCE(MAX(id), 0) FROM {quoted}")  # noqa: S608
        return cursor.fetchone()[0] + 1


def _value(value):
    if value is None:
        return "\\N"
    if value is True:
        return "t"
    if value is False:
        return "f"
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def copy_csv(table: str, columns: str, rows: Iterable[Iterable]) -> None:
    """PostgreSQL: rows into ``table`` (``columns``, both quoted SQL) by COPY, as CSV with NULL
    spelled \\N (so that an empty text column stays an empty string)."""
    buffer = io.StringIO()
    csv.writer(buffer).writerows(rows)
    with (
        connection.cursor() as cursor,
        cursor.cursor.copy(
            f"COPY {table} ({columns}) FROM STDIN WITH (FORMAT csv, NULL '\\N')"
        ) as copy,
    ):
        copy.write(buffer.getvalue())


def _write(model: type[models.Model], names: list[str], rows: list[tuple]) -> None:
    """Insert rows (``id`` first, then ``names``) as fast as the database allows."""
    if not rows:
        return
    table = connection.ops.quote_name(model._meta.db_table)
    columns = ", ".join(["id", *(model._meta.get_field(n).column for n in names)])
    if connection.vendor == "postgresql":
        copy_csv(table, columns, ([_value(v) for v in row] for row in rows))
        return
    marks = ", ".join(["%s"] * (len(names) + 1))
    sql = f"INSERT INTO {table} ({columns}) VALUES ({marks})"  # noqa: S608
    with connection.cursor() as cursor:
        cursor.executemany(sql, rows)


@dataclass
class _Plan:
    """One subscription's rows, ids still to be given."""

    position: int
    state: str
    created_at: datetime
    # (product id, distributor id, state, authorized, authorization date)
    services: list[tuple] = field(default_factory=list)
    # (kind, serial, ca id, distributor id, initialized)
    items: list[tuple] = field(default_factory=list)
    drifted: bool = False


class _Planner:
    def __init__(self, catalog, drift: float, seed: int, now: datetime):
        self.catalog = catalog
        self.drift = drift
        self.seed = seed
        self.now = now
        self.today = timezone.localdate(now)
        self.first_day = last_due_day(RENEWAL_MONTHS, self.today)
        self.products = {code: p.pk for code, p in catalog.products.items()}
        self.distributors = [catalog.distributors[code].pk for code in VIEWING_POINTS]

    def plan(self, position: int) -> _Plan:
        rng = random.Random(self.seed * 7_919 + position)  # noqa: S311 (test data)
        state, _weight, service_state = rng.choices(
            SUBSCRIPTION_STATES, [row[1] for row in SUBSCRIPTION_STATES]
        )[0]
        created = EPOCH + timedelta(seconds=position * 37 % (700 * 86_400))
        plan = _Plan(position, state, created)
        on = service_state in SubscriptionService.ON_STATES
        viewing_points = rng.choices(
            [c for c, _ in VIEWING_POINT_COUNTS], [w for _, w in VIEWING_POINT_COUNTS]
        )[0]
        for vp in range(viewing_points):
            distributor = self.distributors[vp]
            offer = rng.choices([o for o, _ in OFFERS], [w for _, w in OFFERS])[0]
            for code in offer:
                since = self._authorized_at(rng)
                plan.services.append(
                    (self.products[code], distributor, service_state, on, since if on else None)
                )
            if rng.random() < 0.1:  # history: an ended service beside the current ones
                code = rng.choice(list(self.products))
                plan.services.append(
                    (self.products[code], distributor, rng.choice(HISTORY_STATES), False, None)
                )
            serial = f"{position:08d}{vp}"
            plan.items.append(("smartcard", f"LSC{serial}", f"LCA{serial}", distributor, True))
            plan.items.append(("stb", f"LSTB{serial}", f"LBX{serial}", distributor, True))
        if rng.random() < self.drift:
            self._drift(rng, plan, on)
        return plan

    def _authorized_at(self, rng: random.Random) -> datetime:
        """A moment on one of the days since ``first_day``, none after now."""
        day = self.first_day + timedelta(days=rng.randrange((self.today - self.first_day).days + 1))
        midnight = datetime.combine(day, time(), tzinfo=timezone.get_current_timezone())
        return min(midnight + timedelta(seconds=rng.randrange(86_400)), self.now)

    def _drift(self, rng: random.Random, plan: _Plan, on: bool) -> None:
        """Leave the provider's side out of step, as a lost answer or a missed run would."""
        plan.drifted = True
        roll = rng.random()
        current = [i for i, s in enumerate(plan.services) if s[2] not in HISTORY_STATES]
        index = rng.choice(current)
        product, distributor, state, authorized, _since = plan.services[index]
        if roll < 0.8:
            # on and not authorized (an Add never answered), or off and still authorized
            # (a Cancel never answered)
            since = None
            if not authorized:
                since = self._authorized_at(rng)
            plan.services[index] = (product, distributor, state, not authorized, since)
        else:  # a card never paired
            kind, serial, ca_id, item_distributor, _ = plan.items[0]
            plan.items[0] = (kind, serial, ca_id, item_distributor, False)


ACCOUNT_FIELDS = ["number", "name", "email", "created_at"]
SUBSCRIPTION_FIELDS = [
    "number", "account", "subscription_type", "state", "created_at", "updated_at",
    "terminated_at",
]  # fmt: skip
SERVICE_FIELDS = [
    "subscription", "product", "distributor", "state", "swapped_from", "authorized",
    "authorization_date", "created_at", "updated_at",
]  # fmt: skip
ITEM_FIELDS = [
    "subscription", "kind", "serial_number", "ca_id", "product_code", "description",
    "distributor", "initialized", "installed_at", "removed_at", "replaced_by",
]  # fmt: skip


def _write_chunk(planner: _Planner, plans: list[_Plan], type_id: int, result: Generated) -> None:
    n = len(plans)
    account_id = _reserve(CustomerAccount, n)
    subscription_id = _reserve(Subscription, n)
    service_id = _reserve(SubscriptionService, sum(len(p.services) for p in plans))
    item_id = _reserve(InstalledItem, sum(len(p.items) for p in plans))
    accounts, subscriptions, services, items = [], [], [], []
    now = planner.now
    for k, plan in enumerate(plans):
        number = f"{plan.position + 1:07d}"
        accounts.append((account_id + k, f"LDA-{number}", f"Load customer {number}", "", now))
        terminated = now if plan.state == Sub.TERMINATED else None
        sub = subscription_id + k
        subscriptions.append(
            (sub, f"{PREFIX}{number}", account_id + k, type_id, plan.state, plan.created_at,
             now, terminated)
        )  # fmt: skip
        for product, distributor, state, authorized, since in plan.services:
            services.append(
                (service_id, sub, product, distributor, state, None, authorized, since,
                 plan.created_at, now)
            )  # fmt: skip
            service_id += 1
        for kind, serial, ca_id, distributor, initialized in plan.items:
            items.append(
                (item_id, sub, kind, serial, ca_id, "LOAD-01", "", distributor, initialized,
                 plan.created_at, None, None)
            )  # fmt: skip
            item_id += 1
        result.drifted += plan.drifted
    _write(CustomerAccount, ACCOUNT_FIELDS, accounts)
    _write(Subscription, SUBSCRIPTION_FIELDS, subscriptions)
    _write(SubscriptionService, SERVICE_FIELDS, services)
    _write(InstalledItem, ITEM_FIELDS, items)
    result.subscriptions += n
    result.services += len(services)
    result.items += len(items)


def generate(
    count: int,
    *,
    provider_name: str = "Generic",
    provider_type: str = "generic",
    drift: float = 0.05,
    seed: int = SEED,
    progress: Callable[[Generated], None] | None = None,
    now: datetime | None = None,
) -> Generated:
    """Make sure ``count`` load subscriptions exist on the provider; adds the missing ones,
    dated as made ``now`` (the default: this moment)."""
    catalog = ensure_catalog(provider_name, provider_type)
    planner = _Planner(catalog, drift, seed, now or datetime.now(tz=UTC))
    type_id = catalog.types["RES"].pk
    first = Subscription.objects.filter(number__startswith=PREFIX).count()
    result = Generated()
    for start in range(first, count, CHUNK):
        plans = [planner.plan(p) for p in range(start, min(start + CHUNK, count))]
        with transaction.atomic():
            _write_chunk(planner, plans, type_id, result)
        if progress:
            progress(result)
    if connection.vendor == "postgresql" and result.subscriptions:
        with connection.cursor() as cursor:
            for model in (CustomerAccount, Subscription, SubscriptionService, InstalledItem):
                cursor.execute(f"ANALYZE {connection.ops.quote_name(model._meta.db_table)}")
    return result


def redrift(provider_name: str, share: float) -> int:
    """Put a fixed share of the provider's load subscriptions out of step again (every
    service's provider side flipped), so a benchmark can be run any number of times on the
    same data. Returns how many subscriptions were touched."""
    every = max(round(1 / share), 1) if share > 0 else 0
    if not every:
        return 0
    services = SubscriptionService.objects.filter(
        distributor__provider__name=provider_name,
        subscription__number__startswith=PREFIX,
    )
    on = list(SubscriptionService.ON_STATES)
    now = datetime.now(tz=UTC)
    chosen = (
        Subscription.objects.filter(number__startswith=PREFIX)
        .annotate(bucket=models.F("id") % every)
        .filter(bucket=0)
    )
    with transaction.atomic():
        services.filter(subscription__in=chosen, state__in=on).update(
            authorized=False, authorization_date=None
        )
        services.filter(subscription__in=chosen).exclude(state__in=on).exclude(
            state__in=HISTORY_STATES
        ).update(authorized=True, authorization_date=now)
    # Only the provider's: other providers' load subscriptions share the numbering.
    return chosen.filter(models.Exists(services.filter(subscription=models.OuterRef("pk")))).count()
