"""Conax SMS demo and the simulator's command line: the demo runs its whole cycle against the
simulator over SFTP, and is idempotent."""

import os
import re
import subprocess
import sys
import time

from django_celery_beat.models import PeriodicTask

from crm_provisioning.demo import ensure_runs
from providers.conax_sms.demo import PREFIX, demo_runs, ensure_demo, simulator_host_key
from providers.models import ProvisioningRequest
from runs import services
from runs.models import ProcessRun, RunDefinition
from subscriptions.models import Subscription
from tests.fixtures import CONAX_SMS_PASSWORD, CONAX_SMS_PASSWORD_ENV

Req = ProvisioningRequest


def run(name: str) -> ProcessRun:
    return services.execute(RunDefinition.objects.get(name=name).pk, ProcessRun.Trigger.RUN_NOW)


def test_demo_runs_its_cycle_on_the_simulator(db, conax_sms_simulator, monkeypatch):
    monkeypatch.setenv(CONAX_SMS_PASSWORD_ENV, CONAX_SMS_PASSWORD)
    args = (
        conax_sms_simulator.host,
        conax_sms_simulator.sftp_port,
        conax_sms_simulator.host_key,
        "conax",
        CONAX_SMS_PASSWORD_ENV,
    )
    provider = ensure_demo(*args)
    ensure_runs(demo_runs(provider))
    ensure_demo(*args)  # idempotent
    ensure_runs(demo_runs(provider))

    assert Subscription.objects.filter(number__startswith=PREFIX).count() == 12
    definitions = RunDefinition.objects.filter(provider=provider).order_by("name")
    assert [(d.name, d.state) for d in definitions] == [
        ("Conax SMS: Error Handling", "submitted"),
        ("Conax SMS: Export request files", "submitted"),
        ("Conax SMS: Mail & Bark Messages", "draft"),
        ("Conax SMS: Process Provisioning Requests", "submitted"),
    ]
    assert PeriodicTask.objects.filter(run_definition__provider=provider).count() == 3
    assert not Req.objects.exists()  # batch: actions only change state

    processing = run("Conax SMS: Process Provisioning Requests")
    assert processing.status == ProcessRun.Status.COMPLETED and processing.created > 12
    run("Conax SMS: Mail & Bark Messages")
    assert run("Conax SMS: Export request files").status == ProcessRun.Status.COMPLETED
    conax_sms_simulator.cas.run_once()
    handled = run("Conax SMS: Error Handling")

    assert handled.status == ProcessRun.Status.COMPLETED
    assert handled.examined == Req.objects.count()
    assert set(Req.objects.values_list("state", flat=True)) == {Req.State.COMPLETED}
    assert len(conax_sms_simulator.cas.messages) == 3
    assert run("Conax SMS: Process Provisioning Requests").created == 0


def test_simulator_command_line_prints_the_host_key(tmp_path):
    env = {**os.environ, "CRM_SECRET_CONAX_SMS_PASSWORD": "s3cret"}
    process = subprocess.Popen(
        [
            sys.executable,
            "manage.py",
            "cas_simulator",
            "conax-sms",
            "--root",
            str(tmp_path),
            "--sftp-port",
            "0",
            "--ftp-port",
            "0",
            "--interval",
            "0.5",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    try:
        lines = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not any("host key" in x for x in lines):
            lines.append(process.stdout.readline())
        output = "".join(lines)
        assert re.search(r"SFTP port \d+, user conax", output)
        assert re.search(r"host key: ecdsa-sha2-nistp256 AAAA\S+", output)
        assert f"host key: {simulator_host_key(tmp_path)}" in output
    finally:
        process.terminate()
        process.wait(timeout=10)
