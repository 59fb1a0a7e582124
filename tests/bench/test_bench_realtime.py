"""The real-time figure's small version: actions through a real web server, delivered by a real
worker to the Conax WS simulator and to the Irdeto one, on the suite's database. Nothing here
asserts a speed; the figures are read from the JSON the bench writes."""

import pytest

from bench import realtime
from bench.realtime_cas import CONAX_WS, IRDETO
from bench.report import Report
from catalogue.models import Provider
from providers.models import ProvisioningRequest
from tests.bench.test_bench import figures_in

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]

Req = ProvisioningRequest
# The figures' names, and the commands of a stop and a start.
NAMES = {
    CONAX_WS: (
        ["Real-time actions", "Real-time latency p50", "Real-time latency p99"],
        "CANCEL_SUBSCRIPTIONS",
        "ADD_SUBSCRIPTIONS",
    ),
    IRDETO: (
        [
            "Real-time actions (Irdeto)",
            "Real-time latency p50 (Irdeto)",
            "Real-time latency p99 (Irdeto)",
        ],
        "REMOVE_ENTITLEMENT",
        "ADD_ENTITLEMENT",
    ),
}


def written(report: Report, path) -> list[dict]:
    report.write(path)
    return list(figures_in(path).values())


@pytest.mark.parametrize("cas", [CONAX_WS, IRDETO], ids=lambda cas: cas.code)
def test_realtime_measures_actions_from_the_api_to_the_simulator(cas, tmp_path, monkeypatch):
    names, stop, start = NAMES[cas]
    monkeypatch.setenv(cas.secret_env, "bench-test-pass")
    report = Report(subscriptions=0)
    n = 200
    raw = realtime.realtime(report, tmp_path, cas=cas, actions=n)

    rate, p50, p99 = written(report, tmp_path / "bench.json")
    assert [rate["name"], p50["name"], p99["name"]] == names
    assert (rate["unit"], rate["direction"], rate["target"]) == ("actions/s", "min", 200)
    assert rate["value"] > 0 and rate["floor"] > 0 and rate["counts"][cas.raw_key] > 0
    assert cas.label in rate["detail"]
    assert rate["counts"] | {cas.raw_key: 0} == {
        "actions": n,
        "stop": n,
        "start": 0,
        "states": {"completed": n},
        cas.raw_key: 0,
        "share_under_load": None,
    }
    # From the row's created_at, written before the commit: never before it.
    assert 0 < p50["value"] <= p99["value"] <= p99["counts"]["max_ms"]
    assert p99["counts"] == {"requests": n, "max_ms": raw["max_ms"]}
    assert (p50["unit"], p50["target"], p99["target"]) == ("ms", None, 250)
    assert p50["floor"] is None and p99["floor"] is None

    provider = Provider.objects.get(name=cas.provider)
    assert provider.type == cas.code
    made = Req.objects.filter(provider=provider)
    # One request per action, warm-up included; each reached the CAS and was answered. The
    # floor's requests (as many, by hand) are gone.
    assert made.count() == made.filter(state=Req.State.COMPLETED).count() == n + realtime.WARM_UP
    assert set(made.values_list("command", flat=True)) == {stop}

    # Again on the same data: the provider is set up anew (another simulator, another port),
    # and the services stopped the first time are started.
    again = Report(subscriptions=0)
    realtime.realtime(again, tmp_path, cas=cas, actions=20)
    figures = written(again, tmp_path / "again.json")
    assert [f["name"] for f in figures] == names
    assert (figures[0]["counts"]["stop"], figures[0]["counts"]["start"]) == (0, 20)
    assert made.filter(command=start, state=Req.State.COMPLETED).count() == (20 + realtime.WARM_UP)
    assert not Req.objects.filter(state=Req.State.PENDING).exists()
