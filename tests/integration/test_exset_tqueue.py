"""EXSET SMS over TQUEUE, on an SQLite, a PostgreSQL and (where one answers) a MariaDB SMS
database: entries written once per request with the contract's columns, even when a run dies
between writing and recording; the SMS's outcomes read back (Done → Completed, Error →
Rejected and rolled back), once, even when a run dies before marking them read; what the SMS
never finishes fails at the deadline. The tests play the SMS with plain SQL on its table."""

import json
import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from providers import batch, provider_settings, registry
from providers.engine import create_request
from providers.exset import messages, tqueue
from providers.exset.queue import PIPELINE
from providers.file_delivery import export, members, responses
from providers.file_delivery.channel import Channel
from providers.models import ProvisioningRequest, TransferFile
from providers.registry import TransportError
from runs import services
from runs.models import ProcessRun, RunDefinition
from subscriptions.models import SubscriptionService
from tests.fixtures import card_of, out_files

Req = ProvisioningRequest


@pytest.fixture
def catalog(exset):  # this module's catalogue, where ``subscribe`` subscribes, is EXSET SMS
    return exset


@pytest.fixture
def provider(exset):
    return exset.provider


def process(provider):
    return batch.reconcile(batch.Selection(provider), trigger_name="process_provisioning_requests")


def entries(sms) -> list[dict]:
    """TQUEUE as the SMS sees it, by sequence."""
    columns = ", ".join(sms.column(c) for c in tqueue.COLUMNS)
    order = sms.column("sequence")
    cursor = sms.execute(f"SELECT {columns} FROM {sms.table} ORDER BY {order}")
    rows = [dict(zip(tqueue.COLUMNS, row, strict=True)) for row in cursor.fetchall()]
    sms.conn.commit()
    return rows


def sms_sets(sms, status: str, entry_ids, code=None, text=None) -> None:
    """The SMS finishes entries: Done, or Error with its code and text."""
    ids = [str(e) for e in entry_ids]
    marks = ", ".join(["%s"] * len(ids))
    status_, code_, text_, entry = (
        sms.column(c) for c in ("status", "error_code", "error_text", "entry_id")
    )
    sql = f"UPDATE {sms.table} SET {status_} = %s, {code_} = %s, {text_} = %s WHERE {entry} IN ({marks})"
    sms.execute(sql, [status, code, text, *ids])
    sms.conn.commit()


def uids(subscription) -> list[str]:
    return [
        str(u) for u in Req.objects.filter(subscription=subscription).values_list("uid", flat=True)
    ]


def run(code: str, provider) -> ProcessRun:
    definition, _ = RunDefinition.objects.get_or_create(
        name=code, defaults={"run_type": code, "provider": provider}
    )
    return services.execute(definition.pk, ProcessRun.Trigger.RUN_NOW)


def test_each_request_is_one_entry_with_the_contracts_columns(provider, subscribe, tqueue_sms):
    a = subscribe("BUNDLE_A", number="EX-1")
    b = subscribe("AGRICULTURE", number="EX-2")
    process(provider)
    requests = {str(r.uid): r for r in Req.objects.filter(provider=provider)}
    assert len(requests) == 5  # a pairing and two bundle components; a pairing and an Add

    result = export.export(PIPELINE, provider)

    (file,) = out_files(provider)
    assert (result.uploaded, result.records) == ([file.name], 5)
    assert file.state == TransferFile.State.UPLOADED
    rows = entries(tqueue_sms)
    assert [r["entry_id"] for r in rows] == [
        str(u) for u in Req.objects.order_by("pk").values_list("uid", flat=True)
    ]
    for row in rows:
        request = requests[row["entry_id"]]
        assert row["batch"] == file.name
        assert row["sequence"] == request.pk
        assert row["priority"] == request.priority == Req.Priority.NORMAL
        assert row["command"] == request.command
        assert row["subscription"] == request.subscription.number
        assert row["card_ca_id"] == card_of(request.subscription)
        assert json.loads(row["parameters"]) == request.parameters
        assert (row["status"], row["read_as"], row["read_done"]) == ("New", None, 0)
        assert row["created_at"] is not None
    assert {r["subscription"]: r["command"] for r in rows if r["command"] == "ADD_SUBSCRIPTION"}
    adds = [r for r in rows if r["command"] == "ADD_SUBSCRIPTION"]
    assert [(r["subscription"], json.loads(r["parameters"])["service_ca_id"]) for r in adds] == [
        ("EX-1", "GFA1"),
        ("EX-1", "EFA2"),
        ("EX-2", "AF1"),
    ]
    assert card_of(a) != card_of(b)

    # A second export (and the Write TQUEUE entries run) writes nothing twice.
    assert export.export(PIPELINE, provider).records == 0
    written = run("exset_write_tqueue", provider)
    assert written.status == ProcessRun.Status.COMPLETED
    assert written.message == "Exported 0 records in 0 batches."
    assert len(entries(tqueue_sms)) == 5


