"""Runs give way to agents' actions (``providers.give_way``): while actions flow, a run waits
between its chunks; when they stop, it goes on at once; a run's own requests do not count as
actions. The mark lives on Redis, so these tests need it."""

import itertools
import time

import pytest
from django.conf import settings

from providers import batch, give_way, wakeups
from providers.models import ProvisioningRequest
from runs import services
from runs.models import ProcessRun, RunDefinition

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


def test_an_action_marks_real_time_work_as_flowing_for_a_moment(push_provider, subscribe):
    assert not wakeups.realtime_busy()

    subscribe("BUNDLE_A")  # an action whose requests go to a push provider

    assert wakeups.realtime_busy()
    time.sleep(wakeups.BUSY_SECONDS + 0.2)
    assert not wakeups.realtime_busy()


def test_without_actions_a_run_goes_on_at_once(db):
    began = time.monotonic()
    assert give_way.after_chunk(worked_seconds=10) == 0
    assert time.monotonic() - began < 0.5


def test_while_actions_flow_a_run_waits_its_share_and_no_longer(settings, push_provider):
    settings.RUN_SHARE_UNDER_REALTIME = 50  # waits as long as it worked
    wakeups.wake(push_provider.pk, realtime=True)

    waited = give_way.after_chunk(worked_seconds=0.3)

    assert 0.25 <= waited < 0.9


def test_a_run_goes_on_as_soon_as_the_actions_stop(settings, push_provider):
    settings.RUN_SHARE_UNDER_REALTIME = 1  # would wait 99 times the chunk's time
    wakeups.wake(push_provider.pk, realtime=True)

    waited = give_way.after_chunk(worked_seconds=5)

    # The mark runs out a second after the last action, and the run goes on.
    assert wakeups.BUSY_SECONDS * 0.8 <= waited < wakeups.BUSY_SECONDS + 1


def test_at_a_full_share_a_run_never_waits(settings, push_provider):
    settings.RUN_SHARE_UNDER_REALTIME = 100
    wakeups.wake(push_provider.pk, realtime=True)

    assert give_way.after_chunk(worked_seconds=5) == 0


def test_a_reset_run_waits_between_chunks_while_actions_flow(
    settings, catalog, subscribe, push_provider
):
    for _ in range(3):
        subscribe("BUNDLE_A")
    ProvisioningRequest.objects.all().delete()  # out of step: the run has work in each chunk
    settings.RUN_CHUNK_SIZE = 1
    settings.RUN_SHARE_UNDER_REALTIME = 1
    definition = RunDefinition.objects.create(
        name="Reset", run_type="reset_subscriptions", provider=push_provider
    )
    moments = []

    def progress(run):
        moments.append(time.monotonic())
        wakeups.wake(push_provider.pk, realtime=True)  # an agent acts meanwhile

    run = services.execute(definition.pk, ProcessRun.Trigger.RUN_NOW, on_progress=progress)

    assert run.status == ProcessRun.Status.COMPLETED
    assert run.created == 9
    gaps = [b - a for a, b in itertools.pairwise(moments)]
    assert len(gaps) >= 2
    # Each chunk waited for the actions' mark to run out before the next began.
    assert min(gaps) >= wakeups.BUSY_SECONDS * 0.8


def test_a_runs_own_requests_do_not_make_runs_give_way(catalog, subscribe, push_provider):
    for _ in range(2):
        subscribe("BUNDLE_A")
    wakeups.forget_all()
    ProvisioningRequest.objects.all().delete()

    result = batch.reconcile(batch.Selection(push_provider), trigger_name="reset")

    assert result.requests_created == 6
    assert not wakeups.realtime_busy()
