"""The reconciler: from wanted state and provider state, the commands that bring a provider in step.

One implementation serves every path. A real-time action reconciles the services and devices it
touched; the processing and reset runs reconcile whole sets of subscriptions. Either way the
work is a few set-based SQL statements per chunk of subscriptions, never a query per
subscription, and rows stream through in constant memory.

The model, per subscription service *s* and smartcard *c* on the same viewing point
(distributor) of the same subscription:

- **wanted(s, c)** — *s* is Effective / Short Term Effective and *c* is in use.
- **has(s, c)** — what the provider holds once everything already on its way has arrived: the
  last *pending* activate/deactivate request for (s, c) if there is one; otherwise
  ``s.authorized and initialized(c)`` (a card the provider has not registered holds nothing,
  which is how a swapped-in card gets every service of its viewing point).
- **initialized(c)** — ``c.initialized``, or a pending pairing request that includes *c*.

``wanted and not has`` gives *activate*, ``has and not wanted`` gives *deactivate* (this covers
services switched off, cards removed or swapped away, and moves between distributors), one
command per component CA ID of the service's product. A viewing point with a wanted service and
devices not initialized gives *create pairing* (nothing there registered yet) or *add to
existing pairing*. Because pending requests count as already applied, running the reconciler
again before the answers come back creates nothing twice.

Within a subscription, commands come out in the order they must reach the provider: pairings,
then deactivations, then activations (so a CA ID cancelled on one service and added on another
ends up active), then whatever the adapter adds beyond this model (``extra_commands``: e.g.
renewals of entitlements that carry an end date) when whole subscriptions are reconciled.
Two adapter hooks cost nothing to the providers that leave them be: ``provisions_usage_services``
False leaves usage services out of *wanted* in the SQL, and ``rewrite_commands`` sees a whole
subscriptions' chunk's commands before they are ordered (EXSET's CHANGE_DEVICE).
"""

from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import date

from django.db import connection
from django.db.models import QuerySet
from django.utils import timezone

from catalogue.models import Distributor, Product, ProductCAId
from core import rawsql
from core.db import (
    equals_without_partial_index,
    short_statement,
    without_nested_loops,
)
from subscriptions.models import InstalledItem, SubscriptionService

from . import registry
from .models import ProvisioningRequest

Op = ProvisioningRequest.Operation
State = ProvisioningRequest.State
ON_STATES = tuple(SubscriptionService.ON_STATES)
ENTITLEMENT_OPS = (Op.ACTIVATE, Op.DEACTIVATE)
PAIRING_OPS = (Op.CREATE_PAIRING, Op.ADD_TO_PAIRING)
OP_ORDER = {
    Op.CREATE_PAIRING: 0,
    Op.ADD_TO_PAIRING: 0,
    Op.DEACTIVATE: 1,
    Op.ACTIVATE: 2,
    Op.RENEW: 3,
}


@dataclass(frozen=True)
class Command:
    operation: str
    subscription_id: int
    distributor_id: int
    item_id: int  # the card addressed (pairings: a new card's, queued before its activations)
    service_id: int | None = None
    ca_id: str = ""
    member_ids: tuple[int, ...] = ()  # pairings: the devices to register
    anchor_id: int | None = None  # add to pairing: the registered card whose pairing grows
    forget_ids: tuple[int, ...] = ()  # create pairing: removed boxes it leaves out
    # The provider's command when an adapter's ``rewrite_commands`` chose one other than its
    # ``commands`` gives for ``operation`` (EXSET's CHANGE_DEVICE is a pairing's operation).
    command: str = ""


@dataclass(frozen=True)
class Scope:
    """Restricts reconciliation to what one action touched."""

    service_ids: frozenset[int] = frozenset()
    item_ids: frozenset[int] = frozenset()


