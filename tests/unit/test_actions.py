"""Every action's state change, the domain signal it sends, and every refused transition."""

import pytest

from catalogue.models import Distributor
from subscriptions import actions
from subscriptions.actions import ActionError, ItemSpec
from subscriptions.models import (
    InstalledItem,
    Subscription,
    SubscriptionEvent,
    SubscriptionService,
)
from subscriptions.signals import action_performed
from tests.fixtures import card_and_box

Sub = Subscription.State
Svc = SubscriptionService.State


@pytest.fixture
def signals():
    """Every ActionChange sent while the test runs."""
    received = []

    def receiver(sender, change, **kwargs):
        received.append(change)

    action_performed.connect(receiver, dispatch_uid="test-capture")
    yield received
    action_performed.disconnect(dispatch_uid="test-capture")


def codes(services):
    return sorted(s.product.code for s in services)


def states(sub):
    return {s.product.code: s.state for s in sub.services.order_by("id")}


# --- Become subscriber ----------------------------------------------------------------------


def test_become_subscriber_creates_an_effective_subscription_with_devices_paired(
    catalog, account, signals
):
    main = catalog.main
    change = actions.become_subscriber(
        account,
        catalog.types["RES"],
        [(catalog.products["BUNDLE_A"], main)],
        card_and_box(main),
    )
    sub = change.subscription
    assert sub.state == Sub.EFFECTIVE
    assert sub.number.startswith("S")
    assert states(sub) == {"BUNDLE_A": Svc.EFFECTIVE}
    items = sub.installed_items.all()
    assert sorted(i.kind for i in items) == ["smartcard", "stb"]
    assert not any(i.initialized for i in items)
    (pairing,) = sub.pairings.all()
    assert set(pairing.items.all()) == set(items)
    assert [c.action for c in signals] == ["become_subscriber"]
    assert codes(signals[0].services_on) == ["BUNDLE_A"]
    assert signals[0].services_off == []
    assert sorted(i.kind for i in signals[0].items_added) == ["smartcard", "stb"]
    assert SubscriptionEvent.objects.get(subscription=sub).action == "become_subscriber"


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ("no_services", "at least one service"),
        ("twin1_without_main", "Distributor TWIN1 requires MAIN to be in use"),
        ("not_carried", "Distributor MAIN does not carry Agriculture (AGRICULTURE)"),
        ("no_ca_id", "NEWS has no CA ID at provider Generic"),
        ("duplicate", "already has AGRICULTURE on distributor MAIN"),
    ],
)
def test_become_subscriber_refusals_leave_nothing_behind(catalog, account, setup, message):
    from catalogue.models import Product

    products = catalog.products
    main, twin1 = catalog.main, catalog.distributors["TWIN1"]
    services = [(products["AGRICULTURE"], main)]
    items = card_and_box(main)
    if setup == "no_services":
        services = []
    elif setup == "twin1_without_main":
        services, items = [(products["AGRICULTURE"], twin1)], card_and_box(twin1)
    elif setup == "not_carried":
        main.allowed_products.remove(products["AGRICULTURE"])
    elif setup == "no_ca_id":
        news = Product.objects.create(code="NEWS", name="News")
        main.allowed_products.add(news)
        services = [(news, main)]
    elif setup == "duplicate":
        services = services * 2

    with pytest.raises(ActionError) as err:
        actions.become_subscriber(account, catalog.types["RES"], services, items)
    assert message in err.value.message
    assert Subscription.objects.count() == 0
    assert InstalledItem.objects.count() == 0


def test_a_card_already_on_another_active_subscription_is_refused(catalog, account, subscribe):
    first = subscribe("AGRICULTURE")
    card = first.installed_items.get(kind="smartcard")
    reused = ItemSpec("smartcard", card.serial_number, "CA-OTHER", catalog.main)
    with pytest.raises(ActionError) as err:
        actions.become_subscriber(
            account, catalog.types["RES"], [(catalog.products["BUNDLE_B"], catalog.main)], [reused]
        )
    assert err.value.message == (
        f"Smartcard with serial number {card.serial_number} is already installed on "
        f"subscription {first.number}."
    )
    assert Subscription.objects.count() == 1


