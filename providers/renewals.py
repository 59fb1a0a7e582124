"""Renewals: entitlements that a batch platform keeps only for a period (Conax SMS in months,
EXSET in days) are renewed once the authorization date plus that period is today or earlier.

    renewals(provider, subscriptions, today, ca_ids, period)  # an adapter's ``extra_commands``
    renewed(requests, now)                # a file pipeline's ``accepted``: the date moves on

One implementation for every provider that renews; the adapter gives the period (a
``relativedelta``) from its own parameter.
"""

from datetime import datetime, time, timedelta

from dateutil.relativedelta import relativedelta
from django.db import connection
from django.utils import timezone

from catalogue.models import Distributor, Product
from subscriptions.models import InstalledItem, SubscriptionService

from .models import ProvisioningRequest as Req
from .reconciler import Command, Span, Subscriptions

Op = Req.Operation


def renewal_due(authorized_on, period: relativedelta, today) -> bool:
    """SPEC: the authorization date plus the renewal period is today or earlier."""
    return authorized_on + period <= today


def last_due_day(period: relativedelta, today):
    """The latest authorization day whose renewal is due ``today``: adding a period never
    moves a later day before an earlier one, so a renewal is due exactly for the days up to
    this one (with months several days may end on the same one: 29-31 January + 1 month = 28
    February)."""
    day = today - period
    while renewal_due(day + timedelta(days=1), period, today):
        day += timedelta(days=1)
    return day


# The services a chunk renews, with their cards, in one statement: on and authorized before
# the cut-off, and each initialized card in use on the service's viewing point.
_RENEWALS = """
    SELECT ss.id, ss.subscription_id, ss.product_id, ss.distributor_id, it.id
      FROM {service} ss
      JOIN {distributor} d ON d.id = ss.distributor_id
      JOIN {item} it ON it.subscription_id = ss.subscription_id
       AND it.distributor_id = ss.distributor_id
       AND it.kind = %s AND it.removed_at IS NULL AND it.initialized
     WHERE d.provider_id = %s
       AND {chosen}
       AND ss.state IN ({on}) AND ss.authorized AND ss.authorization_date < %s{termed}
     ORDER BY ss.id, it.id
"""
# What is on its way for those services: looked up by service id (its index), apart. Inside
# the statement above (NOT EXISTS) the planner is free to scan the whole index of Pending
# requests for each card, which it does when the request table's statistics are older than
# the run's own requests (PostgreSQL then believes the table nearly empty).
_WAITING = """
    SELECT service_id, installed_item_id FROM {request}
     WHERE {chosen} AND state = %s AND operation IN (%s, %s, %s)
"""
# Ids per statement (SQLite takes at most 32766 parameters).
RENEWAL_IDS = 10_000


def _tables() -> dict[str, str]:
    quote = connection.ops.quote_name
    return {
        "service": quote(SubscriptionService._meta.db_table),
        "distributor": quote(Distributor._meta.db_table),
        "item": quote(InstalledItem._meta.db_table),
        "request": quote(Req._meta.db_table),
        "product": quote(Product._meta.db_table),
        "on": ", ".join(["%s"] * len(SubscriptionService.ON_STATES)),
    }


def _any(column: str, ids: list[int]) -> tuple[str, list]:
    """``column`` among ``ids``: one array parameter on PostgreSQL, placeholders elsewhere."""
    if connection.vendor == "postgresql":
        return f"{column} = ANY(%s)", [ids]
    return f"{column} IN ({', '.join(['%s'] * len(ids))})", list(ids)


