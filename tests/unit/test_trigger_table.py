"""SPEC's trigger table, row by row, on the Generic provider: each action and the requests it
creates, with their parameters. Every subscription starts in step (its earlier requests
accepted), so what is listed is exactly what the action itself calls for."""

import pytest

from catalogue.models import Distributor
from providers.answers import record_answer
from providers.models import ProvisioningRequest
from subscriptions import actions
from subscriptions.actions import ItemSpec

Req = ProvisioningRequest


def settle(sub):
    for r in Req.objects.filter(subscription=sub, state="pending").order_by("pk"):
        record_answer(r, accepted=True)
    return Req.objects.order_by("-pk").values_list("pk", flat=True).first()


def made_since(sub, since):
    """(command, what, card) — what is the service CA ID, or the devices paired."""
    rows = []
    for r in sub.provisioning_requests.filter(pk__gt=since).order_by("pk"):
        card = r.installed_item.serial_number
        if r.operation in ("activate", "deactivate"):
            assert r.parameters["card_ca_id"] == r.installed_item.ca_id
            assert r.parameters["distributor"] == r.distributor.code
            rows.append((r.command, r.parameters["service_ca_id"], card))
        else:
            devices = "+".join(sorted(d["serial_number"] for d in r.parameters["devices"]))
            rows.append((r.command, devices, card))
    return rows


@pytest.fixture
def sub(subscribe):
    """Bundle A on MAIN (card SC…, box STB…), in step with the provider."""
    subscription = subscribe("BUNDLE_A")
    settle(subscription)
    return subscription


def serials(sub):
    card = sub.installed_items.get(kind="smartcard", removed_at=None).serial_number
    box = sub.installed_items.get(kind="stb", removed_at=None).serial_number
    return card, box


A = "ACTIVATE_SERVICE"
D = "DEACTIVATE_SERVICE"


def bundle_a(command, card):
    return [(command, "GFA1", card), (command, "EFA2", card)]


# Subscription actions that switch every service on or off.
LIFE_CYCLE = [
    ("deactivate", [], D),
    ("terminate", [], D),
    ("rest", [], D),
    ("short_term_deactivation", [], D),
    ("activate", ["deactivate"], A),
    ("end_resting", ["rest"], A),
    ("short_term_activation", ["deactivate"], A),
    ("end_short_term_activation", ["deactivate", "short_term_activation"], D),
    ("end_short_term_deactivation", ["short_term_deactivation"], A),
]


@pytest.mark.parametrize(("action", "before", "command"), LIFE_CYCLE)
def test_subscription_actions(sub, action, before, command):
    for step in before:
        getattr(actions, step)(sub)
    since = settle(sub)
    getattr(actions, action)(sub)
    card, _ = (
        serials(sub)
        if action != "terminate"
        else (sub.installed_items.get(kind="smartcard").serial_number, None)
    )
    assert made_since(sub, since) == bundle_a(command, card)


def test_become_subscriber(subscribe):
    sub = subscribe("BUNDLE_A")
    card, box = serials(sub)
    assert made_since(sub, 0) == [("CREATE_PAIRING", f"{card}+{box}", card), *bundle_a(A, card)]


def test_activate_pairs_devices_the_provider_does_not_know(sub):
    actions.deactivate(sub)
    since = settle(sub)
    sub.installed_items.update(initialized=False)  # e.g. the pairing was refused before
    actions.activate(sub)
    card, box = serials(sub)
    assert made_since(sub, since) == [
        ("CREATE_PAIRING", f"{card}+{box}", card),
        *bundle_a(A, card),
    ]


def test_add_service(sub, catalog):
    since = settle(sub)
    actions.add_service(sub, catalog.products["AGRICULTURE"], catalog.main)
    card, _ = serials(sub)
    assert made_since(sub, since) == [(A, "AF1", card)]


