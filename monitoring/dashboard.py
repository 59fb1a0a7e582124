"""The operator's dashboard, the back office's home: each provider's status, the workers of
each queue and beat, runs in progress and lately, open incidents, and requests per hour and
day. Every part is bounded (indexed look-ups, the newest rows, the kept hourly counts)."""

from dataclasses import dataclass
from datetime import datetime

from django.utils import timezone

from runs import services as runs
from runs.models import ProcessRun, WorkerHeartbeat

from . import activity, status
from .models import Incident

# The queues a deployment has workers for, and what a person calls them.
QUEUES = {"celery": "Real-time worker", "batch": "Batch worker"}
RECENT_RUNS = 8
OPEN_INCIDENTS = 10
# The home page asks for the dashboard again this often (htmx), so that it turns red by itself.
REFRESH_SECONDS = 15


@dataclass(frozen=True)
class QueueWorkers:
    queue: str
    label: str
    hostname: str
    last_seen: datetime | None

    @property
    def alive(self) -> bool:
        return (
            self.last_seen is not None
            and timezone.now() - self.last_seen <= WorkerHeartbeat.ALIVE_WITHIN
        )


def workers() -> list[QueueWorkers]:
    found = []
    for queue, label in QUEUES.items():
        latest = (
            WorkerHeartbeat.objects.filter(queue=queue)
            .order_by("-last_seen")
            .values_list("hostname", "last_seen")
            .first()
        )
        hostname, seen = latest or ("", None)
        found.append(QueueWorkers(queue, label, hostname, seen))
    return found


def may_see(user) -> bool:
    """Operators and administrators: their home page is the dashboard."""
    return user.has_perm("monitoring.view_incident")


def context() -> dict:
    providers = status.providers()
    queue_workers = workers()
    processes = ProcessRun.objects.select_related("definition__provider")
    return {
        "providers": providers,
        "alarms": [p for p in providers if p.level in (status.FAILING, status.UNREACHABLE)],
        "workers": queue_workers,
        # Beat sends every heartbeat: none fresh on any queue means beat (or all) is down.
        "beat_alive": any(w.alive for w in queue_workers),
        "running": [
            (run, runs.summary(run))
            for run in processes.filter(status__in=ProcessRun.UNFINISHED).order_by("-id")[:20]
        ],
        "recent_runs": list(
            processes.exclude(status__in=ProcessRun.UNFINISHED).order_by("-id")[:RECENT_RUNS]
        ),
        "incidents": list(
            Incident.objects.filter(resolved_at__isnull=True).order_by("-id")[:OPEN_INCIDENTS]
        ),
        "charts": {"day": activity.series(24, 1), "week": activity.series(7, 24)},
        "refresh_seconds": REFRESH_SECONDS,
    }
