"""Every device change ends with the platform holding what the subscription wants.

Each row of ``CHANGES`` starts a subscription with some devices (paired, services delivered),
changes its devices through the actions, delivers what that made, and compares what the
platform then holds with what the subscription wants: every card in use entitled to exactly
the CA IDs of its viewing point's effective services, every removed card to none, the devices
in use paired together and with nothing else, and the provider flags saying so. Rows run
against the Conax WS SOAP simulator, the Irdeto KMS simulator, the Generic provider's reference
platform (push mode) and the Conax SMS simulator (SFTP, a CAS answering files: processing run,
export, answers read), each a real server.
"""

import itertools
from dataclasses import dataclass
from datetime import timedelta

import pytest
from django.utils import timezone

from catalogue.models import ProductCAId
from providers import batch, delivery
from providers.conax_sms.files import PIPELINE
from providers.file_delivery import export, responses
from providers.models import ProvisioningRequest
from runs import services as runs
from runs.models import ProcessRun, RunDefinition
from subscriptions import actions
from subscriptions.actions import ItemSpec
from subscriptions.models import InstalledItem

_numbers = itertools.count(1)


def _spec(kind: str, distributor) -> ItemSpec:
    n = next(_numbers)
    prefix = "SC" if kind == "smartcard" else "STB"
    return ItemSpec(kind, f"D{prefix}{n:05d}", f"CA-D{prefix}-{n:05d}", distributor, "X-1", kind)


@dataclass
class Platform:
    """What one provider's platform holds, read the same way whichever it is."""

    catalog: object
    simulator: object = None  # Conax WS
    reference: object = None  # the Generic reference platform
    sms: object = None  # the Conax SMS simulator (SFTP server and a CAS answering files)
    kms: object = None  # the Irdeto KMS simulator

    def deliver(self) -> None:
        """Everything due, and what its answers made (a rollback's own requests), delivered."""
        self.catalog.provider.refresh_from_db()
        for _ in range(5):
            if self.sms is not None:
                if not self._file_cycle():
                    break
            elif not delivery.drain(self.catalog.provider).answered:
                break
        assert not ProvisioningRequest.objects.filter(state="pending").exists()

    def _file_cycle(self) -> int:
        """A batch provider's day: the processing run, the export of its requests to the CAS,
        the CAS answering the file, the run that reads the answers. How many were answered."""
        provider = self.catalog.provider
        batch.reconcile(batch.Selection(provider), trigger_name="process_provisioning_requests")
        export.export(PIPELINE, provider)
        self.sms.cas.run_once()
        result = responses.process_responses(PIPELINE, provider)
        return result.completed + result.rejected

    def entitled(self, card: str) -> set[str]:
        if self.sms is not None:
            return set(self.sms.cas.entitlements.get(card, {}))
        if self.kms is not None:
            return set(self.kms.active(card))
        if self.simulator is not None:
            with self.simulator.state.lock:
                if card not in self.simulator.state.cards:
                    return set()
                return {s["product_id"] for s in self.simulator.state.active_subscriptions(card)}
        return set(self.reference.state()["entitlements"].get(card, []))

    def paired_with(self, device: str) -> set[str]:
        """The devices of the pairing that holds ``device`` (itself included), or none."""
        if self.sms is not None:
            # This CAS keeps pairings by their first card and only ever adds to them.
            found = set()
            for anchor, pairing in self.sms.cas.pairings.items():
                members = {anchor, *pairing["stbs"], *pairing["cards"]}
                if device in members:
                    found |= members
            return found
        if self.kms is not None:
            with self.kms.state.lock:
                pairing = self.kms.state.pairings.get(self.kms.state.pairing_of(device), {})
                return set(pairing.get("smartcards", [])) | set(pairing.get("stbs", []))
        if self.simulator is not None:
            with self.simulator.state.lock:
                for pairing in self.simulator.state.pairings.values():
                    members = set(pairing["cards"]) | set(pairing["modules"])
                    if device in members:
                        return members
            return set()
        for members in self.reference.state()["pairings"].values():
            if device in members:
                return set(members)
        return set()

    def reject(self, *cards: str) -> None:
        if self.sms is not None:
            self.sms.cas.reject_cards = set(cards)
        elif self.kms is not None:
            self.kms.state.controls.reject_devices = frozenset(cards)
        elif self.simulator is not None:
            self.simulator.state.controls.reject_cards = frozenset(cards)
        else:
            self.reference.reject_cards = set(cards)


