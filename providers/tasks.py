"""Celery tasks: thin wake-ups around providers.delivery. The request rows are the truth."""

import time

from celery import shared_task

from catalogue.models import Provider
from core.db import generic_plans

from . import delivery, wakeups

# How long one ``deliver`` task goes on draining under a steady stream of actions before it
# hands over to a fresh one: well within the task time limits, and it lets the worker take
# other providers' tasks in between.
HAND_OVER_SECONDS = 60
# After the bell rings, a task lets requests gather this long before it drains again: a pass
# costs the same for one request as for several (docs/benchmarks.md). An action does not wait.
GATHER_SECONDS = 0.005


@shared_task(name=wakeups.DELIVER_TASK, acks_late=True)
def deliver(provider_id: int) -> int:
    provider = Provider.objects.filter(pk=provider_id, enabled=True).first()
    if provider is None:
        wakeups.release(provider_id, take_back=False)
        return 0
    answered = 0
    until = time.monotonic() + HAND_OVER_SECONDS
    try:
        # Claims and answers, by id, on their generic plans (core.db).
        with generic_plans():
            while True:
                # Before anything is claimed: what rings from now on is seen after this pass.
                wakeups.draining(provider_id)
                done = delivery.drain(provider)
                answered += done.answered
                if done.more or time.monotonic() > until:
                    # More is due than one task should hold on to: hand over to a fresh task.
                    wakeups.release(provider_id, take_back=False)
                    wakeups.wake(provider_id)
                    return answered
                if wakeups.wait_for_ring(provider_id):
                    # Rang during the pass or soon after: drain again, flag still held.
                    time.sleep(GATHER_SECONDS)
                    continue
                if wakeups.release(provider_id):
                    return answered
    except BaseException:
        # The next wake-up sends a task again (and the sweeper finds what is due meanwhile).
        wakeups.release(provider_id, take_back=False)
        raise


@shared_task(name="providers.tasks.sweep")
def sweep() -> dict:
    return delivery.sweep()
