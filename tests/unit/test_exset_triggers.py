"""EXSET SMS's trigger table (seed 002), row by row, through the Process Provisioning Requests
run: given a subscription's state, the commands the run creates, with their parameters, or
none. Every subscription starts in step with EXSET (its earlier requests accepted), so what
is listed is exactly what the change calls for; a second run creates nothing twice; and the
answers move the flags or roll back as they should."""

from datetime import timedelta

import pytest
from django.utils import timezone

from providers import batch, renewals
from providers.answers import Answer, record_answers
from providers.models import ProvisioningRequest
from subscriptions import actions
from subscriptions.actions import ItemSpec
from subscriptions.models import InstalledItem, SubscriptionService

Req = ProvisioningRequest


@pytest.fixture
def catalog(exset_catalog):  # ``subscribe`` subscribes at EXSET SMS
    return exset_catalog


def run(catalog, today=None) -> int:
    """The processing run over every subscription; how many requests it created."""
    result = batch.reconcile(
        batch.Selection(catalog.provider),
        trigger_name="process_provisioning_requests",
        today=today or timezone.localdate(),
    )
    return result.requests_created


def answer(requests, *, accepted: bool = True) -> None:
    """EXSET's answers to these requests, as the TQUEUE reading applies them: recorded, then
    the pipeline's ``accepted`` extra (``renewals.renewed``)."""
    record_answers(
        [
            Answer(r.pk, accepted, "" if accepted else "E42", "" if accepted else "No")
            for r in requests
        ]
    )
    if accepted:
        renewals.renewed(list(Req.objects.filter(pk__in=[r.pk for r in requests])), timezone.now())


def pending(sub) -> list[Req]:
    return list(Req.objects.filter(subscription=sub, state=Req.State.PENDING).order_by("pk"))


def settle(catalog, sub) -> None:
    """Run, and EXSET accepts everything: the subscription is in step."""
    run(catalog)
    answer(pending(sub))
    assert run(catalog) == 0


def card(sub, **kw) -> InstalledItem:
    return sub.installed_items.filter(kind="smartcard", **kw).latest("pk")


def box(sub, **kw) -> InstalledItem:
    return sub.installed_items.filter(kind="stb", **kw).latest("pk")


def made(sub) -> list[tuple]:
    """(command, the parameters that tell it apart) of the subscription's Pending requests."""
    rows = []
    for r in pending(sub):
        p = r.parameters
        assert p["subscription"] == sub.number
        assert p["distributor"] == r.distributor.code
        if r.command in ("ADD_SUBSCRIPTION", "REMOVE_SUBSCRIPTION", "RENEW_SUBSCRIPTION"):
            assert p["card_ca_id"] == r.installed_item.ca_id
            rows.append((r.command, p["service_ca_id"], p["card_ca_id"]))
        elif r.command == "CHANGE_DEVICE":
            rows.append((r.command, p["replaced_ca_id"], p["new_ca_id"]))
        else:
            rows.append((r.command, p["action"], p["card_ca_id"], p["decoder_ca_id"]))
    return rows


# --- The table ----------------------------------------------------------------------------------
# Each row: (what, the subscription's products (and ``subscribe``'s options), what happens to
# it once in step — None for a new subscription —, and the commands expected, from the subscription's devices by name:
# "card"/"box" the ones in use, "old card"/"old box" the ones taken away).


def _stop(catalog, sub):
    actions.stop_service(sub.services.get(product__code="BUNDLE_A"))


def _swap_card(catalog, sub):
    actions.swap_installed_item(card(sub), "SC-NEW-1", "CA-SC-NEW-1")


def _swap_card_to_one_in_use(catalog, sub):
    """The old card goes to another subscription: it may not be moved away from there."""
    old = card(sub)
    actions.swap_installed_item(old, "SC-NEW-2", "CA-SC-NEW-2")
    other = actions.become_subscriber(
        sub.account,
        catalog.types["RES"],
        [(catalog.products["AGRICULTURE"], catalog.distributors["MAIN"])],
        [ItemSpec("smartcard", old.serial_number, old.ca_id, catalog.main)],
    ).subscription
    other.installed_items.update(initialized=True)
    other.services.update(authorized=True, authorization_date=timezone.now())


def _swap_card_and_box(catalog, sub):
    actions.swap_installed_item(card(sub), "SC-NEW-3", "CA-SC-NEW-3")
    actions.swap_installed_item(box(sub), "STB-NEW-3", "CA-STB-NEW-3")


def _add_box(catalog, sub):
    actions.add_installed_item(sub, ItemSpec("stb", "STB-NEW-4", "CA-STB-NEW-4", catalog.main))