def test_a_card_of_a_terminated_subscription_can_be_installed_again(catalog, account, subscribe):
    first = subscribe("AGRICULTURE")
    card = first.installed_items.get(kind="smartcard")
    actions.terminate(first)
    spec = ItemSpec("smartcard", card.serial_number, card.ca_id, catalog.main)
    change = actions.become_subscriber(
        account, catalog.types["RES"], [(catalog.products["AGRICULTURE"], catalog.main)], [spec]
    )
    assert change.subscription.installed_items.get().serial_number == card.serial_number


def test_a_fifth_viewing_point_is_refused(catalog, account, subscribe):
    twin4 = Distributor.objects.create(
        provider=catalog.provider, code="TWIN4", required_distributor=catalog.distributors["TWIN3"]
    )
    twin4.allowed_products.set(catalog.products.values())
    sub = subscribe("AGRICULTURE")
    for code in ("TWIN1", "TWIN2", "TWIN3"):
        actions.add_service(sub, catalog.products["AGRICULTURE"], catalog.distributors[code])
    assert sub.services.count() == 4

    with pytest.raises(ActionError) as err:
        actions.add_service(sub, catalog.products["AGRICULTURE"], twin4)
    assert err.value.message == (
        f"Subscription {sub.number} would have 5 viewing points; at most 4 are allowed."
    )
    assert sub.services.count() == 4


# --- Subscription life cycle ----------------------------------------------------------------

# action, the actions that lead to its starting state, subscription state after, service
# state after, whether the services switch on (True), off (False) or not at all (None)
LIFE_CYCLE = [
    ("deactivate", [], Sub.NOT_EFFECTIVE, Svc.NOT_EFFECTIVE, False),
    ("activate", ["deactivate"], Sub.EFFECTIVE, Svc.EFFECTIVE, True),
    ("rest", [], Sub.IN_RESTING, Svc.IN_RESTING, False),
    ("end_resting", ["rest"], Sub.EFFECTIVE, Svc.EFFECTIVE, True),
    (
        "short_term_activation",
        ["deactivate"],
        Sub.SHORT_TERM_EFFECTIVE,
        Svc.SHORT_TERM_EFFECTIVE,
        True,
    ),
    (
        "end_short_term_activation",
        ["deactivate", "short_term_activation"],
        Sub.NOT_EFFECTIVE,
        Svc.NOT_EFFECTIVE,
        False,
    ),
    (
        "short_term_deactivation",
        [],
        Sub.SHORT_TERM_NOT_EFFECTIVE,
        Svc.SHORT_TERM_NOT_EFFECTIVE,
        False,
    ),
    (
        "end_short_term_deactivation",
        ["short_term_deactivation"],
        Sub.EFFECTIVE,
        Svc.EFFECTIVE,
        True,
    ),
    (
        "deactivate",
        ["deactivate", "short_term_activation"],
        Sub.NOT_EFFECTIVE,
        Svc.NOT_EFFECTIVE,
        False,
    ),
    ("terminate", [], Sub.TERMINATED, Svc.CANCELLED, False),
    ("terminate", ["rest"], Sub.TERMINATED, Svc.CANCELLED, None),
]


@pytest.mark.parametrize(("action", "before", "sub_state", "svc_state", "switch"), LIFE_CYCLE)
def test_life_cycle_actions(subscribe, signals, action, before, sub_state, svc_state, switch):
    sub = subscribe("BUNDLE_A", "AGRICULTURE")
    for step in before:
        getattr(actions, step)(sub)
    signals.clear()

    change = getattr(actions, action)(sub)

    sub.refresh_from_db()
    assert sub.state == sub_state
    assert set(states(sub).values()) == {svc_state}
    assert [c.action for c in signals] == [action]
    assert change is signals[0]
    switched_on = codes(change.services_on)
    switched_off = codes(change.services_off)
    assert switched_on == (["AGRICULTURE", "BUNDLE_A"] if switch is True else [])
    assert switched_off == (["AGRICULTURE", "BUNDLE_A"] if switch is False else [])
    assert sub.events.first().action == action


