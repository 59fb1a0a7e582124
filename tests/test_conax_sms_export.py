"""Conax SMS file export: files of at most N records, Express first, end dates, uploaded once
even when a run dies after the upload; SFTP and FTP; a changed host key is refused."""

from datetime import date, datetime, time

import pytest
from django.utils import timezone

from providers import batch
from providers.conax_sms import export, responses, transport
from providers.conax_sms import file_format as ff
from providers.models import ProvisioningRequest, TransferFile
from providers.registry import TransportError
from runs import services
from runs.models import ProcessRun, RunDefinition
from tests.conax_sms_fixtures import connection, out_files, request_files

pytest_plugins = ["tests.conax_sms_fixtures"]

Req = ProvisioningRequest


def bulk_requests(provider, count: int, express_every: int = 0) -> None:
    """``count`` Pending Add requests, as a processing run leaves them (written in bulk)."""
    Req.objects.bulk_create(
        (
            Req(
                command=ff.ADD,
                operation=Req.Operation.ACTIVATE,
                ca_id="AF1",
                parameters={"card_ca_id": f"CX-{n:06d}", "service_ca_id": "AF1"},
                provider=provider,
                trigger=Req.Trigger.RUN,
                priority=(
                    Req.Priority.EXPRESS
                    if express_every and n % express_every == express_every - 1
                    else Req.Priority.NORMAL
                ),
            )
            for n in range(count)
        ),
        batch_size=5000,
    )


def test_45001_requests_make_three_files_express_first(sms, simulator):
    bulk_requests(sms, 45001, express_every=1000)  # the 45 Express ones are scattered, late
    express = set(Req.objects.filter(priority=Req.Priority.EXPRESS).values_list("uid", flat=True))
    assert len(express) == 45

    result = export.export(sms)

    files = list(out_files(sms))
    assert [f.records for f in files] == [20000, 20000, 5001]
    assert [f.state for f in files] == [TransferFile.State.UPLOADED] * 3
    assert result.uploaded == [f.name for f in files]
    on_server = request_files(simulator)
    assert list(on_server) == [f.name for f in files]
    first = on_server[files[0].name]
    assert {r.uid for r in first[:45]} == {str(u) for u in express}
    assert sum(len(records) for records in on_server.values()) == 45001
    # Every request is in exactly one file, and still Pending until Conax answers.
    assert not Req.objects.filter(transfer_file__isnull=True).exists()
    assert Req.objects.filter(state=Req.State.PENDING, sent_at__isnull=False).count() == 45001

    simulator.cas.run_once()
    assert len(simulator.cas.received) == 45001
    assert set(simulator.cas.received.values()) == {1}


def test_lines_carry_end_dates_from_the_operation_parameters(sms, sms_subscribe, simulator):
    sms.parameters = {
        "add_end_period_months": 3,
        "renew_end_period_months": 6,
        "cancel_end_period_months": 2,
    }
    sms.full_clean()
    sms.save()
    sub = sms_subscribe("AGRICULTURE", number="ZX-E-1")
    renewing = sms_subscribe("BABY", number="ZX-E-2")
    renewing.services.update(
        authorized=True,
        authorization_date=timezone.make_aware(datetime.combine(date(2025, 1, 1), time(9))),
    )
    renewing.installed_items.update(initialized=True)
    batch.reconcile(batch.Selection(sms), trigger_name="process_provisioning_requests")
    card = sub.installed_items.get(kind="smartcard").ca_id
    box = sub.installed_items.get(kind="stb").ca_id

    # Prepared on 30 November: three months on is the end of February.
    now = timezone.make_aware(datetime(2026, 11, 30, 10, 0))
    export.export(sms, now=now)

    (records,) = request_files(simulator).values()
    by_uid = {str(r.uid): r for r in Req.objects.all()}
    lines = [(by_uid[r.uid].subscription.number, r.command, r.client_id, r.fields) for r in records]
    assert lines == [
        ("ZX-E-1", ff.PAIR, card, (box, "", "")),
        ("ZX-E-1", ff.ADD, card, ("AF1", "2026-11-30", "2027-02-28")),
        (
            "ZX-E-2",
            ff.RENEW,
            renewing.installed_items.get(kind="smartcard").ca_id,
            ("BFB2", "2027-05-30"),
        ),
    ]


class Killed(Exception):
    """Stands for the worker dying: raised right after the file reached the server."""