@dataclass(frozen=True)
class Span:
    """A batch run's chunk: the subscriptions with ids in [low, high) that ``where`` (a
    Subscription queryset of the run's criteria, or None for all) keeps.

    The database gets a range, not a list of ids: it reads each chunk's services and cards by
    range scans, and a chunk costs the same wherever it lies in a table of millions."""

    low: int
    high: int
    where: QuerySet | None = None
    # Only these subscriptions of the range (sorted): a chunk's second, locked look at what it
    # found out of step. Inside the range, so that the statement still reads index ranges: a
    # bare list of thousands of ids let PostgreSQL scan the whole request table for each
    # (service, card) of the chunk, a run slowing to minutes per chunk as its requests grew.
    only: tuple[int, ...] | None = None

    def sql(self, column: str, params: list, *, joined: bool = False) -> str:
        """The span as a condition on ``column``. ``joined``: the column of a table joined to
        one this span already narrows (by subscription), or only looked up by it: the range
        suffices there. ``only``'s array inside the probes of a nested loop is tested for each
        probe, thousands of times a chunk."""
        params.extend([self.low, self.high])
        sql = f"{column} >= %s AND {column} < %s"
        if self.only is not None and not joined:
            sql += f" AND {rawsql.among(column, self.only, params)}"
        elif self.where is not None:
            chosen = self.where.filter(pk__gte=self.low, pk__lt=self.high).order_by().values("pk")
            chosen_sql, chosen_params = chosen.query.sql_with_params()
            params.extend(chosen_params)
            sql += f" AND {column} IN ({chosen_sql})"
        return sql


Subscriptions = list[int] | Span


def _subscriptions_sql(
    subscriptions: Subscriptions, column: str, params: list, *, joined: bool = False
) -> str:
    if isinstance(subscriptions, Span):
        return subscriptions.sql(column, params, joined=joined)
    return f"{column} IN ({_in(subscriptions, params)})"


def _tables() -> dict[str, str]:
    request_items = ProvisioningRequest.items.through
    return {
        "service": SubscriptionService._meta.db_table,
        "item": InstalledItem._meta.db_table,
        "request": ProvisioningRequest._meta.db_table,
        "request_items": request_items._meta.db_table,
        "ri_request": request_items._meta.get_field("provisioningrequest").column,
        "ri_item": request_items._meta.get_field("installeditem").column,
        "distributor": "providers_distributor",
    }


# The SQL below is built with f-strings, but only from table and column names taken from the
# models' metadata and from "%s" placeholders; every value travels as a query parameter.


def _in(values: Iterable, params: list) -> str:
    values = list(values)
    params.extend(values)
    return ", ".join(["%s"] * len(values))


def _pending(scope: Scope | None) -> str:
    """``pr.state = 'pending'`` as the plan's statements write it: a real-time action's
    (``scope``) on a prepared, generic plan, finds its requests by its subscription or card,
    never by the queue's partial index; a run's chunk is planned for its own values."""
    if scope is not None:
        return equals_without_partial_index("pr.state", State.PENDING)
    return "pr.state = 'pending'"


# has(s, c) and initialized(c) as SQL, over aliases ss (service) and it (card); ``chosen``
# narrows the Pending pairings to the chunk's subscriptions (a batch chunk: without it, a hash
# of every Pending pairing in the table may be the plan).
_PAIRING_PENDING = """EXISTS (
        SELECT 1 FROM {request} pr JOIN {request_items} ri ON ri.{ri_request} = pr.id
        WHERE ri.{ri_item} = it.id AND {pending}{chosen}
          AND pr.operation IN ('create_pairing', 'add_to_pairing'))"""


def _pairing_pending(
    t: dict, subscriptions: Subscriptions, scope: Scope | None, params: list
) -> str:
    """A Pending pairing names the device ``it`` (a member, or a removed box it forgets)."""
    # A real-time action's card is looked up by its id alone.
    chosen = (
        ""
        if scope is not None
        else " AND " + _subscriptions_sql(subscriptions, "pr.subscription_id", params, joined=True)
    )
    return _PAIRING_PENDING.format(**t, pending=_pending(scope), chosen=chosen)


def _initialized(t: dict, subscriptions: Subscriptions, scope: Scope | None, params: list) -> str:
    return f"(it.initialized OR {_pairing_pending(t, subscriptions, scope, params)})"


def _forgotten_box(t: dict, subscriptions: Subscriptions, params: list) -> str:
    """``it`` is a set-top box taken away that its platform still pairs (the pairing that
    leaves it out, accepted, would have forgotten it) and that no Pending pairing forgets yet:
    a rejected re-pairing after a removal, which a reset pairs anew."""
    pending = _pairing_pending(t, subscriptions, None, params)
    return f"(it.kind = 'stb' AND it.removed_at IS NOT NULL AND it.initialized AND NOT {pending})"