REFUSED = [
    ("activate", [], "Cannot activate subscription {n}: it is Effective; this action needs it Not Effective."),
    ("end_resting", [], "Cannot end resting subscription {n}: it is Effective; this action needs it In Resting."),
    ("rest", ["deactivate"], "Cannot rest subscription {n}: it is Not Effective; this action needs it Effective."),
    ("deactivate", ["rest"], "Cannot deactivate subscription {n}: it is In Resting; this action needs it Effective or Short Term Effective."),
    ("short_term_activation", [], "Cannot short-term activate subscription {n}: it is Effective; this action needs it Not Effective."),
    ("end_short_term_activation", [], "Cannot end the short-term activation of subscription {n}: it is Effective; this action needs it Short Term Effective."),
    ("short_term_deactivation", ["deactivate"], "Cannot short-term deactivate subscription {n}: it is Not Effective; this action needs it Effective."),
    ("end_short_term_deactivation", [], "Cannot end the short-term deactivation of subscription {n}: it is Effective; this action needs it Short Term Not Effective."),
    ("activate", ["terminate"], "Subscription {n} is terminated; it cannot activate it."),
    ("terminate", ["terminate"], "Subscription {n} is terminated; it cannot be terminated again."),
]  # fmt: skip


@pytest.mark.parametrize(("action", "before", "message"), REFUSED)
def test_refused_life_cycle_moves_say_why_and_change_nothing(
    subscribe, signals, action, before, message
):
    sub = subscribe("AGRICULTURE")
    for step in before:
        getattr(actions, step)(sub)
    sub.refresh_from_db()
    state_before, services_before = sub.state, states(sub)
    signals.clear()

    with pytest.raises(ActionError) as err:
        getattr(actions, action)(sub)

    assert err.value.message == message.format(n=sub.number)
    sub.refresh_from_db()
    assert (sub.state, states(sub)) == (state_before, services_before)
    assert signals == []


def test_terminate_returns_devices_and_cancels_pairings(subscribe, signals):
    sub = subscribe("BUNDLE_A")
    change = actions.terminate(sub)
    sub.refresh_from_db()
    assert sub.terminated_at is not None
    assert not sub.installed_items.filter(removed_at__isnull=True).exists()
    assert sorted(i.kind for i in change.items_removed) == ["smartcard", "stb"]
    assert not sub.pairings.filter(cancelled_at__isnull=True).exists()


@pytest.mark.usefixtures("fast_path")
def test_a_terminated_subscription_refuses_every_change(catalog, subscribe):
    sub = subscribe("AGRICULTURE")
    service = sub.services.get()
    actions.terminate(sub)
    refused = [
        lambda: actions.add_service(sub, catalog.products["BUNDLE_A"], catalog.main),
        lambda: actions.start_service(service),
        lambda: actions.add_installed_item(sub, card_and_box(catalog.main)[0]),
    ]
    for attempt in refused:
        with pytest.raises(ActionError) as err:
            attempt()
        assert err.value.code == "terminated"
        assert f"Subscription {sub.number} is terminated" in err.value.message


# --- Service actions ------------------------------------------------------------------------


def test_add_service_on_an_effective_subscription_switches_it_on(catalog, subscribe, signals):
    sub = subscribe("AGRICULTURE")
    signals.clear()
    change = actions.add_service(sub, catalog.products["BUNDLE_B"], catalog.main)
    assert states(sub) == {"AGRICULTURE": Svc.EFFECTIVE, "BUNDLE_B": Svc.EFFECTIVE}
    assert codes(change.services_on) == ["BUNDLE_B"]
    assert [c.action for c in signals] == ["add_service"]


def test_add_service_on_a_deactivated_subscription_waits_switched_off(catalog, subscribe):
    sub = subscribe("AGRICULTURE")
    actions.deactivate(sub)
    change = actions.add_service(sub, catalog.products["BUNDLE_B"], catalog.main)
    assert states(sub)["BUNDLE_B"] == Svc.NOT_EFFECTIVE
    assert change.services_on == []


