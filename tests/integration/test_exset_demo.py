"""EXSET SMS demo: the provider on the simulator's SQLite file, its subscribers (one with a usage
service) and scheduled runs, idempotent; with the TQUEUE runs in, the whole cycle reaches the
simulator and comes back Completed."""

import time

from django_celery_beat.models import PeriodicTask

from catalogue.models import Product
from crm_provisioning.demo import ensure_runs
from providers.exset.demo import PREFIX, demo_runs, ensure_demo
from providers.exset.simulator import Simulator
from providers.models import ProvisioningRequest
from runs import services
from runs.models import ProcessRun, RunDefinition
from subscriptions.models import InstalledItem, Subscription, SubscriptionService

Req = ProvisioningRequest


def answered(sms: Simulator) -> int:
    with sms.state.lock:
        counts = sms.state.counts()
    return counts["done"] + counts["error"]


def load(url: str):
    provider = ensure_demo(url)
    ensure_runs(demo_runs(provider))
    return provider


def counts() -> tuple[int, ...]:
    return (
        Subscription.objects.count(),
        SubscriptionService.objects.count(),
        InstalledItem.objects.count(),
        RunDefinition.objects.count(),
        Product.objects.count(),
    )


def test_demo_makes_the_provider_its_subscribers_and_runs_once(db, tmp_path):
    url = f"sqlite:///{tmp_path / 'exset' / 'tqueue.sqlite3'}"
    provider = load(url)
    first = counts()
    assert load(url) == provider
    assert counts() == first

    assert provider.type == "exset"
    subscribers = Subscription.objects.filter(number__startswith=PREFIX)
    assert subscribers.count() == 6
    assert not Req.objects.exists()  # batch: the actions only change state
    # The usage service, with its CA ID at EXSET.
    box_office = SubscriptionService.objects.get(product__code="BOX_OFFICE")
    assert box_office.subscription.number == f"{PREFIX}0002"
    assert box_office.product.service_type == Product.ServiceType.USAGE
    assert box_office.product.ca_ids.get(provider=provider).ca_id == "PPV1"
    assert box_office.product.ca_ids.count() == 1  # EXSET's only
    # A card and a decoder per viewing point.
    items = InstalledItem.objects.filter(subscription__number=f"{PREFIX}0003").order_by("ca_id")
    assert list(items.values_list("ca_id", "distributor__code")) == [
        ("EXS-CA-SC00030", "MAIN"),
        ("EXS-CA-SC00031", "TWIN1"),
        ("EXS-CA-STB00030", "MAIN"),
        ("EXS-CA-STB00031", "TWIN1"),
    ]
    processing = RunDefinition.objects.get(name="EXSET: Process Provisioning Requests")
    assert (processing.provider, processing.state, processing.every) == (provider, "submitted", 5)
    assert PeriodicTask.objects.filter(run_definition=processing).exists()


def test_demo_writes_into_the_simulator_and_reads_its_answers(db, tmp_path):
    url = f"sqlite:///{tmp_path / 'exset' / 'tqueue.sqlite3'}"
    provider = load(url)
    assert provider.connection["database_url"] == url
    definitions = RunDefinition.objects.filter(provider=provider).order_by("name")
    assert [(d.name, d.run_type, d.every, d.state) for d in definitions] == [
        ("EXSET: Process Provisioning Requests", "process_provisioning_requests", 5, "submitted"),
        ("EXSET: Read TQUEUE answers", "exset_read_tqueue", 1, "submitted"),
        ("EXSET: Write TQUEUE entries", "exset_write_tqueue", 2, "submitted"),
    ]

    def run(name: str) -> ProcessRun:
        definition = RunDefinition.objects.get(name=name)
        done = services.execute(definition.pk, ProcessRun.Trigger.RUN_NOW)
        assert done.status == ProcessRun.Status.COMPLETED, name
        return done

    with Simulator(url) as sms:
        assert run("EXSET: Process Provisioning Requests").created > 0
        run("EXSET: Write TQUEUE entries")
        written = Req.objects.count()
        deadline = time.monotonic() + 30
        while answered(sms) < written and time.monotonic() < deadline:
            time.sleep(0.1)
        assert answered(sms) == written
        run("EXSET: Read TQUEUE answers")

        assert set(Req.objects.values_list("state", flat=True)) == {Req.State.COMPLETED}
        with sms.state.lock:
            cards = sms.state.snapshot()["cards"]
            received = dict(sms.state.received)
    assert set(received.values()) == {1}  # each entry arrived once
    assert sorted(cards["EXS-CA-SC00010"]["entitlements"]) == ["EFA2", "GFA1"]
    assert cards["EXS-CA-SC00010"]["decoder"] == "EXS-CA-STB00010"
    # The usage service is never sent as ADD_SUBSCRIPTION.
    assert sorted(cards["EXS-CA-SC00020"]["entitlements"]) == ["BFB2", "RFB1"]
    assert not any("PPV1" in card["entitlements"] for card in cards.values())
    assert run("EXSET: Process Provisioning Requests").created == 0
