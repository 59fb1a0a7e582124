"""Archive: old finished requests leave the working table and stay queryable."""

from datetime import timedelta

from django.core.management import call_command
from django.utils import timezone

from providers.answers import record_answer
from providers.models import ArchivedRequest, ProvisioningRequest

Req = ProvisioningRequest


def test_finished_requests_older_than_n_days_move_to_the_archive(subscribe, capsys):
    old_sub, new_sub = subscribe("BUNDLE_A"), subscribe("AGRICULTURE")
    pairing, gfa1, efa2 = old_sub.provisioning_requests.order_by("pk")
    record_answer(pairing, accepted=True)
    record_answer(gfa1, accepted=False, error_code="E1", error_description="No such package")
    for r in new_sub.provisioning_requests.all():
        record_answer(r, accepted=True)
    long_ago = timezone.now() - timedelta(days=40)
    Req.objects.filter(subscription=old_sub).update(created_at=long_ago)

    call_command("archive_requests", "--older-than-days", "30")

    assert capsys.readouterr().out.strip() == "Archived 2 requests."
    # The still-pending EFA2 stays (and whatever its rejection caused); recent ones stay too.
    assert set(Req.objects.filter(subscription=old_sub).values_list("pk", flat=True)) >= {efa2.pk}
    assert not Req.objects.filter(pk__in=[pairing.pk, gfa1.pk]).exists()
    archived = ArchivedRequest.objects.get(uid=gfa1.uid)
    assert (archived.final_state, archived.error_code, archived.last_error) == (
        "rejected",
        "E1",
        "No such package",
    )
    assert archived.subscription_number == old_sub.number
    assert archived.card_ca_id == old_sub.installed_items.get(kind="smartcard").ca_id
    assert archived.parameters["service_ca_id"] == "GFA1"
    assert new_sub.provisioning_requests.count() == 2
