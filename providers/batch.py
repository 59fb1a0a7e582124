"""Reconciling many subscriptions at once: Reset Subscriptions and Process Provisioning Requests.

Both walk the subscription table in id ranges (``Span``s). Each chunk is one transaction that
locks the subscriptions it changes (so an agent's action on one of them waits, and nothing is
planned twice), runs the reconciler set-based over the chunk and writes the requests. A run
killed half-way keeps the chunks it finished; running it again plans only what is still out of
step. Chunks are independent: the workers of several machines can share one run.
"""

import threading
from collections import Counter, deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import date
from itertools import groupby, islice

from django.db import connection, transaction
from django.db.models import Exists, Max, Min, OuterRef, QuerySet

from catalogue.models import Provider
from core import rawsql
from core.clock import SYSTEM, Clock
from core.db import plans_per_call
from subscriptions.models import InstalledItem, Subscription, SubscriptionService

from . import delivery, give_way, platform, reasons, reconciler, registry, superseded
from .engine import context_for, create_requests
from .models import ProvisioningRequest

Trigger = ProvisioningRequest.Trigger
# Subscription ids per chunk of a run that compares with the platform.
COMPARE_CHUNK_SIZE = 100


@dataclass(frozen=True)
class Selection:
    """Which subscriptions a run looks at (SPEC: creation period and subscription types)."""

    provider: Provider
    created_from: date | None = None
    created_to: date | None = None
    subscription_type_ids: tuple[int, ...] = ()

    def subscriptions(self, span: reconciler.Span | None = None) -> QuerySet:
        """Subscriptions with a service or a device on one of the provider's viewing points;
        with ``span``, those with ids in its range."""
        services = SubscriptionService.objects.filter(
            subscription=OuterRef("pk"), distributor__provider=self.provider
        )
        items = InstalledItem.objects.filter(
            subscription=OuterRef("pk"), distributor__provider=self.provider
        )
        subscriptions = self.criteria() or Subscription.objects.all()
        if span is not None:
            # The range inside the EXISTS too: statistics that miss the provider's
            # distributors (a table too small for autovacuum to analyze) planned them as a
            # hash of every service of the provider, 2.4 million rows for each chunk.
            inside = {"subscription_id__gte": span.low, "subscription_id__lt": span.high}
            services, items = services.filter(**inside), items.filter(**inside)
            subscriptions = subscriptions.filter(pk__gte=span.low, pk__lt=span.high)
        return subscriptions.filter(Exists(services) | Exists(items)).order_by("pk")

    def examined(self, span: reconciler.Span) -> int:
        """How many of ``subscriptions(span)`` there are, counted from the chunk's services and
        devices at the provider's viewing points: two index ranges. The EXISTS of
        ``subscriptions`` tests each subscription of the range twice, and took as long as
        planning the chunk."""
        distributors = list(self.provider.distributors.values_list("pk", flat=True))
        if not distributors:
            return 0
        params: list = []
        chosen = []
        for model in (SubscriptionService, InstalledItem):
            table = connection.ops.quote_name(model._meta.db_table)
            chosen.append(
                f"SELECT subscription_id FROM {table} "  # noqa: S608 (names from the model)
                f"WHERE {span.sql('subscription_id', params)} "
                f"AND {rawsql.among('distributor_id', distributors, params)}"
            )
        with connection.cursor() as cursor:
            union = " UNION ".join(chosen)
            cursor.execute(f"SELECT count(*) FROM ({union}) chosen", params)  # noqa: S608
            return cursor.fetchone()[0]

    def criteria(self) -> QuerySet | None:
        """The subscriptions the run's criteria keep, whatever their provider; None: all."""
        if not (self.created_from or self.created_to or self.subscription_type_ids):
            return None
        subs = Subscription.objects.all()
        if self.created_from:
            subs = subs.filter(created_at__date__gte=self.created_from)
        if self.created_to:
            subs = subs.filter(created_at__date__lte=self.created_to)
        if self.subscription_type_ids:
            subs = subs.filter(subscription_type_id__in=self.subscription_type_ids)
        return subs

    def spans(
        self, size: int, id_range: tuple[int, int] | None = None
    ) -> Iterator[reconciler.Span]:
        """The subscription table (or ``id_range``, [low, high)) in id ranges of ``size``, the
        chunks runs work in. Each chunk costs the database the same wherever it lies (a keyset
        ``LIMIT`` over the selection would test every subscription past the cursor, chunk after
        chunk); subscriptions made after the run started are left to their own actions."""
        where = self.criteria()
        for low, high in id_ranges(size, id_range):
            yield reconciler.Span(low, high, where)


