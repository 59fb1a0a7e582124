"""Conax SMS: the Process Provisioning Requests run applies SPEC's trigger logic (Add, Cancel,
Renew with the renewal frequency, Create Pairing), on a frozen day."""

from collections import defaultdict
from datetime import date, datetime, time

import pytest
from django.utils import timezone

from providers import batch, provider_settings
from providers.models import ProvisioningRequest
from runs import services as runs
from runs.models import ProcessRun, RunDefinition
from subscriptions.models import InstalledItem, SubscriptionService

Req = ProvisioningRequest
S = SubscriptionService.State
TODAY = date(2026, 2, 28)
DUE = date(2026, 1, 31)  # + 1 month = 28 February: due today
NOT_DUE = date(2026, 2, 1)  # + 1 month = 1 March: not yet
LONG_AGO = date(2025, 6, 15)


@pytest.fixture
def catalog(sms_catalog):  # this module's catalogue, where ``subscribe`` subscribes, is Conax SMS
    return sms_catalog


def at_noon(day: date) -> datetime:
    return timezone.make_aware(datetime.combine(day, time(12)))


# (service state, authorized, authorization date) -> what the run must send for it.
CASES = [
    (S.EFFECTIVE, False, None, ["ADD_SUBSCRIPTION AF1"]),
    (S.EFFECTIVE, True, DUE, ["RENEW_SUBSCRIPTION AF1"]),
    (S.EFFECTIVE, True, NOT_DUE, []),
    (S.SHORT_TERM_EFFECTIVE, False, None, ["ADD_SUBSCRIPTION AF1"]),
    (S.SHORT_TERM_EFFECTIVE, True, LONG_AGO, ["RENEW_SUBSCRIPTION AF1"]),
    (S.SHORT_TERM_EFFECTIVE, True, NOT_DUE, []),
] + [
    case
    for off in (
        S.NOT_EFFECTIVE,
        S.REGRETTED,
        S.SWAPPED,
        S.REMOVED,
        S.CANCELLED,
        S.IN_RESTING,
        S.SHORT_TERM_NOT_EFFECTIVE,
    )
    for case in (
        (off, True, LONG_AGO, ["CANCEL_SUBSCRIPTION AF1"]),
        (off, False, LONG_AGO, []),
    )
]


def planned(provider) -> dict[str, list[str]]:
    found = defaultdict(list)
    for number, command, ca_id in (
        Req.objects.filter(provider=provider)
        .order_by("pk")
        .values_list("subscription__number", "command", "ca_id")
    ):
        found[number].append(f"{command} {ca_id}".strip())
    return dict(found)


@pytest.fixture
def every_state(subscribe):
    """One subscription per case, its provider side set as the CAS holds it: devices paired,
    the service authorized (or not) since the given day."""
    expected = {}
    for index, (state, authorized, since, commands) in enumerate(CASES):
        sub = subscribe("AGRICULTURE", number=f"ZX-T-{index:02d}")
        sub.services.update(
            state=state,
            authorized=authorized,
            authorization_date=at_noon(since) if since else None,
        )
        sub.installed_items.update(initialized=True)
        expected[sub.number] = commands
    # Devices the CAS has never seen: paired first, then the Bundle's components added.
    fresh = subscribe("BUNDLE_A", number="ZX-T-NEW")
    expected[fresh.number] = [
        "CREATE_PAIRING",
        "ADD_SUBSCRIPTION GFA1",
        "ADD_SUBSCRIPTION EFA2",
    ]
    # A card swapped in on a paired, authorized viewing point: the devices in use (the new
    # card and the box) are paired anew, then the card gets the service (the old card is
    # already out of use with nothing authorized on it).
    swapped = subscribe("AGRICULTURE", number="ZX-T-SWAP")
    swapped.services.update(authorized=True, authorization_date=at_noon(NOT_DUE))
    swapped.installed_items.filter(kind="stb").update(initialized=True)
    expected[swapped.number] = ["CREATE_PAIRING", "ADD_SUBSCRIPTION AF1"]
    return {k: v for k, v in expected.items() if v}