def _platform(request, name: str) -> Platform:
    request.getfixturevalue("settings").PROVISIONING_RETRY_SECONDS = 0
    if name == "conax_ws":
        catalog = request.getfixturevalue("conax")
        return Platform(catalog, simulator=request.getfixturevalue("conax_ws_simulator"))
    if name == "irdeto":
        catalog = request.getfixturevalue("irdeto")
        return Platform(catalog, kms=request.getfixturevalue("irdeto_simulator"))
    if name == "conax_sms":
        catalog = request.getfixturevalue("sms_catalog")
        return Platform(catalog, sms=request.getfixturevalue("conax_sms_simulator"))
    catalog = request.getfixturevalue("catalog")
    request.getfixturevalue("push_provider")
    return Platform(catalog, reference=request.getfixturevalue("platform"))


@pytest.fixture(params=["conax_ws", "irdeto", "generic"])
def target(request):
    """A real-time provider's platform: Conax WS, Irdeto or Generic (push)."""
    return _platform(request, request.param)


@pytest.fixture(params=["conax_ws", "irdeto", "generic", "conax_sms"])
def any_target(request):
    """Also a file provider's: Conax SMS, whose requests go in files over SFTP."""
    return _platform(request, request.param)


def start(target: Platform, subscribe, devices: str, products: tuple[str, ...]):
    """A subscription on MAIN with ``devices`` ("card", "card+box", "2 cards+box", …), its
    services delivered."""
    kinds = {"card": ["smartcard"], "card+box": ["smartcard", "stb"]}.get(devices)
    if kinds is None:
        kinds = ["smartcard", "smartcard"] + (["stb"] if devices.endswith("+box") else [])
    sub = subscribe(*products, devices=kinds, catalog=target.catalog)
    target.deliver()
    return sub


def in_use(sub, kind: str) -> list[InstalledItem]:
    return list(sub.installed_items.filter(kind=kind, removed_at=None).order_by("pk"))


def swap_card(sub):
    card = in_use(sub, "smartcard")[0]
    new = _spec("smartcard", card.distributor)
    actions.swap_installed_item(card, new.serial_number, new.ca_id)


def swap_box(sub):
    box = in_use(sub, "stb")[0]
    new = _spec("stb", box.distributor)
    actions.swap_installed_item(box, new.serial_number, new.ca_id)


def add_card(sub):
    actions.add_installed_item(sub, _spec("smartcard", sub.installed_items.first().distributor))


def add_box(sub):
    actions.add_installed_item(sub, _spec("stb", sub.installed_items.first().distributor))


def remove_card(sub):
    actions.remove_installed_item(in_use(sub, "smartcard")[0])


def remove_box(sub):
    actions.remove_installed_item(in_use(sub, "stb")[0])


# (change, the devices it starts from): "with an existing pairing" is a card paired with a box
# or with another card; "without" a card alone (nothing else paired with it).
CHANGES = [
    (swap_card, "card"),
    (swap_card, "card+box"),
    (swap_card, "2 cards"),
    (swap_box, "card+box"),
    (swap_box, "2 cards+box"),
    (add_card, "card"),
    (add_card, "card+box"),
    (add_box, "card"),
    (add_box, "card+box"),
    (remove_card, "2 cards"),
    (remove_card, "2 cards+box"),
    (remove_box, "card+box"),
    (remove_box, "2 cards+box"),
]
SERVICES = {"one service": ("AGRICULTURE",), "several services": ("BUNDLE_A", "AGRICULTURE")}


def wanted_ca_ids(sub) -> set[str]:
    ca_ids = set()
    for service in sub.services.all():
        if service.is_on:
            parts = list(service.product.components.all()) or [service.product]
            ca_ids |= set(
                ProductCAId.objects.filter(
                    product__in=parts, provider=service.distributor.provider
                ).values_list("ca_id", flat=True)
            )
    return ca_ids


