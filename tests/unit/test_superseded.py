"""Failed requests a later reset planned again are Superseded: they leave the Failed view and
cannot be retried (that would send twice what the reset sends); one-off commands a reset does
not plan (messages) stay Failed."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from providers import batch, delivery
from providers.answers import record_answer
from providers.models import ProvisioningRequest
from runs import services
from runs.models import ProcessRun, RunDefinition
from utilities.builtin import RESET_SUBSCRIPTION

Req = ProvisioningRequest
LIST = reverse("admin:providers_provisioningrequest_changelist")


def fail_pending(sub) -> list[int]:
    """The provider never answered: every Pending request of ``sub`` gave up."""
    pending = list(Req.objects.filter(subscription=sub, state="pending").order_by("pk"))
    for request in pending:
        delivery.fail(request, "Connection refused (attempt 8 of 8)")
    return [r.pk for r in pending]


def a_failed_message(sub, catalog) -> Req:
    return Req.objects.create(
        command="SEND_MESSAGE",
        provider=catalog.provider,
        distributor=catalog.main,
        subscription=sub,
        trigger=Req.Trigger.UTILITY,
        state=Req.State.FAILED,
        last_error="Connection refused",
    )


@pytest.fixture
def failed_sub(subscribe, catalog):
    sub = subscribe("BUNDLE_A")
    return sub, fail_pending(sub), a_failed_message(sub, catalog)


def test_reset_single_subscription_supersedes_what_it_sends_again(failed_sub, catalog, operator):
    sub, failed, message = failed_sub

    outcome = RESET_SUBSCRIPTION.run(catalog.provider, sub, {}, operator, 5, False)

    assert sorted(Req.objects.filter(pk__in=failed).values_list("state", flat=True)) == [
        "superseded"
    ] * len(failed)
    # The reset sends each again, new requests with their own ids.
    assert [r.command for r in outcome.requests] == list(
        Req.objects.filter(pk__in=failed).order_by("pk").values_list("command", flat=True)
    )
    assert f"{len(failed)} Failed request(s) superseded" in outcome.message
    # Kept: why it failed.
    assert set(Req.objects.filter(pk__in=failed).values_list("last_error", flat=True)) == {
        "Connection refused (attempt 8 of 8)"
    }
    # A message is not something a reset sends: still Failed, still retriable.
    assert Req.objects.get(pk=message.pk).state == "failed"
    assert delivery.retry(Req.objects.filter(pk__in=failed)) == 0


def test_a_reset_with_nothing_to_send_supersedes_too(subscribe, catalog):
    sub = subscribe("BUNDLE_A")
    for request in Req.objects.filter(subscription=sub, state="pending"):
        record_answer(request, accepted=True)
    # A late duplicate of what the platform already holds failed; the reset finds it in step.
    stale = Req.objects.filter(subscription=sub, operation="activate").first()
    Req.objects.filter(pk=stale.pk).update(state="failed", last_error="timed out")

    done = batch.reset(sub, provider=catalog.provider)

    assert list(done.requests) == [] and done.superseded == 1
    assert Req.objects.get(pk=stale.pk).state == "superseded"


def test_a_reset_run_supersedes_only_what_it_planned(subscribe, catalog):
    chosen = subscribe("BUNDLE_A")
    other = subscribe("AGRICULTURE")
    chosen_failed, other_failed = fail_pending(chosen), fail_pending(other)

    # A run over part of the table: the chosen subscription's ids only.
    result = batch.reconcile(
        batch.Selection(catalog.provider),
        trigger_name="reset_subscriptions",
        id_range=(chosen.pk, chosen.pk + 1),
    )

    assert result.superseded == len(chosen_failed)
    assert set(Req.objects.filter(pk__in=chosen_failed).values_list("state", flat=True)) == {
        "superseded"
    }
    assert set(Req.objects.filter(pk__in=other_failed).values_list("state", flat=True)) == {
        "failed"
    }


def test_superseded_requests_leave_the_failed_view(client, operator, failed_sub, catalog):
    sub, failed, message = failed_sub
    batch.reset(sub, provider=catalog.provider)
    client.force_login(operator)

    html = client.get(LIST, {"state__exact": "failed"}).content.decode()
    assert f"/{message.pk}/change/" in html
    assert not any(f"/{pk}/change/" in html for pk in failed)

    page = client.get(reverse("admin:providers_provisioningrequest_change", args=[failed[0]]))
    text = page.content.decode()
    assert 'id="superseded-notice"' in text and "a later reset" in text
    assert 'id="retry-request"' not in text


def test_a_reset_runs_summary_says_what_it_superseded(subscribe, catalog):
    sub = subscribe("AGRICULTURE")
    failed = fail_pending(sub)
    definition = RunDefinition.objects.create(
        name="Nightly reset",
        run_type="reset_subscriptions",
        provider=catalog.provider,
        run_at=timezone.now() + timedelta(hours=1),
    )

    run = services.execute(definition.pk, ProcessRun.Trigger.RUN_NOW)

    assert run.message.endswith(f"; superseded {len(failed)} Failed requests.")
    assert run.counts["superseded"] == len(failed)