class Killed(Exception):
    """Stands for the worker dying right after the entries are written, before the batch is
    recorded."""


class KilledAfterWriting(Channel):
    def __init__(self, inner: Channel):
        self.inner = inner

    def stage(self, name, payload):
        self.inner.stage(name, payload)
        raise Killed(name)

    def close(self):
        self.inner.close()


def test_a_run_dying_between_writing_and_recording_writes_nothing_twice(
    provider, subscribe, tqueue_sms
):
    provider.parameters = {"max_records_per_file": 2}
    provider_settings.full_clean(provider)
    provider.save()
    for n in range(3):
        subscribe("AGRICULTURE", number=f"EX-K-{n}")
    process(provider)  # six requests: a pairing and an Add each

    with pytest.raises(Killed):
        export.export(PIPELINE, provider, connect=lambda p: KilledAfterWriting(tqueue.connect(p)))

    assert not out_files(provider).exists()  # nothing recorded: as if it had not happened
    first = entries(tqueue_sms)
    assert len(first) == 2  # but the SMS has the first batch's entries
    # The SMS may already be working on them.
    sms_sets(tqueue_sms, "Done", [first[0]["entry_id"]])

    result = export.export(PIPELINE, provider)

    files = list(out_files(provider))
    assert [f.records for f in files] == [2, 2, 2]
    assert result.records == 6
    rows = entries(tqueue_sms)
    all_uids = sorted(str(u) for u in Req.objects.values_list("uid", flat=True))
    assert sorted(r["entry_id"] for r in rows) == all_uids  # each request exactly once
    assert [r["batch"] for r in rows] == [f.name for f in files for _ in range(2)]
    assert rows[0]["status"] == "Done"  # left as the SMS made it
    assert export.export(PIPELINE, provider).records == 0
    assert len(entries(tqueue_sms)) == 6

    sms_sets(tqueue_sms, "Done", [r["entry_id"] for r in rows])
    assert responses.process_responses(PIPELINE, provider).completed == 6
    assert set(Req.objects.values_list("state", flat=True)) == {Req.State.COMPLETED}


def test_outcomes_are_read_back_once_and_a_rejection_rolls_back(provider, subscribe, tqueue_sms):
    a = subscribe("BUNDLE_A", number="EX-A")
    b = subscribe("AGRICULTURE", number="EX-B")
    c = subscribe("BABY", number="EX-C")
    process(provider)
    export.export(PIPELINE, provider)
    sms_sets(tqueue_sms, "Done", uids(a))
    sms_sets(tqueue_sms, "Error", uids(b), "CARD_BLOCKED", f"Card {card_of(b)} is blocked.")
    sms_sets(tqueue_sms, "Under Processing", uids(c))

    answers = run("exset_read_tqueue", provider)

    C, R, P = Req.State.COMPLETED, Req.State.REJECTED, Req.State.PENDING
    assert {r.state for r in Req.objects.filter(subscription=a)} == {C}
    assert list(a.services.values_list("authorized", flat=True)) == [True]
    assert set(a.installed_items.values_list("initialized", flat=True)) == {True}
    rejected = list(Req.objects.filter(subscription=b).order_by("pk"))
    assert [r.state for r in rejected] == [R, R]
    assert {r.error_code for r in rejected} == {"CARD_BLOCKED"}
    assert all(f"Card {card_of(b)} is blocked." in r.last_error for r in rejected)
    service = b.services.get()
    assert (service.state, service.authorized) == (SubscriptionService.State.NOT_EFFECTIVE, False)
    assert b.events.filter(action="provisioning_rollback").exists()
    assert {r.state for r in Req.objects.filter(subscription=c)} == {P}  # not finished yet

    assert answers.status == ProcessRun.Status.COMPLETED_WITH_ERRORS
    assert answers.message == (
        "Answered 5 (accepted 3, rejected 2) from 1 TQUEUE reading; 2 still waiting; "
        "2 errors (see the log)."
    )
    assert answers.counts["waiting"] == 2
    log = list(answers.error_log.values_list("subscription__number", "message"))
    assert log == [
        (
            "EX-B",
            f"{r.command} {r.uid} rejected by EXSET: CARD_BLOCKED Card {card_of(b)} is blocked.",
        )
        for r in rejected
    ]
    (file,) = out_files(provider)
    assert file.state == TransferFile.State.ANSWERED
    read = [r for r in entries(tqueue_sms) if r["read_as"]]
    assert {(r["read_as"], r["read_done"]) for r in read} == {(f"{file.name}.1", 1)}
    assert len(read) == 5

    # The SMS finishes C later: a second reading of the same batch.
    sms_sets(tqueue_sms, "Done", uids(c))
    later = run("exset_read_tqueue", provider)
    assert {r.state for r in Req.objects.filter(subscription=c)} == {C}
    assert later.message == (
        "Answered 2 (accepted 2, rejected 0) from 1 TQUEUE reading; 0 still waiting."
    )
    assert {r["read_as"] for r in entries(tqueue_sms)} == {f"{file.name}.1", f"{file.name}.2"}
    assert run("exset_read_tqueue", provider).message == (
        "Answered 0 (accepted 0, rejected 0) from 0 TQUEUE readings; 0 still waiting."
    )