def _add_card(catalog, sub):
    actions.add_installed_item(sub, ItemSpec("smartcard", "SC-NEW-6", "CA-SC-NEW-6", catalog.main))


def _remove_box(catalog, sub):
    actions.remove_installed_item(box(sub))


def _switch_off_and_swap_card(catalog, sub):
    """A card swapped while one service is switched off: CHANGE_DEVICE moves what is held,
    and the service switched off is removed from the new card, after the change."""
    actions.stop_service(sub.services.get(product__code="AGRICULTURE"))
    actions.swap_installed_item(card(sub), "SC-NEW-5", "CA-SC-NEW-5")


def _add_service_and_swap_card(catalog, sub):
    actions.add_service(sub, catalog.products["AGRICULTURE"], catalog.main)
    actions.swap_installed_item(card(sub), "SC-NEW-7", "CA-SC-NEW-7")


def _add(ca_id, which="card"):
    return ("ADD_SUBSCRIPTION", ca_id, which)


def _remove(ca_id, which="card"):
    return ("REMOVE_SUBSCRIPTION", ca_id, which)


TABLE = [
    (
        "new devices are paired, then the bundle's components added",
        ["BUNDLE_A"],
        None,
        [("PAIR_UNPAIR_DEVICE_RECEIVER", "PAIR", "card", "box"), _add("GFA1"), _add("EFA2")],
    ),
    (
        "a usage service is never added",
        ["AGRICULTURE", "PPV"],
        None,
        [("PAIR_UNPAIR_DEVICE_RECEIVER", "PAIR", "card", "box"), _add("AF1")],
    ),
    ("in step: nothing", ["BUNDLE_A"], lambda catalog, sub: None, []),
    (
        "a service switched off and authorized is removed",
        ["BUNDLE_A"],
        _stop,
        [_remove("GFA1"), _remove("EFA2")],
    ),
    (
        "a card swapped under a paired box: one CHANGE_DEVICE",
        ["BUNDLE_A"],
        _swap_card,
        [("CHANGE_DEVICE", "old card", "card")],
    ),
    (
        "a card swapped while a service is switched off: the change, then the removal",
        ["BUNDLE_A", "AGRICULTURE"],
        _switch_off_and_swap_card,
        [("CHANGE_DEVICE", "old card", "card"), _remove("AF1")],
    ),
    (
        "a card swapped while a service is added: the change, then the add",
        ["BUNDLE_A"],
        _add_service_and_swap_card,
        [("CHANGE_DEVICE", "old card", "card"), _add("AF1")],
    ),
    (
        "the old card is in use on another subscription: pair, remove, add",
        ["AGRICULTURE"],
        _swap_card_to_one_in_use,
        [
            ("PAIR_UNPAIR_DEVICE_RECEIVER", "PAIR", "card", "box"),
            _remove("AF1", "old card"),
            _add("AF1"),
        ],
    ),
    (
        "card and box both swapped: the old box unpaired, the new ones paired",
        ["AGRICULTURE"],
        _swap_card_and_box,
        [
            ("PAIR_UNPAIR_DEVICE_RECEIVER", "UNPAIR", None, "old box"),
            ("PAIR_UNPAIR_DEVICE_RECEIVER", "PAIR", "card", "box"),
            _remove("AF1", "old card"),
            _add("AF1"),
        ],
    ),
    (
        "a new box is paired with the card",
        ["AGRICULTURE"],
        _add_box,
        [("PAIR_UNPAIR_DEVICE_RECEIVER", "PAIR", "card", "box")],
    ),
    (
        "a second card is paired with the box, then gets the services",
        ["BUNDLE_A"],
        _add_card,
        [("PAIR_UNPAIR_DEVICE_RECEIVER", "PAIR", "card", "box"), _add("GFA1"), _add("EFA2")],
    ),
    (
        "a card without a box is paired alone",
        ["AGRICULTURE", {"devices": ["smartcard"]}],
        None,
        [("PAIR_UNPAIR_DEVICE_RECEIVER", "PAIR", "card", None), _add("AF1")],
    ),
    (
        "a box taken away is unpaired",
        ["AGRICULTURE"],
        _remove_box,
        [("PAIR_UNPAIR_DEVICE_RECEIVER", "UNPAIR", None, "old box")],
    ),
]


def named(sub, rows) -> list[tuple]:
    """The expected rows with the devices' names replaced by their CA IDs."""
    names = {
        "card": card(sub, removed_at=None).ca_id,
        "box": box(sub, removed_at=None).ca_id
        if sub.installed_items.filter(kind="stb", removed_at=None).exists()
        else None,
    }
    removed = sub.installed_items.exclude(removed_at=None)
    if removed.filter(kind="smartcard").exists():
        names["old card"] = card(sub, removed_at__isnull=False).ca_id
    if removed.filter(kind="stb").exists():
        names["old box"] = box(sub, removed_at__isnull=False).ca_id
    return [tuple(names.get(v, v) if isinstance(v, str) else v for v in row) for row in rows]


