"""EXSET SMS with real workers: two workers share a Process Provisioning Requests run part by
part, each chunk writing its TQUEUE entries as it commits, the exporters taking turns; every
request is one entry in one recorded batch, on each kind of SMS database (the SQLite file
shared by the processes in WAL mode)."""

from collections import Counter

import pytest

from providers.file_delivery import export, members
from providers.models import ProvisioningRequest, TransferFile
from runs import services
from runs.models import ProcessRun, RunDefinition
from tests import workers
from tests.fixtures import out_files

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]
Req = ProvisioningRequest


@pytest.fixture
def catalog(exset):  # this module's catalogue, where ``subscribe`` subscribes, is EXSET SMS
    return exset


def test_two_workers_write_each_chunks_entries_once(exset, subscribe, tqueue_sms, tmp_path):
    for n in range(24):
        subscribe("AGRICULTURE", number=f"EX-W-{n:02d}")
    definition = RunDefinition.objects.create(
        name="Process", run_type="process_provisioning_requests", provider=exset.provider
    )
    small = {"RUN_PART_SIZE": "6", "RUN_CHUNK_SIZE": "2"}
    pair = [workers.start(tmp_path, name=f"w{i}", **small) for i in (1, 2)]
    logs = [tmp_path / "w1.log", tmp_path / "w2.log"]
    try:
        workers.wait_until(
            lambda: all(p.exists() and " ready." in p.read_text() for p in logs),
            seconds=60,
            what="both workers ready",
            logs=logs,
        )
        services.run_now(definition)
        workers.wait_until(
            lambda: definition.process_runs.filter(status="completed").exists(),
            seconds=120,
            what="the run",
            logs=logs,
        )
    finally:
        for worker in pair:
            workers.stop(worker)

    (run,) = definition.process_runs.all()
    assert (run.status, run.created, run.errors) == (ProcessRun.Status.COMPLETED, 48, 0)
    assert len({p.worker for p in run.parts.all()}) == 2
    cursor = tqueue_sms.execute(
        f"SELECT {tqueue_sms.column('entry_id')}, {tqueue_sms.column('batch')} "
        f"FROM {tqueue_sms.table}"
    )
    rows = cursor.fetchall()
    tqueue_sms.conn.commit()
    uids = [str(u) for u in Req.objects.values_list("uid", flat=True)]
    assert sorted(entry for entry, _ in rows) == sorted(uids)  # each request once
    files = list(out_files(exset.provider))
    assert {f.state for f in files} == {TransferFile.State.UPLOADED}
    assert {f.process_run_id for f in files} == {run.pk}
    # Each request in exactly one recorded batch, the one its entry names.
    batch_of = {}
    for file in files:
        for pk, uid in members.requests_in(file).values_list("pk", "uid"):
            assert pk not in batch_of
            batch_of[str(uid)] = file.name
    assert dict(rows) == batch_of
    # Written as the run went: a batch per chunk, or a few chunks' when an exporter found
    # another worker's chunk committed too.
    assert len(files) >= 48 // 8
    assert sum(Counter(batch_of.values()).values()) == sum(f.records for f in files) == 48
    assert export.waiting(exset.provider) == 0
