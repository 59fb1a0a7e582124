"""Actions become provisioning requests on the Generic provider; answers apply or roll back."""

import uuid

import pytest

from providers import bulk, reconciler, registry
from providers.answers import ALREADY_DONE, APPLIED, AnswerConflict, record_answer
from providers.engine import context_for
from providers.models import ProvisioningRequest
from subscriptions import actions
from subscriptions.models import SubscriptionEvent, SubscriptionService

pytestmark = pytest.mark.usefixtures("fast_path")

Req = ProvisioningRequest
Svc = SubscriptionService.State


def requests_of(sub, since=0):
    """(command, service CA ID or device kinds, card CA ID) in creation order."""
    rows = []
    for r in sub.provisioning_requests.filter(pk__gt=since).order_by("pk"):
        if r.operation in (Req.Operation.ACTIVATE, Req.Operation.DEACTIVATE):
            rows.append((r.command, r.parameters["service_ca_id"], r.parameters["card_ca_id"]))
        else:
            kinds = sorted(d["kind"] for d in r.parameters["devices"])
            rows.append((r.command, "+".join(kinds), r.installed_item.ca_id))
    return rows


def last_id():
    return Req.objects.order_by("-pk").values_list("pk", flat=True).first() or 0


def accept_all(sub):
    for r in sub.provisioning_requests.filter(state=Req.State.PENDING).order_by("pk"):
        record_answer(r, accepted=True)


def card_of(sub):
    return sub.installed_items.get(kind="smartcard", removed_at=None).ca_id


# --- SPEC's bundle examples ---------------------------------------------------------------


def test_become_subscriber_with_bundle_a(subscribe):
    sub = subscribe("BUNDLE_A")
    card = card_of(sub)
    assert requests_of(sub) == [
        ("CREATE_PAIRING", "smartcard+stb", card),
        ("ACTIVATE_SERVICE", "GFA1", card),
        ("ACTIVATE_SERVICE", "EFA2", card),
    ]
    r = sub.provisioning_requests.get(ca_id="GFA1")
    assert (r.state, r.trigger, r.trigger_name) == ("pending", "action", "become_subscriber")
    assert r.parameters["distributor"] == "MAIN"
    assert r.parameters["subscription"] == sub.number


def test_swap_bundle_a_to_agriculture(catalog, subscribe):
    sub = subscribe("BUNDLE_A")
    accept_all(sub)
    since = last_id()
    actions.swap_service(sub.services.get(), catalog.products["AGRICULTURE"])
    card = card_of(sub)
    assert sorted(requests_of(sub, since)) == sorted(
        [
            ("ACTIVATE_SERVICE", "AF1", card),
            ("DEACTIVATE_SERVICE", "GFA1", card),
            ("DEACTIVATE_SERVICE", "EFA2", card),
        ]
    )


def test_swap_bundle_a_to_bundle_b(catalog, subscribe):
    sub = subscribe("BUNDLE_A")
    accept_all(sub)
    since = last_id()
    actions.swap_service(sub.services.get(), catalog.products["BUNDLE_B"])
    card = card_of(sub)
    assert requests_of(sub, since) == [
        # Cancellations first: a CA ID in both bundles must end up active.
        ("DEACTIVATE_SERVICE", "GFA1", card),
        ("DEACTIVATE_SERVICE", "EFA2", card),
        ("ACTIVATE_SERVICE", "RFB1", card),
        ("ACTIVATE_SERVICE", "BFB2", card),
    ]


def test_nothing_is_planned_twice_while_requests_are_pending(catalog, subscribe):
    sub = subscribe("BUNDLE_A")
    assert list(reconciler.plan(catalog.provider, [sub.pk])) == []
    accept_all(sub)
    assert list(reconciler.plan(catalog.provider, [sub.pk])) == []


# --- Answers ------------------------------------------------------------------------------


def test_accepted_requests_update_provider_state(subscribe):
    sub = subscribe("BUNDLE_A")
    accept_all(sub)
    service = sub.services.get()
    assert service.authorized and service.authorization_date is not None
    assert all(i.initialized for i in sub.installed_items.all())
    assert set(sub.provisioning_requests.values_list("state", flat=True)) == {"completed"}


