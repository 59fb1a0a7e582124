"""Every rejection is rolled back through the actions, with the CA's reason in the history, and
the provider flags then say what the platform really holds. Rejections come from the real
platforms (the Conax WS SOAP simulator, the Irdeto KMS simulator and the Generic reference
platform) refusing a card."""

import pytest

from providers import batch, delivery, engine, reconciler
from providers.models import ProvisioningRequest
from subscriptions import actions
from subscriptions.models import SubscriptionService
from tests.integration import test_device_changes
from tests.integration.test_device_changes import _spec, in_use, start

pytestmark = pytest.mark.usefixtures("fast_path")

target = test_device_changes.target

Svc = SubscriptionService.State


def rollbacks(sub) -> list[str]:
    return list(
        sub.events.filter(action="provisioning_rollback")
        .order_by("pk")
        .values_list("reason", flat=True)
    )


def rejected(sub) -> list[ProvisioningRequest]:
    return list(ProvisioningRequest.objects.filter(subscription=sub, state="rejected"))


def test_a_rejected_activation_switches_the_service_off_and_leaves_it_unauthorized(
    target, subscribe
):
    sub = start(target, subscribe, "card", ("AGRICULTURE",))
    card = in_use(sub, "smartcard")[0]
    target.reject(card.ca_id)

    actions.add_service(sub, target.catalog.products["BABY"], target.catalog.distributors["MAIN"])
    target.deliver()

    baby = sub.services.get(product__code="BABY")
    assert (baby.state, baby.authorized) == (Svc.NOT_EFFECTIVE, False)
    (request,) = rejected(sub)
    (reason,) = rollbacks(sub)
    assert reason.startswith(f"Request {request.uid} (")
    assert request.error_code and request.error_code in reason
    assert target.entitled(card.ca_id) == {"AF1"}
    assert sub.services.get(product__code="AGRICULTURE").authorized


def test_a_rejected_cancellation_restores_the_service_and_leaves_it_authorized(target, subscribe):
    sub = start(target, subscribe, "card+box", ("AGRICULTURE",))
    card = in_use(sub, "smartcard")[0]
    service = sub.services.get()
    target.reject(card.ca_id)

    actions.stop_service(service)
    target.deliver()

    service.refresh_from_db()
    assert (service.state, service.authorized) == (Svc.EFFECTIVE, True)
    (request,) = rejected(sub)
    assert request.operation == ProvisioningRequest.Operation.DEACTIVATE
    assert request.error_code in rollbacks(sub)[0]
    assert target.entitled(card.ca_id) == {"AF1"}
    # In step again: nothing more to send.
    assert list(reconciler.plan(target.catalog.provider, [sub.pk])) == []


def test_a_rejected_cancellation_of_a_service_that_stays_off_is_sent_again_by_a_reset(
    target, subscribe
):
    """Deactivating the subscription switches its services off; they cannot come back on
    alone, so the service stays off, authorized, and the next reset cancels it again."""
    sub = start(target, subscribe, "card", ("AGRICULTURE",))
    card = in_use(sub, "smartcard")[0]
    target.reject(card.ca_id)

    actions.deactivate(sub)
    target.deliver()

    service = sub.services.get()
    assert (service.state, service.authorized) == (Svc.NOT_EFFECTIVE, True)
    assert len(rollbacks(sub)) == 1
    assert target.entitled(card.ca_id) == {"AF1"}
    (again,) = reconciler.plan(target.catalog.provider, [sub.pk])
    assert (again.operation, again.ca_id, again.item_id) == ("deactivate", "AF1", card.pk)

    target.reject()
    engine.create_requests(target.catalog.provider, [again], trigger="run")
    target.deliver()
    service.refresh_from_db()
    assert not service.authorized
    assert target.entitled(card.ca_id) == set()


def test_a_rejected_pairing_of_a_swapped_in_card_is_rolled_back_with_its_activations(
    target, subscribe
):
    """The new card refused: its pairing and activations rejected, the old card's
    cancellations done. The services go off, nobody holds them, and every flag says so."""
    sub = start(target, subscribe, "card+box", ("BUNDLE_A",))
    old = in_use(sub, "smartcard")[0]
    new = _spec("smartcard", old.distributor)
    target.reject(new.ca_id)

    actions.swap_installed_item(old, new.serial_number, new.ca_id)
    target.deliver()

    card = in_use(sub, "smartcard")[0]
    assert not card.initialized
    service = sub.services.get()
    assert (service.state, service.authorized) == (Svc.NOT_EFFECTIVE, False)
    assert target.entitled(old.ca_id) == set() and target.entitled(card.ca_id) == set()
    operations = {r.operation for r in rejected(sub)}
    assert ProvisioningRequest.Operation.CREATE_PAIRING in operations
    reasons = rollbacks(sub)
    assert len(reasons) == len(rejected(sub))
    assert all(" rejected: " in reason for reason in reasons)
    # Nothing is wanted any more, and the platform holds nothing: a reset has nothing to send.
    assert list(reconciler.plan(target.catalog.provider, [sub.pk])) == []


@pytest.mark.parametrize("devices", ["card", "card+box"])
def test_a_rejected_new_card_switches_the_service_off_on_every_card(target, subscribe, devices):
    sub = start(target, subscribe, devices, ("AGRICULTURE",))
    first = in_use(sub, "smartcard")[0]
    spec = _spec("smartcard", first.distributor)
    target.reject(spec.ca_id)

    actions.add_installed_item(sub, spec)
    target.deliver()

    service = sub.services.get()
    assert (service.state, service.authorized) == (Svc.NOT_EFFECTIVE, False)
    assert target.entitled(first.ca_id) == set()
    assert rollbacks(sub)