def assert_in_step(target: Platform, sub) -> None:
    """Every card entitled to what the subscription wants there (a removed one to nothing),
    the devices in use paired together and with nothing else, the flags saying so. The Conax
    SMS CAS only ever adds to a pairing (its file format has no way to take a device out), so
    there the devices in use are paired together, and what was taken away is not checked."""
    wanted = wanted_ca_ids(sub)
    items = list(sub.installed_items.all())
    devices = {i.ca_id for i in items if i.in_use}
    exact = target.sms is None
    for item in items:
        if item.kind == "smartcard":
            held = target.entitled(item.ca_id)
            assert held == (wanted if item.in_use else set()), item
        if item.in_use:
            paired = target.paired_with(item.ca_id)
            assert paired == devices if exact else devices <= paired, item
            assert item.initialized, item
        elif exact:
            assert item.ca_id not in target.paired_with(next(iter(devices))), item
    assert all(s.authorized == s.is_on for s in sub.services.all())


@pytest.mark.parametrize("services", SERVICES.values(), ids=SERVICES.keys())
@pytest.mark.parametrize(
    "change, devices", CHANGES, ids=[f"{c.__name__}-{d.replace(' ', '')}" for c, d in CHANGES]
)
def test_a_device_change_leaves_the_platform_holding_what_the_subscription_wants(
    any_target, subscribe, change, devices, services
):
    target = any_target
    sub = start(target, subscribe, devices, services)
    assert_in_step(target, sub)

    change(sub)
    target.deliver()

    assert not ProvisioningRequest.objects.filter(subscription=sub, state="rejected").exists()
    assert_in_step(target, sub)


def test_a_swapped_in_card_is_paired_with_the_box_before_it_is_entitled(
    conax_ws_simulator, conax, subscribe
):
    """Finding 1: on Conax WS the pairing named the box as its paired card, the CAS refused it
    and the new card's activations, and the customer was left with nothing."""
    target = Platform(conax, simulator=conax_ws_simulator)
    sub = start(target, subscribe, "card+box", ("BUNDLE_A",))
    card, box = in_use(sub, "smartcard")[0], in_use(sub, "stb")[0]

    swap_card(sub)
    target.deliver()

    new = in_use(sub, "smartcard")[0]
    arrived = [(r["operation"], r["cards"]) for r in conax_ws_simulator.state.received[-5:]]
    assert arrived[0] == ("CreatePairing", [new.ca_id])
    assert target.paired_with(new.ca_id) == {new.ca_id, box.ca_id}
    assert target.entitled(new.ca_id) == {"GFA1", "EFA2"}
    assert target.entitled(card.ca_id) == set()


@pytest.mark.parametrize("how", ["reset single subscription", "reset run"])
def test_a_rejected_pairing_after_a_box_was_taken_away_is_paired_anew_by_a_reset(
    target, subscribe, how
):
    """The box taken away: the card is paired anew without it. The platform refuses that
    pairing, and keeps the box paired with the card; once it accepts again, a reset (single,
    or a run) pairs the card anew, and the box is out of its pairing."""
    sub = start(target, subscribe, "card+box", ("AGRICULTURE",))
    card, box = in_use(sub, "smartcard")[0], in_use(sub, "stb")[0]
    target.reject(card.ca_id)

    remove_box(sub)
    target.deliver()

    (refused,) = ProvisioningRequest.objects.filter(subscription=sub, state="rejected")
    assert refused.operation == ProvisioningRequest.Operation.CREATE_PAIRING
    assert target.paired_with(card.ca_id) == {card.ca_id, box.ca_id}
    target.reject()

    if how == "reset run":
        definition = RunDefinition.objects.create(
            name="Reset",
            run_type="reset_subscriptions",
            provider=target.catalog.provider,
            run_at=timezone.now() + timedelta(hours=1),
        )
        run = runs.execute(definition.pk, ProcessRun.Trigger.RUN_NOW)
        assert (run.status, run.created) == ("completed", 1)
    else:
        outcome = batch.reset(sub, provider=target.catalog.provider)
        assert [r.operation for r in outcome.requests] == ["create_pairing"]
    target.deliver()

    assert target.paired_with(card.ca_id) == {card.ca_id}
    assert card.ca_id not in target.paired_with(box.ca_id)
    assert_in_step(target, sub)
    box.refresh_from_db()
    assert not box.initialized
    assert list(batch.reset(sub, provider=target.catalog.provider).requests) == []
