"""EXSET SMS: infocas messages, fingerprints and recalls (seed 002) — the requests and their
parameters, bad input refused with nothing written, and the Infocas Message and Fingerprinting
runs (the communication queue's hold-back rule, the runs' counts and logs)."""

import json

import pytest
from django.core.exceptions import ValidationError
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from catalogue.models import ExternalSystem, ProductCAId, Provider
from providers.exset import messages
from providers.file_delivery import export, responses
from providers.file_delivery.channel import Channel
from providers.file_delivery.layout import AnswerBatch, AnswerRecord, Layout
from providers.file_delivery.pipeline import Pipeline
from providers.models import ProvisioningRequest
from runs import services as runs
from runs.models import ProcessRun, RunDefinition
from subscriptions import actions
from subscriptions.models import CommunicationQueueEntry, SubscriptionService
from tests.unit.test_backoffice import login
from tests.unit.test_runs_backoffice import form_data

Req = ProvisioningRequest
Entry = CommunicationQueueEntry
FINGERPRINT = {
    "window_type": "OVERT",
    "position_x": 50,
    "position_y": 50,
    "duration_seconds": 10,
    "font_size": 16,
    "text_color": "#FFFFFF",
    "background_color": "#000000",
}
UTILITY = {"trigger": Req.Trigger.UTILITY, "trigger_name": "test"}


@pytest.fixture
def catalog(exset_msg_catalog):  # ``subscribe`` subscribes at EXSET SMS
    return exset_msg_catalog


@pytest.fixture
def exset(catalog):
    return catalog.provider


def card(subscription, distributor="MAIN"):
    return subscription.installed_items.get(kind="smartcard", distributor__code=distributor)


# --- The requests and their parameters ---------------------------------------------------------


def test_a_broadcast_infocas_message_names_no_subscription(exset):
    request = messages.broadcast_infocas(
        exset,
        message="  Maintenance tonight 01:00-03:00  ",
        duration_minutes=120,
        interval_minutes=15,
        priority=Req.Priority.EXPRESS,
        **UTILITY,
    )

    request.refresh_from_db()
    assert (request.command, request.state, request.priority) == (
        "ADD_BROADCAST_INFOCAS_MESSAGE",
        Req.State.PENDING,
        Req.Priority.EXPRESS,
    )
    assert (request.subscription, request.installed_item, request.distributor) == (None,) * 3
    assert request.parameters == {
        "message": "Maintenance tonight 01:00-03:00",
        "duration_minutes": 120,
        "interval_minutes": 15,
    }


def test_an_individual_infocas_message_goes_to_one_card(exset, subscribe):
    sub = subscribe("AGRICULTURE", number="ZX-INFO")
    by_ca_id = messages.individual_infocas(
        exset, card(sub).ca_id, message="Hello", duration_minutes=5, interval_minutes=1, **UTILITY
    )
    by_row = messages.individual_infocas(
        exset,
        card(sub),
        message="Hi",
        duration_minutes=1,
        interval_minutes=1,
        trigger=Req.Trigger.RUN,
        trigger_name="test",
        communication="CQ-7",
    )

    assert by_ca_id.command == "ADD_INDIVIDUAL_INFOCAS_MESSAGE"
    assert (by_ca_id.subscription, by_ca_id.installed_item) == (sub, card(sub))
    assert by_ca_id.distributor.code == "MAIN"
    assert by_ca_id.parameters == {
        "subscription": "ZX-INFO",
        "distributor": "MAIN",
        "card_ca_id": card(sub).ca_id,
        "message": "Hello",
        "duration_minutes": 5,
        "interval_minutes": 1,
    }
    assert by_row.parameters["communication"] == "CQ-7"


