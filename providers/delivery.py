"""Delivering Pending requests to push providers, and keeping the queue honest.

The request row is the truth. A worker *claims* due requests with a short lease (a conditional
write: ``next_attempt_at`` moves into the future and ``attempts`` goes up), sends each, and
records the batch's answers in one transaction. A worker that dies after sending and before
recording leaves the requests Pending; when the lease runs out it is sent again *with the same
uid*, which the platform uses to drop the duplicate. Per card, only the oldest Pending request
is ever due, so a card's requests reach the platform in creation order; Express goes first.

A transport failure schedules a retry with exponential backoff; past the provider's attempt
limit the request is ``Failed`` with the reason — visible, retriable, and repaired by a reset.
A failure is the request's own: the rest of its batch goes on at once (its card's later
requests wait behind it, not being due). Only two failures in a row say the platform itself is
failing: then the rest of the batch waits with the failed one, unsent.
For pull providers the same discipline applies to answers: a request the connector has not
answered within the provider's deadline becomes ``Failed`` with that reason, never silently
dropped.
"""

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, F, OuterRef, Q, QuerySet, prefetch_related_objects
from django.utils import timezone

from catalogue.models import Provider
from core.clock import SYSTEM, Clock

from . import fast_path, provider_settings, registry, wakeups
from .answers import Answer, record_answers
from .fast_path import claim as fast_claim
from .models import ProvisioningRequest

log = logging.getLogger(__name__)

Req = ProvisioningRequest
BACKOFF_CAP_SECONDS = 3600
DEFAULT_MAX_ATTEMPTS = 8


def lease() -> timedelta:
    """How long a claimed request is left to its worker before another may send it again."""
    return timedelta(seconds=settings.PROVISIONING_LEASE_SECONDS)


def backoff(attempts: int) -> timedelta:
    seconds = settings.PROVISIONING_RETRY_SECONDS * 2 ** max(attempts - 1, 0)
    return timedelta(seconds=min(seconds, BACKOFF_CAP_SECONDS))


def due(provider: Provider, now=None) -> QuerySet:
    """Pending requests that may be sent now: their time has come and nothing older for the
    same card is still Pending (``fast_path.claim`` writes the same by hand)."""
    now = now or timezone.now()
    older_for_card = Req.objects.filter(
        state=Req.State.PENDING, installed_item=OuterRef("installed_item"), pk__lt=OuterRef("pk")
    )
    return (
        Req.objects.filter(provider=provider, state=Req.State.PENDING)
        .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
        .filter(~Exists(older_for_card))
        .order_by("priority", "pk")
    )


def claim(provider: Provider, limit: int) -> list[Req]:
    """Up to ``limit`` due requests, leased to the caller, in sending order.

    Each carries ``followed``: whether a later Pending request waits for the same card. It
    becomes due once this one is answered, so only then must the caller claim again before it
    stops (see ``drain``)."""
    now = timezone.now()
    if fast_path.enabled():
        claimed = fast_claim.claim(provider.pk, limit, now, now + lease())
    else:
        with transaction.atomic():
            ids = list(
                due(provider, now)
                .select_for_update(skip_locked=True)
                .values_list("pk", flat=True)[:limit]
            )
            if not ids:
                return []
            Req.objects.filter(pk__in=ids, state=Req.State.PENDING).update(
                next_attempt_at=now + lease(), attempts=F("attempts") + 1, sent_at=now
            )
        for_card = Req.objects.filter(
            state=Req.State.PENDING, installed_item=OuterRef("installed_item")
        )
        later = Exists(for_card.filter(pk__gt=OuterRef("pk")))
        claimed = list(Req.objects.filter(pk__in=ids).annotate(followed=later))
        prefetch_related_objects(claimed, "installed_item")
    return sorted(claimed, key=lambda r: (r.priority, r.pk))


def _max_attempts(provider: Provider) -> int:
    return int(provider.parameters.get("max_attempts") or DEFAULT_MAX_ATTEMPTS)


def fail(request: Req, reason: str) -> None:
    """Give up on a request: Failed, with why. A later answer may still complete it."""
    # update() leaves auto_now alone: updated_at says when it failed (monitoring.status).
    Req.objects.filter(pk=request.pk, state=Req.State.PENDING).update(
        state=Req.State.FAILED, last_error=reason, next_attempt_at=None, updated_at=timezone.now()
    )


def _transport_failed(
    request: Req, error: registry.TransportError, max_attempts: int
) -> datetime | None:
    """Record a failed send: retried after a backoff (returns when), or Failed (permanent, or
    past the attempt limit; returns None)."""
    reason = f"Attempt {request.attempts} failed: {str(error).rstrip('.')}"
    if error.permanent or request.attempts >= max_attempts:
        fail(request, f"{reason}. Gave up after {request.attempts} attempts.")
        log.warning("Request %s failed: %s", request.uid, reason)
        return None
    retry_at = timezone.now() + backoff(request.attempts)
    Req.objects.filter(pk=request.pk, state=Req.State.PENDING).update(
        last_error=reason, next_attempt_at=retry_at
    )
    return retry_at


def _release(requests: list[Req], due_at: datetime | None) -> None:
    """Give claimed, unsent requests back, due at ``due_at`` (None: at once), the attempt not
    counted."""
    Req.objects.filter(pk__in=[r.pk for r in requests], state=Req.State.PENDING).update(
        next_attempt_at=due_at, attempts=F("attempts") - 1
    )


@dataclass(frozen=True)
class Delivered:
    answered: int
    # The batch limit was reached with requests possibly still due: wake delivery again.
    more: bool