# The last Pending activate/deactivate per (service, card) of the chunk's subscriptions, as a
# derived table joined once per chunk, found by subscription: a correlated subquery per row
# would be planned from statistics, which a run writing requests leaves behind (its plan then
# scans every Pending request per row); nothing joins past the chunk.
_LAST_PENDING = """(
    SELECT lpr.service_id, lpr.installed_item_id, lpr.operation
      FROM {request} lpr
     WHERE {chosen_last} AND lpr.id IN (
           SELECT MAX(pr.id)
             FROM {request} pr
            WHERE {chosen}
              AND {pending} AND pr.operation IN ('activate', 'deactivate')
            GROUP BY pr.service_id, pr.installed_item_id))"""


def _ordered(scope: Scope | None, columns: str) -> str:
    """A chunk's rows in order; a real-time action's are ordered by the one statement they
    come in (``_scoped_rows``), which must stay short (``short_statement``)."""
    return "" if scope is not None else f"ORDER BY {columns}"


def _entitlement_sql(
    provider_id: int, subscriptions: Subscriptions, scope: Scope | None, usage: bool = True
) -> tuple[str, list]:
    """The statement (and its parameters) of (subscription, service, product, distributor,
    card, operation) where wanted != has. ``usage`` False: the provider takes no usage
    services (``Adapter.provisions_usage_services``); they are never wanted there.

    CROSS JOIN keeps SQLite's join order (PostgreSQL reorders freely): the chunk's services
    first, found by subscription. Without statistics SQLite would otherwise start from the
    provider's distributors and scan every service and card on them, chunk after chunk."""
    t = _tables()
    params: list = [provider_id]
    # On both tables: PostgreSQL does not carry a range across the join's equality.
    chosen = _subscriptions_sql(subscriptions, "ss.subscription_id", params)
    chosen += " AND " + _subscriptions_sql(subscriptions, "it.subscription_id", params, joined=True)
    scope_sql = ""
    if scope is not None:
        parts = []
        if scope.service_ids:
            parts.append(f"ss.id IN ({_in(scope.service_ids, params)})")
        if scope.item_ids:
            parts.append(f"it.id IN ({_in(scope.item_ids, params)})")
        scope_sql = f"AND ({' OR '.join(parts) or '1 = 0'})"
    on_params: list = []
    on_in = _in(ON_STATES, on_params)
    # Written in only for a provider without usage services: the others' statement is as it was.
    termed = (
        ""
        if usage
        else f"AND ss.product_id NOT IN (SELECT id FROM {rawsql.table(Product)} "
        f"WHERE service_type = '{Product.ServiceType.USAGE}')"
    )
    initialized_params: list = []
    initialized = _initialized(t, subscriptions, scope, initialized_params)
    pending_params: list = []
    last_pending = _LAST_PENDING.format(
        **t,
        pending=_pending(scope),
        chosen_last=_subscriptions_sql(
            subscriptions, "lpr.subscription_id", pending_params, joined=True
        ),
        chosen=_subscriptions_sql(subscriptions, "pr.subscription_id", pending_params, joined=True),
    )
    sql = f"""
        SELECT subscription_id, service_id, product_id, distributor_id, item_id,
               CASE wanted WHEN 1 THEN 'activate' ELSE 'deactivate' END AS op FROM (
            SELECT ss.subscription_id, ss.id AS service_id, ss.product_id, ss.distributor_id,
                   it.id AS item_id,
                   CASE WHEN ss.state IN ({on_in}) AND it.removed_at IS NULL {termed}
                        THEN 1 ELSE 0 END AS wanted,
                   CASE lp.operation
                        WHEN 'activate' THEN 1
                        WHEN 'deactivate' THEN 0
                        ELSE CASE WHEN ss.authorized AND {initialized} THEN 1 ELSE 0 END
                   END AS has_it
            FROM {t["service"]} ss
            CROSS JOIN {t["distributor"]} d
            CROSS JOIN {t["item"]} it
            LEFT JOIN {last_pending} lp
              ON lp.service_id = ss.id AND lp.installed_item_id = it.id
            WHERE d.id = ss.distributor_id
              AND it.subscription_id = ss.subscription_id
              AND it.distributor_id = ss.distributor_id
              AND it.kind = 'smartcard'
              AND d.provider_id = %s
              AND {chosen}
              {scope_sql}
        ) candidates
        WHERE wanted <> has_it
        {_ordered(scope, "subscription_id, service_id, item_id")}
    """
    # Parameter order follows the placeholders: the SELECT list, the joins, the WHERE clause.
    return sql, on_params + initialized_params + pending_params + params


