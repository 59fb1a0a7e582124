"""The provisioning engine: reconciler commands become provisioning requests (the outbox).

Requests are written in the caller's transaction — the action's, or one chunk of a run — so a
request exists if and only if the state change that called for it committed. Delivery is only
woken up after commit (``on_commit``); the request row is the truth and a sweeper re-dispatches
whatever a lost wake-up left behind.
"""

import uuid
from collections.abc import Iterable, Iterator
from itertools import islice

from django.db import connection
from django.dispatch import receiver

from catalogue.models import Distributor, Product, Provider
from core import rawsql
from subscriptions.models import InstalledItem, Subscription, SubscriptionService
from subscriptions.signals import ActionChange, action_performed

from . import bulk, reconciler, registry, wakeups
from .models import ProvisioningRequest
from .parameters import Context

Op = ProvisioningRequest.Operation


def _rollback(command: reconciler.Command, ctx: Context) -> dict:
    """What a rejection must undo, recorded with the request when it is made."""
    if command.operation == Op.ACTIVATE:
        return {"switch_off_service": command.service_id}
    if command.operation in (Op.CREATE_PAIRING, Op.ADD_TO_PAIRING):
        return {"leave_uninitialized": list(command.member_ids)}
    return {}


def context_for(commands: list[reconciler.Command]) -> Context:
    """The names the chunk's parameters are built from, by one statement written as SQL: a
    real-time action makes a chunk of one or two commands, and the ORM's four queries cost it
    more than the database's work."""
    item_ids = {c.item_id for c in commands}
    item_ids |= {m for c in commands for m in c.member_ids + c.forget_ids}
    item_ids |= {c.anchor_id for c in commands if c.anchor_id}
    service_ids = {c.service_id for c in commands if c.service_id}
    subscription_ids = {c.subscription_id for c in commands}
    distributor_ids = {c.distributor_id for c in commands}
    params: list = []
    # Every branch: (what, id, name, kind, serial number, CA ID, product code).
    sql = f"""
        SELECT 's', id, number, NULL, NULL, NULL, NULL FROM {Subscription._meta.db_table}
         WHERE {rawsql.among("id", subscription_ids, params)}
        UNION ALL
        SELECT 'd', id, code, NULL, NULL, NULL, NULL FROM {Distributor._meta.db_table}
         WHERE {rawsql.among("id", distributor_ids, params)}"""
    if service_ids:
        sql += f"""
        UNION ALL
        SELECT 'p', ss.id, p.code, NULL, NULL, NULL, NULL
          FROM {SubscriptionService._meta.db_table} ss
          JOIN {Product._meta.db_table} p ON p.id = ss.product_id
         WHERE {rawsql.among("ss.id", service_ids, params)}"""
    if item_ids:
        sql += f"""
        UNION ALL
        SELECT 'i', id, NULL, kind, serial_number, ca_id, product_code
          FROM {InstalledItem._meta.db_table} WHERE {rawsql.among("id", item_ids, params)}"""
    found: dict[str, dict[int, str]] = {"s": {}, "d": {}, "p": {}}
    devices = []
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        for what, pk, name, *device in cursor.fetchall():
            if what == "i":
                devices.append((pk, *device))
            else:
                found[what][pk] = name
    return Context.of(found["s"], found["d"], found["p"], devices)


def create_requests(
    provider: Provider,
    commands: Iterable[reconciler.Command],
    *,
    trigger: str,
    trigger_name: str = "",
    priority: int = ProvisioningRequest.Priority.NORMAL,
    process_run_id: int | None = None,
    chunk_size: int = 2000,
    context: Context | None = None,
    created_by_id: int | None = None,
) -> list[int]:
    """Write one Pending request per command, in order; returns their ids. ``context``:
    the names of every command's rows, read already (a real-time action's come with its
    plan); otherwise each chunk's are read."""
    adapter = registry.adapter_for(provider)
    created: list[int] = []
    iterator: Iterator = iter(commands)
    while chunk := list(islice(iterator, chunk_size)):
        ctx = context if context is not None else context_for(chunk)
        ids = bulk.insert(
            ProvisioningRequest,
            [
                {
                    "uid": str(uuid.uuid4()),
                    "command": c.command or adapter.command_for(c.operation),
                    "operation": c.operation,
                    "ca_id": c.ca_id,
                    "parameters": adapter.parameters_for(c, ctx),
                    "distributor_id": c.distributor_id,
                    "subscription_id": c.subscription_id,
                    "service_id": c.service_id,
                    "installed_item_id": c.item_id,
                    "rollback": _rollback(c, ctx),
                }
                for c in chunk
            ],
            shared={
                "provider_id": provider.pk,
                "priority": priority,
                "trigger": trigger,
                "trigger_name": trigger_name,
                "process_run_id": process_run_id,
                "created_by_id": created_by_id,
            },
        )
        # Item rows only for the requests that concern several devices (a pairing's
        # members): a request to one card names it in ``installed_item``, and a row per
        # request beside it doubled what a run writes.
        bulk.insert(
            ProvisioningRequest.items.through,
            [
                {"provisioningrequest_id": pk, "installeditem_id": member}
                for pk, c in zip(ids, chunk, strict=True)
                for member in c.member_ids + c.forget_ids
            ],
        )
        created.extend(ids)
    return created