def test_add_service_on_a_twin_needs_the_twin_before_it(catalog, subscribe):
    sub = subscribe("AGRICULTURE")
    actions.add_service(sub, catalog.products["BUNDLE_A"], catalog.distributors["TWIN1"])
    with pytest.raises(ActionError) as err:
        actions.add_service(sub, catalog.products["BUNDLE_A"], catalog.distributors["TWIN3"])
    assert err.value.message == (
        f"Distributor TWIN3 requires TWIN2 to be in use on subscription {sub.number}."
    )
    assert sub.services.count() == 2


def test_add_service_refuses_a_product_the_distributor_does_not_carry(catalog, subscribe):
    sub = subscribe("AGRICULTURE")
    twin1 = catalog.distributors["TWIN1"]
    twin1.allowed_products.remove(catalog.products["BUNDLE_B"])
    with pytest.raises(ActionError) as err:
        actions.add_service(sub, catalog.products["BUNDLE_B"], twin1)
    assert err.value.message == ("Distributor TWIN1 does not carry Flexible Bundle B (BUNDLE_B).")


def test_remove_service(subscribe, signals):
    sub = subscribe("BUNDLE_A", "AGRICULTURE")
    service = sub.services.get(product__code="AGRICULTURE")
    signals.clear()
    change = actions.remove_service(service)
    assert states(sub)["AGRICULTURE"] == Svc.REMOVED
    assert codes(change.services_off) == ["AGRICULTURE"]
    with pytest.raises(ActionError) as err:
        actions.remove_service(service)
    assert err.value.message == "AGRICULTURE is Removed; only a current service can be removed."


def test_swap_service_from_bundle_to_flat_product(catalog, subscribe, signals):
    sub = subscribe("BUNDLE_A")
    old = sub.services.get()
    signals.clear()
    change = actions.swap_service(old, catalog.products["AGRICULTURE"])
    old.refresh_from_db()
    new = sub.services.get(product__code="AGRICULTURE")
    assert old.state == Svc.SWAPPED
    assert new.state == Svc.EFFECTIVE
    assert new.swapped_from == old
    assert new.distributor == old.distributor
    assert change.services_on == [new]
    assert change.services_off == [old]


def test_swap_to_the_same_product_is_refused(catalog, subscribe):
    sub = subscribe("BUNDLE_A")
    with pytest.raises(ActionError) as err:
        actions.swap_service(sub.services.get(), catalog.products["BUNDLE_A"])
    assert err.value.message == "The service is already BUNDLE_A; choose another product."


def test_regret_swap_restores_the_original_service(catalog, subscribe, signals):
    sub = subscribe("BUNDLE_A")
    old = sub.services.get()
    actions.swap_service(old, catalog.products["BUNDLE_B"])
    new = sub.services.get(product__code="BUNDLE_B")
    signals.clear()
    change = actions.regret_swap(new)
    assert states(sub) == {"BUNDLE_A": Svc.EFFECTIVE, "BUNDLE_B": Svc.REGRETTED}
    assert codes(change.services_on) == ["BUNDLE_A"]
    assert codes(change.services_off) == ["BUNDLE_B"]
    with pytest.raises(ActionError) as err:
        actions.regret_swap(new)
    assert err.value.message == "BUNDLE_B is not the result of a swap that can be regretted."
    with pytest.raises(ActionError):
        actions.regret_swap(old)


@pytest.mark.usefixtures("fast_path")
def test_stop_and_start_service(subscribe, signals):
    sub = subscribe("BUNDLE_A", "AGRICULTURE")
    service = sub.services.get(product__code="AGRICULTURE")
    signals.clear()
    stopped = actions.stop_service(service)
    assert states(sub)["AGRICULTURE"] == Svc.NOT_EFFECTIVE
    assert stopped.services_off == [service]
    started = actions.start_service(service)
    assert states(sub)["AGRICULTURE"] == Svc.EFFECTIVE
    assert codes(started.services_on) == ["AGRICULTURE"]
    assert [c.action for c in signals] == ["stop_service", "start_service"]


