"""Conax SMS file export: files of at most N records, Express first, end dates, uploaded once
even when a run dies after the upload; SFTP and FTP; a changed host key is refused."""

from datetime import date, datetime, time

import pytest
from django.utils import timezone

from providers import batch, provider_settings
from providers.conax_sms import file_format as ff
from providers.conax_sms import transport
from providers.conax_sms.files import PIPELINE
from providers.file_delivery import export, members, responses
from providers.file_delivery.channel import Channel
from providers.models import ProvisioningRequest, TransferFile
from providers.registry import TransportError
from runs import services
from runs.models import ProcessRun, RunDefinition
from tests.fixtures import (
    CONAX_SMS_PASSWORD,
    CONAX_SMS_PASSWORD_ENV,
    conax_sms_connection,
    out_files,
    request_files,
)

Req = ProvisioningRequest


@pytest.fixture
def catalog(sms_catalog):  # this module's catalogue, where ``subscribe`` subscribes, is Conax SMS
    return sms_catalog


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


def test_45001_requests_make_three_files_express_first(sms, conax_sms_simulator):
    bulk_requests(sms, 45001, express_every=1000)  # the 45 Express ones are scattered, late
    express = set(Req.objects.filter(priority=Req.Priority.EXPRESS).values_list("uid", flat=True))
    assert len(express) == 45

    result = export.export(PIPELINE, sms)

    files = list(out_files(sms))
    assert [f.records for f in files] == [20000, 20000, 5001]
    assert [f.state for f in files] == [TransferFile.State.UPLOADED] * 3
    assert result.uploaded == [f.name for f in files]
    on_server = request_files(conax_sms_simulator)
    assert list(on_server) == [f.name for f in files]
    first = on_server[files[0].name]
    assert {r.uid for r in first[:45]} == {str(u) for u in express}
    assert sum(len(records) for records in on_server.values()) == 45001
    # Every request is in exactly one file, and still Pending until Conax answers.
    in_files = [set(members.requests_in(f).values_list("pk", flat=True)) for f in files]
    assert [len(ids) for ids in in_files] == [20000, 20000, 5001]
    assert set.union(*in_files) == set(Req.objects.values_list("pk", flat=True))
    assert set(Req.objects.values_list("state", flat=True)) == {Req.State.PENDING}
    assert export.waiting(sms) == 0
    assert export.export(PIPELINE, sms).records == 0  # nothing goes twice

    conax_sms_simulator.cas.run_once()
    assert len(conax_sms_simulator.cas.received) == 45001
    assert set(conax_sms_simulator.cas.received.values()) == {1}
    # Answered, each request is linked to its file.
    responses.process_responses(PIPELINE, sms)
    assert [f.requests.count() for f in files] == [20000, 20000, 5001]


def test_lines_carry_end_dates_from_the_operation_parameters(sms, subscribe, conax_sms_simulator):
    sms.parameters = {
        "add_end_period_months": 3,
        "renew_end_period_months": 6,
        "cancel_end_period_months": 2,
    }
    provider_settings.full_clean(sms)
    sms.save()
    sub = subscribe("AGRICULTURE", number="ZX-E-1")
    renewing = subscribe("BABY", number="ZX-E-2")
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
    export.export(PIPELINE, sms, now=now)

    (records,) = request_files(conax_sms_simulator).values()
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
    """Stands for the worker dying at a chosen step of an upload."""


class KilledAt(Channel):
    """The real channel (passed to ``export.export(..., connect=…)``), dying once at ``step``:
    right after the temporary file is written (before the export records it), just before
    the rename (after the record), or right after the rename (before it is marked
    Uploaded)."""

    def __init__(self, inner: Channel, step: str):
        self.inner, self.step = inner, step

    def staged(self, name):
        return self.inner.staged(name)

    def stage(self, name, payload):
        self.inner.stage(name, payload)
        if self.step == "after_put":
            raise Killed(name)

    def publish(self, name):
        if self.step == "before_rename":
            raise Killed(name)
        self.inner.publish(name)
        if self.step == "after_rename":
            raise Killed(name)

    def close(self):
        self.inner.close()