def test_fingerprints_to_all_to_holders_of_a_service_and_to_one_card(exset, subscribe):
    sub = subscribe("AGRICULTURE", number="ZX-FP")

    everyone = messages.broadcast_fingerprint(exset, {}, **UTILITY)
    holders = messages.broadcast_fingerprint(
        exset,
        {"window_type": "COVERT", "position_x": 0, "text_color": "#00ff00"},
        service="AF1",
        **UTILITY,
    )
    one = messages.individual_fingerprint(
        exset, card(sub), {"duration_seconds": 600, "font_size": 48}, service="GFA1", **UTILITY
    )

    assert (everyone.command, everyone.subscription) == ("ADD_BROADCAST_FINGERPRINT_MESSAGE", None)
    assert everyone.parameters == {"fingerprint": FINGERPRINT}
    assert holders.parameters == {
        "fingerprint": {
            **FINGERPRINT,
            "window_type": "COVERT",
            "position_x": 0,
            "text_color": "#00FF00",
        },
        "service_ca_id": "AF1",
    }
    assert (one.command, one.installed_item) == ("ADD_INDIVIDUAL_FINGERPRINT_MESSAGE", card(sub))
    assert one.parameters == {
        "subscription": "ZX-FP",
        "distributor": "MAIN",
        "card_ca_id": card(sub).ca_id,
        "fingerprint": {**FINGERPRINT, "duration_seconds": 600, "font_size": 48},
        "service_ca_id": "GFA1",
    }


def test_a_recall_reauthorizes_the_effective_services_of_the_cards_viewing_point(exset, subscribe):
    sub = subscribe("BUNDLE_A", "AGRICULTURE", ("BUNDLE_B", "TWIN1"), number="ZX-RECALL")
    agriculture = sub.services.get(product__code="AGRICULTURE")
    actions.stop_service(agriculture)
    assert not SubscriptionService.objects.get(pk=agriculture.pk).is_on

    request = messages.recall(exset, card(sub), **UTILITY)
    twin = messages.recall(exset, card(sub, "TWIN1").ca_id, **UTILITY)

    assert (request.command, request.installed_item) == ("RECALL_SUBSCRIPTION", card(sub))
    assert request.parameters == {
        "subscription": "ZX-RECALL",
        "distributors": ["MAIN"],
        "card_ca_id": card(sub).ca_id,
        "service_ca_ids": ["GFA1", "EFA2"],  # the bundle's components; Agriculture is off
    }
    assert twin.parameters["service_ca_ids"] == ["RFB1", "BFB2"]
    assert twin.parameters["distributors"] == ["TWIN1"]


# --- Bad input: a clear message naming the parameter, nothing written --------------------------


def refused(make) -> dict:
    with pytest.raises(ValidationError) as invalid:
        make()
    assert not Req.objects.exists()
    return invalid.value.message_dict


def test_a_message_too_long_a_duration_of_0_and_an_unknown_card_are_refused(exset, subscribe):
    sub = subscribe("AGRICULTURE")

    assert refused(
        lambda: messages.individual_infocas(
            exset,
            "NO-SUCH-CARD",
            message="x" * 201,
            duration_minutes=0,
            interval_minutes=0,
            **UTILITY,
        )
    ) == {
        "message": ["An infocas message holds at most 200 characters; this one has 201."],
        "duration_minutes": [
            "The broadcast duration is 1 to 10080 minutes (a week); 0 is out of range."
        ],
        "interval_minutes": [
            "The interval between broadcasts is 1 to 1440 minutes (a day); 0 is out of range."
        ],
        "card_ca_id": ["No smartcard with CA ID 'NO-SUCH-CARD' is in use at EXSET SMS."],
    }
    assert refused(
        lambda: messages.broadcast_infocas(
            exset, message=" ", duration_minutes=10, interval_minutes=30, **UTILITY
        )
    ) == {
        "message": ["Give the text of the message."],
        "interval_minutes": [
            "The interval (30 minutes) is longer than the broadcast duration (10 minutes): "
            "the message would be shown once only."
        ],
    }
    box = sub.installed_items.get(kind="stb")
    assert refused(lambda: messages.recall(exset, box.ca_id, **UTILITY)) == {
        "card_ca_id": [f"No smartcard with CA ID '{box.ca_id}' is in use at EXSET SMS."]
    }
    # 200 characters are accepted.
    messages.broadcast_infocas(
        exset, message="x" * 200, duration_minutes=10080, interval_minutes=1440, **UTILITY
    )


