"""Conax WS runs through the runs service: Mail & Bark Messages from the communication queue,
Fingerprinting by segments; their requests delivered to the CAS simulator."""

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from catalogue.models import ExternalSystem
from providers.models import ProvisioningRequest
from runs import services as runs
from runs import types
from runs.models import ProcessRun, RunDefinition
from subscriptions.demo import ensure_catalog
from subscriptions.models import CommunicationQueueEntry, Segment
from tests.fixtures import card_of, deliver

pytestmark = pytest.mark.django_db

Req = ProvisioningRequest
Entry = CommunicationQueueEntry


@pytest.fixture
def catalog(conax):  # this module's catalogue, where ``subscribe`` subscribes, is Conax WS
    return conax


def definition(conax, run_type, **fields) -> RunDefinition:
    return RunDefinition.objects.create(
        name=f"{run_type} run",
        run_type=run_type,
        provider=conax.provider,
        run_at=timezone.now() + timedelta(hours=1),
        **fields,
    )


def execute(d: RunDefinition) -> ProcessRun:
    runs.validate(d, schedule=False)
    d.save()
    return runs.execute(d.pk, ProcessRun.Trigger.RUN_NOW)


@pytest.fixture
def twin_sub(subscribe):
    """A subscriber with a card on MAIN and one on TWIN1."""
    return subscribe("AGRICULTURE", ("BUNDLE_A", "TWIN1"))


def cards(sub) -> list[str]:
    return list(
        sub.installed_items.filter(kind="smartcard").order_by("pk").values_list("ca_id", flat=True)
    )


def test_conax_ws_offers_its_run_types(conax):
    assert [t.name for t in types.for_provider(conax.provider)] == [
        "Reset Subscriptions",
        "Mail & Bark Messages",
        "Fingerprinting",
        "Archive requests",
    ]


def test_mail_and_bark_run_sends_the_pending_communications_of_its_external_system(
    conax, subscribe, twin_sub, conax_ws_simulator
):
    one = subscribe("AGRICULTURE")
    other_provider = subscribe("AGRICULTURE", catalog=ensure_catalog())  # a Generic subscriber
    deliver(conax)
    zx = conax.external_system
    elsewhere = ExternalSystem.objects.create(code="PORTAL", name="Customer portal")

    def queue(number, text, *, sub=None, system=zx, direction=Entry.Direction.OUTGOING):
        return Entry.objects.create(
            number=number, external_system=system, subscription=sub, text=text, direction=direction
        )

    queue("CQ-1", "Your bill is ready.", sub=one)
    queue("CQ-2", "Welcome to your second room!", sub=twin_sub)
    queue("CQ-3", "x" * 130, sub=one)  # too long for a bark
    untouched = [
        queue("CQ-4", "Not ours", sub=other_provider),
        queue("CQ-5", "No subscription"),
        queue("CQ-6", "Another system", sub=one, system=elsewhere),
        queue("CQ-7", "Incoming", sub=one, direction=Entry.Direction.INCOMING),
    ]
    d = definition(
        conax,
        "conax_ws_mail_bark_messages",
        input_settings={
            "message_type": "repeating_bark",
            "external_system": "ZX-CAS",
            "repetition_count": 2,
            "repetition_interval_seconds": 60,
        },
    )
    run = execute(d)
    assert (run.status, run.total, run.examined, run.created, run.errors) == (
        "completed_with_errors",
        3,
        3,
        3,
        1,
    )
    assert [(e.subscription_id, e.message) for e in run.error_log.all()] == [
        (one.pk, "CQ-3: A repeating bark message holds at most 129 characters; this one has 130.")
    ]
    # What the run's page and the API say it did.
    assert run.message == (
        "Sent 2 of 3 communications as messages to 3 smartcards; 1 failed; 1 error (see the log)."
    )
    assert runs.count_rows(run) == [
        ("communications", "Communications examined", 3),
        ("sent", "Sent", 2),
        ("failed", "Failed", 1),
        ("requests", "Requests created", 3),
    ]
    states = dict(Entry.objects.values_list("number", "state"))
    assert {n: states[n] for n in ("CQ-1", "CQ-2", "CQ-3")} == {
        "CQ-1": "completed",
        "CQ-2": "completed",
        "CQ-3": "failed",
    }
    assert Entry.objects.get(number="CQ-3").failure_reason == (
        "A repeating bark message holds at most 129 characters; this one has 130."
    )
    assert all(Entry.objects.get(pk=e.pk).state == "pending" for e in untouched)

    made = Req.objects.filter(process_run=run).order_by("pk")
    assert [
        (r.command, r.parameters["card_ca_id"], r.parameters["communication_queue_number"])
        for r in made
    ] == [
        ("SEND_REPEATING_BARK_MESSAGE_TO_CLIENT", card_of(one), "CQ-1"),
        ("SEND_REPEATING_BARK_MESSAGE_TO_CLIENT", cards(twin_sub)[0], "CQ-2"),
        ("SEND_REPEATING_BARK_MESSAGE_TO_CLIENT", cards(twin_sub)[1], "CQ-2"),
    ]
    assert made[0].parameters["display_duration_seconds"] == 20
    deliver(conax)
    assert set(made.values_list("state", flat=True)) == {"completed"}
    screens = {
        c: conax_ws_simulator.state.cards[c]["screen"] for c in [card_of(one), *cards(twin_sub)]
    }
    assert {c: [(m["text"], m["repetition_interval"]) for m in s] for c, s in screens.items()} == {
        card_of(one): [("Your bill is ready.", 60)],
        cards(twin_sub)[0]: [("Welcome to your second room!", 60)],
        cards(twin_sub)[1]: [("Welcome to your second room!", 60)],
    }
    again = execute(d)  # nothing Pending is left: nothing is sent twice
    assert (again.examined, again.created) == (0, 0)


