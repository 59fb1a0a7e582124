"""Requests created per provider and hour, and what became of them: kept in
``HourlyRequests`` by the watch, drawn by the dashboard over 24 hours and 7 days.

Each hour is counted by indexed ranges (provider, state, created_at). The watch recounts the
current and the previous hour, whose requests are still being answered, and fills any hour
of the last week it has not counted yet; older hours stay as counted.
"""

from datetime import datetime, timedelta

from django.utils import timezone

from catalogue.models import Provider
from providers.models import ProvisioningRequest

from .models import HourlyRequests

State = ProvisioningRequest.State
WEEK_HOURS = 7 * 24
# Hours whose requests may still change state, recounted at every watch.
OPEN_HOURS = 2


def _hour(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def _count(provider: Provider, start: datetime) -> dict[str, int]:
    of_hour = ProvisioningRequest.objects.filter(
        provider=provider, created_at__gte=start, created_at__lt=start + timedelta(hours=1)
    )
    counts = {state: of_hour.filter(state=state).count() for state in State.values}
    return {
        "created": sum(counts.values()),
        "completed": counts[State.COMPLETED],
        "failed": counts[State.FAILED],
        "rejected": counts[State.REJECTED],
    }


def keep_counts(now: datetime | None = None) -> None:
    now = timezone.now() if now is None else now
    current = _hour(now)
    week = [current - timedelta(hours=n) for n in range(WEEK_HOURS)]
    for provider in Provider.objects.all():
        counted = set(
            HourlyRequests.objects.filter(provider=provider, hour__gte=week[-1]).values_list(
                "hour", flat=True
            )
        )
        for start in week:
            if start in counted and start < current - timedelta(hours=OPEN_HOURS - 1):
                continue
            HourlyRequests.objects.update_or_create(
                provider=provider, hour=start, defaults=_count(provider, start)
            )
    HourlyRequests.objects.filter(hour__lt=week[-1] - timedelta(days=1)).delete()


def series(buckets: int, step_hours: int) -> dict:
    """The chart's data: per provider, requests created, completed and failed (or rejected) in
    each of ``buckets`` spans of ``step_hours``, the last one the current hour's."""
    current = _hour(timezone.now())
    step = timedelta(hours=step_hours)
    first = current - step * buckets + timedelta(hours=1)
    rows = HourlyRequests.objects.filter(hour__gte=first).values_list(
        "provider__name", "hour", "created", "completed", "failed", "rejected"
    )
    providers: dict[str, dict[str, list[int]]] = {}
    for name, hour, created, completed, failed, rejected in rows:
        index = int((hour - first) / step)
        counts = providers.setdefault(
            name, {key: [0] * buckets for key in ("created", "completed", "failed")}
        )
        counts["created"][index] += created
        counts["completed"][index] += completed
        counts["failed"][index] += failed + rejected
    ends = [first + step * (n + 1) - timedelta(hours=1) for n in range(buckets)]
    label = "%H:%M" if step_hours == 1 else "%a %d %b"
    return {
        "labels": [timezone.localtime(end).strftime(label) for end in ends],
        "providers": dict(sorted(providers.items())),
    }