def test_bad_fingerprint_parameters_are_refused(exset, subscribe):
    sub = subscribe("AGRICULTURE")
    bad = {
        "window_type": "HUGE",
        "position_x": 101,
        "position_y": -1,
        "duration_seconds": 0,
        "font_size": "big",
        "text_color": "white",
    }

    assert refused(
        lambda: messages.individual_fingerprint(exset, card(sub), bad, service="XX9", **UTILITY)
    ) == {
        "window_type": ["The window type is one of OVERT, COVERT, SCROLLING; 'HUGE' is not."],
        "position_x": ["The horizontal position is 0 to 100 % of the width; 101 is out of range."],
        "position_y": ["The vertical position is 0 to 100 % of the height; -1 is out of range."],
        "duration_seconds": ["The display duration is 1 to 600 seconds; 0 is out of range."],
        "font_size": ["Give a whole number; 'big' is not one."],
        "text_color": ["Give the colour as #RRGGBB (e.g. #FFFFFF); 'white' is not."],
        "service_ca_id": ["No service has the CA ID XX9 at EXSET SMS."],
    }
    assert refused(lambda: messages.broadcast_fingerprint(exset, {"slot": "A"}, **UTILITY)) == {
        "fingerprint": ["Unknown fingerprint parameters: slot."]
    }


def test_a_recall_of_a_card_without_effective_services_is_refused(exset, subscribe):
    sub = subscribe("AGRICULTURE", number="ZX-OFF")
    actions.stop_service(sub.services.get())

    assert refused(lambda: messages.recall(exset, card(sub), **UTILITY)) == {
        "card_ca_id": [
            "ZX-OFF has no Effective service on MAIN at EXSET SMS: there is nothing to "
            f"re-authorize on {card(sub).ca_id}."
        ]
    }


def test_a_broadcast_shows_in_the_back_office(exset, administrator):
    request = messages.broadcast_infocas(
        exset, message="Hello everyone", duration_minutes=60, interval_minutes=10, **UTILITY
    )
    client = Client()
    client.force_login(administrator)

    listed = client.get(reverse("admin:providers_provisioningrequest_changelist"))
    shown = client.get(reverse("admin:providers_provisioningrequest_change", args=[request.pk]))

    assert listed.status_code == 200
    assert "ADD_BROADCAST_INFOCAS_MESSAGE" in listed.content.decode()
    assert shown.status_code == 200
    assert "Hello everyone" in shown.content.decode()
    api = APIClient()
    api.force_authenticate(administrator)
    (row,) = api.get("/api/v1/requests/").json()["results"]
    assert (row["command"], row["subscription"], row["subscription_number"]) == (
        "ADD_BROADCAST_INFOCAS_MESSAGE",
        None,
        None,
    )


class MemoryQueue(Layout, Channel):
    """A queue table in memory, laid out as EXSET's TQUEUE (entry id, command, subscription,
    card, parameters): the shared pipeline's layout and channel at once, so that a broadcast
    travels as any batch request does until the TQUEUE's own pipeline is in."""

    def __init__(self):
        self.staged_batches, self.entries, self.waiting_answers = {}, {}, {}

    def columns(self):
        return ("subscription__number", "installed_item__ca_id", "parameters")

    def context(self, provider, today):
        return {}

    def batch_name(self, provider_id, number):
        return f"batch-{provider_id}-{number}"

    def render(self, rows, context):
        entries = [
            {
                "entry_id": uid,
                "command": command,
                "subscription": sub,
                "card": card,
                **(json.loads(params) if isinstance(params, str) else params),  # SQLite: text
            }
            for _pk, uid, command, sub, card, params in rows
        ]
        return entries, [row[0] for row in rows], []

    def write(self, name, created, entries):
        return entries

    def checksum(self, payload):
        return str(len(repr(payload)))

    def is_answer(self, name):
        return name.endswith(".answer")

    def parse_answers(self, payload):
        return payload

    def answered_batch(self, answer_name):
        return answer_name.removesuffix(".answer")

    def stage(self, name, payload):
        self.staged_batches[name] = payload

    def publish(self, name):
        for entry in self.staged_batches.pop(name):
            self.entries[entry["entry_id"]] = {**entry, "batch": name}

    def staged(self, name):
        return name in self.staged_batches

    def answers(self):
        return sorted(self.waiting_answers)

    def fetch(self, name):
        return self.waiting_answers[name]

    def archive(self, name, *, refused):
        del self.waiting_answers[name]