class DiesAfterUpload(transport.Transport):
    """Wraps the real transport (passed to ``export.export(connect=…)``)."""

    def __init__(self, inner: transport.Transport):
        self.inner = inner

    def listdir(self, directory):
        return self.inner.listdir(directory)

    def upload(self, data, path):
        self.inner.upload(data, path)
        raise Killed(path)

    def download(self, path):
        return self.inner.download(path)

    def move(self, path, directory):
        self.inner.move(path, directory)

    def close(self):
        self.inner.close()


@pytest.mark.parametrize("cas_reads_it_first", [False, True])
def test_a_run_killed_after_the_upload_does_not_send_twice(sms, simulator, cas_reads_it_first):
    bulk_requests(sms, 7)
    with pytest.raises(Killed):
        export.export(sms, connect=lambda p: DiesAfterUpload(transport.connect(p)))
    (file,) = out_files(sms)
    assert file.state == TransferFile.State.PREPARED  # the upload's commit never happened
    assert file.requests.count() == 7
    if cas_reads_it_first:
        simulator.cas.run_once()  # the CAS took it (and answered) before the rerun

    result = export.export(sms)

    assert result.uploaded == []
    assert result.found_delivered == [file.name]
    file.refresh_from_db()
    assert file.state == TransferFile.State.UPLOADED
    assert "not uploaded again" in file.message
    simulator.cas.run_once()
    assert len(simulator.cas.received) == 7
    assert set(simulator.cas.received.values()) == {1}
    assert simulator.cas.files_read == [file.name]


def test_ftp_transport_round_trip(sms, sms_subscribe, simulator):
    sms.connection = connection(simulator, "ftp")
    sms.full_clean()
    sms.save()
    sub = sms_subscribe("BUNDLE_B", number="ZX-FTP-1")
    batch.reconcile(batch.Selection(sms), trigger_name="process_provisioning_requests")

    export.export(sms)
    simulator.cas.run_once()
    result = responses.process_responses(sms)

    assert result.completed == 3 and result.problems == []
    assert set(Req.objects.values_list("state", flat=True)) == {Req.State.COMPLETED}
    assert list(sub.services.values_list("authorized", flat=True)) == [True]
    card = sub.installed_items.get(kind="smartcard")
    assert set(simulator.cas.entitlements) == {card.ca_id}
    assert set(simulator.cas.entitlements[card.ca_id]) == {"RFB1", "BFB2"}


def test_a_changed_sftp_host_key_is_refused(sms, simulator, tmp_path):
    from providers.conax_sms.simulator import load_host_key, public_line

    other = public_line(load_host_key(tmp_path / "another-server"))
    sms.connection = {**sms.connection, "host_key": other}
    sms.full_clean()
    sms.save()
    bulk_requests(sms, 2)

    with pytest.raises(transport.HostKeyMismatch) as refused:
        export.export(sms)

    message = str(refused.value)
    assert f"127.0.0.1:{simulator.sftp_port} presented the host key ecdsa-sha2-nistp256" in message
    assert "Refusing to connect" in message
    assert request_files(simulator) == {}
    assert out_files(sms).get().state == TransferFile.State.PREPARED

    # As a run: Failed, with the reason in its log; nothing sent.
    definition = RunDefinition.objects.create(
        name="Export", run_type="conax_sms_export_files", provider=sms
    )
    run = services.execute(definition.pk, ProcessRun.Trigger.RUN_NOW)
    assert run.status == ProcessRun.Status.FAILED
    assert "presented the host key" in run.message
    assert "HostKeyMismatch" in run.error_log.get().message


def test_wrong_password_is_a_clear_permanent_error(sms, simulator, monkeypatch):
    monkeypatch.setenv("CONAX_SMS_TEST_PASSWORD", "wrong")
    bulk_requests(sms, 1)
    with pytest.raises(TransportError, match="refused the credentials of user conax") as err:
        export.export(sms)
    assert err.value.permanent


def test_sftp_key_authentication(sms, tmp_path, monkeypatch):
    import io

    import paramiko

    from providers.conax_sms.simulator import Simulator, public_line

    key = paramiko.ECDSAKey.generate()
    pem = io.StringIO()
    key.write_private_key(pem)
    monkeypatch.setenv("CONAX_SMS_TEST_KEY", pem.getvalue())
    with Simulator(
        tmp_path / "keyed", authorized_keys=[public_line(key)], poll_interval=None
    ) as sim:
        sms.connection = {
            **connection(sim),
            "password_env": "",
            "private_key_env": "CONAX_SMS_TEST_KEY",
        }
        sms.full_clean()
        sms.save()
        bulk_requests(sms, 3)

        export.export(sms)

        sim.cas.run_once()
        assert len(sim.cas.received) == 3
