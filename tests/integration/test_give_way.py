"""Runs give way to agents' actions (``providers.give_way``): while actions flow, a run waits
between its chunks; when they stop, it goes on at once; a run's own requests do not count as
actions. The mark lives on Redis, so these tests need it. How long a run waits is measured on
a ``FakeClock``: its waits take no time, and the mark runs out when the test says."""

import pytest
from django.conf import settings

from providers import batch, give_way, wakeups
from providers.models import ProvisioningRequest
from tests.clock import FakeClock, run_out, ttl_ms

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        not settings.CELERY_BROKER_URL.startswith("redis"), reason="actions are marked on Redis"
    ),
]


@pytest.fixture(autouse=True)
def unmarked():
    wakeups.forget_all()
    yield
    wakeups.forget_all()


def actions_stop(clock: FakeClock, seconds: float) -> None:
    """The last action's mark runs out ``seconds`` from now, as Redis would drop it."""
    clock.after(seconds, lambda: run_out(wakeups.BUSY_KEY))


def test_an_action_marks_real_time_work_as_flowing_for_a_moment(push_provider, subscribe):
    assert not wakeups.realtime_busy()

    subscribe("BUNDLE_A")  # an action whose requests go to a push provider

    assert wakeups.realtime_busy()
    # Redis drops the mark BUSY_SECONDS after the action; after that, nothing flows.
    assert 0 < ttl_ms(wakeups.BUSY_KEY) <= wakeups.BUSY_SECONDS * 1000
    run_out(wakeups.BUSY_KEY)
    assert not wakeups.realtime_busy()


def test_without_actions_a_run_goes_on_at_once(db):
    clock = FakeClock()

    assert give_way.after_chunk(worked_seconds=10, clock=clock) == 0
    assert clock.monotonic() == 0  # not even one look


def test_while_actions_flow_a_run_waits_its_share_and_no_longer(settings, push_provider):
    settings.RUN_SHARE_UNDER_REALTIME = 50  # waits as long as it worked
    wakeups.wake(push_provider.pk, realtime=True)
    clock = FakeClock()

    assert give_way.after_chunk(worked_seconds=0.3, clock=clock) == 0.3
    assert clock.monotonic() == 0.3


def test_however_long_a_chunk_took_a_run_waits_a_minute_at_most(settings, push_provider):
    settings.RUN_SHARE_UNDER_REALTIME = 1  # would wait 99 times the chunk's time
    wakeups.wake(push_provider.pk, realtime=True)

    assert give_way.after_chunk(worked_seconds=10, clock=FakeClock()) == give_way.MAX_WAIT_SECONDS


def test_a_run_goes_on_as_soon_as_the_actions_stop(settings, push_provider):
    settings.RUN_SHARE_UNDER_REALTIME = 1  # would wait 99 times the chunk's time
    wakeups.wake(push_provider.pk, realtime=True)
    clock = FakeClock()
    actions_stop(clock, 0.65)

    # It goes on at its next look (every LOOK_EVERY_SECONDS) after the mark ran out.
    assert give_way.after_chunk(worked_seconds=5, clock=clock) == 0.7


def test_at_a_full_share_a_run_never_waits(settings, push_provider):
    settings.RUN_SHARE_UNDER_REALTIME = 100
    wakeups.wake(push_provider.pk, realtime=True)
    clock = FakeClock()

    assert give_way.after_chunk(worked_seconds=5, clock=clock) == 0
    assert clock.monotonic() == 0


def test_a_reset_run_waits_between_chunks_while_actions_flow(
    settings, catalog, subscribe, push_provider
):
    for _ in range(3):
        subscribe("BUNDLE_A")
    ProvisioningRequest.objects.all().delete()  # out of step: the run has work in each chunk
    settings.RUN_SHARE_UNDER_REALTIME = 1
    clock = FakeClock()
    chunks_at = []

    def progress(result):
        chunks_at.append(clock.monotonic())
        wakeups.wake(push_provider.pk, realtime=True)  # an agent acts meanwhile, once
        actions_stop(clock, wakeups.BUSY_SECONDS)
        clock.advance(0.5)  # the chunk's work; its looks then fall on the mark's end

    # The loop a Reset Subscriptions run executes (runs.types), on the fake clock.
    result = batch.reconcile(
        batch.Selection(push_provider),
        trigger_name="reset",
        chunk_size=1,
        progress=progress,
        clock=clock,
    )

    assert result.requests_created == 9
    # Each chunk waited for the action's mark to run out before the next began.
    assert chunks_at == [0, 1, 2]


def test_a_runs_own_requests_do_not_make_runs_give_way(catalog, subscribe, push_provider):
    for _ in range(2):
        subscribe("BUNDLE_A")
    wakeups.forget_all()
    ProvisioningRequest.objects.all().delete()
    clock = FakeClock()

    result = batch.reconcile(batch.Selection(push_provider), trigger_name="reset", clock=clock)

    assert result.requests_created == 6
    assert not wakeups.realtime_busy()
    assert clock.monotonic() == 0  # it never waited