def test_remove_and_stop_and_start_service(sub):
    card, _ = serials(sub)
    service = sub.services.get()
    since = settle(sub)
    actions.stop_service(service)
    assert made_since(sub, since) == bundle_a(D, card)
    since = settle(sub)
    actions.start_service(service)
    assert made_since(sub, since) == bundle_a(A, card)
    since = settle(sub)
    actions.remove_service(service)
    assert made_since(sub, since) == bundle_a(D, card)


def test_swap_service_and_regret(sub, catalog):
    card, _ = serials(sub)
    actions.swap_service(sub.services.get(), catalog.products["AGRICULTURE"])
    since = settle(sub)
    actions.regret_swap(sub.services.get(product__code="AGRICULTURE"))
    assert made_since(sub, since) == [(D, "AF1", card), *bundle_a(A, card)]


def test_add_installed_item_to_the_pairing(sub, catalog):
    card, _ = serials(sub)
    since = settle(sub)
    actions.add_installed_item(sub, ItemSpec("stb", "STB-NEW", "CA-STB-NEW", catalog.main))
    # The new box joins the pairing of the card the provider knows.
    assert made_since(sub, since) == [("ADD_TO_EXISTING_PAIRING", "STB-NEW", card)]


def test_add_a_second_card_on_a_viewing_point(sub, catalog):
    card, _ = serials(sub)
    since = settle(sub)
    actions.add_installed_item(sub, ItemSpec("smartcard", "SC-NEW", "CA-SC-NEW", catalog.main))
    # Added to the pairing of the registered card, and queued on the new card before its
    # activations.
    assert made_since(sub, since) == [
        ("ADD_TO_EXISTING_PAIRING", "SC-NEW", "SC-NEW"),
        *bundle_a(A, "SC-NEW"),
    ]
    pairing = sub.provisioning_requests.get(command="ADD_TO_EXISTING_PAIRING")
    assert (
        pairing.parameters["paired_card_ca_id"] == sub.installed_items.get(serial_number=card).ca_id
    )


def test_remove_installed_item(sub):
    card, _ = serials(sub)
    since = settle(sub)
    actions.remove_installed_item(sub.installed_items.get(kind="smartcard"))
    assert made_since(sub, since) == bundle_a(D, card)


def test_swap_installed_item(sub):
    old_card, box = serials(sub)
    since = settle(sub)
    actions.swap_installed_item(sub.installed_items.get(kind="smartcard"), "SC-NEW", "CA-SC-NEW")
    assert made_since(sub, since) == [
        # The box is no card to add to: the new card is paired with it anew.
        ("CREATE_PAIRING", f"SC-NEW+{box}", "SC-NEW"),
        *bundle_a(D, old_card),
        *bundle_a(A, "SC-NEW"),
    ]
    since = settle(sub)
    old = sub.installed_items.get(serial_number=old_card)
    assert not old.initialized  # the provider has let go of the old card


def test_change_distribution(subscribe, catalog):
    spare = Distributor.objects.create(
        provider=catalog.provider, code="SPARE", required_distributor=catalog.main
    )
    spare.allowed_products.set(catalog.products.values())
    sub = subscribe("AGRICULTURE")
    twin1 = catalog.distributors["TWIN1"]
    actions.add_service(sub, catalog.products["BUNDLE_A"], twin1)
    actions.add_installed_item(sub, ItemSpec("smartcard", "SC-T1", "CA-SC-T1", twin1))
    actions.add_installed_item(sub, ItemSpec("stb", "STB-T1", "CA-STB-T1", twin1))
    since = settle(sub)

    actions.change_distribution(sub, twin1, spare)

    made = made_since(sub, since)
    assert made == [
        ("CREATE_PAIRING", "SC-T1+STB-T1", "SC-T1"),
        *bundle_a(D, "SC-T1"),  # off the old viewing point (the same card, its old row)
        *bundle_a(A, "SC-T1"),  # on through the new one
    ]
    new_requests = sub.provisioning_requests.filter(pk__gt=since)
    assert {r.parameters["distributor"] for r in new_requests if r.command == D} == {"TWIN1"}
    assert {r.parameters["distributor"] for r in new_requests if r.command == A} == {"SPARE"}