class DiesBeforeMarkingRead(Channel):
    def __init__(self, inner: Channel):
        self.inner = inner

    def answers(self):
        return self.inner.answers()

    def fetch(self, name):
        return self.inner.fetch(name)

    def archive(self, name, *, refused):
        raise Killed(name)

    def close(self):
        self.inner.close()


def test_a_run_dying_after_applying_reads_the_same_rows_and_applies_nothing_twice(
    provider, subscribe, tqueue_sms
):
    a = subscribe("AGRICULTURE", number="EX-D")
    process(provider)
    export.export(PIPELINE, provider)
    sms_sets(tqueue_sms, "Done", uids(a))

    with pytest.raises(Killed):
        responses.process_responses(
            PIPELINE, provider, connect=lambda p: DiesBeforeMarkingRead(tqueue.connect(p))
        )

    assert {r.state for r in Req.objects.filter(subscription=a)} == {Req.State.COMPLETED}
    assert {(r["read_as"] is not None, r["read_done"]) for r in entries(tqueue_sms)} == {(True, 0)}
    (ledger,) = TransferFile.objects.filter(provider=provider, direction="in")
    assert ledger.state == TransferFile.State.PROCESSED

    again = responses.process_responses(PIPELINE, provider)

    # The same reading, the same rows: only marked read now.
    assert (again.files, again.completed, again.problems) == (0, 0, [])
    assert {r["read_done"] for r in entries(tqueue_sms)} == {1}
    assert TransferFile.objects.filter(provider=provider, direction="in").count() == 1


def test_an_entry_unanswered_past_the_deadline_fails_with_the_reason(
    provider, subscribe, tqueue_sms
):
    provider.parameters = {"answer_deadline_hours": 4}
    provider_settings.full_clean(provider)
    provider.save()
    a = subscribe("AGRICULTURE", number="EX-L")
    process(provider)
    written = timezone.now() - timedelta(hours=6)
    export.export(PIPELINE, provider, now=written)
    (first, second) = uids(a)
    sms_sets(tqueue_sms, "Done", [first])

    result = responses.process_responses(PIPELINE, provider)

    (file,) = out_files(provider)
    at = timezone.localtime(written).strftime("%Y-%m-%d %H:%M")
    assert (result.completed, result.expired) == (1, 1)
    assert result.problems == [
        (
            None,
            f"{file.name}: 1 requests had no answer within 4 hours of being written ({at}) "
            "and are now Failed.",
        )
    ]
    failed = Req.objects.get(uid=uuid.UUID(second))
    assert failed.state == Req.State.FAILED
    assert failed.last_error == (
        f"EXSET did not answer within 4 hours of TQUEUE batch {file.name} being written ({at}). "
        "Retry it to send it again in a new batch."
    )
    assert Req.objects.get(uid=uuid.UUID(first)).state == Req.State.COMPLETED


def test_the_processing_run_writes_each_chunks_entries(
    transactional_db, provider, subscribe, tqueue_sms, settings
):
    settings.RUN_CHUNK_SIZE = 1  # a subscription per chunk: a batch per chunk
    a = subscribe("AGRICULTURE", number="EX-P-1")
    b = subscribe("BABY", number="EX-P-2")

    processing = run("process_provisioning_requests", provider)

    assert processing.status == ProcessRun.Status.COMPLETED
    files = list(out_files(provider))
    assert [f.process_run_id for f in files] == [processing.pk, processing.pk]
    assert [set(members.requests_in(f).values_list("subscription", flat=True)) for f in files] == [
        {a.pk},
        {b.pk},
    ]
    rows = entries(tqueue_sms)
    assert sorted(r["entry_id"] for r in rows) == sorted(uids(a) + uids(b))
    assert export.waiting(provider) == 0