def test_processing_run_sends_exactly_the_trigger_logic(sms, every_state):
    result = batch.reconcile(
        batch.Selection(sms), trigger_name="process_provisioning_requests", today=TODAY
    )

    assert planned(sms) == every_state
    assert result.requests_created == sum(len(v) for v in every_state.values())
    assert set(Req.objects.values_list("state", flat=True)) == {Req.State.PENDING}
    renew = Req.objects.get(subscription__number="ZX-T-01")
    assert renew.operation == Req.Operation.RENEW
    assert renew.parameters["service_ca_id"] == "AF1"
    assert renew.parameters["card_ca_id"].startswith("CX-SC-")
    pairing = Req.objects.get(subscription__number="ZX-T-SWAP", command="CREATE_PAIRING")
    assert [d["kind"] for d in pairing.parameters["devices"]] == ["smartcard", "stb"]

    # Pending requests count as sent: the next run (same day) plans nothing twice, renewals
    # included.
    again = batch.reconcile(
        batch.Selection(sms), trigger_name="process_provisioning_requests", today=TODAY
    )
    assert again.requests_created == 0


def test_renewal_frequency_is_the_providers(sms, subscribe):
    sms.parameters = {"renewal_frequency_months": 3}
    provider_settings.full_clean(sms)
    sms.save()
    for number, since in (
        ("ZX-R-DUE", date(2025, 11, 28)),
        ("ZX-R-END", date(2025, 11, 30)),  # 30 February does not exist: the month's end
        ("ZX-R-NOT", date(2025, 12, 1)),
    ):
        sub = subscribe("AGRICULTURE", number=number)
        sub.services.update(authorized=True, authorization_date=at_noon(since))
        sub.installed_items.update(initialized=True)

    batch.reconcile(batch.Selection(sms), trigger_name="process_provisioning_requests", today=TODAY)

    assert planned(sms) == {
        "ZX-R-DUE": ["RENEW_SUBSCRIPTION AF1"],
        "ZX-R-END": ["RENEW_SUBSCRIPTION AF1"],
    }


def test_no_renewal_on_a_card_not_paired_or_taken_away(sms, subscribe):
    sub = subscribe("AGRICULTURE", number="ZX-R-OUT")
    sub.services.update(authorized=True, authorization_date=at_noon(LONG_AGO))
    sub.installed_items.update(initialized=True)
    InstalledItem.objects.filter(subscription=sub).update(removed_at=timezone.now())

    batch.reconcile(batch.Selection(sms), trigger_name="process_provisioning_requests", today=TODAY)

    # The card left: its services are cancelled, never renewed.
    assert planned(sms) == {"ZX-R-OUT": ["CANCEL_SUBSCRIPTION AF1"]}


def test_preview_shows_renewals(sms, subscribe):
    sub = subscribe("AGRICULTURE", number="ZX-P-1")
    sub.services.update(authorized=True, authorization_date=at_noon(DUE))
    sub.installed_items.update(initialized=True)

    rows = list(batch.preview(batch.Selection(sms), today=TODAY))

    assert [(r.subscription, [q["command"] for q in r.requests]) for r in rows] == [
        ("ZX-P-1", ["RENEW_SUBSCRIPTION"])
    ]
    assert [q["reason"] for q in rows[0].requests] == [
        f"Renew AGRICULTURE: service Effective, authorized since {DUE:%Y-%m-%d}: due for renewal"
    ]
    assert not Req.objects.exists()

    # The run (on the real day, when the renewal is overdue) says what it made.
    definition = RunDefinition(
        name="Processing", run_type="process_provisioning_requests", provider=sms
    )
    runs.validate(definition, schedule=False)
    definition.save()
    run = runs.execute(definition.pk, ProcessRun.Trigger.RUN_NOW)
    assert run.message == "Examined 1 subscription; created 1 request: 1 renewal."
