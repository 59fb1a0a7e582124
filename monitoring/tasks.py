"""Celery tasks for monitoring: a thin wrapper around monitoring.alerts."""

from celery import shared_task

from . import alerts


@shared_task(name="monitoring.tasks.watch")
def watch() -> None:
    alerts.watch()
