"""Starting and stopping a service on PostgreSQL's fast path (``core.fast_path``; ADR 0002):
the real-time path's commonest actions take two hand-written statements where the ORM takes
four (the ``SET LOCAL`` of the transaction's generic plans, the lock, the service's UPDATE, the
event's INSERT). ``actions._switch_service`` picks them or the ORM's, and shares the rest."""

from functools import cache

from django.db import connection

from catalogue.models import Distributor, Product, Provider
from core import rawsql
from core.db import GENERIC_PLANS_COLUMN, generic_plans_with_first_statement

from .models import Subscription, SubscriptionEvent, SubscriptionService

_LOCKED = [SubscriptionService, Subscription, Product, Distributor, Provider]


def lock_service(service: SubscriptionService | int) -> tuple[Subscription, SubscriptionService]:
    """``actions._lock_service`` by one statement, which sets the transaction's generic plans
    too (``core.db``). Raises ``SubscriptionService.DoesNotExist``."""
    pk = service if isinstance(service, int) else service.pk
    generic = generic_plans_with_first_statement()
    with connection.cursor() as cursor:
        cursor.execute(_lock_sql(generic), [pk])
        row = cursor.fetchone()
    if row is None:
        raise SubscriptionService.DoesNotExist(f"No service {pk}.")
    service, sub, product, distributor, provider = rawsql.instances(
        _LOCKED, row[1:] if generic else row
    )
    service.subscription, service.product, service.distributor = sub, product, distributor
    distributor.provider = provider
    return sub, service


@cache
def _lock_sql(generic: bool) -> str:
    names = ", ".join(
        rawsql.columns(model, alias) for model, alias in zip(_LOCKED, "vspdr", strict=True)
    )
    if generic:
        names = f"{GENERIC_PLANS_COLUMN}, {names}"
    return (
        f"SELECT {names} FROM {rawsql.table(SubscriptionService)} v "  # noqa: S608 (names and placeholders only)
        f"JOIN {rawsql.table(Subscription)} s ON s.id = v.subscription_id "
        f"JOIN {rawsql.table(Product)} p ON p.id = v.product_id "
        f"JOIN {rawsql.table(Distributor)} d ON d.id = v.distributor_id "
        f"JOIN {rawsql.table(Provider)} r ON r.id = d.provider_id WHERE v.id = %s "
        "FOR UPDATE OF v, s"
    )


def write(service: SubscriptionService, event: SubscriptionEvent) -> None:
    """The service's new state and the action's event by one statement: the service's UPDATE a
    data-modifying ``WITH`` of the event's INSERT."""
    update, update_params = rawsql.update(service, ("state",))
    insert, insert_params = rawsql.insert(event)
    with connection.cursor() as cursor:
        cursor.execute(f"WITH updated AS ({update}) {insert}", [*update_params, *insert_params])