def test_a_broadcast_travels_through_the_batch_pipeline_and_is_answered(exset, subscribe):
    exset.parameters = {"max_records_per_file": 100, "answer_deadline_hours": 24}
    exset.save()
    sub = subscribe("AGRICULTURE", number="ZX-PIPE")
    queue = MemoryQueue()
    pipeline = Pipeline(queue, lambda provider: queue, "EXSET SMS")
    broadcast = messages.broadcast_infocas(
        exset, message="Hello all", duration_minutes=60, interval_minutes=10, **UTILITY
    )
    fingerprint = messages.broadcast_fingerprint(exset, {}, service="AF1", **UTILITY)
    one = messages.individual_infocas(
        exset, card(sub), message="Hello you", duration_minutes=60, interval_minutes=10, **UTILITY
    )

    exported = export.export(pipeline, exset)

    assert (exported.uploaded, exported.records, exported.failed) == (
        [f"batch-{exset.pk}-1"],
        3,
        0,
    )
    assert {(e["command"], e["subscription"], e["card"]) for e in queue.entries.values()} == {
        ("ADD_BROADCAST_INFOCAS_MESSAGE", None, None),
        ("ADD_BROADCAST_FINGERPRINT_MESSAGE", None, None),
        ("ADD_INDIVIDUAL_INFOCAS_MESSAGE", "ZX-PIPE", card(sub).ca_id),
    }
    assert queue.entries[str(broadcast.uid)]["message"] == "Hello all"
    queue.waiting_answers[f"batch-{exset.pk}-1.answer"] = AnswerBatch(
        f"batch-{exset.pk}-1.answer",
        f"batch-{exset.pk}-1",
        [
            AnswerRecord(str(broadcast.uid), True),
            AnswerRecord(str(fingerprint.uid), False, "E42", "No such service on air"),
            AnswerRecord(str(one.uid), True),
        ],
    )

    answered = responses.process_responses(pipeline, exset)

    assert (answered.completed, answered.rejected) == (2, 1)
    states = dict(Req.objects.values_list("pk", "state"))
    assert states == {
        broadcast.pk: Req.State.COMPLETED,
        fingerprint.pk: Req.State.REJECTED,
        one.pk: Req.State.COMPLETED,
    }
    assert Req.objects.get(pk=fingerprint.pk).last_error == "No such service on air"


# --- The Infocas Message run: the communication queue ------------------------------------------


def communication(sub, number: str, text: str = "Your bill is ready", system=None) -> Entry:
    return Entry.objects.create(
        number=number,
        external_system=system or ExternalSystem.objects.get(code="ZX-CAS"),
        subscription=sub,
        text=text,
    )


def infocas_run(exset, **settings) -> ProcessRun:
    definition = RunDefinition.objects.create(
        name=f"Infocas {RunDefinition.objects.count()}",
        run_type="exset_infocas_messages",
        provider=exset,
        input_settings={
            "external_system": "ZX-CAS",
            "duration_minutes": 30,
            "interval_minutes": 5,
            **settings,
        },
    )
    runs.validate(definition, schedule=False)
    definition.save()
    return runs.execute(definition.pk, ProcessRun.Trigger.RUN_NOW)


def state_of(number: str) -> tuple[str, str]:
    entry = Entry.objects.get(number=number)
    return entry.state, entry.failure_reason


