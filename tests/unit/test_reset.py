"""Reset Subscriptions (with its preview), Reset single subscription, Process Provisioning Requests."""

from datetime import timedelta

import pytest
from django.core.management import call_command
from django.db import transaction
from django.utils import timezone

from providers import batch, reconciler
from providers.answers import record_answer
from providers.models import ProvisioningRequest
from subscriptions.models import InstalledItem, Subscription, SubscriptionService

Req = ProvisioningRequest


def settle(subs):
    """The connector accepts everything pending: provider and wanted state agree."""
    for r in Req.objects.filter(subscription__in=subs, state="pending").order_by("pk"):
        record_answer(r, accepted=True)


@pytest.fixture
def in_step(subscribe):
    subs = [subscribe("BUNDLE_A"), subscribe("AGRICULTURE"), subscribe("BUNDLE_B", "AGRICULTURE")]
    settle(subs)
    return subs


def drift(subs):
    """The provider lost state: the first loses its services, the third its card."""
    SubscriptionService.objects.filter(subscription=subs[0]).update(authorized=False)
    InstalledItem.objects.filter(subscription=subs[2], kind="smartcard").update(initialized=False)


def test_preview_lists_exactly_the_drifted_subscriptions_and_writes_nothing(catalog, in_step):
    drift(in_step)
    before = Req.objects.count()

    rows = list(batch.preview(batch.Selection(catalog.provider)))

    assert Req.objects.count() == before
    assert [r.subscription for r in rows] == [in_step[0].number, in_step[2].number]
    assert [(q["command"], q["parameters"].get("service_ca_id")) for q in rows[0].requests] == [
        ("ACTIVATE_SERVICE", "GFA1"),
        ("ACTIVATE_SERVICE", "EFA2"),
    ]
    # A card the provider does not know is paired again with the box (a pairing is added to by
    # a registered card, and the box is none) and gets every service of its point.
    assert [(q["command"], q["parameters"].get("service_ca_id")) for q in rows[1].requests] == [
        ("CREATE_PAIRING", None),
        ("ACTIVATE_SERVICE", "RFB1"),
        ("ACTIVATE_SERVICE", "BFB2"),
        ("ACTIVATE_SERVICE", "AF1"),
    ]
    # Each says why, from what the subscription wants and what the provider holds.
    unauthorized = "Activate BUNDLE_A: service Effective, not authorized at the provider"
    assert [q["reason"] for q in rows[0].requests] == [unauthorized, unauthorized]
    new = f"card {in_step[2].installed_items.get(kind='smartcard').serial_number}"
    assert [q["reason"] for q in rows[1].requests] == [
        f"Create pairing: {new} not initialized at the provider",
        f"Activate BUNDLE_B: service Effective, {new} not initialized at the provider",
        f"Activate BUNDLE_B: service Effective, {new} not initialized at the provider",
        f"Activate AGRICULTURE: service Effective, {new} not initialized at the provider",
    ]


def test_preview_says_why_a_service_is_taken_away(catalog, in_step):
    # An activation on its way counts as held: cancelled meanwhile, it is taken away again.
    agriculture = SubscriptionService.objects.filter(
        subscription=in_step[2], product__code="AGRICULTURE"
    )
    agriculture.update(authorized=False)
    batch.reconcile(batch.Selection(catalog.provider), trigger_name="reset_subscriptions")
    agriculture.update(state="cancelled")
    SubscriptionService.objects.filter(subscription=in_step[1]).update(state="cancelled")
    card = in_step[0].installed_items.get(kind="smartcard")
    InstalledItem.objects.filter(pk=card.pk).update(removed_at=timezone.now())

    rows = list(batch.preview(batch.Selection(catalog.provider)))

    assert {r.subscription: [q["reason"] for q in r.requests] for r in rows} == {
        in_step[0].number: [
            f"Deactivate BUNDLE_A: card {card.serial_number} removed, still authorized",
            f"Deactivate BUNDLE_A: card {card.serial_number} removed, still authorized",
        ],
        in_step[1].number: ["Deactivate AGRICULTURE: service Cancelled, still authorized"],
        in_step[2].number: [
            "Deactivate AGRICULTURE: service Cancelled, an activation is still Pending"
        ],
    }


@pytest.mark.django_db(transaction=True)
def test_preview_outside_a_transaction_reads_ahead_and_lists_the_same(catalog, in_step):
    drift(in_step)
    selection = batch.Selection(catalog.provider)

    # Committed data, no transaction: the next chunks are planned in threads of their own.
    ahead = [(r.subscription, r.requests) for r in batch.preview(selection, chunk_size=1)]
    with transaction.atomic():
        one_by_one = [(r.subscription, r.requests) for r in batch.preview(selection, chunk_size=1)]

    assert [number for number, _ in ahead] == [in_step[0].number, in_step[2].number]
    assert ahead == one_by_one


