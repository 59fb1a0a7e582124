import socket

from celery import shared_task
from django.db.models import F
from django.utils import timezone

from .models import WorkerHeartbeat


@shared_task(name="runs.tasks.heartbeat")
def heartbeat() -> None:
    hostname = socket.gethostname()
    updated = WorkerHeartbeat.objects.filter(hostname=hostname).update(
        last_seen=timezone.now(), beats=F("beats") + 1
    )
    if not updated:
        WorkerHeartbeat.objects.get_or_create(
            hostname=hostname, defaults={"last_seen": timezone.now(), "beats": 1}
        )
