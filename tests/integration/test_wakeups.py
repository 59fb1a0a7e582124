"""Delivery wake-ups on Redis: one ``deliver`` task per provider, however many actions commit
before a worker takes it or while it drains; once it has stopped, the next action wakes again.

On the embedded filesystem broker every wake-up sends its task (nothing to coalesce with), so
these tests need Redis."""

import threading
import time

import pytest
from amqp.exceptions import ChannelError
from django.conf import settings

from crm_provisioning.celery import app
from providers import wakeups
from providers.models import ProvisioningRequest
from tests import workers

pytestmark = [
    pytest.mark.worker,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        not settings.CELERY_BROKER_URL.startswith("redis"), reason="wake-ups coalesce on Redis"
    ),
]


def waiting_tasks() -> int:
    with app.connection_for_write() as connection:
        try:
            declared = connection.default_channel.queue_declare("realtime", passive=True)
        except ChannelError:
            return 0  # Redis keeps no empty list: an empty queue is not found
        return declared.message_count


def test_actions_committed_before_a_worker_starts_wait_for_one_task(
    push_provider, platform, subscribe, tmp_path
):
    subs = [subscribe("BUNDLE_A") for _ in range(3)]  # three actions, nine requests
    assert ProvisioningRequest.objects.filter(state="pending").count() == 9
    assert waiting_tasks() == 1

    worker = workers.start(tmp_path)
    try:
        workers.wait_until(
            lambda: not ProvisioningRequest.objects.exclude(state="completed").exists(),
            seconds=60,
            what="delivery",
            logs=[tmp_path / "worker.log"],
        )
        assert waiting_tasks() == 0
        # The task has stopped (and dropped the flag): the next action sends a task again,
        # which the running worker takes.
        subs.append(subscribe("BUNDLE_A"))
        workers.wait_until(
            lambda: ProvisioningRequest.objects.filter(state="completed").count() == 12,
            seconds=60,
            what="the fourth action's delivery",
            logs=[tmp_path / "worker.log"],
        )
    finally:
        workers.stop(worker)
    cards = {s.installed_items.get(kind="smartcard").ca_id for s in subs}
    assert set(platform.state()["entitlements"]) == cards


def test_a_lost_task_holds_wake_ups_back_only_until_its_flag_expires(push_provider, subscribe):
    subscribe("BUNDLE_A")
    assert waiting_tasks() == 1
    app.control.purge()  # the task is lost; its flag still stands
    subscribe("BUNDLE_A")
    assert waiting_tasks() == 0
    time.sleep(wakeups.EXPIRY_SECONDS + 0.5)
    subscribe("BUNDLE_A")
    assert waiting_tasks() == 1


def test_what_rings_while_a_task_drains_is_drained_by_that_task(push_provider):
    provider = push_provider.pk
    wakeups.wake(provider)
    assert waiting_tasks() == 1
    app.control.purge()  # as a worker takes the task
    wakeups.draining(provider)  # its pass begins
    wakeups.wake(provider)  # an action commits meanwhile: no second task
    wakeups.wake(provider)
    assert waiting_tasks() == 0
    # After the pass: it rang, so the task takes the flag back for another pass …
    assert wakeups.release(provider) is False
    wakeups.draining(provider)
    # … and, nothing having rung during that one, stops.
    assert wakeups.release(provider) is True
    wakeups.wake(provider)
    assert waiting_tasks() == 1


def test_a_task_that_stops_as_an_action_rings_leaves_that_action_its_own_task(push_provider):
    provider = push_provider.pk
    wakeups.wake(provider)
    app.control.purge()
    wakeups.draining(provider)
    wakeups.wake(provider)  # during the pass: rings only
    wakeups.release(provider, take_back=False)  # the task hands over or fails
    wakeups.wake(provider)  # no flag any more: a task is sent
    assert waiting_tasks() == 1


def test_a_task_waiting_after_its_pass_is_woken_by_the_next_action_and_no_task_is_sent(
    push_provider,
):
    provider = push_provider.pk
    wakeups.wake(provider)
    app.control.purge()  # as a worker takes the task
    wakeups.draining(provider)  # its pass begins, and finds nothing more
    began = time.monotonic()
    assert wakeups.wait_for_ring(provider, seconds=0.3) is False  # silence: it may stop
    assert time.monotonic() - began >= 0.3
    ringer = threading.Timer(0.2, wakeups.wake, [provider])  # an action, while it waits
    ringer.start()
    began = time.monotonic()
    assert wakeups.wait_for_ring(provider, seconds=10) is True
    assert time.monotonic() - began < 5  # at the ring, not at the end of the wait
    ringer.join()
    assert waiting_tasks() == 0  # the waiting task drains it: no Celery message
    assert wakeups.release(provider) is True