def drain(
    provider: Provider, *, batch: int = 50, max_batches: int = 100, clock: Clock = SYSTEM
) -> Delivered:
    """Claim and send due requests, a batch at a time, until none is due (or the limit).
    ``clock`` times the failed sends of a batch against half the lease."""
    adapter = registry.adapter_for(provider)
    max_attempts = _max_attempts(provider)
    # Failed sends may take up to half the lease; the rest of the batch is then claimed anew,
    # before the lease runs out and another worker sends it too.
    failing_budget = lease().total_seconds() / 2
    answered = 0
    for _ in range(max_batches):
        claimed = claim(provider, batch)
        if not claimed:
            return Delivered(answered, more=False)
        started = clock.monotonic()
        answers: list[Answer] = []
        retrying: list[Req] = []  # failed, still Pending: their cards' later requests wait
        failed_before = False  # the previous send failed, for a reason that may pass
        given_back = False
        try:
            for index, request in enumerate(claimed):
                try:
                    answer = adapter.send(request)
                except registry.TransportError as error:
                    retry_at = _transport_failed(request, error, max_attempts)
                    if error.permanent:
                        continue
                    if retry_at:
                        retrying.append(request)
                    # This one retries on its own; its card's later requests are not due
                    # while it is Pending, so they cannot overtake it.
                    rest = claimed[index + 1 :]
                    if failed_before:
                        # Two in a row: the platform is unreachable or failing. The rest
                        # waits with this one, unsent, rather than each costing a timeout.
                        _release(rest, retry_at or timezone.now() + backoff(1))
                        return Delivered(answered + len(answers), more=False)
                    if rest and clock.monotonic() - started > failing_budget:
                        _release(rest, None)
                        given_back = True
                        break
                    failed_before = True
                    continue
                failed_before = False
                answers.append(
                    Answer(
                        request.pk,
                        answer.accepted,
                        answer.error_code,
                        answer.error_description,
                        answer.response,
                    )
                )
        finally:
            # The batch's answers in one transaction, also when a send raised something
            # unexpected: what the platform already took is recorded, not sent again.
            _record(answers)
        answered += len(answers)
        # A short batch took everything that was due. What commits from now on sends its own
        # wake-up, so another claim would come back empty, unless a request done with (not
        # left to retry) held a later one for its card back, or some were given back unsent.
        if (
            len(claimed) < batch
            and not given_back
            and not any(r.followed for r in claimed if r not in retrying)
        ):
            return Delivered(answered, more=False)
    return Delivered(answered, more=True)


def _record(answers: list[Answer]) -> None:
    if not answers:
        return
    try:
        record_answers(answers)
    except Exception:
        # One answer's rollback failed: record the others one by one, so that only that one
        # stays Pending (its lease runs out and it is sent again, with the same uid).
        log.exception("Recording %d answers together failed; recording each", len(answers))
        for answer in answers:
            try:
                record_answers([answer])
            except Exception:
                log.exception("Recording the answer to request %s failed", answer.request_id)


def retry(requests: QuerySet) -> int:
    """Failed → Pending again (from the back office or the API); delivery is woken up."""
    with transaction.atomic():
        ids = list(requests.filter(state=Req.State.FAILED).values_list("pk", flat=True))
        # Still Failed when updated: a reset may have superseded one meanwhile.
        retried = Req.objects.filter(pk__in=ids, state=Req.State.FAILED).update(
            state=Req.State.PENDING, attempts=0, next_attempt_at=None
        )
        providers = set(Req.objects.filter(pk__in=ids).values_list("provider_id", flat=True))
        transaction.on_commit(lambda: wake(providers))
    return retried


def due_again(provider: Provider) -> int:
    """The platform answers again: its Pending requests waiting out a retry delay (up to an
    hour after a long outage) are due at once, and delivery is woken."""
    count = Req.objects.filter(
        provider=provider, state=Req.State.PENDING, next_attempt_at__gt=timezone.now()
    ).update(next_attempt_at=None)
    if count:
        transaction.on_commit(lambda: wake([provider.pk]))
    return count


def wake(provider_ids) -> None:
    for provider in Provider.objects.filter(pk__in=provider_ids, enabled=True):
        if registry.adapter_for(provider).delivery == registry.PUSH:
            wakeups.wake(provider.pk)


def expire_unanswered(provider: Provider, now=None) -> int:
    """Pull providers: Pending past the answer deadline → Failed, with the reason."""
    hours = provider_settings.parameter(provider, "answer_deadline_hours")
    if not hours:
        return 0
    now = now or timezone.now()
    cutoff = now - timedelta(hours=hours)
    return Req.objects.filter(
        provider=provider, state=Req.State.PENDING, created_at__lt=cutoff
    ).update(
        state=Req.State.FAILED,
        updated_at=now,
        last_error=f"No answer within {hours} hours; the connector may be offline. "
        "A reset will repair the subscription.",
    )


def sweep() -> dict:
    """Periodic: wake delivery where work is due (a lost wake-up loses nothing) and fail
    requests that waited past their deadline."""
    woken, expired = [], 0
    for provider in Provider.objects.filter(enabled=True):
        try:
            adapter = registry.adapter_for(provider)
        except LookupError:
            continue
        if adapter.delivery == registry.PUSH and due(provider).exists():
            woken.append(provider.pk)
        elif adapter.delivery == registry.PULL:
            expired += expire_unanswered(provider)
    wake(woken)
    return {"woken": woken, "expired": expired}