@pytest.mark.parametrize(
    ("step", "cas_takes_it", "recorded", "protocol"),
    [
        ("after_put", False, False, "sftp"),
        ("before_rename", False, True, "sftp"),
        ("after_rename", False, True, "sftp"),
        # The hard one: the CAS took (deleted) the file and has not answered yet, so the
        # server shows neither the file nor a response.
        ("after_rename", True, True, "sftp"),
        ("before_rename", False, True, "ftp"),
        ("after_rename", True, True, "ftp"),
    ],
)
def test_a_run_killed_during_the_upload_sends_each_request_once(
    sms, conax_sms_simulator, step, cas_takes_it, recorded, protocol
):
    sms.connection = conax_sms_connection(conax_sms_simulator, protocol)
    sms.save()
    bulk_requests(sms, 7)
    with pytest.raises(Killed):
        export.export(PIPELINE, sms, connect=lambda p: KilledAt(transport.connect(p), step))
    if recorded:
        (file,) = out_files(sms)
        assert file.state == TransferFile.State.PREPARED  # its delivery was never recorded
        assert members.requests_in(file).count() == 7
    else:
        assert not out_files(sms).exists()  # rolled back: as if nothing happened
    taken = conax_sms_simulator.cas.pick_up() if cas_takes_it else []
    # The CAS never reads a temporary file, so before the rename it has nothing to take.
    assert taken == ([out_files(sms).get().name] if cas_takes_it else [])

    result = export.export(PIPELINE, sms)

    (file,) = out_files(sms)
    assert file.state == TransferFile.State.UPLOADED
    if step == "after_rename":
        assert (result.uploaded, result.found_delivered) == ([], [file.name])
        assert file.message == (
            "Renamed into place by an earlier run that stopped before recording it; "
            "not uploaded again."
        )
    else:
        assert (result.uploaded, result.found_delivered) == ([file.name], [])
    assert result.records == 7
    assert export.export(PIPELINE, sms).records == 0  # and nothing more on the run after

    conax_sms_simulator.cas.run_once()
    assert conax_sms_simulator.cas.deliveries == {file.name: 1}
    assert len(conax_sms_simulator.cas.received) == 7
    assert set(conax_sms_simulator.cas.received.values()) == {1}
    assert responses.process_responses(PIPELINE, sms).completed == 7
    assert set(Req.objects.values_list("state", flat=True)) == {Req.State.COMPLETED}
    # No temporary file is left behind for the CAS or the operator to wonder about.
    assert sorted(p.name for p in (conax_sms_simulator.root / "in").iterdir()) == []


def test_ftp_transport_round_trip(sms, subscribe, conax_sms_simulator):
    sms.connection = conax_sms_connection(conax_sms_simulator, "ftp")
    provider_settings.full_clean(sms)
    sms.save()
    sub = subscribe("BUNDLE_B", number="ZX-FTP-1")
    batch.reconcile(batch.Selection(sms), trigger_name="process_provisioning_requests")

    export.export(PIPELINE, sms)
    conax_sms_simulator.cas.run_once()
    result = responses.process_responses(PIPELINE, sms)

    assert result.completed == 3 and result.problems == []
    assert set(Req.objects.values_list("state", flat=True)) == {Req.State.COMPLETED}
    assert list(sub.services.values_list("authorized", flat=True)) == [True]
    card = sub.installed_items.get(kind="smartcard")
    assert set(conax_sms_simulator.cas.entitlements) == {card.ca_id}
    assert set(conax_sms_simulator.cas.entitlements[card.ca_id]) == {"RFB1", "BFB2"}


def test_a_changed_sftp_host_key_is_refused(sms, conax_sms_simulator, tmp_path):
    from providers.conax_sms.simulator import load_host_key, public_line

    other = public_line(load_host_key(tmp_path / "another-server"))
    sms.connection = {**sms.connection, "host_key": other}
    provider_settings.full_clean(sms)
    sms.save()
    bulk_requests(sms, 2)

    with pytest.raises(transport.HostKeyMismatch) as refused:
        export.export(PIPELINE, sms)

    message = str(refused.value)
    assert (
        f"127.0.0.1:{conax_sms_simulator.sftp_port} presented the host key ecdsa-sha2-nistp256"
        in message
    )
    assert "Refusing to connect" in message
    assert request_files(conax_sms_simulator) == {}
    assert not out_files(sms).exists()
    assert export.waiting(sms) == 2  # still waiting

    # As a run: Failed, with the reason in its log; nothing sent.
    definition = RunDefinition.objects.create(
        name="Export", run_type="conax_sms_export_files", provider=sms
    )
    run = services.execute(definition.pk, ProcessRun.Trigger.RUN_NOW)
    assert run.status == ProcessRun.Status.FAILED
    assert "presented the host key" in run.message
    assert "HostKeyMismatch" in run.error_log.get().message