def test_mail_and_bark_run_settings_are_validated(conax):
    d = definition(
        conax,
        "conax_ws_mail_bark_messages",
        input_settings={
            "message_type": "repeating_bark",
            "external_system": "ZX-CAS",
            "repetition_count": 2,
            "repetition_interval_seconds": 2555,
        },
    )
    with pytest.raises(ValidationError) as err:
        runs.validate(d, schedule=False)
    assert err.value.message_dict == {
        "input_settings": [
            "repetition_interval_seconds: The repetition interval is 10 to 2550 seconds; "
            "2555 is out of range."
        ]
    }
    d.input_settings = {"message_type": "mail", "external_system": "NOPE"}
    with pytest.raises(ValidationError) as err:
        runs.validate(d, schedule=False)
    assert err.value.message_dict == {
        "input_settings": [
            "external_system: Select a valid choice. NOPE is not one of the available choices."
        ]
    }


def test_fingerprinting_run_by_included_and_excluded_segments(
    conax, subscribe, twin_sub, conax_ws_simulator
):
    first, third = subscribe("AGRICULTURE"), subscribe("BUNDLE_B")
    deliver(conax)
    vip = Segment.objects.create(code="VIP", name="VIP")
    trial = Segment.objects.create(code="TRIAL", name="Trial")
    vip.subscriptions.add(first, twin_sub, third)
    trial.subscriptions.add(third)

    d = definition(
        conax,
        "conax_ws_fingerprinting",
        criteria={"included_segments": ["VIP"], "excluded_segments": ["VIP"]},
    )
    with pytest.raises(ValidationError) as err:
        runs.validate(d, schedule=False)
    assert err.value.message_dict == {
        "criteria": ["excluded_segments: A segment cannot be both included and excluded: VIP."]
    }
    d.criteria = {"included_segments": ["VIP"], "excluded_segments": ["TRIAL"]}
    d.input_settings = {"position_x": 10, "position_y": 20, "slot": "B"}
    run = execute(d)
    assert (run.status, run.total, run.examined, run.created) == ("completed", 2, 2, 3)
    assert run.message == "Sent the fingerprint to 3 smartcards of 2 subscriptions."
    made = Req.objects.filter(process_run=run)
    assert sorted(made.values_list("parameters__card_ca_id", flat=True)) == sorted(
        [card_of(first), *cards(twin_sub)]
    )
    deliver(conax)
    shown = {
        c: [(f["x"], f["y"], f["height"], f["slot"], f["duration_seconds"]) for f in held]
        for c, held in (
            (c, conax_ws_simulator.state.cards[c]["fingerprints"])
            for c in [card_of(first), *cards(twin_sub), card_of(third)]
        )
    }
    assert shown == {
        card_of(first): [(10, 20, 12, "B", 10)],
        cards(twin_sub)[0]: [(10, 20, 12, "B", 10)],
        cards(twin_sub)[1]: [(10, 20, 12, "B", 10)],
        card_of(third): [],
    }


def test_an_operator_sets_up_a_fingerprinting_run_in_the_back_office(operator, conax):
    from django.test import Client
    from django.urls import reverse

    Segment.objects.create(code="VIP", name="VIP")
    client = Client()
    client.force_login(operator)
    later = timezone.localtime() + timedelta(hours=1)
    code = "conax_ws_fingerprinting"
    data = {
        "name": "Fingerprint the VIPs",
        "alternative_code": "",
        "provider": str(conax.provider.pk),
        "run_type": code,
        f"criteria-{code}-included_segments": ["VIP"],
        f"input-{code}-display_at_0": "2031-05-04",
        f"input-{code}-display_at_1": "21:30:00",
        f"input-{code}-height": "",
        f"input-{code}-slot": "B",
        "schedule": "once",
        "run_at_0": later.strftime("%Y-%m-%d"),
        "run_at_1": later.strftime("%H:%M:%S"),
        "every": "",
        "unit": "",
        "cron": "",
    }
    reply = client.post(reverse("admin:runs_rundefinition_add"), data)
    assert reply.status_code == 302, reply.content.decode()[-3000:]
    made = RunDefinition.objects.get(name="Fingerprint the VIPs")
    assert made.criteria == {"included_segments": ["VIP"], "excluded_segments": []}
    assert made.input_settings["display_at"].startswith("2031-05-04 21:30:00")
    assert {k: made.input_settings[k] for k in ("duration_seconds", "height", "slot")} == {
        "duration_seconds": 10,
        "height": 12,
        "slot": "B",
    }
