"""The benchmark's small version: every code path it measures runs, on the suite's database,
with a real worker and a real web server. Timing targets are the bench's business, not the
tests': nothing here asserts a speed."""

import json

import pytest
from django.core.management import call_command

from providers.models import ProvisioningRequest
from subscriptions.models import CustomerAccount, Subscription

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]


def test_the_bench_measures_every_figure_and_writes_the_table(tmp_path, capsys):
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
    )

    printed = capsys.readouterr().out
    report = json.loads(out.read_text())
    names = [f["name"] for f in report["figures"]]
    assert names == [
        "Reset preview",
        "Reset run, 1 worker process",
        "Worker peak memory, reset run, 1 worker process",
        "Reset run, 2 worker processes",
        "Worker peak memory, reset run, 2 worker processes",
        "Generic round trip",
        "Real-time actions",
        "Real-time latency p50",
        "Real-time latency p99",
        "Real-time actions under a reset run",
        "Real-time latency p50 under a reset run",
        "Real-time latency p99 under a reset run",
        "Process Provisioning Requests (Conax SMS), 1 worker process",
        "Conax SMS file export",
    ]
    for name in names:
        assert name in printed
    assert report["subscriptions"] == n
    assert report["machine"]["cpus"] >= 1
    figures = {f["name"]: f for f in report["figures"]}
    # The preview announced what the run then made, and the connector took all of it.
    preview_requests = int(
        figures["Reset preview"]["detail"].split(", ")[1].split()[0].replace(",", "")
    )
    for run in ("Reset run, 1 worker process", "Reset run, 2 worker processes"):
        assert f"{preview_requests:,} requests created" in figures[run]["detail"]
    assert preview_requests > 0
    assert "0 left Pending" in figures["Generic round trip"]["detail"]
    assert not ProvisioningRequest.objects.filter(state=ProvisioningRequest.State.PENDING).exists()
    assert 0 < figures["Worker peak memory, reset run, 1 worker process"]["value"] < 2000
    for suffix in ("", " under a reset run"):
        actions = figures[f"Real-time actions{suffix}"]
        assert "60 actions through the Web API" in actions["detail"]
        assert "requests 60 completed" in actions["detail"]
        p99 = figures[f"Real-time latency p99{suffix}"]
        assert p99["target"] == (500 if suffix else 250)
    loaded = figures["Real-time actions under a reset run"]["detail"]
    assert "a reset run" in loaded and "was executing for" in loaded


def test_the_bench_refuses_a_database_with_real_subscriptions(catalog, account):
    Subscription.objects.create(
        number="ZX-REAL", account=account, subscription_type=catalog.types["RES"],
        created_at="2024-01-01T00:00:00Z",
    )  # fmt: skip
    with pytest.raises(Exception, match="database of its own"):
        call_command("bench", "--subscriptions", "10")
    assert CustomerAccount.objects.count() == 1