def test_the_infocas_run_holds_back_a_subscription_with_a_request_on_its_way(exset, subscribe):
    free = subscribe("AGRICULTURE", number="ZX-FREE")
    busy = subscribe("AGRICULTURE", number="ZX-BUSY")
    twice = subscribe("AGRICULTURE", number="ZX-TWICE")
    wordy = subscribe("AGRICULTURE", number="ZX-WORDY")
    boxed = subscribe("AGRICULTURE", number="ZX-BOX", devices=["stb"])
    recall = messages.recall(exset, card(busy), **UTILITY)
    communication(free, "CQ-1")
    communication(busy, "CQ-2")
    communication(twice, "CQ-3", "First")
    communication(twice, "CQ-4", "Second")
    communication(wordy, "CQ-5", "y" * 201)
    communication(boxed, "CQ-6")

    run = infocas_run(exset)

    assert run.status == ProcessRun.Status.COMPLETED_WITH_ERRORS
    assert run.counts == {
        "communications": 6,
        "sent": 2,
        "held_back": 2,
        "failed": 2,
        "requests": 2,
    }
    assert run.message == (
        "Sent 2 of 6 communications as 2 requests; 2 held back for the next run; 2 failed; "
        "4 errors (see the log)."
    )
    first = Req.objects.get(parameters__communication="CQ-3")
    assert sorted(run.error_log.values_list("message", flat=True)) == sorted(
        [
            f"CQ-2: held back for the next run: ZX-BUSY has request {recall.pk} "
            "(RECALL_SUBSCRIPTION) still waiting at EXSET SMS (its TQUEUE entry New or Under "
            "Processing, or not written yet).",
            f"CQ-4: held back for the next run: ZX-TWICE has request {first.pk} "
            "(ADD_INDIVIDUAL_INFOCAS_MESSAGE) still waiting at EXSET SMS (its TQUEUE entry New "
            "or Under Processing, or not written yet).",
            "CQ-5: An infocas message holds at most 200 characters; this one has 201.",
            "CQ-6: ZX-BOX has no smartcard in use at EXSET SMS.",
        ]
    )
    assert state_of("CQ-1") == (Entry.State.COMPLETED, "")
    assert state_of("CQ-2") == (Entry.State.PENDING, "")
    assert state_of("CQ-4") == (Entry.State.PENDING, "")
    assert state_of("CQ-5") == (
        Entry.State.FAILED,
        "An infocas message holds at most 200 characters; this one has 201.",
    )
    assert state_of("CQ-6") == (Entry.State.FAILED, "ZX-BOX has no smartcard in use at EXSET SMS.")
    sent = Req.objects.get(parameters__communication="CQ-1")
    assert (sent.command, sent.trigger, sent.process_run_id) == (
        "ADD_INDIVIDUAL_INFOCAS_MESSAGE",
        Req.Trigger.RUN,
        run.pk,
    )
    assert sent.parameters == {
        "subscription": "ZX-FREE",
        "distributor": "MAIN",
        "card_ca_id": card(free).ca_id,
        "message": "Your bill is ready",
        "duration_minutes": 30,
        "interval_minutes": 5,
        "communication": "CQ-1",
    }

    # EXSET answers: the held-back communications go with the next run.
    Req.objects.filter(pk__in=[recall.pk, first.pk]).update(state=Req.State.COMPLETED)
    again = infocas_run(exset)

    assert again.counts == {
        "communications": 2,
        "sent": 2,
        "held_back": 0,
        "failed": 0,
        "requests": 2,
    }
    assert again.status == ProcessRun.Status.COMPLETED
    assert state_of("CQ-2")[0] == state_of("CQ-4")[0] == Entry.State.COMPLETED
    assert Req.objects.get(parameters__communication="CQ-4").parameters["message"] == "Second"


def test_the_infocas_run_sends_one_message_per_card_and_only_its_systems(exset, subscribe):
    two = subscribe("AGRICULTURE", ("AGRICULTURE", "TWIN1"), number="ZX-TWO")
    other = ExternalSystem.objects.create(code="CRM", name="Another system")
    communication(two, "CQ-10")
    communication(two, "CQ-11", system=other)

    run = infocas_run(exset)

    assert (run.counts["sent"], run.counts["requests"]) == (1, 2)
    assert sorted(
        Req.objects.filter(parameters__communication="CQ-10").values_list(
            "parameters__card_ca_id", flat=True
        )
    ) == sorted([card(two).ca_id, card(two, "TWIN1").ca_id])
    assert state_of("CQ-11")[0] == Entry.State.PENDING


def test_the_infocas_run_takes_the_providers_own_system_and_checks_its_times(exset):
    ExternalSystem.objects.create(code="CRM", name="Another system")
    for settings, error in [
        (
            {"external_system": "CRM"},
            "external_system: EXSET SMS's external system is ZX-CAS; an Infocas Message run "
            "sends that system's communications, not CRM's.",
        ),
        (
            {"duration_minutes": 0},
            "duration_minutes: The broadcast duration is 1 to 10080 minutes (a week); 0 is out "
            "of range.",
        ),
    ]:
        definition = RunDefinition(
            name="Infocas",
            run_type="exset_infocas_messages",
            provider=exset,
            input_settings={
                "external_system": "ZX-CAS",
                "duration_minutes": 30,
                "interval_minutes": 5,
                **settings,
            },
        )
        with pytest.raises(ValidationError) as invalid:
            runs.validate(definition, schedule=False)
        assert invalid.value.message_dict == {"input_settings": [error]}


# --- The Fingerprinting run --------------------------------------------------------------------


def fingerprinting(exset, criteria=None, **settings) -> RunDefinition:
    definition = RunDefinition(
        name=f"Fingerprinting {RunDefinition.objects.count()}",
        run_type="exset_fingerprinting",
        provider=exset,
        criteria=criteria or {},
        input_settings=settings,
    )
    runs.validate(definition, schedule=False)
    definition.save()
    return definition