@pytest.mark.usefixtures("fast_path")
def test_a_service_action_is_audited_and_dated(subscribe, agent):
    sub = subscribe("BUNDLE_A", "AGRICULTURE")
    service = sub.services.get(product__code="AGRICULTURE")
    before = service.updated_at
    actions.stop_service(service.pk, by=agent, reason="Customer on holiday")
    service.refresh_from_db()
    assert service.state == Svc.NOT_EFFECTIVE and service.updated_at > before
    event = sub.events.first()
    assert (event.action, event.performed_by, event.reason) == (
        "stop_service",
        agent,
        "Customer on holiday",
    )
    assert event.changes == {
        "services_on": [],
        "services_off": [service.pk],
        "items_added": [],
        "items_removed": [],
    }
    assert event.performed_at >= service.updated_at


@pytest.mark.usefixtures("fast_path")
def test_start_service_needs_an_effective_subscription(subscribe):
    sub = subscribe("AGRICULTURE")
    service = sub.services.get()
    actions.deactivate(sub)
    with pytest.raises(ActionError) as err:
        actions.start_service(service)
    assert err.value.message == (
        f"Subscription {sub.number} is Not Effective; activate it before starting services."
    )
    actions.activate(sub)
    actions.stop_service(service)
    with pytest.raises(ActionError) as err:
        actions.stop_service(service)
    assert err.value.message == (
        "AGRICULTURE is Not Effective; only an effective service can be stopped."
    )


# --- Installed items ------------------------------------------------------------------------


def test_add_installed_item_joins_the_viewing_points_pairing(catalog, subscribe, signals):
    sub = subscribe("AGRICULTURE")
    extra_box = ItemSpec("stb", "STB-EXTRA", "CA-STB-EXTRA", catalog.main)
    signals.clear()
    change = actions.add_installed_item(sub, extra_box)
    (pairing,) = sub.pairings.all()
    assert pairing.items.count() == 3
    assert [i.serial_number for i in change.items_added] == ["STB-EXTRA"]


def test_add_installed_item_on_a_new_viewing_point_starts_a_pairing(catalog, subscribe):
    sub = subscribe("AGRICULTURE")
    for spec in card_and_box(catalog.distributors["TWIN1"]):
        actions.add_installed_item(sub, spec)
    pairings = {p.distributor.code: p.items.count() for p in sub.pairings.all()}
    assert pairings == {"MAIN": 2, "TWIN1": 2}


def test_remove_installed_item(subscribe, signals):
    sub = subscribe("AGRICULTURE")
    box = sub.installed_items.get(kind="stb")
    signals.clear()
    change = actions.remove_installed_item(box)
    box.refresh_from_db()
    assert box.removed_at is not None
    assert change.items_removed == [box]
    with pytest.raises(ActionError) as err:
        actions.remove_installed_item(box)
    assert err.value.message == f"Set-top box {box.serial_number} was already removed."


def test_swap_installed_item_keeps_the_pairing(subscribe, signals):
    sub = subscribe("AGRICULTURE")
    card = sub.installed_items.get(kind="smartcard")
    signals.clear()
    change = actions.swap_installed_item(card, "SC-NEW", "CA-SC-NEW")
    card.refresh_from_db()
    new = sub.installed_items.get(serial_number="SC-NEW")
    assert card.removed_at is not None and card.replaced_by == new
    assert new.distributor == card.distributor and new.kind == "smartcard"
    assert not new.initialized
    assert change.items_removed == [card] and change.items_added == [new]
    (pairing,) = sub.pairings.filter(cancelled_at__isnull=True)
    assert sorted(i.kind for i in pairing.items.filter(removed_at__isnull=True)) == [
        "smartcard",
        "stb",
    ]


