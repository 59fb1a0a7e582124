"""Celery tasks: thin wake-ups around providers.delivery. The request rows are the truth."""

from celery import shared_task

from . import delivery
from .models import Provider


@shared_task(name="providers.tasks.deliver", acks_late=True)
def deliver(provider_id: int) -> int:
    provider = Provider.objects.filter(pk=provider_id, enabled=True).first()
    if provider is None:
        return 0
    answered = delivery.deliver_due(provider)
    if delivery.due(provider).exists():
        # More is due than one task should hold on to: hand over to a fresh task.
        deliver.delay(provider_id)
    return answered


@shared_task(name="providers.tasks.sweep")
def sweep() -> dict:
    return delivery.sweep()