def test_the_fingerprinting_run_broadcasts_one_fingerprint(exset):
    everyone = fingerprinting(exset)
    run = runs.execute(everyone.pk, ProcessRun.Trigger.RUN_NOW)

    assert (run.status, run.counts, run.message) == (
        ProcessRun.Status.COMPLETED,
        {"broadcasts": 1},
        "Created 1 fingerprint broadcast.",
    )
    (request,) = Req.objects.filter(process_run=run)
    assert (request.command, request.subscription, request.trigger) == (
        "ADD_BROADCAST_FINGERPRINT_MESSAGE",
        None,
        Req.Trigger.RUN,
    )
    assert request.parameters == {"fingerprint": FINGERPRINT}

    holders = fingerprinting(
        exset, {"service_ca_id": "EFA2"}, window_type="SCROLLING", position_y=90
    )
    again = runs.execute(holders.pk, ProcessRun.Trigger.RUN_NOW)
    assert Req.objects.get(process_run=again).parameters == {
        "fingerprint": {**FINGERPRINT, "window_type": "SCROLLING", "position_y": 90},
        "service_ca_id": "EFA2",
    }


def test_the_fingerprinting_run_refuses_bad_settings(exset, catalog):
    definition = RunDefinition(
        name="Fingerprinting",
        run_type="exset_fingerprinting",
        provider=exset,
        criteria={"service_ca_id": "GFA1"},
        input_settings={"position_x": 150, "background_color": "#12345"},
    )
    with pytest.raises(ValidationError) as invalid:
        runs.validate(definition, schedule=False)
    assert invalid.value.message_dict == {
        "input_settings": [
            "position_x: The horizontal position is 0 to 100 % of the width; 150 is out of range.",
            "background_color: Give the colour as #RRGGBB (e.g. #FFFFFF); '#12345' is not.",
        ]
    }
    # A CA ID of another provider's only.
    other = Provider.objects.create(name="Elsewhere", type="generic")
    ProductCAId.objects.create(product=catalog.products["BABY"], provider=other, ca_id="ZZ9")
    definition.criteria, definition.input_settings = {"service_ca_id": "ZZ9"}, {}
    with pytest.raises(ValidationError) as invalid:
        runs.validate(definition, schedule=False)
    assert invalid.value.message_dict == {
        "criteria": ["service_ca_id: No service has the CA ID ZZ9 at EXSET SMS."]
    }


def test_an_operator_defines_the_runs_in_the_back_office(operator, catalog):
    ExternalSystem.objects.create(code="CRM", name="Another system")
    client = login(operator)
    add = reverse("admin:runs_rundefinition_add")

    def post(name: str, run_type: str, **fields):
        prefixed = {
            f"{'criteria' if key == 'service_ca_id' else 'input'}-{run_type}-{key}": value
            for key, value in fields.items()
        }
        data = form_data(catalog, name=name, alternative_code=name, run_type=run_type)
        return client.post(add, {**data, **prefixed})

    infocas = {"external_system": "ZX-CAS", "duration_minutes": "30", "interval_minutes": "5"}
    assert post("INFO", "exset_infocas_messages", **infocas).status_code == 302
    assert RunDefinition.objects.get().input_settings == {
        "external_system": "ZX-CAS",
        "duration_minutes": 30,
        "interval_minutes": 5,
    }
    for name, run_type, fields, field, message in [
        (
            "OTHER",
            "exset_infocas_messages",
            {**infocas, "external_system": "CRM"},
            "input-exset_infocas_messages-external_system",
            "EXSET SMS's external system is ZX-CAS; an Infocas Message run sends that "
            "system's communications, not CRM's.",
        ),
        (
            "ZERO",
            "exset_infocas_messages",
            {**infocas, "duration_minutes": "0"},
            "input-exset_infocas_messages-duration_minutes",
            "The broadcast duration is 1 to 10080 minutes (a week); 0 is out of range.",
        ),
        (
            "FP",
            "exset_fingerprinting",
            {"service_ca_id": "AF1", "position_x": "150"},
            "input-exset_fingerprinting-position_x",
            "The horizontal position is 0 to 100 % of the width; 150 is out of range.",
        ),
    ]:
        response = post(name, run_type, **fields)
        assert response.status_code == 200
        assert response.context["adminform"].form.errors == {field: [message]}
    assert RunDefinition.objects.count() == 1