@pytest.mark.parametrize(
    ("what", "products", "change", "expected"), TABLE, ids=[r[0] for r in TABLE]
)
def test_trigger_table(catalog, subscribe, what, products, change, expected):
    options = products[-1] if isinstance(products[-1], dict) else {}
    sub = subscribe(*(p for p in products if isinstance(p, str)), **options)
    if change is not None:
        settle(catalog, sub)
        change(catalog, sub)

    created = run(catalog)

    assert made(sub) == named(sub, expected)
    assert created == len(expected)
    # Pending requests count as applied: the next run creates nothing twice.
    assert run(catalog) == 0
    # Accepted, the subscription is in step with EXSET.
    answer(pending(sub))
    assert run(catalog) == 0


# --- Renewals: authorization date + renewal_days (default 30) -----------------------------------


def test_renewal_at_30_days_and_not_at_29(catalog, subscribe):
    sub = subscribe("BUNDLE_A")
    settle(catalog, sub)
    authorized_on = timezone.localdate(sub.services.get().authorization_date)

    assert run(catalog, authorized_on + timedelta(days=29)) == 0
    assert run(catalog, authorized_on + timedelta(days=30)) == 2
    assert made(sub) == [
        ("RENEW_SUBSCRIPTION", "GFA1", card(sub).ca_id),
        ("RENEW_SUBSCRIPTION", "EFA2", card(sub).ca_id),
    ]
    renew = pending(sub)[0]
    assert renew.operation == Req.Operation.RENEW
    assert renew.parameters["product_code"] == "BUNDLE_A"
    assert renew.parameters["card_serial_number"] == card(sub).serial_number
    # A Renew waiting for its answer counts as sent.
    assert run(catalog, authorized_on + timedelta(days=31)) == 0

    answer(pending(sub))
    moved = timezone.localdate(SubscriptionService.objects.get(subscription=sub).authorization_date)
    assert moved == timezone.localdate()
    assert run(catalog, moved + timedelta(days=29)) == 0
    assert run(catalog, moved + timedelta(days=30)) == 2


def test_renewal_days_is_the_providers(catalog, subscribe):
    catalog.provider.parameters = {"renewal_days": 7}
    catalog.provider.save()
    sub = subscribe("AGRICULTURE")
    settle(catalog, sub)
    authorized_on = timezone.localdate(sub.services.get().authorization_date)

    assert run(catalog, authorized_on + timedelta(days=6)) == 0
    assert run(catalog, authorized_on + timedelta(days=7)) == 1


def test_a_usage_service_is_never_renewed_and_one_held_is_removed(catalog, subscribe):
    sub = subscribe("PPV")
    settle(catalog, sub)
    usage = sub.services.get()
    assert not usage.authorized
    # Held at EXSET all the same (authorized before it was a usage service, say).
    usage.authorized, usage.authorization_date = True, timezone.now() - timedelta(days=90)
    usage.save()

    assert run(catalog) == 1
    assert made(sub) == [("REMOVE_SUBSCRIPTION", "PPV1", card(sub).ca_id)]


# --- CHANGE_DEVICE answered ---------------------------------------------------------------------


@pytest.fixture
def swapped(catalog, subscribe):
    """Bundle A in step, then its card swapped, and the run's CHANGE_DEVICE Pending."""
    sub = subscribe("BUNDLE_A")
    settle(catalog, sub)
    old = card(sub)
    actions.swap_installed_item(old, "SC-NEW-9", "CA-SC-NEW-9")
    assert run(catalog) == 1
    (change,) = pending(sub)
    assert change.command == "CHANGE_DEVICE"
    return sub, change, old, card(sub, removed_at=None)


def test_change_device_accepted_moves_the_card_and_its_entitlements(catalog, swapped, fast_path):
    sub, change, old, new = swapped
    assert change.installed_item_id == new.pk
    assert set(change.items.values_list("pk", flat=True)) == {old.pk, new.pk}

    answer([change])

    old.refresh_from_db()
    new.refresh_from_db()
    assert (new.initialized, old.initialized) == (True, False)
    assert box(sub).initialized
    assert sub.services.get().authorized
    # The entitlements count as held on the new card: nothing to add, remove or pair.
    assert run(catalog) == 0
    # And they are renewed there, when due.
    authorized_on = timezone.localdate(sub.services.get().authorization_date)
    assert run(catalog, authorized_on + timedelta(days=30)) == 2
    assert {r.installed_item_id for r in pending(sub)} == {new.pk}