def id_ranges(size: int, within: tuple[int, int] | None = None) -> list[tuple[int, int]]:
    """[low, high) ranges of ``size`` subscription ids covering the table (or ``within``)."""
    if within is None:
        bounds = Subscription.objects.aggregate(low=Min("pk"), high=Max("pk"))
        if bounds["low"] is None:
            return []
        within = (bounds["low"], bounds["high"] + 1)
    low, high = within
    return [(start, min(start + size, high)) for start in range(low, high, size)]


@dataclass
class Result:
    examined: int = 0
    subscriptions_changed: int = 0
    requests_created: int = 0
    superseded: int = 0  # Failed requests the run planned again (providers.superseded)
    problems: list[tuple[int | None, str]] = field(default_factory=list)
    # The requests created by operation ("activate": 3, "renew": 1, …).
    operations: Counter = field(default_factory=Counter)


@dataclass(frozen=True)
class PreviewRow:
    subscription_id: int
    subscription: str
    # {"command": ..., "reason": "Activate SPORT: service Effective, …", "parameters": {...}},
    # in sending order
    requests: list[dict]


def preview(
    selection: Selection, *, chunk_size: int = 10000, today: date | None = None
) -> Iterator[PreviewRow]:
    """Every subscription out of step, with the requests a run would create and why
    (``reasons``). Writes nothing.

    Outside a transaction the next two chunks are planned while this one's rows are built
    and read, each in a thread on a connection of its own: PostgreSQL works on both at once,
    a core each. One chunk after the other, the preview of a million subscriptions took
    twice as long (10 s instead of 5.4 s on a database of two million). In a caller's
    transaction, whose writes another connection would not see, the chunks are planned one
    after the other on its own connection."""
    adapter = registry.adapter_for(selection.provider)
    spans = selection.spans(chunk_size)

    def planned(span: reconciler.Span) -> tuple[list, object]:
        with plans_per_call():
            commands = list(reconciler.plan(selection.provider, span, today=today))
            if not commands:
                return [], None
            ctx = context_for(commands)
            return list(zip(commands, reasons.explain(commands, ctx), strict=True)), ctx

    def rows(chunks) -> Iterator[PreviewRow]:
        for explained, ctx in chunks:
            for sub_id, group in groupby(explained, key=lambda e: e[0].subscription_id):
                yield PreviewRow(
                    sub_id,
                    ctx.subscriptions[sub_id],
                    [
                        {
                            "command": c.command or adapter.command_for(c.operation),
                            "reason": why,
                            "parameters": adapter.parameters_for(c, ctx),
                        }
                        for c, why in group
                    ],
                )

    if connection.in_atomic_block:
        with plans_per_call():
            yield from rows(map(planned, spans))
    else:
        yield from rows(_read_ahead(planned, spans))


def _read_ahead(work: Callable, items: Iterator, threads: int = 2) -> Iterator:
    """``work(item)`` for each item, in order, computed by ``threads`` other threads each on
    its own database connection, as many items ahead of the caller; the connections are
    closed at the end (also when the caller stops early)."""
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="read-ahead") as pool:
        try:
            pending = deque(pool.submit(work, item) for item in islice(items, threads))
            while pending:
                done = pending.popleft().result()
                pending.extend(pool.submit(work, item) for item in islice(items, 1))
                yield done
        finally:
            # Once what is still being read has finished, each thread lets go of its own
            # connection (``connection`` is looked up in the thread that uses it); the barrier
            # makes each close run on a thread of its own.
            barrier = threading.Barrier(threads)

            def close() -> None:
                barrier.wait()
                connection.close()

            for closing in [pool.submit(close) for _ in range(threads)]:
                closing.result()


