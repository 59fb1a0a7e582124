"""What a claim hands the adapters, on either database: the due requests in sending order,
leased, each with its card (or none) and its parameters as data, and whether a later request
for its card waits behind it."""

import pytest
from django.utils import timezone

from providers import delivery, engine
from providers.models import ProvisioningRequest

pytestmark = pytest.mark.usefixtures("fast_path")

Req = ProvisioningRequest


def card_of(subscription):
    return subscription.installed_items.get(kind="smartcard")


def test_a_claim_gives_the_due_requests_with_their_cards_leased(catalog, subscribe):
    a, b = subscribe("BUNDLE_A"), subscribe("AGRICULTURE")
    # b's pairing goes Express, so it is sent first.
    b_pairing = b.provisioning_requests.get(operation="create_pairing")
    Req.objects.filter(pk=b_pairing.pk).update(priority=Req.Priority.EXPRESS)
    a_pairing = a.provisioning_requests.get(operation="create_pairing")
    before = timezone.now()

    claimed = delivery.claim(catalog.provider, 10)

    # Per card, only the oldest Pending request is due; each holds its card's next one back.
    assert [r.pk for r in claimed] == [b_pairing.pk, a_pairing.pk]
    assert [r.followed for r in claimed] == [True, True]
    assert [r.installed_item for r in claimed] == [card_of(b), card_of(a)]
    for request in claimed:
        assert request.attempts == 1 and request.sent_at >= before
        assert request.next_attempt_at > request.sent_at
        assert isinstance(request.parameters, dict) and request.parameters
        assert request.parameters == Req.objects.get(pk=request.pk).parameters
    assert delivery.claim(catalog.provider, 10) == []  # leased: not due again yet

    # Answered, the pairings let the cards' activations through; b has no more after its own.
    Req.objects.filter(pk__in=[a_pairing.pk, b_pairing.pk]).update(state=Req.State.COMPLETED)
    claimed = delivery.claim(catalog.provider, 10)
    assert [r.operation for r in claimed] == ["activate", "activate"]
    assert {r.subscription_id: r.followed for r in claimed} == {a.pk: True, b.pk: False}
    for request, subscription in zip(claimed, (a, b), strict=True):
        card = card_of(subscription)
        assert request.installed_item == card
        assert (request.installed_item.ca_id, request.installed_item.installed_at) == (
            card.ca_id,
            card.installed_at,
        )


def test_requests_to_no_card_are_all_due_and_come_without_one(catalog):
    made = [
        engine.create_request(
            catalog.provider, "PING", {"n": n}, trigger=Req.Trigger.UTILITY, deliver_now=False
        )
        for n in range(3)
    ]
    claimed = delivery.claim(catalog.provider, 2)
    assert [r.pk for r in claimed] == [made[0].pk, made[1].pk]
    assert [(r.installed_item, r.followed, r.parameters) for r in claimed] == [
        (None, False, {"n": 0}),
        (None, False, {"n": 1}),
    ]
    assert [r.pk for r in delivery.claim(catalog.provider, 2)] == [made[2].pk]
