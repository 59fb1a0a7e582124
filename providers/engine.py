"""The provisioning engine: reconciler commands become provisioning requests (the outbox).

Requests are written in the caller's transaction — the action's, or one chunk of a run — so a
request exists if and only if the state change that called for it committed. Delivery is only
woken up after commit (``on_commit``); the request row is the truth and a sweeper re-dispatches
whatever a lost wake-up left behind.
"""

import uuid
from collections.abc import Iterable, Iterator
from functools import partial
from itertools import islice

from django.db import transaction
from django.dispatch import receiver

from subscriptions.signals import ActionChange, action_performed

from . import bulk, reconciler, registry, wakeups
from .models import Provider, ProvisioningRequest
from .parameters import Context, context_for

Op = ProvisioningRequest.Operation


def _rollback(command: reconciler.Command, ctx: Context) -> dict:
    """What a rejection must undo, recorded with the request when it is made."""
    if command.operation == Op.ACTIVATE:
        return {"switch_off_service": command.service_id}
    if command.operation in (Op.CREATE_PAIRING, Op.ADD_TO_PAIRING):
        return {"leave_uninitialized": list(command.member_ids)}
    return {}


def create_requests(
    provider: Provider,
    commands: Iterable[reconciler.Command],
    *,
    trigger: str,
    trigger_name: str = "",
    priority: int = ProvisioningRequest.Priority.NORMAL,
    process_run_id: int | None = None,
    chunk_size: int = 2000,
) -> list[int]:
    """Write one Pending request per command, in order; returns their ids."""
    adapter = registry.adapter_for(provider)
    created: list[int] = []
    iterator: Iterator = iter(commands)
    while chunk := list(islice(iterator, chunk_size)):
        ctx = context_for(chunk)
        ids = bulk.insert(
            ProvisioningRequest,
            [
                {
                    "uid": uuid.uuid4(),
                    "command": adapter.command_for(c.operation),
                    "operation": c.operation,
                    "ca_id": c.ca_id,
                    "parameters": adapter.parameters_for(c, ctx),
                    "provider_id": provider.pk,
                    "distributor_id": c.distributor_id,
                    "subscription_id": c.subscription_id,
                    "service_id": c.service_id,
                    "installed_item_id": c.item_id,
                    "priority": priority,
                    "trigger": trigger,
                    "trigger_name": trigger_name,
                    "rollback": _rollback(c, ctx),
                    "process_run_id": process_run_id,
                }
                for c in chunk
            ],
        )
        bulk.insert(
            ProvisioningRequest.items.through,
            [
                {"provisioningrequest_id": pk, "installeditem_id": member}
                for pk, c in zip(ids, chunk, strict=True)
                for member in (c.member_ids or (c.item_id,))
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
) -> ProvisioningRequest:
    """One request that no reconciler planned: a utility's or a message / fingerprint run's
    command to one card. Written in the caller's transaction; a push provider is woken after
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
    )
    members = list(items) or ([installed_item] if installed_item is not None else [])
    if members:
        request.items.set(members)
    if deliver_now and registry.adapter_for(provider).delivery == registry.PUSH:
        _wake_after_commit(provider.pk)
    return request


def providers_touched(change: ActionChange) -> list[Provider]:
    distributor_ids = {s.distributor_id for s in change.services_on + change.services_off} | {
        i.distributor_id for i in change.items_added + change.items_removed
    }
    return list(
        Provider.objects.filter(distributors__pk__in=distributor_ids, enabled=True).distinct()
    )


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
            continue  # batch providers: the processing run will pick the change up
        created = create_requests(
            provider,
            reconciler.plan(provider, [change.subscription.pk], scope=scope),
            trigger=ProvisioningRequest.Trigger.ACTION,
            trigger_name=change.action,
        )
        change.request_ids.extend(created)
        if created and adapter.delivery == registry.PUSH:
            _wake_after_commit(provider.pk)


def _wake_after_commit(provider_id: int) -> None:
    # Robust: the change has committed by then, and a wake-up that cannot be sent must not
    # turn it into an error; the sweeper wakes delivery for what is due.
    transaction.on_commit(partial(wakeups.wake, provider_id), robust=True)