def _pairing_sql(
    provider_id: int, subscriptions: Subscriptions, scope: Scope | None
) -> tuple[str, list]:
    """The statement (and its parameters) of the in-use devices on viewing points that have
    a wanted service and a device the provider has not registered: (sub, dist, item, kind,
    state), state 0 not registered, 1 registered.

    Found from the unregistered devices (a partial index holds exactly those), so a chunk in
    which every device is registered costs next to nothing. A real-time action also finds the
    points of the devices it took away while still registered (state 2): the devices left
    there are paired anew, without them. Whole subscriptions find the points of a box taken
    away that the platform still pairs (``_forgotten_box``, a partial index of its own: the
    re-pairing of a removal rejected), paired anew the same way."""
    t = _tables()
    on_params: list = []
    on_in = _in(ON_STATES, on_params)
    params: list = [provider_id]
    chosen = _subscriptions_sql(subscriptions, "n.subscription_id", params)
    scope_sql = ""
    unregistered = "n.removed_at IS NULL AND NOT n.initialized"
    in_use, state = "it.removed_at IS NULL", "CASE WHEN {initialized} THEN 1 ELSE 0 END"
    taken_params: list = []
    forgotten, forgotten_params = "", []
    if scope is not None and scope.item_ids:
        taken = f"it.initialized AND it.id IN ({_in(scope.item_ids, taken_params)})"
        unregistered = (
            f"({unregistered} OR (n.removed_at IS NOT NULL AND n.initialized "
            f"AND n.id IN ({_in(scope.item_ids, params)})))"
        )
        in_use = f"({in_use} OR ({taken}))"
        state = "CASE WHEN it.removed_at IS NOT NULL THEN 2 WHEN {initialized} THEN 1 ELSE 0 END"
    elif scope is None:
        # Whole subscriptions: also the points of a box taken away that is still paired, by
        # a second arm (its own partial index); a Pending pairing that forgets it leaves it out.
        forgotten = f"""
              UNION
              SELECT n.subscription_id, n.distributor_id
              FROM {t["item"]} n
              JOIN {t["distributor"]} d ON d.id = n.distributor_id
              WHERE d.provider_id = %s
                AND {_subscriptions_sql(subscriptions, "n.subscription_id", forgotten_params)}
                AND n.kind = 'stb' AND n.removed_at IS NOT NULL AND n.initialized"""
        forgotten_params.insert(0, provider_id)
        in_use = f"({in_use} OR {_forgotten_box(t, subscriptions, taken_params)})"
        state = "CASE WHEN it.removed_at IS NOT NULL THEN 2 WHEN {initialized} THEN 1 ELSE 0 END"
    if scope is not None:
        touched = []
        if scope.service_ids:
            touched.append(
                f"""n.distributor_id IN (SELECT distributor_id FROM {t["service"]}
                     WHERE id IN ({_in(scope.service_ids, params)}))"""
            )
        if scope.item_ids:
            touched.append(
                f"""n.distributor_id IN (SELECT distributor_id FROM {t["item"]}
                     WHERE id IN ({_in(scope.item_ids, params)}))"""
            )
        scope_sql = f"AND ({' OR '.join(touched) or '1 = 0'})"
    initialized_params: list = []
    initialized = _initialized(t, subscriptions, scope, initialized_params)
    sql = f"""
        SELECT it.subscription_id, it.distributor_id, it.id, it.kind,
               {state.format(initialized=initialized)} AS is_initialized
        FROM (SELECT DISTINCT n.subscription_id, n.distributor_id
              FROM {t["item"]} n
              JOIN {t["distributor"]} d ON d.id = n.distributor_id
              WHERE d.provider_id = %s
                AND {chosen}
                AND {unregistered}
                {scope_sql}{forgotten}) points
        JOIN {t["item"]} it
          ON it.subscription_id = points.subscription_id
         AND it.distributor_id = points.distributor_id
         AND {in_use}
        WHERE EXISTS (SELECT 1 FROM {t["service"]} ss
                      WHERE ss.subscription_id = it.subscription_id
                        AND ss.distributor_id = it.distributor_id
                        AND ss.state IN ({on_in}))
        {_ordered(scope, "it.subscription_id, it.distributor_id, it.id")}
    """
    return sql, initialized_params + params + forgotten_params + taken_params + on_params