def test_a_card_taken_away_is_forgotten_once_its_services_are_cancelled(subscribe):
    sub = subscribe("BUNDLE_A")
    accept_all(sub)
    old = sub.installed_items.get(kind="smartcard")
    actions.stop_service(sub.services.get().pk)
    accept_all(sub)
    # A service cancelled on a card still in use: the provider still knows the card.
    old.refresh_from_db()
    assert old.initialized

    actions.start_service(sub.services.get().pk)
    accept_all(sub)
    actions.swap_installed_item(old, "SC-NEW", "CA-SC-NEW")
    accept_all(sub)

    old.refresh_from_db()
    new = sub.installed_items.get(kind="smartcard", removed_at=None)
    assert (old.initialized, new.initialized) == (False, True)


def test_a_rejected_activation_switches_the_service_off_and_cancels_what_was_accepted(
    subscribe,
):
    sub = subscribe("BUNDLE_A")
    pairing, gfa1, efa2 = sub.provisioning_requests.order_by("pk")
    record_answer(pairing, accepted=True)
    record_answer(gfa1, accepted=True)
    since = last_id()

    outcome = record_answer(
        efa2, accepted=False, error_code="E42", error_description="Unknown product EFA2"
    )

    assert outcome.result == APPLIED
    efa2.refresh_from_db()
    assert (efa2.state, efa2.error_code, efa2.last_error) == (
        "rejected",
        "E42",
        "Unknown product EFA2",
    )
    service = sub.services.get()
    assert service.state == Svc.NOT_EFFECTIVE
    event = sub.events.first()
    assert event.action == "provisioning_rollback"
    assert f"Request {efa2.uid} (ACTIVATE_SERVICE) rejected: E42 Unknown product EFA2" in (
        event.reason
    )
    card = card_of(sub)
    # GFA1 was accepted, so the provider holds part of the bundle: both components cancelled.
    assert requests_of(sub, since) == [
        ("DEACTIVATE_SERVICE", "GFA1", card),
        ("DEACTIVATE_SERVICE", "EFA2", card),
    ]
    assert sub.provisioning_requests.filter(pk__gt=since).first().trigger_name == (
        "provisioning_rollback"
    )


def test_a_rejected_pairing_leaves_the_devices_not_initialized(subscribe):
    sub = subscribe("AGRICULTURE")
    pairing = sub.provisioning_requests.get(operation="create_pairing")
    record_answer(pairing, accepted=False, error_description="Card blacklisted")
    assert not any(i.initialized for i in sub.installed_items.all())
    assert sub.services.get().state == Svc.EFFECTIVE


def test_the_same_answer_twice_is_applied_once_and_a_conflicting_one_refused(subscribe):
    sub = subscribe("AGRICULTURE")
    activation = sub.provisioning_requests.get(operation="activate")
    assert record_answer(activation, accepted=True).result == APPLIED
    assert record_answer(activation, accepted=True).result == ALREADY_DONE
    with pytest.raises(AnswerConflict) as err:
        record_answer(activation, accepted=False)
    assert str(err.value) == (
        f"Request {activation.uid} is already Completed; it cannot also be Rejected."
    )
    activation.refresh_from_db()
    assert activation.state == "completed"
    assert sub.events.filter(action="provisioning_rollback").count() == 0


def test_a_request_to_one_card_keeps_no_item_row_and_a_pairing_lists_its_members(subscribe):
    sub = subscribe("BUNDLE_A")
    card = sub.installed_items.get(kind="smartcard")
    box = sub.installed_items.get(kind="stb")
    pairing = sub.provisioning_requests.get(operation="create_pairing")
    activation = sub.provisioning_requests.get(ca_id="GFA1")

    # The pairing registers both devices; the activation is addressed to the card alone,
    # which its installed_item says: no item row beside it.
    assert sorted(pairing.items.values_list("pk", flat=True)) == sorted([card.pk, box.pk])
    assert not activation.items.exists()
    assert activation.installed_item_id == card.pk
    assert activation.device_ids == [card.pk]
    assert sorted(pairing.device_ids) == sorted([card.pk, box.pk])
    # Each with its own random (version 4) unique id.
    uids = [uuid.UUID(str(r.uid)) for r in sub.provisioning_requests.all()]
    assert len(set(uids)) == len(uids) == 3
    assert {(u.version, u.variant) for u in uids} == {(4, uuid.RFC_4122)}


# --- Provisioning models --------------------------------------------------------------------


