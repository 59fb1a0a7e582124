"""Celery tasks for monitoring: thin wrappers around monitoring.alerts and activity."""

from celery import shared_task

from . import activity, alerts


@shared_task(name="monitoring.tasks.watch")
def watch() -> None:
    alerts.watch()
    activity.keep_counts()