def _chunk_rows(
    provider_id: int, subscriptions: Subscriptions, usage: bool = True
) -> tuple[list, list]:
    """A batch chunk's pairing rows and entitlement rows, a statement each; the entitlement
    statement with nested loops off (a real-time action's few rows, ``_scoped_rows``, join by
    index look-ups, which a nested loop is)."""
    with connection.cursor() as cursor:
        cursor.execute(*_pairing_sql(provider_id, subscriptions, None))
        pairing = cursor.fetchall()
    with without_nested_loops(), connection.cursor() as cursor:
        cursor.execute(*_entitlement_sql(provider_id, subscriptions, None, usage))
        entitlements = cursor.fetchall()
    return pairing, entitlements


def _scoped_rows(provider_id: int, subscription_id: int, scope: Scope, usage: bool = True) -> tuple:
    """A real-time action's pairing rows and entitlement rows (as ``_chunk_rows`` gives them),
    the CA IDs of the entitled products, and the names its requests' parameters are built
    from (``parameters.Context.of``'s, but the subscription's number), by ONE statement: each
    statement is a round trip on the real-time path, with its own CPU in psycopg and in
    PostgreSQL.

    They come as branches of a ``UNION ALL`` in shared columns (branch, three bigints, an
    int, a text, a bigint, three texts): 0 pairing (subscription, distributor, card,
    initialized, kind), 1 entitlement (subscription, service, card, distributor, operation,
    product, product code), 2 a bundle's component (bundle, link, component), 3 a CA ID
    (product, CA ID), 4 a distributor's code, 5 a device (id, kind, serial number, CA ID,
    product code). The pairing and entitlement rows and the bundles' components are CTEs the
    later branches read their ids from. The first branch's NULLs that no second-branch value
    types are cast, as PostgreSQL settles a UNION's column types pairwise."""
    pairing_sql, pairing_params = _pairing_sql(provider_id, [subscription_id], scope)
    entitlement_sql, entitlement_params = _entitlement_sql(
        provider_id, [subscription_id], scope, usage
    )
    bigint, text = rawsql.typed_null("bigint"), rawsql.typed_null("text")
    sql = short_statement(
        f"WITH e AS ({entitlement_sql}), p AS ({pairing_sql}), c AS (SELECT id, "
        f"from_product_id, to_product_id FROM {rawsql.table(Product.components.through)} "
        "WHERE from_product_id IN (SELECT product_id FROM e)) "
        "SELECT 0, p.subscription_id, p.distributor_id, p.id, p.is_initialized, p.kind, "
        f"{bigint}, {text}, {text}, {text} FROM p UNION ALL "
        "SELECT 1, e.subscription_id, e.service_id, e.item_id, e.distributor_id, e.op, "
        f"e.product_id, r.code, NULL, NULL FROM e JOIN {rawsql.table(Product)} r "
        "ON r.id = e.product_id UNION ALL "
        "SELECT 2, from_product_id, id, to_product_id, NULL, NULL, NULL, NULL, NULL, NULL "
        "FROM c UNION ALL "
        "SELECT 3, a.product_id, 0, NULL, NULL, a.ca_id, NULL, NULL, NULL, NULL "
        f"FROM {rawsql.table(ProductCAId)} a WHERE a.provider_id = %s AND a.product_id IN "
        "(SELECT product_id FROM e UNION ALL SELECT to_product_id FROM c) UNION ALL "
        "SELECT 4, d.id, 0, NULL, NULL, d.code, NULL, NULL, NULL, NULL "
        f"FROM {rawsql.table(Distributor)} d WHERE d.id IN (SELECT distributor_id FROM e "
        "UNION SELECT distributor_id FROM p) UNION ALL "
        "SELECT 5, i.id, 0, NULL, NULL, i.kind, NULL, i.serial_number, i.ca_id, "
        f"i.product_code FROM {rawsql.table(InstalledItem)} i "
        "WHERE i.id IN (SELECT item_id FROM e UNION SELECT id FROM p) "
        "ORDER BY 1, 2, 3, 4"
    )
    pairing, entitlements, components, ca_ids = [], [], [], []
    distributors: dict[int, str] = {}
    products: dict[int, str] = {}
    devices = []
    with connection.cursor() as cursor:
        cursor.execute(sql, entitlement_params + pairing_params + [provider_id])
        for row in cursor.fetchall():
            branch, first, key, item_id, fifth, sixth, product_id, seventh = row[:8]
            if branch == 0:
                pairing.append((first, key, item_id, sixth, fifth))
            elif branch == 1:
                entitlements.append((first, key, product_id, fifth, item_id, sixth))
                products[key] = seventh
            elif branch == 2:
                components.append((first, item_id))
            elif branch == 3:
                ca_ids.append((first, sixth))
            elif branch == 4:
                distributors[first] = sixth
            else:
                devices.append((first, sixth, seventh, row[8], row[9]))
    found = CAIds(components, ca_ids, {row[2] for row in entitlements})
    names = {"distributors": distributors, "products": products, "devices": devices}
    return pairing, entitlements, found, names