def test_swap_installed_item_to_a_card_in_use_is_refused(subscribe):
    first, second = subscribe("AGRICULTURE"), subscribe("AGRICULTURE")
    taken = second.installed_items.get(kind="smartcard")
    card = first.installed_items.get(kind="smartcard")
    with pytest.raises(ActionError) as err:
        actions.swap_installed_item(card, taken.serial_number, "CA-X")
    assert f"already installed on subscription {second.number}" in err.value.message
    card.refresh_from_db()
    assert card.removed_at is None


# --- Change distribution --------------------------------------------------------------------


def test_change_distribution_moves_services_and_devices(catalog, subscribe, signals):
    spare = Distributor.objects.create(
        provider=catalog.provider, code="SPARE", required_distributor=catalog.main
    )
    spare.allowed_products.set(catalog.products.values())
    sub = subscribe("AGRICULTURE")
    twin1 = catalog.distributors["TWIN1"]
    actions.add_service(sub, catalog.products["BUNDLE_A"], twin1)
    for spec in card_and_box(twin1):
        actions.add_installed_item(sub, spec)
    signals.clear()

    change = actions.change_distribution(sub, twin1, spare)

    on_twin1 = sub.services.get(distributor=twin1)
    on_spare = sub.services.get(distributor=spare)
    assert on_twin1.state == Svc.REMOVED and on_spare.state == Svc.EFFECTIVE
    assert change.services_off == [on_twin1] and change.services_on == [on_spare]
    assert not sub.installed_items.filter(distributor=twin1, removed_at=None).exists()
    moved = sub.installed_items.filter(distributor=spare, removed_at=None)
    assert sorted(i.kind for i in moved) == ["smartcard", "stb"]
    assert sorted(i.kind for i in change.items_added) == ["smartcard", "stb"]
    assert sorted(i.kind for i in change.items_removed) == ["smartcard", "stb"]
    assert sub.pairings.get(cancelled_at=None, distributor=spare).items.count() == 2


def test_change_distribution_that_breaks_a_required_distributor_is_refused(catalog, subscribe):
    sub = subscribe("AGRICULTURE")
    with pytest.raises(ActionError) as err:
        actions.change_distribution(sub, catalog.main, catalog.distributors["TWIN1"])
    assert err.value.message == (
        f"Distributor TWIN1 requires MAIN to be in use on subscription {sub.number}."
    )
    assert states(sub) == {"AGRICULTURE": Svc.EFFECTIVE}
    assert sub.installed_items.filter(distributor=catalog.main, removed_at=None).count() == 2


# --- One transaction ------------------------------------------------------------------------


def test_a_failing_signal_receiver_rolls_the_whole_action_back(subscribe):
    sub = subscribe("AGRICULTURE")

    def explode(sender, change, **kwargs):
        raise RuntimeError("provisioning engine unavailable")

    action_performed.connect(explode, dispatch_uid="explode")
    try:
        with pytest.raises(RuntimeError):
            actions.deactivate(sub)
    finally:
        action_performed.disconnect(dispatch_uid="explode")
    sub.refresh_from_db()
    assert sub.state == Sub.EFFECTIVE
    assert states(sub) == {"AGRICULTURE": Svc.EFFECTIVE}
    assert list(sub.events.values_list("action", flat=True)) == ["become_subscriber"]


@pytest.mark.django_db(transaction=True)
def test_two_subscriptions_taking_the_same_card_at_once_one_wins(catalog, account):
    import threading

    from django.db import connection

    card = ItemSpec("smartcard", "SC-RACE", "CA-SC-RACE", catalog.main)
    barrier = threading.Barrier(2)
    outcomes = []

    def take():
        try:
            barrier.wait()
            actions.become_subscriber(
                account,
                catalog.types["RES"],
                [(catalog.products["AGRICULTURE"], catalog.main)],
                [card],
            )
            outcomes.append("ok")
        except ActionError as err:
            outcomes.append(err.code)
        except Exception as err:
            outcomes.append(repr(err))
        finally:
            connection.close()

    threads = [threading.Thread(target=take) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["device_in_use", "ok"]
    assert InstalledItem.objects.filter(serial_number="SC-RACE").count() == 1
    assert Subscription.objects.count() == 1