def reconcile(
    selection: Selection,
    *,
    trigger_name: str,
    chunk_size: int = 10000,
    process_run_id: int | None = None,
    progress: Callable[[Result], None] | None = None,
    today: date | None = None,
    id_range: tuple[int, int] | None = None,
    compare: bool = False,
    clock: Clock = SYSTEM,
) -> Result:
    """Create the requests that bring every selected subscription (with an id in ``id_range``
    if given) in step, chunk by chunk.

    ``progress(result)`` is called in each chunk's transaction, just before it commits;
    ``result.problems`` collects, per subscription, what could not be provisioned (the rest of
    the chunk goes ahead). ``today`` (default: the local date) is the day date-driven commands
    such as renewals are planned for. ``compare``: each subscription is judged by what the
    platform holds, asked now (as Reset single subscription does), at the cost of asking it
    about every device of every subscription selected. ``clock`` times the chunks, and the
    waits between them (``give_way``).
    """
    if compare and not registry.adapter_for(selection.provider).tells_state:
        raise ValueError(
            f"{selection.provider.name} cannot be asked what it holds: a run cannot compare "
            "with it."
        )
    if compare:
        # A platform call or two per device: smaller chunks, so that progress shows.
        chunk_size = min(chunk_size, COMPARE_CHUNK_SIZE)
    result = Result()
    for span in selection.spans(chunk_size, id_range):
        began = clock.monotonic()
        (compare_span if compare else reconcile_span)(
            selection,
            span,
            result,
            trigger_name=trigger_name,
            process_run_id=process_run_id,
            progress=progress,
            today=today,
        )
        # Committed: while agents' actions flow, the next chunk waits its turn.
        give_way.after_chunk(clock.monotonic() - began, clock=clock)
    return result


def reconcile_span(
    selection: Selection,
    span: reconciler.Span,
    result: Result,
    *,
    trigger_name: str,
    process_run_id: int | None = None,
    progress: Callable[[Result], None] | None = None,
    today: date | None = None,
) -> None:
    """One chunk of a run, in one transaction, adding to ``result``.

    The chunk is planned first without locks: most subscriptions are in step, and locking each
    would write every row of a table of millions. Those that need something are then locked —
    the lock the actions take, so an agent's action on one of them waits — and planned again,
    so what is written reflects exactly what is committed."""
    provider = selection.provider
    touched: set[int] = set()
    for command in reconciler.plan(
        provider, span, on_problem=lambda sub_id, _: touched.add(sub_id), today=today
    ):
        touched.add(command.subscription_id)
    with transaction.atomic():
        examined = selection.examined(span)
        commands: list[reconciler.Command] = []
        problems: list[tuple[int | None, str]] = []
        if touched:
            locked = replace(span, only=tuple(sorted(touched)))
            _lock(locked)
            commands = list(
                reconciler.plan(
                    provider,
                    locked,
                    on_problem=lambda sub_id, message: problems.append((sub_id, message)),
                    today=today,
                )
            )
        created = create_requests(
            provider,
            commands,
            trigger=Trigger.RUN,
            trigger_name=trigger_name,
            process_run_id=process_run_id,
        )
        stale = superseded.failed(provider).filter(
            subscription_id__gte=span.low, subscription_id__lt=span.high
        )
        if span.where is not None:
            stale = stale.filter(subscription_id__in=span.where.values("pk"))
        result.superseded += superseded.supersede(
            stale.exclude(subscription_id__in=[sub_id for sub_id, _ in problems if sub_id])
        )
        result.examined += examined
        result.subscriptions_changed += len({c.subscription_id for c in commands})
        result.requests_created += len(created)
        result.operations.update(c.operation for c in commands)
        result.problems.extend(problems)
        if progress:
            # Inside the chunk's transaction: what a run records as done is exactly what
            # committed, even if the worker dies right after.
            progress(result)
            result.problems = []  # handed over; keep memory flat over a long run