class CAIds:
    """Product → the CA IDs that provision it at one provider (components for a bundle), and
    the flat products among them that have none there.

    Built from rows: (bundle, component) in the bundle's order, and (product, CA ID).
    ``of_provider`` reads the provider's whole catalogue (a batch run, once); a real-time
    action's come with its pairing and entitlement rows (``_scoped_rows``), for only the
    products it touched (``wanted``)."""

    def __init__(self, components: list, ca_ids: list, wanted: Iterable[int] | None = None):
        self._wanted = None if wanted is None else set(wanted)
        self._components: dict[int, list[int]] = defaultdict(list)
        for bundle_id, component_id in components:
            self._components[bundle_id].append(component_id)
        self._flat: dict[int, str] = dict(ca_ids)
        self._codes: dict[int, str] | None = None
        if self._wanted is not None:
            self._wanted |= {c for parts in self._components.values() for c in parts}

    @classmethod
    def of_provider(cls, provider_id: int) -> "CAIds":
        """Every product's, by one hand-written statement."""
        through = rawsql.table(Product.components.through)
        flat = rawsql.table(ProductCAId)
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT 0, id, from_product_id, to_product_id, NULL FROM {through} "
                f"UNION ALL SELECT 1, 0, product_id, NULL, ca_id FROM {flat} "
                "WHERE provider_id = %s ORDER BY 1, 2",
                [provider_id],
            )
            rows = cursor.fetchall()
        return cls(
            [(product_id, part) for is_ca_id, _, product_id, part, _ in rows if not is_ca_id],
            [(product_id, ca_id) for is_ca_id, _, product_id, _, ca_id in rows if is_ca_id],
        )

    def products(self) -> list[int]:
        """The products looked up that may have CA IDs here: flat ones that do, and bundles."""
        return sorted(self._flat.keys() | self._components.keys())

    def _parts(self, product_id: int) -> list[int]:
        return self._components.get(product_id) or [product_id]

    def __getitem__(self, product_id: int) -> list[str]:
        return [self._flat[p] for p in self._parts(product_id) if p in self._flat]

    def missing(self, product_id: int) -> list[str]:
        """The codes of the product's parts that have no CA ID at the provider."""
        lacking = [p for p in self._parts(product_id) if p not in self._flat]
        if not lacking:
            return []
        if self._codes is None:  # only when something is missing, which is rare
            codes = Product.objects.all()
            if self._wanted is not None:
                codes = codes.filter(pk__in=self._wanted)
            self._codes = dict(codes.values_list("pk", "code"))
        return [self._codes[p] for p in lacking if p in self._codes]


def _pairing_commands(rows) -> list[Command]:
    """Per viewing point: devices added to a registered card's pairing (add to existing
    pairing, anchored on that card: a CAS pairs by card), or, when no card in use is
    registered or a device was taken away, every device in use paired anew (create pairing:
    the CAS takes them out of their old pairing, which keeps what was taken away). Addressed
    to a new card if there is one, so that its activations queue behind it."""
    by_point: dict[tuple[int, int], list] = defaultdict(list)
    for sub_id, dist_id, item_id, kind, state in rows:
        by_point[(sub_id, dist_id)].append((item_id, kind, int(state)))
    commands = []
    for (sub_id, dist_id), items in by_point.items():
        in_use = [i for i in items if i[2] != 2]
        gone = [i for i in items if i[2] == 2]
        new = [i for i in in_use if not i[2]]
        cards = [i for i in in_use if i[1] == "smartcard"]
        if not (new or (gone and cards)):
            continue  # a pairing is of a card: with none left, nothing to pair anew
        new_cards = [i for i in new if i[1] == "smartcard"]
        registered_cards = [i for i in cards if i[2]]
        if registered_cards and not gone:
            anchor = registered_cards[0]
            addressed = new_cards[0] if new_cards else anchor
            command = Command(
                Op.ADD_TO_PAIRING,
                sub_id,
                dist_id,
                addressed[0],
                member_ids=tuple(i[0] for i in new),
                anchor_id=anchor[0],
            )
        else:
            addressed = (new_cards or cards or in_use)[0]
            command = Command(
                Op.CREATE_PAIRING,
                sub_id,
                dist_id,
                addressed[0],
                member_ids=tuple(i[0] for i in in_use),
                forget_ids=tuple(i[0] for i in gone if i[1] != "smartcard"),
            )
        commands.append(command)
    return commands


