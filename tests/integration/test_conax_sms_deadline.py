"""Conax SMS answer deadline: requests in an uploaded file that the CAS never answers become
Failed after the provider's deadline, with a reason naming the file and the deadline, on a
controlled clock; a late answer still completes them, and a retry sends them in a new file."""

from datetime import timedelta

import pytest
from django.utils import timezone

from providers import batch, delivery, provider_settings
from providers.conax_sms.files import PIPELINE
from providers.file_delivery import export, members, responses
from providers.models import ProvisioningRequest, TransferFile
from runs import services
from runs.models import ProcessRun, RunDefinition
from tests.fixtures import out_files

Req = ProvisioningRequest


@pytest.fixture
def catalog(sms_catalog):  # this module's catalogue, where ``subscribe`` subscribes, is Conax SMS
    return sms_catalog


def error_handling_run(provider) -> ProcessRun:
    definition, _ = RunDefinition.objects.get_or_create(
        name="Conax SMS error handling",
        defaults={"run_type": "conax_sms_error_handling", "provider": provider},
    )
    return services.execute(definition.pk, ProcessRun.Trigger.RUN_NOW)


@pytest.fixture
def unanswered(sms, subscribe, conax_sms_simulator):
    """Two subscribers' requests exported six hours ago under a four-hour deadline; the CAS
    took the file and has not answered."""
    sms.parameters = {"answer_deadline_hours": 4}
    provider_settings.full_clean(sms)
    sms.save()
    subscribe("AGRICULTURE", number="ZX-DL-1")
    subscribe("BABY", number="ZX-DL-2")
    batch.reconcile(batch.Selection(sms), trigger_name="process_provisioning_requests")
    sent = timezone.now() - timedelta(hours=6)
    export.export(PIPELINE, sms, now=sent)
    assert conax_sms_simulator.cas.pick_up() == [out_files(sms).get().name]
    return sent


def test_the_deadline_counts_from_the_upload(sms, unanswered):
    sent = unanswered

    early = responses.process_responses(PIPELINE, sms, now=sent + timedelta(hours=3, minutes=59))

    assert (early.expired, early.problems) == (0, [])
    assert set(Req.objects.values_list("state", flat=True)) == {Req.State.PENDING}

    late = responses.process_responses(PIPELINE, sms, now=sent + timedelta(hours=4, minutes=1))

    assert late.expired == 4
    assert set(Req.objects.values_list("state", flat=True)) == {Req.State.FAILED}


def test_unanswered_requests_fail_with_the_file_and_deadline_named(sms, unanswered):
    file = out_files(sms).get()
    uploaded = timezone.localtime(unanswered).strftime("%Y-%m-%d %H:%M")

    run = error_handling_run(sms)

    assert run.status == ProcessRun.Status.COMPLETED_WITH_ERRORS
    assert list(run.error_log.values_list("message", flat=True)) == [
        f"{file.name}: 4 requests had no answer within 4 hours of the upload ({uploaded}) "
        "and are now Failed."
    ]
    reasons = set(Req.objects.values_list("state", "last_error"))
    assert reasons == {
        (
            Req.State.FAILED,
            f"Conax did not answer within 4 hours of request file {file.name} being uploaded "
            f"({uploaded}). Retry it to send it again in a new file.",
        )
    }
    # Once: the next run has nothing more to fail.
    again = error_handling_run(sms)
    assert (again.status, again.errors) == (ProcessRun.Status.COMPLETED, 0)


def test_a_late_answer_still_completes_them(sms, conax_sms_simulator, unanswered):
    error_handling_run(sms)
    assert set(Req.objects.values_list("state", flat=True)) == {Req.State.FAILED}

    conax_sms_simulator.cas.answer()  # the CAS wakes up
    run = error_handling_run(sms)

    assert (run.status, run.examined) == (ProcessRun.Status.COMPLETED, 4)
    assert set(Req.objects.values_list("state", flat=True)) == {Req.State.COMPLETED}
    # The file was closed at the deadline; the late answer does not reopen it.
    assert out_files(sms).get().state == TransferFile.State.PROCESSED


def test_retried_they_go_out_in_a_new_file(sms, conax_sms_simulator, unanswered):
    first = out_files(sms).get()
    error_handling_run(sms)
    conax_sms_simulator.cas.inbox.clear()  # the CAS lost the first file: it will never answer it

    assert delivery.retry(Req.objects.all()) == 4
    result = export.export(PIPELINE, sms)

    second = out_files(sms).last()
    assert second != first
    assert result.uploaded == [second.name]
    assert members.requests_in(second).count() == 4
    conax_sms_simulator.cas.run_once()
    assert conax_sms_simulator.cas.deliveries == {first.name: 1, second.name: 1}
    responses.process_responses(PIPELINE, sms)
    assert set(Req.objects.values_list("state", flat=True)) == {Req.State.COMPLETED}


def test_the_deadline_is_checked_even_when_the_server_is_down(sms, unanswered):
    sms.connection = {**sms.connection, "port": 1}  # nothing listens there
    sms.save()

    run = error_handling_run(sms)

    assert run.status == ProcessRun.Status.FAILED
    assert "Cannot connect to SFTP server" in run.message
    assert set(Req.objects.values_list("state", flat=True)) == {Req.State.FAILED}
    assert "had no answer within 4 hours" in run.error_log.order_by("pk").first().message