def test_reset_creates_what_the_preview_listed_and_nothing_twice(catalog, in_step):
    drift(in_step)
    selection = batch.Selection(catalog.provider)
    listed = [(r.subscription, q["command"]) for r in batch.preview(selection) for q in r.requests]

    result = batch.reconcile(selection, trigger_name="reset_subscriptions", chunk_size=2)

    created = Req.objects.filter(trigger="run", trigger_name="reset_subscriptions").order_by("pk")
    assert [(r.subscription.number, r.command) for r in created] == listed
    assert (result.examined, result.subscriptions_changed, result.requests_created) == (
        3,
        2,
        len(listed),
    )
    again = batch.reconcile(selection, trigger_name="reset_subscriptions")
    assert again.requests_created == 0
    settle(in_step)
    assert list(batch.preview(selection)) == []


def test_reset_filters_by_creation_period_and_subscription_type(catalog, in_step):
    drift(in_step)
    old = timezone.now() - timedelta(days=400)
    Subscription.objects.filter(pk=in_step[0].pk).update(created_at=old)
    Subscription.objects.filter(pk=in_step[2].pk).update(subscription_type=catalog.types["BUS"])
    today = timezone.now().date()

    recent = batch.Selection(catalog.provider, created_from=today - timedelta(days=30))
    assert [r.subscription for r in batch.preview(recent)] == [in_step[2].number]
    residential = batch.Selection(
        catalog.provider, subscription_type_ids=(catalog.types["RES"].pk,)
    )
    assert [r.subscription for r in batch.preview(residential)] == [in_step[0].number]


def test_reset_single_subscription(in_step):
    drift(in_step)
    created = batch.reset_subscription(in_step[0])
    assert [(r.command, r.ca_id, r.trigger) for r in created] == [
        ("ACTIVATE_SERVICE", "GFA1", "utility"),
        ("ACTIVATE_SERVICE", "EFA2", "utility"),
    ]
    assert list(batch.reset_subscription(in_step[1])) == []


def test_reset_commands(catalog, in_step, capsys):
    drift(in_step)
    call_command("reset_subscriptions", "--provider", "Generic", "--preview")
    out = capsys.readouterr().out
    assert f"{in_step[0].number}\n  ACTIVATE_SERVICE" in out
    assert out.strip().endswith(
        "Preview: 2 subscriptions out of step; 6 requests would be created. Nothing was written."
    )
    assert not Req.objects.filter(trigger="run").exists()

    call_command("reset_subscriptions", "--provider", "Generic", "--type", "RES")
    out = capsys.readouterr().out
    assert out.strip() == "Examined 3 subscriptions; created 6 requests for 2 subscriptions."

    call_command("reset_subscription", in_step[0].number)
    assert capsys.readouterr().out.strip() == f"Created 0 requests for {in_step[0].number}."


def test_commands_name_what_is_wrong(in_step):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="No provider named 'Nope' \\(there are: Generic\\)"):
        call_command("reset_subscriptions", "--provider", "Nope")
    with pytest.raises(CommandError, match="No subscription type with code 'XX'"):
        call_command("reset_subscriptions", "--provider", "Generic", "--type", "XX")


def test_reset_command_names_what_cannot_be_provisioned(catalog, in_step, capsys):
    from catalogue.models import ProductCAId

    drift(in_step)
    ProductCAId.objects.filter(ca_id="GFA1").delete()
    call_command("reset_subscriptions", "--provider", "Generic")
    captured = capsys.readouterr()
    assert captured.err.strip() == (
        f"{in_step[0].number}: GEOLOGICAL has no CA ID at provider Generic."
    )
    assert "created 5 requests for 2 subscriptions" in captured.out  # EFA2 still goes


def test_a_chunk_planned_again_for_some_of_its_subscriptions_plans_only_those(catalog, in_step):
    # A run's chunk, once it has locked what it found out of step, plans only those again,
    # still as an id range (the statement reads index ranges, whatever the statistics).
    drift(in_step)
    ids = sorted(s.pk for s in in_step)
    span = reconciler.Span(ids[0], ids[-1] + 1, only=(in_step[2].pk,))

    commands = list(reconciler.plan(catalog.provider, span))

    assert {c.subscription_id for c in commands} == {in_step[2].pk}
    assert [c.operation for c in commands] == ["create_pairing"] + ["activate"] * 3