def test_batch_providers_wait_for_the_processing_run(subscribe):
    from providers import batch
    from subscriptions.demo import ensure_catalog

    sms = ensure_catalog("Conax SMS", "conax_sms")
    sub = subscribe("BUNDLE_A", catalog=sms)
    assert not sub.provisioning_requests.exists()  # batch: the action only changes state

    result = batch.reconcile(batch.Selection(sms.provider), trigger_name="process_requests")

    assert result.requests_created == 3
    assert [r.command for r in sub.provisioning_requests.order_by("pk")] == [
        "CREATE_PAIRING",
        "ADD_SUBSCRIPTION",
        "ADD_SUBSCRIPTION",
    ]


def test_a_provider_without_a_transport_yet_fails_its_requests_with_the_reason(subscribe, settings):
    from django.test import override_settings

    from providers import delivery
    from subscriptions.demo import ensure_catalog
    from tests.example_provider.adapter import NO_TRANSPORT_PATH

    with override_settings(
        PROVISIONING_ADAPTERS=[*settings.PROVISIONING_ADAPTERS, NO_TRANSPORT_PATH]
    ):
        pushed = ensure_catalog("Example push", "example_push")
        sub = subscribe("AGRICULTURE", catalog=pushed)
        assert [r.command for r in sub.provisioning_requests.order_by("pk")] == [
            "PAIR",
            "SWITCH_ON",
        ]
        delivery.drain(pushed.provider)
    failed = sub.provisioning_requests.order_by("pk").first()
    assert failed.state == "failed"
    assert failed.last_error == (
        "Attempt 1 failed: No transport is installed for Example push platform yet. "
        "Gave up after 1 attempts."
    )


@pytest.mark.parametrize("count", [1, bulk.FEW, bulk.FEW + 1, 50])
def test_rows_written_in_bulk_come_back_in_order_with_their_values(subscribe, count):
    """A few rows go in one INSERT, more by COPY (PostgreSQL): the same rows either way."""
    sub = subscribe("AGRICULTURE", devices=[])
    rows = [{"action": f"bulk-{n}", "changes": {"n": n, "text": "é\t'\""}} for n in range(count)]
    ids = bulk.insert(SubscriptionEvent, rows, shared={"subscription_id": sub.pk})
    assert ids == sorted(ids) and len(set(ids)) == count
    written = {e.pk: (e.action, e.changes, e.performed_at is not None) for e in sub.events.all()}
    assert [written[pk] for pk in ids] == [(r["action"], r["changes"], True) for r in rows]


def test_a_service_action_at_a_disabled_provider_makes_no_request(catalog, subscribe):
    sub = subscribe("AGRICULTURE")
    accept_all(sub)
    service = sub.services.get()
    before = last_id()
    catalog.provider.enabled = False
    catalog.provider.save()

    change = actions.stop_service(service.pk, reason="provider switched off")

    assert change.request_ids == []
    assert requests_of(sub, since=before) == []
    # Switched on again: the provider never took the service away, so starting it needs
    # nothing there, and stopping it again is provisioned.
    catalog.provider.enabled = True
    catalog.provider.save()
    assert actions.start_service(service.pk, reason="provider back").request_ids == []
    change = actions.stop_service(service.pk, reason="stopped again")
    assert list(
        Req.objects.filter(pk__in=change.request_ids).values_list("operation", flat=True)
    ) == [Req.Operation.DEACTIVATE]


def test_an_actions_requests_carry_the_parameters_a_run_builds_for_the_same_commands(
    catalog, subscribe
):
    # An action reads its requests' names with its plan, a run by a statement of its own.
    sub = subscribe("BUNDLE_A")
    accept_all(sub)
    actions.swap_service(sub.services.get(), catalog.products["AGRICULTURE"])
    adapter = registry.adapter_for(catalog.provider)
    made = list(sub.provisioning_requests.order_by("pk"))

    for request in made:
        command = reconciler.Command(
            request.operation,
            request.subscription_id,
            request.distributor_id,
            request.installed_item_id,
            service_id=request.service_id,
            ca_id=request.ca_id,
            member_ids=tuple(sorted(request.items.values_list("pk", flat=True))),
        )
        assert request.parameters == adapter.parameters_for(command, context_for([command]))
    assert {r.operation for r in made} == {"create_pairing", "activate", "deactivate"}
