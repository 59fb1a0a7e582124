"""The Conax SMS figures' small version: the processing run on a real batch worker, and the file
export over SFTP to the simulator as a process of its own, on the suite's database. Nothing here
asserts a speed; the figures are read from the JSON the bench writes."""

import pytest
from django.db import connection

from bench import conax_sms
from bench.report import Report
from providers import batch
from providers.conax_sms import file_format as ff
from providers.models import ProvisioningRequest, TransferFile
from runs.models import ProcessRun
from tests.bench.test_bench import figures_in

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]

Req = ProvisioningRequest
POSTGRES = connection.vendor == "postgresql"


def written(report: Report, tmp_path) -> dict:
    report.write(tmp_path / "bench.json")
    [figure] = figures_in(tmp_path / "bench.json").values()
    return figure


def test_the_processing_run_creates_what_is_out_of_step_renewals_included(tmp_path):
    report = Report(subscriptions=2000)
    run = conax_sms.processing_run(report, tmp_path, subscriptions=2000)

    figure = written(report, tmp_path)
    assert figure["name"] == "Process Provisioning Requests (Conax SMS), 1 worker process"
    assert (figure["unit"], figure["direction"], figure["target"]) == ("s", "max", 60)
    assert figure["value"] > 0
    assert run.status == ProcessRun.Status.COMPLETED
    assert run.definition.run_type == "process_provisioning_requests"
    assert run.definition.provider.name == conax_sms.PROVIDER
    assert run.definition.provider.type == "conax_sms"
    counts = figure["counts"]
    # 5 % of the load put out of step: 1 in 20 subscriptions.
    assert (counts["examined"], counts["at_provider"], counts["out_of_step"]) == (2000, 2000, 100)
    assert counts["created"] == run.created == sum(counts["by_operation"].values())
    assert {"activate", "deactivate", "renew"} <= set(counts["by_operation"])
    assert counts["pool_processes"] == 1
    if POSTGRES:
        # By hand, the same requests: as many rows, found and written in one statement.
        assert figure["floor"] > 0
        assert counts["requests_by_hand"] == run.created
    else:
        assert figure["floor"] is None and counts["requests_by_hand"] is None

    # Cleaned up: the run's requests are gone, so the same requests are out of step again,
    # as the preview (which writes nothing) says.
    assert not Req.objects.filter(process_run=run).exists()
    provider = run.definition.provider
    assert not Req.objects.filter(provider=provider).exists()
    preview = list(batch.preview(batch.Selection(provider)))
    assert sum(len(row.requests) for row in preview) == run.created
    assert "RENEW_SUBSCRIPTION" in {r["command"] for row in preview for r in row.requests}


def test_the_export_uploads_every_request_once_to_the_simulator(tmp_path):
    provider = conax_sms.ensure_provider()
    provider.parameters = {"max_records_per_file": 2000}
    provider.save()
    report = Report(subscriptions=0)
    raw = conax_sms.export(report, tmp_path, records=5000, keep_files=True)

    figure = written(report, tmp_path)
    assert figure["name"] == "Conax SMS file export"
    assert (figure["unit"], figure["direction"], figure["target"]) == ("records/s", "min", 50000)
    assert figure["value"] > 0
    assert figure["counts"] == {
        "pending": 5000,
        "exported": 5000,
        "files": 3,
        "max_records_per_file": 2000,
        "uploaded": 3,
        "files_at_simulator": 3,
        "records_at_simulator": 5000,
        "missing": 0,
    }

    # What the simulator's SFTP server holds: the files, whole, each request once.
    directory = raw["directory"]
    on_server = sorted(p.name for p in directory.iterdir())
    assert on_server == raw["names"] == [ff.request_file_name(provider.pk, n) for n in (1, 2, 3)]
    records = [
        r for name in on_server for r in ff.parse_request((directory / name).read_bytes())[1]
    ]
    assert [len(ff.parse_request((directory / n).read_bytes())[1]) for n in on_server] == [
        2000,
        2000,
        1000,
    ]
    assert len({r.uid for r in records}) == 5000
    assert {r.command for r in records} == {ff.ADD, ff.CANCEL, ff.RENEW, ff.PAIR, ff.MESSAGE}
    floor_files = sorted((directory.parent / "bench-floor").glob("*.req"))
    if POSTGRES:
        assert figure["floor"] > 0
        # As many files of the same sizes, written by hand.
        assert [p.stat().st_size for p in floor_files] == [
            (directory / name).stat().st_size for name in on_server
        ]
    else:
        assert figure["floor"] is None
        assert floor_files == []

    # Cleaned up: no request and no file record left at the provider.
    assert not Req.objects.filter(provider=provider).exists()
    assert not TransferFile.objects.filter(provider=provider).exists()
