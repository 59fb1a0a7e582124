"""How each provider is doing, as an operator asks at 3 a.m.: what waits and for how long,
what failed, when the platform last said yes, and whether it answers at all.

Every figure is an indexed look-up per provider or a bounded sample (the newest requests with
an outcome), so the dashboard and the alerts cost the same at any size. Whether the platform
answers is the adapter's health check, run by the watch task (``monitoring.tasks``) and kept in
``ProviderHealth``: a page never waits on a network call.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.utils import timezone

from catalogue.models import Provider
from providers.models import ProvisioningRequest

from .models import ProviderHealth

State = ProvisioningRequest.State

# The newest requests with an outcome (completed, failed, rejected) the error rate is over.
RATE_SAMPLE = 200
# A request that became Failed this recently makes its provider "failing".
RECENT_FAILURE = timedelta(minutes=15)

OK, FAILING, UNREACHABLE, DISABLED = "ok", "failing", "unreachable", "disabled"


@dataclass(frozen=True)
class ProviderStatus:
    provider: Provider
    pending: int
    failed: int
    rejected: int
    oldest_pending_at: datetime | None
    retrying: str  # the oldest Pending request's last error while it is being retried, or ""
    last_completed_at: datetime | None
    recent_failure_at: datetime | None
    error_rate: float | None  # share of failed or rejected among the newest outcomes
    health: ProviderHealth | None

    @property
    def level(self) -> str:
        if not self.provider.enabled:
            return DISABLED
        if self.health is not None and self.health.reachable is False:
            return UNREACHABLE
        if self.retrying or self.recent_failure_at:
            return FAILING
        return OK

    @property
    def oldest_pending_age(self) -> timedelta | None:
        return timezone.now() - self.oldest_pending_at if self.oldest_pending_at else None

    @property
    def why(self) -> str:
        """The level in a sentence a person can act on."""
        if self.level == UNREACHABLE:
            return self.health.message
        if self.retrying:
            return f"Retrying its oldest Pending request: {self.retrying}"
        if self.recent_failure_at:
            return f"A request became Failed at {timezone.localtime(self.recent_failure_at):%H:%M}."
        return ""


def _newest(requests, state: str, fields: tuple[str, ...]) -> list[tuple]:
    return list(
        requests.filter(state=state).order_by("-created_at").values_list(*fields)[:RATE_SAMPLE]
    )


def of(provider: Provider, health: ProviderHealth | None, now: datetime) -> ProviderStatus:
    requests = ProvisioningRequest.objects.filter(provider=provider)
    oldest = (
        requests.filter(state=State.PENDING)
        .order_by("created_at")
        .values_list("created_at", "attempts", "last_error")
        .first()
    )
    completed = _newest(requests, State.COMPLETED, ("created_at", "answered_at"))
    failed = _newest(requests, State.FAILED, ("created_at", "updated_at"))
    rejected = _newest(requests, State.REJECTED, ("created_at", "updated_at"))
    outcomes = sorted(
        [(created, False) for created, _ in completed]
        + [(created, True) for created, _ in failed + rejected],
        reverse=True,
    )[:RATE_SAMPLE]
    recent_failure = max((updated for _, updated in failed), default=None)
    return ProviderStatus(
        provider=provider,
        pending=requests.filter(state=State.PENDING).count(),
        failed=requests.filter(state=State.FAILED).count(),
        rejected=requests.filter(state=State.REJECTED).count(),
        oldest_pending_at=oldest[0] if oldest else None,
        retrying=oldest[2] if oldest and oldest[1] and oldest[2] else "",
        last_completed_at=max((answered for _, answered in completed if answered), default=None),
        recent_failure_at=recent_failure
        if recent_failure and now - recent_failure <= RECENT_FAILURE
        else None,
        error_rate=sum(bad for _, bad in outcomes) / len(outcomes) if outcomes else None,
        health=health,
    )


def providers() -> list[ProviderStatus]:
    now = timezone.now()
    health = {h.provider_id: h for h in ProviderHealth.objects.all()}
    return [of(p, health.get(p.pk), now) for p in Provider.objects.order_by("name")]