@pytest.mark.parametrize("refused", ["GFA1", "EFA2"])
def test_a_bundle_whose_cancellation_is_partly_rejected_ends_with_every_component_held(
    target, subscribe, refused
):
    """Bundle A (GFA1 + EFA2) stopped: the platform accepts one component's cancellation and
    rejects the other's. The service comes back on, and the platform ends holding both
    components again: nothing is left cancelled under a service our flags call authorized."""
    sub = start(target, subscribe, "card+box", ("BUNDLE_A",))
    card = in_use(sub, "smartcard")[0]
    service = sub.services.get()

    actions.stop_service(service)
    cancels = list(
        ProvisioningRequest.objects.filter(subscription=sub, state="pending").order_by("pk")
    )
    assert [r.ca_id for r in cancels] == ["GFA1", "EFA2"]
    # One request at a time, the platform refusing the card only for the refused component.
    for request in cancels:
        target.reject(card.ca_id) if request.ca_id == refused else target.reject()
        target.catalog.provider.refresh_from_db()
        assert delivery.drain(target.catalog.provider, batch=1, max_batches=1).answered == 1
    target.reject()
    target.deliver()

    service.refresh_from_db()
    assert (service.state, service.authorized) == (Svc.EFFECTIVE, True)
    assert target.entitled(card.ca_id) == {"GFA1", "EFA2"}
    assert [r.ca_id for r in rejected(sub)] == [refused]
    assert list(reconciler.plan(target.catalog.provider, [sub.pk])) == []


@pytest.mark.parametrize("devices", ["card+box", "2 cards"])
@pytest.mark.parametrize("refused", ["GFA1", "EFA2"])
def test_a_bundle_partly_cancelled_while_its_subscription_is_off_is_held_whole_again(
    target, subscribe, refused, devices
):
    """Deactivating the subscription: one component's cancellation accepted, the other's
    rejected (on the first card; a second card's are all accepted). The service cannot come
    back on, so the rollback gives the platform back what it did cancel: it holds the whole
    service as before on every card, ``authorized`` says so, a reset cancels it whole, and
    activating the subscription again needs nothing more."""
    sub = start(target, subscribe, devices, ("BUNDLE_A",))
    card = in_use(sub, "smartcard")[0]
    service = sub.services.get()

    actions.deactivate(sub)
    cancels = list(
        ProvisioningRequest.objects.filter(subscription=sub, state="pending").order_by("pk")
    )
    assert len(cancels) == 2 * len(in_use(sub, "smartcard"))
    for request in cancels:
        refuse = request.ca_id == refused and request.installed_item_id == card.pk
        target.reject(card.ca_id) if refuse else target.reject()
        target.catalog.provider.refresh_from_db()
        assert delivery.drain(target.catalog.provider, batch=1, max_batches=1).answered == 1
    target.reject()
    target.deliver()

    assert [(r.ca_id, r.installed_item_id) for r in rejected(sub)] == [(refused, card.pk)]
    service.refresh_from_db()
    assert (service.state, service.authorized) == (Svc.NOT_EFFECTIVE, True)
    cards = in_use(sub, "smartcard")
    assert [target.entitled(c.ca_id) for c in cards] == [{"GFA1", "EFA2"}] * len(cards)

    actions.activate(sub)
    target.deliver()
    service.refresh_from_db()
    assert (service.is_on, service.authorized) == (True, True)
    assert [target.entitled(c.ca_id) for c in cards] == [{"GFA1", "EFA2"}] * len(cards)
    assert list(reconciler.plan(target.catalog.provider, [sub.pk])) == []


@pytest.mark.parametrize("refused", ["GFA1", "EFA2"])
def test_a_card_swapped_away_that_keeps_a_component_is_cancelled_again_by_a_reset(
    target, subscribe, refused
):
    """The old card of a swap: one component's cancellation accepted, the other's rejected.
    The card still holds that one, so it stays registered whichever answer came first, and a
    reset cancels it again."""
    sub = start(target, subscribe, "card+box", ("BUNDLE_A",))
    old = in_use(sub, "smartcard")[0]
    new = _spec("smartcard", old.distributor)

    actions.swap_installed_item(old, new.serial_number, new.ca_id)
    while pending := ProvisioningRequest.objects.filter(subscription=sub, state="pending"):
        request = pending.order_by("pk").first()
        refuse = request.ca_id == refused and request.installed_item_id == old.pk
        target.reject(old.ca_id) if refuse else target.reject()
        target.catalog.provider.refresh_from_db()
        assert delivery.drain(target.catalog.provider, batch=1, max_batches=1).answered == 1
    target.reject()

    assert [(r.ca_id, r.installed_item_id) for r in rejected(sub)] == [(refused, old.pk)]
    assert target.entitled(old.ca_id) == {refused}
    old.refresh_from_db()
    assert old.initialized
    assert sub.services.get().is_on

    # Cancellations on the old card: the refused one (judged by our flags, as on Generic, the
    # other component's too, which the platform has no more; asked, Conax WS says which).
    again = batch.reset(sub, provider=target.catalog.provider).requests
    assert {(r.operation, r.installed_item_id) for r in again} == {("deactivate", old.pk)}
    assert refused in {r.ca_id for r in again}
    target.deliver()
    assert target.entitled(old.ca_id) == set()
    old.refresh_from_db()
    assert not old.initialized
    assert list(batch.reset(sub, provider=target.catalog.provider).requests) == []
