"""Reconciling many subscriptions at once: Reset Subscriptions and Process Provisioning Requests.

Both walk the chosen subscriptions in keyed chunks. Each chunk is one transaction that locks its
subscriptions (so an agent's action on one of them waits, and nothing is planned twice), runs
the reconciler set-based over the chunk and writes the requests. A run killed half-way keeps
the chunks it finished; running it again plans only what is still out of step.
"""

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date
from itertools import groupby

from django.db import transaction
from django.db.models import Exists, OuterRef, QuerySet

from subscriptions.models import InstalledItem, Subscription, SubscriptionService

from . import delivery, reconciler, registry
from .engine import create_requests
from .models import Provider, ProvisioningRequest
from .parameters import context_for

Trigger = ProvisioningRequest.Trigger


@dataclass(frozen=True)
class Selection:
    """Which subscriptions a run looks at (SPEC: creation period and subscription types)."""

    provider: Provider
    created_from: date | None = None
    created_to: date | None = None
    subscription_type_ids: tuple[int, ...] = ()

    def subscriptions(self) -> QuerySet:
        """Subscriptions with a service or a device on one of the provider's viewing points."""
        on_provider = Exists(
            SubscriptionService.objects.filter(
                subscription=OuterRef("pk"), distributor__provider=self.provider
            )
        ) | Exists(
            InstalledItem.objects.filter(
                subscription=OuterRef("pk"), distributor__provider=self.provider
            )
        )
        subs = Subscription.objects.filter(on_provider)
        if self.created_from:
            subs = subs.filter(created_at__date__gte=self.created_from)
        if self.created_to:
            subs = subs.filter(created_at__date__lte=self.created_to)
        if self.subscription_type_ids:
            subs = subs.filter(subscription_type_id__in=self.subscription_type_ids)
        return subs.order_by("pk")


@dataclass
class Result:
    examined: int = 0
    subscriptions_changed: int = 0
    requests_created: int = 0
    problems: list[tuple[int | None, str]] = field(default_factory=list)


def _id_chunks(subs: QuerySet, size: int) -> Iterator[list[int]]:
    """Subscription ids in ascending chunks, by keyset (no OFFSET, no long-held cursor)."""
    last = 0
    while True:
        chunk = list(subs.filter(pk__gt=last).values_list("pk", flat=True)[:size])
        if not chunk:
            return
        yield chunk
        last = chunk[-1]


@dataclass(frozen=True)
class PreviewRow:
    subscription_id: int
    subscription: str
    requests: list[dict]  # {"command": ..., "parameters": {...}} in sending order


def preview(
    selection: Selection, *, chunk_size: int = 2000, today: date | None = None
) -> Iterator[PreviewRow]:
    """Every subscription out of step, with the requests a run would create. Writes nothing."""
    adapter = registry.adapter_for(selection.provider)
    for chunk in _id_chunks(selection.subscriptions(), chunk_size):
        commands = list(
            reconciler.plan(selection.provider, chunk, chunk_size=chunk_size, today=today)
        )
        if not commands:
            continue
        ctx = context_for(commands)
        for sub_id, group in groupby(commands, key=lambda c: c.subscription_id):
            yield PreviewRow(
                sub_id,
                ctx.subscriptions[sub_id],
                [
                    {
                        "command": adapter.command_for(c.operation),
                        "parameters": adapter.parameters_for(c, ctx),
                    }
                    for c in group
                ],
            )


def reconcile(
    selection: Selection,
    *,
    trigger_name: str,
    chunk_size: int = 2000,
    process_run_id: int | None = None,
    progress: Callable[[Result], None] | None = None,
    today: date | None = None,
) -> Result:
    """Create the requests that bring every selected subscription in step, chunk by chunk.

    ``progress(result)`` is called in each chunk's transaction, just before it commits;
    ``result.problems`` collects, per subscription, what could not be provisioned (the rest of
    the chunk goes ahead). ``today`` (default: the local date) is the day date-driven commands
    such as renewals are planned for.
    """
    result = Result()
    for chunk in _id_chunks(selection.subscriptions(), chunk_size):
        problems: list[tuple[int | None, str]] = []
        with transaction.atomic():
            # Same lock the actions take: an action on one of these waits for this chunk.
            list(Subscription.objects.select_for_update().filter(pk__in=chunk).values_list("pk"))
            commands = list(
                reconciler.plan(
                    selection.provider,
                    chunk,
                    chunk_size=chunk_size,
                    on_problem=lambda sub_id, message, found=problems: found.append(
                        (sub_id, message)
                    ),
                    today=today,
                )
            )
            ids = create_requests(
                selection.provider,
                commands,
                trigger=Trigger.RUN,
                trigger_name=trigger_name,
                process_run_id=process_run_id,
            )
            result.examined += len(chunk)
            result.subscriptions_changed += len({c.subscription_id for c in commands})
            result.requests_created += len(ids)
            result.problems.extend(problems)
            if progress:
                # Inside the chunk's transaction: what a run records as done is exactly what
                # committed, even if the worker dies right after.
                progress(result)
                result.problems = []  # handed over; keep memory flat over a long run
    return result


def reset_subscription(
    subscription: Subscription,
    *,
    provider: Provider | None = None,
    priority: int = ProvisioningRequest.Priority.NORMAL,
    trigger_name: str = "reset_subscription",
):
    """Reset one subscription at one provider, or at every enabled provider it uses; returns
    the requests made (after commit, push providers are woken to send them)."""
    if provider is not None:
        providers = [provider]
    else:
        providers = Provider.objects.filter(
            enabled=True, distributors__services__subscription=subscription
        ) | Provider.objects.filter(
            enabled=True, distributors__installed_items__subscription=subscription
        )
        providers = list(providers.distinct().order_by("pk"))
    created: list[int] = []
    with transaction.atomic():
        Subscription.objects.select_for_update().get(pk=subscription.pk)
        for each in providers:
            created += create_requests(
                each,
                reconciler.plan(each, [subscription.pk]),
                trigger=Trigger.UTILITY,
                trigger_name=trigger_name,
                priority=priority,
            )
        if created:
            transaction.on_commit(lambda: delivery.wake([p.pk for p in providers]))
    return ProvisioningRequest.objects.filter(pk__in=created).order_by("pk")