def _subscription_chunks(subscription_ids: Iterable[int], size: int) -> Iterator[list[int]]:
    chunk: list[int] = []
    for sub_id in subscription_ids:
        chunk.append(sub_id)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def plan(
    provider,
    subscription_ids: Iterable[int] | Span,
    *,
    chunk_size: int = 2000,
    on_problem: Callable[[int, str], None] | None = None,
    today: date | None = None,
) -> Iterator[Command]:
    """The commands that bring ``provider`` in step for these whole subscriptions, in sending
    order.

    ``subscription_ids`` may be a lazy iterator (e.g. ``values_list(..).iterator()``); it is
    consumed in chunks, so memory stays flat whatever the number of subscriptions. A ``Span``
    is planned as one chunk.
    ``on_problem(subscription_id, message)`` hears of what cannot be provisioned (a product
    without a CA ID at this provider). The adapter's ``extra_commands`` for ``today``
    (default: the local date) come last in each subscription; its ``rewrite_commands``, if
    it has one, then sees each chunk's commands before they are put in order.
    """
    # Whole subscriptions may hold any product: the catalogue once.
    ca_ids = CAIds.of_provider(provider.pk)
    adapter = registry.adapter_for(provider)
    today = today or timezone.localdate()
    # Most adapters add and rewrite nothing (their defaults are not even called).
    extra = type(adapter).extra_commands is not registry.Adapter.extra_commands
    rewrite = type(adapter).rewrite_commands is not registry.Adapter.rewrite_commands
    usage = adapter.provisions_usage_services
    if isinstance(subscription_ids, Span):
        chunks: Iterable[Subscriptions] = [subscription_ids]
    else:
        chunks = _subscription_chunks(subscription_ids, chunk_size)
    for chunk in chunks:
        pairing, rows = _chunk_rows(provider.pk, chunk, usage)
        per_sub = _commands(provider, pairing, rows, ca_ids, on_problem)
        if extra:
            for command in adapter.extra_commands(chunk, today, ca_ids):
                per_sub[command.subscription_id].append(command)
        if rewrite and per_sub:
            per_sub = adapter.rewrite_commands(per_sub)
        yield from _in_order(per_sub)


def plan_action(provider, subscription, scope: Scope) -> tuple[list[Command], dict]:
    """What a real-time action that touched ``scope`` of ``subscription`` (the Subscription
    it locked) calls for at ``provider``: the commands in sending order, and the names their
    parameters are built from (``parameters.Context.of``'s arguments), read with them by one
    statement."""
    usage = registry.adapter_class(provider.type).provisions_usage_services
    pairing, rows, ca_ids, names = _scoped_rows(provider.pk, subscription.pk, scope, usage)
    commands = list(_in_order(_commands(provider, pairing, rows, ca_ids)))
    return commands, {"subscriptions": {subscription.pk: subscription.number}, **names}


def _commands(provider, pairing, rows, ca_ids: CAIds, on_problem=None) -> dict:
    """Subscription → its commands from a chunk's pairing and entitlement rows."""
    per_sub: dict[int, list[Command]] = defaultdict(list)
    for command in _pairing_commands(pairing):
        per_sub[command.subscription_id].append(command)
    for sub_id, service_id, product_id, dist_id, item_id, op in rows:
        if ca_ids.missing(product_id) and on_problem is not None:
            missing = ", ".join(ca_ids.missing(product_id))
            on_problem(sub_id, f"{missing} has no CA ID at provider {provider.name}.")
        for ca_id in ca_ids[product_id]:
            per_sub[sub_id].append(
                Command(op, sub_id, dist_id, item_id, service_id=service_id, ca_id=ca_id)
            )
    return per_sub


def _in_order(per_sub: dict) -> Iterator[Command]:
    for sub_id in sorted(per_sub):
        yield from sorted(per_sub[sub_id], key=lambda c: OP_ORDER[c.operation])
