"""The outbox with real Celery workers: actions delivered after commit, crashes, drift and reset.

The Generic provider is in push mode towards the reference connector's platform (a real HTTP
server in this process), which applies each request id once and counts what it received.
"""

import pytest

from providers import batch, delivery
from providers.models import ProvisioningRequest
from subscriptions import actions
from tests import workers
from tests.integration.test_delivery_isolation import Gate, raw

Req = ProvisioningRequest
pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def states():
    return list(Req.objects.values_list("state", flat=True))


def all_completed() -> bool:
    found = states()
    return bool(found) and set(found) == {"completed"}


def cards(subs):
    return {s.installed_items.get(kind="smartcard", removed_at=None).ca_id for s in subs}


def test_an_action_reaches_the_platform_through_a_real_worker(
    push_provider, platform, subscribe, tmp_path
):
    worker = workers.start(tmp_path)
    try:
        sub = subscribe("BUNDLE_A")  # commits: the requests are written, delivery is woken
        workers.wait_until(
            all_completed, seconds=60, what="delivery", logs=[tmp_path / "worker.log"]
        )
    finally:
        workers.stop(worker)
    card = sub.installed_items.get(kind="smartcard").ca_id
    assert platform.state()["entitlements"] == {card: ["EFA2", "GFA1"]}
    assert sub.services.get().authorized


def test_a_worker_killed_after_a_send_loses_nothing_and_applies_nothing_twice(
    push_provider, platform, subscribe, tmp_path
):
    platform.delay_seconds = 1.5  # each answer takes a while: a kill lands mid-send
    subs = [subscribe("BUNDLE_A") for _ in range(4)]  # 12 requests
    uids = {str(u) for u in Req.objects.values_list("uid", flat=True)}
    first = workers.start(tmp_path, name="first", PROVISIONING_LEASE_SECONDS="3")

    def in_flight():
        """A request the platform has received whose answer is not recorded yet."""
        received = set(platform.state()["received"])
        pending = {
            str(u) for u in Req.objects.filter(state="pending").values_list("uid", flat=True)
        }
        done = Req.objects.filter(state="completed").count()
        return done >= 2 and received & pending

    try:
        workers.wait_until(
            in_flight, seconds=60, what="a request in flight", logs=[tmp_path / "first.log"]
        )
        sent_not_recorded = set(platform.state()["received"]) & {
            str(u) for u in Req.objects.filter(state="pending").values_list("uid", flat=True)
        }
    finally:
        workers.kill(first)  # a crash, mid-send (and never a worker left behind)
    platform.delay_seconds = 0

    # A new worker with beat: the sweeper wakes delivery, and once the dead worker's lease is
    # over the request it was sending goes again, with the same uid.
    second = workers.start(
        tmp_path, name="second", beat=True, SWEEP_SECONDS="1", PROVISIONING_LEASE_SECONDS="3"
    )
    try:
        workers.wait_until(
            all_completed,
            seconds=90,
            what="every request completed",
            logs=[tmp_path / "first.log", tmp_path / "second.log"],
        )
    finally:
        workers.stop(second)

    state = platform.state()
    assert set(state["applied"]) == uids  # nothing lost
    assert set(state["applied"].values()) == {1}  # nothing applied twice
    for uid in sent_not_recorded:
        assert state["received"][uid] == 2  # sent again after the crash, dropped as duplicate
    assert set(state["entitlements"]) == cards(subs)


def test_drift_while_the_platform_is_down_is_found_and_repaired_by_a_reset(
    push_provider, platform, subscribe, catalog, tmp_path
):
    push_provider.parameters = {"max_attempts": 2}
    push_provider.save()
    steady = subscribe("AGRICULTURE")
    worker = workers.start(tmp_path, beat=True, SWEEP_SECONDS="1", PROVISIONING_RETRY_SECONDS="1")
    logs = [tmp_path / "worker.log"]
    try:
        workers.wait_until(all_completed, seconds=60, what="the first delivery", logs=logs)
        platform.online = False
        drifted = [subscribe("BUNDLE_B") for _ in range(2)]
        actions.add_service(steady, catalog.products["BUNDLE_A"], catalog.main)
        actions.remove_service(steady.services.get(product__code="BUNDLE_A"))
        workers.wait_until(
            lambda: not Req.objects.filter(state="pending").exists(),
            seconds=90,
            what="delivery to give up",
            logs=logs,
        )
        failed = Req.objects.filter(state="failed")
        assert {r.subscription_id for r in failed} == {s.pk for s in drifted} | {steady.pk}
        assert all("Gave up after 2 attempts" in r.last_error for r in failed)

        platform.online = True
        selection = batch.Selection(push_provider)
        listed = {row.subscription for row in batch.preview(selection)}
        # The steady subscription's add and remove both failed: it is in step already.
        assert listed == {s.number for s in drifted}

        result = batch.reconcile(selection, trigger_name="reset_subscriptions")
        assert result.subscriptions_changed == 2
        workers.wait_until(
            lambda: not Req.objects.filter(state="pending").exists(),
            seconds=60,
            what="the reset's requests delivered",
            logs=logs,
        )
    finally:
        workers.stop(worker)
    assert list(batch.preview(selection)) == []
    entitlements = platform.state()["entitlements"]
    for sub in drifted:
        assert entitlements[sub.installed_items.get(kind="smartcard").ca_id] == ["BFB2", "RFB1"]


def test_a_card_the_platform_fails_holds_no_other_card_back_under_a_real_worker(
    push_provider, platform, subscribe, tmp_path
):
    gate = Gate(platform.url)
    push_provider.connection = {**push_provider.connection, "push_url": f"{gate.url}/requests"}
    push_provider.save()
    subs = [subscribe("BUNDLE_A") for _ in range(4)]  # delivery woken: once the worker is up
    stuck = subs[0]
    gate.cards = cards([stuck])
    gate.answer = raw(b"", status="503 Service Unavailable", kind="text/plain")
    others = Req.objects.exclude(subscription=stuck)
    pairing = stuck.provisioning_requests.get(command="CREATE_PAIRING")

    def others_done_and_stuck_tried() -> bool:
        pairing.refresh_from_db()
        return pairing.attempts == 1 and not others.exclude(state="completed").exists()

    logs = [tmp_path / "worker.log"]
    worker = workers.start(tmp_path, PROVISIONING_RETRY_SECONDS="3600")
    try:
        workers.wait_until(
            others_done_and_stuck_tried, seconds=60, what="the other cards delivered", logs=logs
        )
        assert pairing.state == "pending"
        assert pairing.last_error == "Attempt 1 failed: HTTP 503 from the connector"
        later = stuck.provisioning_requests.exclude(pk=pairing.pk)
        assert set(later.values_list("state", "attempts")) == {("pending", 0)}
        assert set(cards(subs[1:])) == set(platform.state()["entitlements"])

        gate.cards = set()
        Req.objects.filter(pk=pairing.pk).update(next_attempt_at=None)  # its retry time
        delivery.wake([push_provider.pk])
        workers.wait_until(all_completed, seconds=60, what="the stuck card", logs=logs)
    finally:
        workers.stop(worker)
        gate.close()
    assert set(platform.state()["applied"].values()) == {1}
    assert set(platform.state()["entitlements"]) == cards(subs)
