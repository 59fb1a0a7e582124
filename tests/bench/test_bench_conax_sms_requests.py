"""The export benchmark's data and entry point: ``conax_sms_requests.pending_requests`` makes Pending
requests of every Conax SMS command, and the shared export sends them all, Express
first, each once; requests that commit late with lower ids are not lost."""

from bench import conax_sms_requests
from providers import provider_settings
from providers.conax_sms import file_format as ff
from providers.conax_sms.files import PIPELINE
from providers.file_delivery import export
from providers.models import ProvisioningRequest
from tests.fixtures import out_files, request_files
from tests.integration.test_conax_sms_export import bulk_requests

Req = ProvisioningRequest


def test_pending_requests_are_exported_by_export_pending(sms, conax_sms_simulator):
    sms.parameters = {"max_records_per_file": 120}
    provider_settings.full_clean(sms)
    sms.save()

    assert conax_sms_requests.pending_requests(sms, 300) == 300
    assert export.export(PIPELINE, sms).records == 300

    files = list(out_files(sms))
    assert [f.records for f in files] == [120, 120, 60]
    records = [r for lines in request_files(conax_sms_simulator).values() for r in lines]
    assert {r.command for r in records} == {ff.ADD, ff.CANCEL, ff.RENEW, ff.PAIR, ff.MESSAGE}
    express = set(Req.objects.filter(priority=Req.Priority.EXPRESS).values_list("uid", flat=True))
    assert len(express) == 3
    assert {r.uid for r in records[:3]} == {str(u) for u in express}
    message = next(r for r in records if r.command == ff.MESSAGE)
    assert ff.message_text(message).endswith("is ready | 100% paid?")  # escaped, and back
    conax_sms_simulator.cas.run_once()
    assert len(conax_sms_simulator.cas.received) == 300
    assert set(conax_sms_simulator.cas.received.values()) == {1}
    assert export.export(PIPELINE, sms).records == 0


def test_a_request_committed_late_with_a_lower_id_goes_in_the_next_file(sms, conax_sms_simulator):
    """Ids are handed out before commit, so a request may appear below ids already exported:
    the export keeps no high-water mark, it looks for every waiting request each run."""
    bulk_requests(sms, 3)
    lowest = Req.objects.order_by("pk").first().pk
    Req.objects.filter(pk=lowest).delete()  # as if its transaction had not committed yet
    assert export.export(PIPELINE, sms).records == 2
    bulk_requests(sms, 1)
    Req.objects.filter(pk=Req.objects.order_by("-pk").first().pk).update(id=lowest)

    assert export.export(PIPELINE, sms).records == 1

    second = out_files(sms).last()
    assert [r.uid for r in request_files(conax_sms_simulator)[second.name]] == [
        str(Req.objects.get(pk=lowest).uid)
    ]
