"""generate_load: realistic data for the benchmark, written straight into the tables."""

from datetime import UTC, date, datetime, time

import pytest
from django.core.management import call_command
from django.utils import timezone

from bench import load
from providers import batch
from providers.conax_sms.adapter import renewal_due
from subscriptions.models import InstalledItem, Subscription, SubscriptionService

pytestmark = pytest.mark.django_db


def test_it_makes_every_state_and_leaves_the_chosen_share_out_of_step(catalog):
    made = load.generate(3000, drift=0.1)
    assert 0.07 * 3000 <= made.drifted <= 0.13 * 3000

    subs = Subscription.objects.filter(number__startswith="LD-")
    assert subs.count() == 3000
    assert set(subs.values_list("state", flat=True)) == set(Subscription.State.values)
    services = SubscriptionService.objects.filter(subscription__in=subs)
    assert set(services.values_list("state", flat=True)) >= {
        "effective", "short_term_effective", "not_effective", "in_resting",
        "short_term_not_effective", "cancelled", "swapped", "regretted", "removed",
    }  # fmt: skip
    viewing_points = {
        n
        for n in InstalledItem.objects.filter(kind="smartcard").values_list(
            "distributor__code", flat=True
        )
    }
    assert viewing_points == {"MAIN", "TWIN1", "TWIN2", "TWIN3"}
    # Flat products and bundles alike.
    kinds = set(services.values_list("product__kind", flat=True))
    assert kinds == {"flat", "flexible_bundle"}

    # The reset sees roughly the chosen share (a drifted card on a subscription that is off
    # needs nothing), and nothing else.
    out_of_step = [row for row in batch.preview(batch.Selection(catalog.provider))]
    assert 0.8 * made.drifted <= len(out_of_step) <= made.drifted
    commands = {c["command"] for row in out_of_step for c in row.requests}
    assert commands <= {"ACTIVATE_SERVICE", "DEACTIVATE_SERVICE", "ADD_TO_EXISTING_PAIRING",
                        "CREATE_PAIRING"}  # fmt: skip


def test_running_it_again_adds_only_what_is_missing(catalog):
    call_command("generate_load", "--subscriptions", "50")
    first = list(Subscription.objects.order_by("number").values_list("number", "state"))
    call_command("generate_load", "--subscriptions", "80")
    assert Subscription.objects.count() == 80
    # The same plan: the first 50 did not change, and new ids follow on.
    assert (
        list(Subscription.objects.order_by("number").values_list("number", "state"))[:50] == first
    )
    sub = Subscription.objects.create(
        number="AFTER", account=Subscription.objects.first().account,
        subscription_type=catalog.types["RES"], created_at=first and Subscription.objects.first().created_at,
    )  # fmt: skip
    assert sub.pk > Subscription.objects.exclude(pk=sub.pk).order_by("-pk").first().pk


@pytest.mark.parametrize(
    "today, first",
    [
        (date(2026, 12, 3), date(2026, 11, 3)),  # after a month of 30 days
        (date(2027, 3, 31), date(2027, 2, 28)),  # after February
        (date(2027, 2, 28), date(2027, 1, 31)),
    ],
)
def test_one_day_of_authorizations_is_due_a_renewal_whatever_the_date(catalog, today, first):
    now = datetime.combine(today, time(15), tzinfo=UTC)
    load.generate(1500, drift=0.1, now=now)
    dates = [
        timezone.localtime(d).date()
        for d in SubscriptionService.objects.filter(authorization_date__isnull=False).values_list(
            "authorization_date", flat=True
        )
    ]
    assert min(dates) == first and max(dates) == today
    due = [d for d in dates if renewal_due(d, 1, today)]
    # Every due one is of the first day, and that day holds about its share.
    assert set(due) == {first}
    span = (today - first).days + 1
    assert 0.5 / span <= len(due) / len(dates) <= 1.5 / span
