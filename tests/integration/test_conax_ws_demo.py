"""The Conax WS demo: idempotent, and everything it sets up goes through to the CAS simulator,
delivered by a real Celery worker."""

import pytest

from crm_provisioning.demo import ensure_runs
from providers.conax_ws import client
from providers.conax_ws.demo import demo_runs, ensure_demo
from providers.models import ProvisioningRequest
from runs import services as runs
from runs.models import ProcessRun, RunDefinition
from subscriptions.models import CommunicationQueueEntry, Subscription
from tests import workers
from tests.fixtures import CONAX_WS_PASSWORD_ENV

Req = ProvisioningRequest


def held(provider, card: str) -> list[str]:
    answer = client.client_for(provider).call(
        "GetActiveSubscriptions", RequestId=f"check-{card}", CaClientId=card
    )
    return sorted(s["ProductId"] for s in answer.get("Subscription") or [])


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_the_demo_reaches_the_simulator_through_a_real_worker(conax_ws_simulator, tmp_path):
    provider = ensure_demo(conax_ws_simulator.url, "crm", CONAX_WS_PASSWORD_ENV)
    ensure_runs(demo_runs(provider))
    made = Req.objects.count()
    stamp = provider.updated_at
    assert (
        ensure_demo(conax_ws_simulator.url, "crm", CONAX_WS_PASSWORD_ENV) == provider
    )  # idempotent
    ensure_runs(demo_runs(provider))
    provider.refresh_from_db()
    assert (Req.objects.count(), provider.updated_at) == (made, stamp)
    assert Subscription.objects.filter(number__startswith="ZX-CWS-").count() == 12
    assert CommunicationQueueEntry.objects.filter(state="pending").count() == 4

    def settled() -> bool:
        return not Req.objects.filter(state="pending").exists()

    worker = workers.start(tmp_path)
    try:
        workers.wait_until(settled, seconds=90, what="delivery", logs=[tmp_path / "worker.log"])
        assert set(Req.objects.values_list("state", flat=True)) == {"completed"}
        messages = RunDefinition.objects.get(name="Conax WS: Mail & Bark Messages")
        run = runs.execute(messages.pk, ProcessRun.Trigger.RUN_NOW)
        assert (run.status, run.created) == ("completed", 5)  # no. 4 has two cards
        fingerprints = RunDefinition.objects.get(name="Conax WS: Fingerprinting")
        run = runs.execute(fingerprints.pk, ProcessRun.Trigger.RUN_NOW)
        assert (run.status, run.examined) == ("completed", 6)
        workers.wait_until(settled, seconds=60, what="runs", logs=[tmp_path / "worker.log"])
    finally:
        workers.stop(worker)
    assert set(Req.objects.values_list("state", flat=True)) == {"completed"}
    assert held(provider, "CWS-CA-SC00010") == ["EFA2", "GFA1"]
    assert held(provider, "CWS-CA-SC00050") == ["AF1"]  # swapped Bundle A for Agriculture
    assert held(provider, "CWS-CA-SC00060") == ["BFB2", "RFB1"]  # swapped for Bundle B
    assert held(provider, "CWS-CA-SC00090") == []  # deactivated
    assert held(provider, "CWS-CA-SC00041") == ["BFB2", "RFB1"]  # no. 4's second room
    with conax_ws_simulator.state.lock:
        inbox = conax_ws_simulator.state.cards["CWS-CA-SC00010"]["mailbox"]
        assert [m["text"] for m in inbox] == ["Your bill for this month is ready in your account."]
        assert len(conax_ws_simulator.state.cards["CWS-CA-SC00010"]["fingerprints"]) == 1
        assert conax_ws_simulator.state.cards["CWS-CA-SC00070"]["fingerprints"] == []  # excluded
