"""The Irdeto demo: idempotent, and every subscriber it makes is provisioned at the KMS
simulator, delivered by a real Celery worker; what the KMS holds is read back over its API
(Query secure client). Its Mail run puts the queued messages in the boxes' inboxes."""

import pytest

from crm_provisioning.demo import ensure_runs
from providers.irdeto import client, protocol
from providers.irdeto.demo import box, card, demo_runs, ensure_demo
from providers.models import ProvisioningRequest
from runs import services as runs
from runs.models import ProcessRun, RunDefinition
from subscriptions.models import CommunicationQueueEntry, Subscription
from tests import workers
from tests.fixtures import IRDETO_SECRET_ENV

Req = ProvisioningRequest


def query(provider, device: str) -> dict:
    """The KMS's answer to Query secure client about ``device``: its sections."""
    call = protocol.call_for(
        protocol.QUERY_SECURE_CLIENT, f"check-{device}", {"device_ca_id": device}, None
    )
    return client.client_for(provider).call(call)["sections"]


def held(provider, device: str) -> list[str]:
    return sorted(e["productId"] for e in query(provider, device)["entitlements"] if e["active"])


def paired(provider, device: str) -> list[str]:
    pairing = query(provider, device)["pairing"]
    return sorted(pairing["smartcards"] + pairing["stbs"])


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_the_demo_subscribers_are_provisioned_at_the_simulator(irdeto_simulator, tmp_path):
    provider = ensure_demo(irdeto_simulator.url, "crm", IRDETO_SECRET_ENV)
    ensure_runs(demo_runs(provider))
    made = Req.objects.count()
    stamp = provider.updated_at
    assert ensure_demo(irdeto_simulator.url, "crm", IRDETO_SECRET_ENV) == provider  # idempotent
    ensure_runs(demo_runs(provider))
    provider.refresh_from_db()
    assert (Req.objects.count(), provider.updated_at) == (made, stamp)
    assert Subscription.objects.filter(number__startswith="ZX-IRD-").count() == 8
    assert CommunicationQueueEntry.objects.filter(number__startswith="IRD-CQ-").count() == 3
    assert made > 0 and set(Req.objects.values_list("provider__type", flat=True)) == {"irdeto"}

    def settled() -> bool:
        return not Req.objects.filter(state="pending").exists()

    worker = workers.start(tmp_path)
    try:
        workers.wait_until(settled, seconds=90, what="delivery", logs=[tmp_path / "worker.log"])
        assert set(Req.objects.values_list("state", flat=True)) == {"completed"}
        # Everything is in step at the KMS: the demo's reset run finds nothing to send.
        reset = RunDefinition.objects.get(name="Irdeto: Reset Subscriptions")
        run = runs.execute(reset.pk, ProcessRun.Trigger.RUN_NOW)
        assert (run.status, run.created) == ("completed", 0)
        mail = RunDefinition.objects.get(name="Irdeto: Mail")
        run = runs.execute(mail.pk, ProcessRun.Trigger.RUN_NOW)
        assert (run.status, run.created) == ("completed", 5)  # nos. 3 and 7 have two rooms
        workers.wait_until(settled, seconds=60, what="mail", logs=[tmp_path / "worker.log"])
    finally:
        workers.stop(worker)

    assert held(provider, card(1, 0)) == ["EFA2", "GFA1"]
    assert held(provider, card(2, 0)) == ["AF1"]
    assert held(provider, card(5, 0)) == ["BFB2", "RFB1"]  # swapped Bundle A for Bundle B
    assert held(provider, card(6, 0)) == []  # deactivated
    assert held(provider, card(7, 0)) == ["AF1", "EFA2", "GFA1"]  # Agriculture added
    assert held(provider, card(7, 1)) == ["BFB2", "RFB1"]
    # Four viewing points, each its own box and card pair with its own channels.
    rooms = [["EFA2", "GFA1"], ["AF1"], ["BFB2", "RFB1"], ["AF1"]]
    assert [held(provider, card(4, point)) for point in range(4)] == rooms
    for n, points in ((1, 1), (3, 2), (4, 4), (8, 2)):
        for point in range(points):
            assert paired(provider, card(n, point)) == sorted([card(n, point), box(n, point)])
    assert set(Req.objects.values_list("state", flat=True)) == {"completed"}
    inbox = irdeto_simulator.client(box(3, 1))["mailbox"]
    assert [m["text"] for m in inbox] == ["Thank you for choosing a second viewing point!"]
    assert irdeto_simulator.client(card(3, 1))["mailbox"] == []  # to the box, not the card
