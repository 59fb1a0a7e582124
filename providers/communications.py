"""Turning the communication queue into message requests: the part every message run shares.

A message run (Conax WS *Mail & Bark Messages*, Conax SMS *Send Message*, EXSET *Infocas*…)
takes the Pending outgoing communications of one external system that refer to a
subscription, makes each into the provider's own message request(s), and marks the
communication Completed — or Failed with the reason when it cannot be sent. Only *how* a
communication becomes requests differs between providers; that is the ``build`` callback.

The queue is walked by keyset (ascending id) in chunks; each chunk is one transaction that
locks its entries (``SKIP LOCKED``: two runs at once never take the same communication), so
a communication is marked exactly when its requests are committed, and a run that dies keeps
the chunks it finished. Each entry gets a savepoint of its own: a ``build`` that fails half-way
leaves no requests behind for that entry, and the rest of the chunk goes ahead.
"""

from collections.abc import Callable
from dataclasses import dataclass, field

from django.db import transaction
from django.db.models import Exists, OuterRef, QuerySet
from django.utils import timezone

from catalogue.models import ExternalSystem, Provider
from subscriptions.models import CommunicationQueueEntry, InstalledItem

from .extensions import Progress, counted

Entry = CommunicationQueueEntry


class CommunicationFailed(Exception):
    """``build`` cannot send this communication; it is marked Failed with this message."""


class Defer(Exception):
    """``build`` leaves this communication Pending for a later run (e.g. the subscription has
    a message still on its way)."""


@dataclass
class Result:
    examined: int = 0
    completed: int = 0
    failed: int = 0
    deferred: int = 0
    requests_created: int = 0
    # (subscription id, message): why a communication failed, for the run's error log.
    problems: list[tuple[int | None, str]] = field(default_factory=list)


# What a message run counts (its ``RunType.counts``; ``counts`` reports them).
COUNTS = (
    ("communications", "Communications examined"),
    ("sent", "Sent"),
    ("failed", "Failed"),
    ("requests", "Requests created"),
)


def counts(result: Result) -> dict[str, int]:
    """A message run's counts (``Progress.counts``), from ``process``'s running totals."""
    return {
        "communications": result.examined,
        "sent": result.completed,
        "held_back": result.deferred,
        "failed": result.failed,
        "requests": result.requests_created,
    }


def reporter(report: Callable[[Progress], None]) -> Callable[[Result], None]:
    """``process``'s ``progress`` for a run that reports its chunks with ``report``."""
    return lambda result: report(
        Progress(result.examined, result.requests_created, list(result.problems), counts(result))
    )


def card_summary(c) -> str:
    """The summary of a message run whose requests are each one smartcard's message: "Sent 3
    of 4 communications as messages to 5 smartcards; 1 failed"."""
    text = (
        f"Sent {c['sent']} of {counted(c['communications'], 'communication')} as messages to "
        f"{counted(c['requests'], 'smartcard')}"
    )
    return text + (f"; {c['failed']} failed" if c["failed"] else "")


def pending(external_system: ExternalSystem, *, provider: Provider | None = None) -> QuerySet:
    """Pending outgoing communications of ``external_system`` that refer to a subscription;
    with ``provider``, only those whose subscription has a device in use at that provider
    (the others are left for the runs of the providers they belong to)."""
    entries = Entry.objects.filter(
        external_system=external_system,
        state=Entry.State.PENDING,
        direction=Entry.Direction.OUTGOING,
        subscription__isnull=False,
    )
    if provider is not None:
        entries = entries.filter(
            Exists(
                InstalledItem.objects.filter(
                    subscription=OuterRef("subscription"),
                    distributor__provider=provider,
                    removed_at__isnull=True,
                )
            )
        )
    return entries.order_by("pk")


def process(
    entries: QuerySet,
    build: Callable[[CommunicationQueueEntry], int],
    *,
    chunk_size: int = 500,
    progress: Callable[[Result], None] | None = None,
) -> Result:
    """Make requests for each communication of ``entries`` (see ``pending``), chunk by chunk.

    ``build(entry)`` writes the entry's requests in the current transaction and returns how
    many it made; it raises ``CommunicationFailed`` (entry Failed with the message) or
    ``Defer`` (entry left Pending). ``progress(result)`` is called inside each chunk's
    transaction, just before it commits, with running totals; ``result.problems`` holds only
    the chunk's new problems and is emptied after each call.
    """
    result = Result()
    last = 0
    while True:
        with transaction.atomic():
            chunk = list(
                entries.filter(pk__gt=last)
                .select_for_update(skip_locked=True, of=("self",))
                .select_related("subscription")[:chunk_size]
            )
            if not chunk:
                return result
            last = chunk[-1].pk
            done, failed = [], []
            for entry in chunk:
                result.examined += 1
                try:
                    with transaction.atomic():  # a savepoint: a failed build leaves nothing
                        made = build(entry)
                except Defer:
                    result.deferred += 1
                    continue
                except CommunicationFailed as exc:
                    failed.append((entry, str(exc)))
                    result.problems.append((entry.subscription_id, f"{entry.number}: {exc}"))
                    continue
                result.requests_created += made
                done.append(entry.pk)
            now = timezone.now()
            Entry.objects.filter(pk__in=done).update(
                state=Entry.State.COMPLETED, processed_at=now, failure_reason=""
            )
            for entry, reason in failed:
                Entry.objects.filter(pk=entry.pk).update(
                    state=Entry.State.FAILED, processed_at=now, failure_reason=reason
                )
            result.completed += len(done)
            result.failed += len(failed)
            if progress:
                progress(result)
                result.problems = []