def _renewal_rows(
    provider_id: int, subscriptions: Subscriptions, cutoff, termed_only: bool
) -> list[tuple]:
    """(service, subscription, product, distributor, card) to renew, by service and card."""
    tables = _tables()
    termed = ""
    if termed_only:
        termed = (
            f" AND ss.product_id NOT IN (SELECT id FROM {tables['product']} "  # noqa: S608 (names from the model)
            f"WHERE service_type = '{Product.ServiceType.USAGE}')"
        )
    if isinstance(subscriptions, Span):
        # A run's chunk: its id range, as the reconciler reads it (no list of its ids).
        parts: list[Subscriptions] = [subscriptions]
    else:
        ids = sorted(subscriptions)
        parts = [ids[start : start + RENEWAL_IDS] for start in range(0, len(ids), RENEWAL_IDS)]
    rows: list[tuple] = []
    for part in parts:
        chosen_params: list = []
        if isinstance(part, Span):
            # On both tables: PostgreSQL does not carry a range across the join's equality.
            chosen = part.sql("ss.subscription_id", chosen_params)
            chosen += " AND " + part.sql("it.subscription_id", chosen_params, joined=True)
        else:
            chosen, chosen_params = _any("ss.subscription_id", part)
            if connection.vendor == "postgresql":
                # The bounds on both tables let it scan their index ranges.
                chosen += (
                    " AND ss.subscription_id BETWEEN %s AND %s"
                    " AND it.subscription_id BETWEEN %s AND %s"
                )
                chosen_params += [part[0], part[-1], part[0], part[-1]]
        params = [
            InstalledItem.Kind.SMARTCARD,
            provider_id,
            *chosen_params,
            *SubscriptionService.ON_STATES,
            cutoff,
        ]
        with connection.cursor() as cursor:
            cursor.execute(_RENEWALS.format(chosen=chosen, termed=termed, **tables), params)
            rows += cursor.fetchall()
    return rows


def _waiting(service_ids: list[int]) -> set[tuple[int, int]]:
    """(service, card) of the entitlement requests still Pending for these services."""
    tables = _tables()
    found: set[tuple[int, int]] = set()
    for start in range(0, len(service_ids), RENEWAL_IDS):
        chosen, params = _any("service_id", service_ids[start : start + RENEWAL_IDS])
        params += [Req.State.PENDING, Op.ACTIVATE, Op.DEACTIVATE, Op.RENEW]
        with connection.cursor() as cursor:
            cursor.execute(_WAITING.format(chosen=chosen, **tables), params)
            found.update(cursor.fetchall())
    return found


def renewals(
    provider,
    subscriptions: Subscriptions,
    today,
    ca_ids,
    period: relativedelta,
    *,
    termed_only: bool = False,
) -> list[Command]:
    """Renew commands for these subscriptions (ids, or a run's ``Span``): per on, authorized
    service and each initialized card in use on its viewing point, one per component CA ID,
    unless an entitlement request for that service and card is still Pending (a Renew waiting
    for its answer counts). ``termed_only``: usage services are never renewed.

    Due is decided in the query: authorized before the day after ``last_due_day`` began (in
    the local time zone, as ``timezone.localdate`` reads the authorization date)."""
    if not isinstance(subscriptions, Span) and not subscriptions:
        return []
    cutoff = connection.ops.adapt_datetimefield_value(
        timezone.make_aware(
            datetime.combine(last_due_day(period, today) + timedelta(days=1), time())
        )
    )
    rows = _renewal_rows(provider.pk, subscriptions, cutoff, termed_only)
    if not rows:
        return []
    waiting = _waiting(sorted({row[0] for row in rows}))
    return [
        Command(Op.RENEW, sub_id, dist_id, card, service_id=service_id, ca_id=ca_id)
        for service_id, sub_id, product_id, dist_id, card in rows
        if (service_id, card) not in waiting
        for ca_id in ca_ids[product_id]
    ]


def renewed(requests: list[Req], now: datetime) -> None:
    """Accepted Renews extend the entitlement: the renewal period counts from now, so it is
    not renewed again before its time (a file pipeline's ``accepted``)."""
    services = [r.service_id for r in requests if r.operation == Op.RENEW]
    if services:
        SubscriptionService.objects.filter(
            pk__in=services, authorized=True, state__in=SubscriptionService.ON_STATES
        ).update(authorization_date=now, updated_at=now)
