"""Back office for runs: for now the worker heartbeats, and the worker status of the index."""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.contrib import admin
from django.utils import timezone

from .models import WorkerHeartbeat

# A worker beats every HEARTBEAT_SECONDS (15 s by default); a minute without one means none is up.
ALIVE_WITHIN = timedelta(seconds=60)


@dataclass(frozen=True)
class WorkerStatus:
    alive: bool
    hostname: str = ""
    last_seen: datetime | None = None
    seconds_ago: int | None = None


def worker_status(now: datetime | None = None) -> WorkerStatus:
    """Whether a worker (with beat) has beaten lately, from the freshest heartbeat."""
    latest = WorkerHeartbeat.objects.order_by("-last_seen").first()
    if latest is None:
        return WorkerStatus(alive=False)
    age = (now or timezone.now()) - latest.last_seen
    return WorkerStatus(
        alive=age <= ALIVE_WITHIN,
        hostname=latest.hostname,
        last_seen=latest.last_seen,
        seconds_ago=max(int(age.total_seconds()), 0),
    )


@admin.register(WorkerHeartbeat)
class WorkerHeartbeatAdmin(admin.ModelAdmin):
    """Rows written by the heartbeat task; a stale host may be deleted, nothing edited."""

    list_display = ["hostname", "last_seen", "seconds_ago", "alive", "beats"]
    search_fields = ["hostname"]
    ordering = ["-last_seen"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.display(description="Seconds ago")
    def seconds_ago(self, obj):
        return max(int((timezone.now() - obj.last_seen).total_seconds()), 0)

    @admin.display(description="Alive", boolean=True)
    def alive(self, obj):
        return timezone.now() - obj.last_seen <= ALIVE_WITHIN