def create_request(
    provider: Provider,
    command: str,
    parameters: dict,
    *,
    trigger: str,
    trigger_name: str = "",
    subscription=None,
    installed_item=None,
    items=(),
    distributor=None,
    priority: int = ProvisioningRequest.Priority.NORMAL,
    operation: str = Op.OTHER,
    rollback: dict | None = None,
    process_run_id: int | None = None,
    deliver_now: bool = True,
    created_by=None,
) -> ProvisioningRequest:
    """One request that no reconciler planned: a utility's or a message / fingerprint run's
    command to one card (``installed_item``), or to several devices (``items``, e.g. the
    members of a pairing). Written in the caller's transaction; a push provider is woken after
    commit unless ``deliver_now`` is False (the request then waits for the next processing or
    export run)."""
    request = ProvisioningRequest.objects.create(
        command=command,
        operation=operation,
        parameters=parameters,
        provider=provider,
        distributor=distributor,
        subscription=subscription,
        installed_item=installed_item,
        priority=priority,
        trigger=trigger,
        trigger_name=trigger_name,
        rollback=rollback or {},
        process_run_id=process_run_id,
        created_by=created_by,
    )
    if items:
        request.items.set(items)
    if deliver_now and registry.adapter_for(provider).delivery == registry.PUSH:
        # A run's own requests are batch work: they do not make other runs give way.
        wakeups.wake_after_commit(provider.pk, realtime=trigger != ProvisioningRequest.Trigger.RUN)
    return request


def providers_touched(change: ActionChange) -> list[Provider]:
    """The enabled providers of the distributors the change touched, by name.

    A service action read its service's distributor and provider with its lock, in its
    transaction: those, when every touched row carries them. Otherwise hand-written SQL:
    compiling the ORM's join cost a real-time action more than running it."""
    touched = change.services_on + change.services_off + change.items_added + change.items_removed
    loaded = _loaded_providers(touched)
    if loaded is not None:
        enabled = {p.pk: p for p in loaded if p.enabled}
        return sorted(enabled.values(), key=lambda p: (p.name, p.pk))
    distributor_ids = {row.distributor_id for row in touched}
    params: list = []
    sql = (
        f"SELECT {rawsql.columns(Provider, 'p')} FROM {rawsql.table(Provider)} p "
        f"WHERE p.enabled AND p.id IN (SELECT d.provider_id FROM {rawsql.table(Distributor)} d "
        f"WHERE {rawsql.among('d.id', distributor_ids, params)}) ORDER BY p.name, p.id"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return [rawsql.instance(Provider, row) for row in cursor.fetchall()]


def _loaded_providers(rows) -> list[Provider] | None:
    """The providers of the rows' distributors, if each row has its distributor and that its
    provider loaded already; else None."""
    providers = []
    for row in rows:
        distributor_field = type(row)._meta.get_field("distributor")
        if not distributor_field.is_cached(row):
            return None
        distributor = row.distributor
        if not Distributor._meta.get_field("provider").is_cached(distributor):
            return None
        providers.append(distributor.provider)
    return providers


@receiver(action_performed, dispatch_uid="provision_action")
def provision_action(sender, change: ActionChange, **kwargs) -> None:
    """Real-time: reconcile exactly what the action touched, inside its transaction."""
    if change.is_empty:
        return
    scope = reconciler.Scope(
        service_ids=frozenset(s.pk for s in change.services_on + change.services_off),
        item_ids=frozenset(i.pk for i in change.items_added + change.items_removed),
    )
    for provider in providers_touched(change):
        adapter = registry.adapter_for(provider)
        if not adapter.acts_on_actions:
            change.deferred_to.append(provider.name)
            continue  # batch providers: the processing run will pick the change up
        commands, names = reconciler.plan_action(provider, change.subscription, scope)
        created = create_requests(
            provider,
            commands,
            trigger=ProvisioningRequest.Trigger.ACTION,
            trigger_name=change.action,
            context=Context.of(**names),
            created_by_id=change.performed_by.pk if change.performed_by else None,
        )
        change.request_ids.extend(created)
        if created and adapter.delivery == registry.PUSH:
            wakeups.wake_after_commit(provider.pk, realtime=True)
