"""The benchmark's small version: every code path it measures runs, on the suite's database,
with a real worker and a real web server. Timing targets are the bench's business, not the
tests': nothing here asserts a speed. The tests read the JSON the bench writes (``--json``),
never its printed table."""

import json
import os
from pathlib import Path

import pytest
from django.conf import global_settings
from django.core.management import call_command

from providers.models import ProvisioningRequest
from subscriptions.models import CustomerAccount, Subscription

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]


def figures_in(path: Path) -> dict[str, dict]:
    """The figures of a bench JSON file, by name."""
    return {f["name"]: f for f in json.loads(path.read_text())["figures"]}


def test_the_bench_measures_every_figure_and_writes_them(tmp_path, settings):
    # The web server checks the pages' agent's password with the hashers it is deployed with.
    settings.PASSWORD_HASHERS = global_settings.PASSWORD_HASHERS
    out = tmp_path / "bench.json"
    n = 10000  # as the issue asks
    call_command(
        "bench",
        "--subscriptions",
        str(n),
        "--actions",
        "60",
        "--records",
        "3000",
        "--json",
        str(out),
        "--sms-database",
        f"exset_bench_test_{os.getpid()}",
    )

    report = json.loads(out.read_text())
    names = [f["name"] for f in report["figures"]]
    assert names == [
        "Reset preview",
        "Reset run, 1 worker process",
        "Worker peak memory, reset run, 1 worker process",
        "Reset run, 2 worker processes",
        "Worker peak memory, reset run, 2 worker processes",
        "Generic round trip",
        "Back-office page median, subscription page",
        "Back-office page p95, subscription page",
        "Back-office page median, search by name part",
        "Back-office page p95, search by name part",
        "Back-office page median, search by number part",
        "Back-office page p95, search by number part",
        "Back-office page median, search by card serial",
        "Back-office page p95, search by card serial",
        "Back-office page median, requests by state",
        "Back-office page p95, requests by state",
        "Back-office page median, home page",
        "Back-office page p95, home page",
        "Back-office page median, dashboard",
        "Back-office page p95, dashboard",
        "Real-time actions",
        "Real-time latency p50",
        "Real-time latency p99",
        "Real-time actions under a reset run",
        "Real-time latency p50 under a reset run",
        "Real-time latency p99 under a reset run",
        "Real-time actions (Irdeto)",
        "Real-time latency p50 (Irdeto)",
        "Real-time latency p99 (Irdeto)",
        "Real-time actions (Irdeto) under a reset run",
        "Real-time latency p50 (Irdeto) under a reset run",
        "Real-time latency p99 (Irdeto) under a reset run",
        "Process Provisioning Requests (Conax SMS), 1 worker process",
        "Conax SMS file export",
        "Process Provisioning Requests (EXSET SMS), 1 worker process",
        "EXSET TQUEUE writing, PostgreSQL",
        *(["EXSET TQUEUE writing, MariaDB"] if not report["notes"] else []),
    ]
    assert report["subscriptions"] == n
    assert report["machine"]["cpus"] >= 1
    figures = figures_in(out)
    assert all(f["verdict"] for f in figures.values())
    # The preview announced what the run then made, and the connector took all of it.
    preview = figures["Reset preview"]["counts"]
    assert preview["requests"] > 0 and preview["out_of_step"] > 0
    for run in ("Reset run, 1 worker process", "Reset run, 2 worker processes"):
        assert figures[run]["counts"]["created"] == preview["requests"]
    round_trip = figures["Generic round trip"]["counts"]
    assert round_trip["answered"] > 0 and round_trip["left_pending"] == 0
    assert not ProvisioningRequest.objects.filter(state=ProvisioningRequest.State.PENDING).exists()
    assert 0 < figures["Worker peak memory, reset run, 1 worker process"]["value"] < 2000
    # The pages showed what they are for: the subscription, found by each search, the answered
    # requests, home, the dashboard.
    for page in (
        "subscription page",
        "search by name part",
        "search by number part",
        "search by card serial",
        "requests by state",
        "home page",
        "dashboard",
    ):
        assert figures[f"Back-office page median, {page}"]["counts"]["found"] is True, page
    for cas in ("", " (Irdeto)"):
        for suffix in ("", " under a reset run"):
            actions = figures[f"Real-time actions{cas}{suffix}"]["counts"]
            assert actions["actions"] == 60 and actions["states"] == {"completed": 60}
            p99 = figures[f"Real-time latency p99{cas}{suffix}"]
            assert p99["target"] == (500 if suffix else 250)
            assert p99["counts"]["requests"] == 60
        # The second time, a reset run was executing while the actions flowed.
        assert figures[f"Real-time actions{cas}"]["counts"]["share_under_load"] is None
        loaded = figures[f"Real-time actions{cas} under a reset run"]["counts"]
        assert loaded["share_under_load"] is not None
    sms = figures["Process Provisioning Requests (Conax SMS), 1 worker process"]["counts"]
    assert sms["examined"] == sms["at_provider"] > 0 and sms["created"] > 0
    export = figures["Conax SMS file export"]["counts"]
    assert export["exported"] == export["records_at_simulator"] == 3000
    assert export["missing"] == 0
    exset_run = figures["Process Provisioning Requests (EXSET SMS), 1 worker process"]["counts"]
    assert exset_run["examined"] == exset_run["at_provider"] == n
    assert exset_run["entries"] == exset_run["created"] > 0 and exset_run["missing"] == 0
    tqueue = figures["EXSET TQUEUE writing, PostgreSQL"]["counts"]
    assert tqueue["entries"] == tqueue["written"] == 3000 and tqueue["missing"] == 0


def test_the_bench_refuses_a_database_with_real_subscriptions(catalog, account):
    Subscription.objects.create(
        number="ZX-REAL", account=account, subscription_type=catalog.types["RES"],
        created_at="2024-01-01T00:00:00Z",
    )  # fmt: skip
    with pytest.raises(Exception, match="database of its own"):
        call_command("bench", "--subscriptions", "10")
    assert CustomerAccount.objects.count() == 1