def test_each_chunks_export_reads_on_and_what_commits_late_below_waits_for_the_write_run(
    transactional_db, provider, subscribe, tqueue_sms
):
    """A run's chunks write their own requests without reading the earlier chunks' again; a
    request committed late with an id below what they read is left for the write run (a new
    run reads from the start)."""
    adapter = registry.adapter_for(provider)
    definition = RunDefinition.objects.create(
        name="Process", run_type="process_provisioning_requests", provider=provider
    )
    first = ProcessRun.objects.create(definition=definition, trigger=ProcessRun.Trigger.RUN_NOW)

    def message():
        return create_request(
            provider,
            messages.BROADCAST_INFOCAS,
            {"message": "Hello"},
            trigger=Req.Trigger.UTILITY,
            deliver_now=False,
        )

    held = message().pk
    Req.objects.filter(pk=held).delete()  # its id handed out, its transaction not committed yet
    a = subscribe("AGRICULTURE", number="EX-K-1")
    process(provider)
    assert adapter.after_chunk(first.pk) == []
    late = message()
    Req.objects.filter(pk=late.pk).update(id=held)  # committed now, below the first chunk's
    b = subscribe("BABY", number="EX-K-2")
    process(provider)

    assert adapter.after_chunk(first.pk) == []

    assert sorted(r["entry_id"] for r in entries(tqueue_sms)) == sorted(uids(a) + uids(b))
    assert export.waiting(provider) == 1
    second = ProcessRun.objects.create(definition=definition, trigger=ProcessRun.Trigger.RUN_NOW)
    assert adapter.after_chunk(second.pk) == []
    assert len(entries(tqueue_sms)) == len(uids(a) + uids(b)) + 1
    assert str(late.uid) in {r["entry_id"] for r in entries(tqueue_sms)}
    assert export.waiting(provider) == 0


def test_a_processing_run_that_cannot_write_leaves_it_to_the_write_run(
    transactional_db, provider, subscribe, tqueue_sms
):
    url = provider.connection["database_url"]
    provider.connection = {"database_url": "mysql://nobody@127.0.0.1:1/sms", "table": "TQUEUE"}
    provider.save()
    subscribe("AGRICULTURE", number="EX-U-1")

    processing = run("process_provisioning_requests", provider)

    assert processing.status == ProcessRun.Status.COMPLETED_WITH_ERRORS
    (problem,) = processing.error_log.values_list("message", flat=True)
    assert problem.startswith("Could not export now (MySQL database sms at 127.0.0.1:1: cannot")
    assert problem.endswith("the next export run sends them.")
    assert entries(tqueue_sms) == []
    assert export.waiting(provider) == 2

    provider.connection = {"database_url": url, "table": "TQUEUE"}
    provider.save()
    written = run("exset_write_tqueue", provider)
    assert written.message == "Exported 2 records in 1 batch."
    assert len(entries(tqueue_sms)) == 2


def test_check_says_what_waits_and_what_is_wrong(provider, tqueue_sms, tqueue_url, monkeypatch):
    adapter = registry.adapter_for(provider)
    label = tqueue.parse_url(tqueue_url).label
    health = adapter.check()
    assert (health.ok, health.message) == (
        True,
        f"Connected to the {label}; table TQUEUE has the TQUEUE columns, 0 entries waiting New.",
    )

    provider.connection = {**provider.connection, "table": "NOT_THERE"}
    health = registry.adapter_for(provider).check()
    assert health.ok is False
    assert health.message.startswith(f"{label}: cannot read table NOT_THERE: ")

    provider.connection = {
        **provider.connection,
        "table": "TQUEUE",
        "password_env": "CRM_SECRET_EXSET_UNSET",
    }
    monkeypatch.delenv("CRM_SECRET_EXSET_UNSET", raising=False)
    health = registry.adapter_for(provider).check()
    assert (health.ok, health.message) == (
        False,
        "EXSET SMS cannot be reached (secret variable): The SMS database password variable CRM_SECRET_EXSET_UNSET "
        "is not set in this worker's environment.",
    )


def test_an_unreachable_sms_database_is_named_and_nothing_is_lost(provider, subscribe, tqueue_sms):
    subscribe("AGRICULTURE", number="EX-N-1")
    process(provider)
    provider.connection = {"database_url": "postgresql://exset@127.0.0.1:1/sms", "table": "TQUEUE"}
    provider.save()

    with pytest.raises(TransportError) as failed:
        export.export(PIPELINE, provider)

    assert str(failed.value).startswith("PostgreSQL database sms at 127.0.0.1:1: cannot connect: ")
    assert not out_files(provider).exists()
    assert export.waiting(provider) == 2
    health = registry.adapter_for(provider).check()
    assert health.ok is False
    assert "PostgreSQL database sms at 127.0.0.1:1: cannot connect" in health.message