def compare_span(
    selection: Selection,
    span: reconciler.Span,
    result: Result,
    *,
    trigger_name: str,
    process_run_id: int | None = None,
    progress: Callable[[Result], None] | None = None,
    today: date | None = None,
) -> None:
    """One chunk of a run that compares with the platform, adding to ``result``: the platform
    is asked about each subscription first (no lock held while it answers), then, in one
    transaction, each is locked, corrected and planned as Reset single subscription does
    (``platform``). A subscription the platform could not tell about is a problem, left as
    it is for the next run."""
    provider = selection.provider
    adapter = registry.adapter_for(provider)
    subscriptions = list(selection.subscriptions(span).only("pk", "number"))
    held: dict[int, dict] = {}
    problems: list[tuple[int | None, str]] = []
    for subscription in subscriptions:
        try:
            held[subscription.pk] = (
                platform.ask(
                    adapter,
                    subscription,
                    trigger=Trigger.RUN,
                    trigger_name=trigger_name,
                    process_run_id=process_run_id,
                )
                or {}
            )
        except registry.PlatformQueryError as error:
            problems.append((subscription.pk, str(error)))
    with transaction.atomic():
        commands: list[reconciler.Command] = []
        if held:
            _lock(replace(span, only=tuple(sorted(held))))
            ca_ids = reconciler.CAIds.of_provider(provider.pk)
            for subscription in subscriptions:
                if subscription.pk in held:
                    planned, _notes = platform.plan(
                        provider,
                        subscription,
                        held[subscription.pk],
                        ca_ids,
                        on_problem=lambda sub_id, message: problems.append((sub_id, message)),
                        today=today,
                        run_id=process_run_id,
                    )
                    commands += planned
        created = create_requests(
            provider,
            commands,
            trigger=Trigger.RUN,
            trigger_name=trigger_name,
            process_run_id=process_run_id,
        )
        unplanned = {sub_id for sub_id, _ in problems}
        result.superseded += superseded.supersede(
            superseded.failed(provider).filter(
                subscription_id__in=[pk for pk in held if pk not in unplanned]
            )
        )
        result.examined += len(subscriptions)
        result.subscriptions_changed += len({c.subscription_id for c in commands})
        result.requests_created += len(created)
        result.operations.update(c.operation for c in commands)
        result.problems.extend(problems)
        if progress:
            progress(result)
            result.problems = []


def _lock(span: reconciler.Span) -> None:
    """Lock the span's subscriptions as an action locks one (the range and an array: the
    ORM's list of thousands of placeholders took longer to bind than to run). SQLite has no
    row locks: its writers take turns, as ``select_for_update`` leaves them there."""
    if not connection.features.has_select_for_update:
        return
    params: list = []
    table = connection.ops.quote_name(Subscription._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT id FROM {table} WHERE {span.sql('id', params)} ORDER BY id FOR UPDATE",  # noqa: S608 (names from the model)
            params,
        )


@dataclass
class Reset:
    """What Reset single subscription did: the requests made, the providers asked what they
    hold, and our flags corrected to their answers (sentences, also in the history)."""

    requests: QuerySet
    asked: list[Provider] = field(default_factory=list)
    corrected: list[str] = field(default_factory=list)
    superseded: int = 0  # its Failed requests planned again (providers.superseded)


def reset(
    subscription: Subscription,
    *,
    provider: Provider | None = None,
    priority: int = ProvisioningRequest.Priority.NORMAL,
    trigger_name: str = "reset_subscription",
    by=None,
) -> Reset:
    """Reset one subscription at one provider, or at every enabled provider it uses. A
    provider that can tell what it holds is asked first, and judged by its answer
    (``platform``); the others by our flags and Pending requests. After commit, push
    providers are woken to send the requests. Raises ``PlatformQueryError`` when a provider
    that can tell does not. ``by``: the user, recorded with the corrections."""
    if provider is not None:
        providers = [provider]
    else:
        providers = list(Provider.objects.of_subscription(subscription).order_by("pk"))
    held: dict[int, dict] = {}
    for each in providers:
        adapter = registry.adapter_for(each)
        if adapter.tells_state:
            # Before the lock: asking waits on the network.
            found = platform.ask(
                adapter, subscription, trigger=Trigger.UTILITY, trigger_name=trigger_name
            )
            if found:  # None: it cannot tell after all; {}: no device there to ask about
                held[each.pk] = found
    done = Reset(ProvisioningRequest.objects.none(), [p for p in providers if p.pk in held])
    created: list[int] = []
    with transaction.atomic():
        Subscription.objects.select_for_update().get(pk=subscription.pk)
        for each in providers:
            if each.pk in held:
                ca_ids = reconciler.CAIds.of_provider(each.pk)
                commands, notes = platform.plan(each, subscription, held[each.pk], ca_ids, by=by)
                done.corrected += notes
            else:
                commands = reconciler.plan(each, [subscription.pk])
            created += create_requests(
                each,
                commands,
                trigger=Trigger.UTILITY,
                trigger_name=trigger_name,
                priority=priority,
            )
            done.superseded += superseded.supersede(
                superseded.failed(each).filter(subscription=subscription)
            )
        if created:
            transaction.on_commit(lambda: delivery.wake([p.pk for p in providers]))
    done.requests = ProvisioningRequest.objects.filter(pk__in=created).order_by("pk")
    return done


def reset_subscription(subscription: Subscription, **options) -> QuerySet:
    """``reset``'s requests (``options``: its keyword arguments)."""
    return reset(subscription, **options).requests
