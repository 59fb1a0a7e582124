"""The EXSET SMS figures' small version: the processing run on a real batch worker writing TQUEUE
as it goes, and the TQUEUE writing into PostgreSQL and MariaDB, each SMS database made and
dropped by the bench. Nothing here asserts a speed; the figures are read from the JSON the bench
writes."""

import os

import pytest
from django.db import connection

from bench import exset
from bench.report import Report
from providers import batch
from providers.exset import commands as ec
from providers.exset import tqueue
from providers.models import ProvisioningRequest, TransferFile
from runs.models import ProcessRun
from tests.bench.test_bench import figures_in
from tests.fixtures import TQUEUE_SERVERS

pytestmark = [pytest.mark.django_db(transaction=True)]

Req = ProvisioningRequest
POSTGRES = connection.vendor == "postgresql"
SERVERS = exset.Servers(
    TQUEUE_SERVERS["postgresql"], TQUEUE_SERVERS["mariadb"], f"exset_bench_test_{os.getpid()}"
)


def written(report: Report, tmp_path) -> dict[str, dict]:
    report.write(tmp_path / "bench.json")
    return figures_in(tmp_path / "bench.json")


def mariadb_answers() -> bool:
    try:
        exset.admin_connection(SERVERS.url("mariadb")).close()
    except Exception:
        return False
    return True


def databases_left() -> list[str]:
    """The bench's SMS databases still on the servers (none once a figure is measured)."""
    left = []
    for kind in ("postgresql", "mariadb") if mariadb_answers() else ("postgresql",):
        admin = exset.admin_connection(SERVERS.url(kind))
        with admin.cursor() as cursor:
            if kind == "postgresql":
                cursor.execute(
                    "SELECT datname FROM pg_database WHERE datname = %s", [SERVERS.database]
                )
            else:
                cursor.execute("SHOW DATABASES LIKE %s", [SERVERS.database])
            left += [f"{kind}: {name}" for (name,) in cursor.fetchall()]
        admin.close()
    return left


@pytest.mark.worker
def test_the_processing_run_writes_what_is_out_of_step_to_tqueue_as_it_goes(tmp_path):
    report = Report(subscriptions=2000)
    run = exset.processing_run(report, tmp_path, subscriptions=2000, servers=SERVERS)

    [figure] = written(report, tmp_path).values()
    assert figure["name"] == "Process Provisioning Requests (EXSET SMS), 1 worker process"
    assert (figure["unit"], figure["direction"], figure["target"]) == ("s", "max", 60)
    assert figure["value"] > 0
    assert run.status == ProcessRun.Status.COMPLETED
    assert run.definition.run_type == "process_provisioning_requests"
    assert run.definition.provider.type == "exset"
    counts = figure["counts"]
    # 5 % of the load put out of step: 1 in 20 subscriptions.
    assert (counts["examined"], counts["at_provider"], counts["out_of_step"]) == (2000, 2000, 100)
    assert counts["created"] == run.created == sum(counts["by_command"].values())
    assert {ec.ADD, ec.REMOVE, ec.RENEW} <= set(counts["by_command"])
    # Every request the run made is an entry in TQUEUE when it ends, each once, in the batches
    # its chunks recorded; nothing waits for the Write TQUEUE entries run.
    assert counts["entries"] == run.created
    assert counts["batches"] == counts["batches_written"] > 0
    assert (counts["missing"], counts["waiting"]) == (0, 0)
    if POSTGRES:
        # By hand, the same requests: as many rows, found and written in one statement.
        assert figure["floor"] > 0
        assert counts["requests_by_hand"] == run.created
    else:
        assert figure["floor"] is None and counts["requests_by_hand"] is None

    # Cleaned up: no request, no batch, no SMS database left; the same requests are out of
    # step again, as the preview (which writes nothing) says.
    provider = run.definition.provider
    assert not Req.objects.filter(provider=provider).exists()
    assert not TransferFile.objects.filter(provider=provider).exists()
    assert databases_left() == []
    preview = list(batch.preview(batch.Selection(provider)))
    assert sum(len(row.requests) for row in preview) == run.created


def test_tqueue_writing_puts_every_request_once_into_postgresql_and_mariadb(tmp_path):
    provider = exset.ensure_provider()
    provider.parameters = {"max_records_per_file": 2000}
    provider.save()
    report = Report(subscriptions=0)

    exset.tqueue_writing(report, records=5000, servers=SERVERS, say=lambda _: None)

    figures = written(report, tmp_path)
    kinds = ["PostgreSQL", "MariaDB"] if mariadb_answers() else ["PostgreSQL"]
    assert list(figures) == [f"EXSET TQUEUE writing, {kind}" for kind in kinds]
    for kind in kinds:
        figure = figures[f"EXSET TQUEUE writing, {kind}"]
        assert (figure["unit"], figure["direction"]) == ("entries/s", "min")
        assert figure["target"] == (50000 if kind == "PostgreSQL" else None)
        assert figure["value"] > 0
        # Read back from the SMS's table: each request one entry, in the batches recorded.
        assert figure["counts"] == {
            "pending": 5000,
            "written": 5000,
            "failed": 0,
            "batches": 3,
            "max_entries_per_batch": 2000,
            "entries": 5000,
            "batches_in_tqueue": 3,
            "missing": 0,
        }
        assert (figure["floor"] is not None) == POSTGRES
    if mariadb_answers():
        assert report.notes == []
    else:
        (note,) = report.notes
        assert note.startswith("EXSET TQUEUE writing, MariaDB: not measured.")

    assert not Req.objects.filter(provider=provider).exists()
    assert not TransferFile.objects.filter(provider=provider).exists()
    assert databases_left() == []


def test_without_mariadb_its_figure_is_left_out_with_a_note(tmp_path):
    servers = exset.Servers(SERVERS.postgresql, "mysql://root@127.0.0.1:1", SERVERS.database)
    report = Report(subscriptions=0)
    said = []

    exset.tqueue_writing(report, records=300, servers=servers, say=said.append)

    figures = written(report, tmp_path)
    assert list(figures) == ["EXSET TQUEUE writing, PostgreSQL"]
    assert figures["EXSET TQUEUE writing, PostgreSQL"]["counts"]["entries"] == 300
    (note,) = report.notes
    assert note.startswith(
        "EXSET TQUEUE writing, MariaDB: not measured. No MySQL server at 127.0.0.1:1: "
    )
    assert said == [note]


def test_the_bench_names_its_sms_databases_after_its_own():
    name = connection.settings_dict["NAME"]
    expected = "exset_bench"
    if POSTGRES:
        expected = "exset_" + name.removeprefix("test_").removeprefix("crm_")
    assert exset.default_database() == expected
    assert tqueue.parse_url(exset.Servers().url("postgresql")).database == expected