def test_wrong_password_is_a_clear_permanent_error(sms, conax_sms_simulator, monkeypatch):
    monkeypatch.setenv("CRM_SECRET_CONAX_SMS_TEST_PASSWORD", "wrong")
    bulk_requests(sms, 1)
    with pytest.raises(TransportError, match="refused the credentials of user conax") as err:
        export.export(PIPELINE, sms)
    assert err.value.permanent


def test_sftp_key_authentication(sms, tmp_path, monkeypatch):
    import io

    import paramiko

    from providers.conax_sms.simulator import Simulator, public_line

    key = paramiko.ECDSAKey.generate()
    pem = io.StringIO()
    key.write_private_key(pem)
    monkeypatch.setenv("CRM_SECRET_CONAX_SMS_TEST_KEY", pem.getvalue())
    with Simulator(
        tmp_path / "keyed", authorized_keys=[public_line(key)], poll_interval=None
    ) as sim:
        sms.connection = {
            **conax_sms_connection(sim),
            "password_env": "",
            "private_key_env": "CRM_SECRET_CONAX_SMS_TEST_KEY",
        }
        provider_settings.full_clean(sms)
        sms.save()
        bulk_requests(sms, 3)

        export.export(PIPELINE, sms)

        sim.cas.run_once()
        assert len(sim.cas.received) == 3


def test_a_request_without_a_card_fails_alone_with_the_reason(sms, subscribe, conax_sms_simulator):
    # A set-top box and no smartcard.
    lone_box = subscribe("AGRICULTURE", number="ZX-NOCARD", devices=["stb"])
    batch.reconcile(batch.Selection(sms), trigger_name="process_provisioning_requests")
    bulk_requests(sms, 2)

    export.export(PIPELINE, sms)

    pairing = Req.objects.get(subscription=lone_box)
    assert (pairing.command, pairing.state) == (ff.PAIR, Req.State.FAILED)
    assert pairing.last_error == (
        "Cannot be written in a Conax SMS file: "
        "FormatError('CREATE_PAIRING has no smartcard CA ID to address it to.')"
    )
    (records,) = request_files(conax_sms_simulator).values()
    assert len(records) == 2  # the others went out


@pytest.mark.parametrize("protocol", ["sftp", "ftp"])
def test_secrets_are_never_logged(sms, conax_sms_simulator, monkeypatch, caplog, protocol):
    """Not in the process run's log, not in the application's log (paramiko's debug lines
    included), whether the login works or not."""
    import logging

    caplog.set_level(logging.DEBUG)
    sms.connection = conax_sms_connection(conax_sms_simulator, protocol)
    provider_settings.full_clean(sms)
    sms.save()
    bulk_requests(sms, 2)
    definition = RunDefinition.objects.create(
        name="Export", run_type="conax_sms_export_files", provider=sms
    )
    monkeypatch.setenv(CONAX_SMS_PASSWORD_ENV, CONAX_SMS_PASSWORD + "-wrong")
    refused = services.execute(definition.pk, ProcessRun.Trigger.RUN_NOW)
    monkeypatch.setenv(CONAX_SMS_PASSWORD_ENV, CONAX_SMS_PASSWORD)
    done = services.execute(definition.pk, ProcessRun.Trigger.RUN_NOW)

    assert refused.status == ProcessRun.Status.FAILED
    assert done.status == ProcessRun.Status.COMPLETED
    assert len(request_files(conax_sms_simulator)) == 1
    shown = [refused.message, done.message, caplog.text]
    shown += [e.message for run in (refused, done) for e in run.error_log.all()]
    assert "refused" in refused.message
    assert not [text for text in shown if CONAX_SMS_PASSWORD in text]
