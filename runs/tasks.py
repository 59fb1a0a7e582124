"""Celery tasks for runs: thin wrappers around runs.services (and the worker heartbeat)."""

import socket

from celery import shared_task
from django.db.models import F
from django.utils import timezone

from . import services
from .models import WorkerHeartbeat


@shared_task(name="runs.tasks.heartbeat")
def heartbeat(queue: str = "") -> None:
    hostname = socket.gethostname()
    updated = WorkerHeartbeat.objects.filter(hostname=hostname, queue=queue).update(
        last_seen=timezone.now(), beats=F("beats") + 1
    )
    if not updated:
        WorkerHeartbeat.objects.get_or_create(
            hostname=hostname, queue=queue, defaults={"last_seen": timezone.now(), "beats": 1}
        )


@shared_task(name=services.TASK)
def execute_definition(
    definition_id: int, trigger: str = "schedule", run_id: int | None = None
) -> int | None:
    run = services.execute(definition_id, trigger, fan_out=True, run_id=run_id)
    return run.pk if run else None


@shared_task(name=services.PART_TASK)
def execute_part(run_id: int, number: int) -> None:
    services.execute_part(run_id, number)


@shared_task(name="runs.tasks.sweep")
def sweep() -> int:
    return services.fail_stale_runs()
