"""Celery tasks: thin wake-ups around providers.delivery. The request rows are the truth."""

from celery import shared_task

from . import delivery, wakeups
from .models import Provider


@shared_task(name="providers.tasks.deliver", acks_late=True)
def deliver(provider_id: int) -> int:
    # First, before anything is claimed: a request committed from now on wakes a new task.
    wakeups.taken(provider_id)
    provider = Provider.objects.filter(pk=provider_id, enabled=True).first()
    if provider is None:
        return 0
    done = delivery.drain(provider)
    if done.more:
        # More is due than one task should hold on to: hand over to a fresh task.
        wakeups.wake(provider_id)
    return done.answered


@shared_task(name="providers.tasks.sweep")
def sweep() -> dict:
    return delivery.sweep()
