"""Batch runs. For now: the worker's heartbeat, which shows the back office a live worker."""

from django.db import models


class WorkerHeartbeat(models.Model):
    """One row per worker host, touched by a beat-scheduled task: proof that beat and a worker
    are both alive and share the broker and the database."""

    hostname = models.CharField(max_length=200, unique=True)
    last_seen = models.DateTimeField()
    beats = models.PositiveBigIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.hostname} @ {self.last_seen:%Y-%m-%d %H:%M:%S}"