def test_change_device_rejected_is_rolled_back_and_sent_again(catalog, swapped):
    sub, change, old, new = swapped

    answer([change], accepted=False)

    change.refresh_from_db()
    old.refresh_from_db()
    new.refresh_from_db()
    assert change.state == Req.State.REJECTED
    assert (new.initialized, old.initialized) == (False, True)
    assert sub.events.filter(action="provisioning_rollback").exists()
    assert run(catalog) == 1
    assert made(sub) == [("CHANGE_DEVICE", old.ca_id, new.ca_id)]


def test_a_service_switched_off_while_the_change_is_pending_is_removed_from_the_new_card(
    catalog, swapped
):
    sub, _change, _old, new = swapped
    actions.stop_service(sub.services.get())

    assert run(catalog) == 2
    assert made(sub)[1:] == [
        ("REMOVE_SUBSCRIPTION", "GFA1", new.ca_id),
        ("REMOVE_SUBSCRIPTION", "EFA2", new.ca_id),
    ]
    assert run(catalog) == 0
    answer(pending(sub))
    assert not sub.services.get().authorized
    assert run(catalog) == 0


def test_the_new_card_swapped_again_while_the_change_is_pending(catalog, swapped):
    """EXSET moves the services to the second card first: they are removed from it and added
    to the third, which is paired."""
    sub, _change, _old, second = swapped
    actions.swap_installed_item(second, "SC-NEW-10", "CA-SC-NEW-10")
    third = "CA-SC-NEW-10"

    assert run(catalog) == 5
    assert made(sub)[1:] == [
        ("PAIR_UNPAIR_DEVICE_RECEIVER", "PAIR", third, box(sub).ca_id),
        ("REMOVE_SUBSCRIPTION", "GFA1", second.ca_id),
        ("REMOVE_SUBSCRIPTION", "EFA2", second.ca_id),
        ("ADD_SUBSCRIPTION", "GFA1", third),
        ("ADD_SUBSCRIPTION", "EFA2", third),
    ]
    assert run(catalog) == 0
    answer(pending(sub))
    assert list(
        sub.installed_items.filter(initialized=True).order_by("pk").values_list("ca_id", flat=True)
    ) == [box(sub).ca_id, third]
    assert run(catalog) == 0


def test_preview_lists_the_change_of_device(catalog, subscribe):
    sub = subscribe("BUNDLE_A")
    settle(catalog, sub)
    old = card(sub)
    actions.swap_installed_item(old, "SC-NEW-8", "CA-SC-NEW-8")

    rows = list(batch.preview(batch.Selection(catalog.provider)))

    assert [(row.subscription, row.requests) for row in rows] == [
        (
            sub.number,
            [
                {
                    "command": "CHANGE_DEVICE",
                    "reason": (
                        "Change device: card SC-NEW-8 not initialized at the provider; "
                        f"card {old.serial_number} taken away"
                    ),
                    "parameters": {
                        "subscription": sub.number,
                        "distributor": "MAIN",
                        "replaced_ca_id": old.ca_id,
                        "new_ca_id": "CA-SC-NEW-8",
                    },
                }
            ],
        )
    ]
    assert not pending(sub)  # a preview writes nothing


# --- Other answers ------------------------------------------------------------------------------


def test_pairing_accepted_registers_both_devices_and_unpairing_forgets_the_box(
    catalog, subscribe, fast_path
):
    sub = subscribe("AGRICULTURE")
    run(catalog)
    answer(pending(sub))
    assert set(sub.installed_items.values_list("initialized", flat=True)) == {True}

    gone = box(sub)
    actions.remove_installed_item(gone)
    assert run(catalog) == 1
    answer(pending(sub))
    gone.refresh_from_db()
    assert not gone.initialized
    assert card(sub).initialized
    assert run(catalog) == 0


def test_add_rejected_switches_the_service_off(catalog, subscribe):
    sub = subscribe("AGRICULTURE")
    run(catalog)
    pairing, add = pending(sub)
    answer([pairing])

    answer([add], accepted=False)

    service = sub.services.get()
    assert service.state == SubscriptionService.State.NOT_EFFECTIVE
    assert not service.authorized
    assert run(catalog) == 0


def test_remove_accepted_clears_authorized(catalog, subscribe, fast_path):
    sub = subscribe("AGRICULTURE")
    settle(catalog, sub)
    actions.stop_service(sub.services.get())
    run(catalog)

    answer(pending(sub))

    assert not sub.services.get().authorized
    assert run(catalog) == 0
