"""Conax SMS utilities (Pair smartcards & STBs, Send mail & bark message) and the Mail & Bark
Messages run, through to the CAS simulator and back."""

import pytest
from django.core.exceptions import ValidationError

from providers.conax_sms.files import PIPELINE
from providers.file_delivery import export, responses
from providers.models import ProvisioningRequest
from runs import services as runs
from runs.models import ProcessRun, RunDefinition
from subscriptions.models import CommunicationQueueEntry
from tests.fixtures import CONAX_SMS_PASSWORD_ENV, out_files, request_files
from utilities import registry
from utilities import services as utilities

Req = ProvisioningRequest


@pytest.fixture
def catalog(sms_catalog):  # this module's catalogue, where ``subscribe`` subscribes, is Conax SMS
    return sms_catalog


def test_the_provider_offers_its_utilities_and_runs(sms):
    from runs.types import for_provider

    assert [u.name for u in registry.for_provider(sms)] == [
        "Pair smartcards & STBs",
        "Send mail & bark message",
        "Reset single subscription",
    ]
    assert [t.name for t in for_provider(sms)] == [
        "Process Provisioning Requests",
        "Export request files",
        "Error Handling file run",
        "Mail & Bark Messages",
        "Archive requests",
    ]


@pytest.mark.django_db(transaction=True)  # committed for real, as on the agent's screen
def test_pairing_is_express_sent_at_once_and_initializes_on_success(
    sms, subscribe, conax_sms_simulator
):
    sub = subscribe("AGRICULTURE", number="ZX-PAIR")
    card = sub.installed_items.get(kind="smartcard")
    box = sub.installed_items.get(kind="stb")

    outcome = utilities.run(
        "conax_sms_pair_devices",
        subscription=sub,
        provider=sms,
        data={"smartcard": card.pk, "stb": box.pk},
        process_immediately=True,
    )

    (request,) = outcome.requests
    assert (request.command, request.priority) == ("CREATE_PAIRING", Req.Priority.EXPRESS)
    assert outcome.message == (
        f"Create Pairing of {card.serial_number} and {box.serial_number}. "
        f"Exported now: {out_files(sms).get().name}."
    )
    (records,) = request_files(conax_sms_simulator).values()
    assert [(r.command, r.client_id, r.fields) for r in records] == [
        ("CREATE_PAIRING", card.ca_id, (box.ca_id, "", ""))
    ]
    conax_sms_simulator.cas.run_once()
    responses.process_responses(PIPELINE, sms)
    request.refresh_from_db()
    assert request.state == Req.State.COMPLETED
    assert set(sub.installed_items.values_list("initialized", flat=True)) == {True}
    assert conax_sms_simulator.cas.pairings == {card.ca_id: {"stbs": [box.ca_id], "cards": []}}


def test_pairing_offers_only_the_subscriptions_own_devices(sms, subscribe):
    sub = subscribe("AGRICULTURE")
    other = subscribe("AGRICULTURE")
    with pytest.raises(ValidationError) as invalid:
        utilities.run(
            "conax_sms_pair_devices",
            subscription=sub,
            provider=sms,
            data={
                "smartcard": sub.installed_items.get(kind="smartcard").pk,
                "stb": other.installed_items.get(kind="stb").pk,
            },
        )
    assert "stb" in invalid.value.message_dict


def test_a_message_waits_for_the_export_run(sms, subscribe, conax_sms_simulator):
    sub = subscribe("AGRICULTURE", number="ZX-MSG")
    card = sub.installed_items.get(kind="smartcard")
    text = "Your bill | is ready\nThank you"

    outcome = utilities.run(
        "conax_sms_send_message",
        subscription=sub,
        provider=sms,
        data={"message_type": "BARK", "smartcard": card.pk, "text": text},
        process_immediately=False,
    )

    (request,) = outcome.requests
    assert (
        outcome.message
        == f"Bark message to {card.serial_number} waits for the next export to Conax."
    )
    assert request.parameters == {
        "subscription": "ZX-MSG",
        "distributor": "MAIN",
        "card_ca_id": card.ca_id,
        "card_serial_number": card.serial_number,
        "message_type": "BARK",
        "text": text,
        "sequence": 255,
        "duration_seconds": 20,
    }
    assert request_files(conax_sms_simulator) == {}

    definition = RunDefinition.objects.create(
        name="Export", run_type="conax_sms_export_files", provider=sms
    )
    run = runs.execute(definition.pk, ProcessRun.Trigger.RUN_NOW)
    assert (run.status, run.total, run.examined) == (ProcessRun.Status.COMPLETED, 1, 1)
    conax_sms_simulator.cas.run_once()
    assert conax_sms_simulator.cas.messages == [
        {
            "card": card.ca_id,
            "type": "BARK",
            "sequence": 255,
            "duration": 20,
            "text": text,
            "uid": str(request.uid),
        }
    ]


def test_a_bark_message_is_at_most_129_characters(sms, subscribe):
    sub = subscribe("AGRICULTURE")
    card = sub.installed_items.get(kind="smartcard")
    data = {"message_type": "BARK", "smartcard": card.pk, "text": "x" * 130, "sequence": 0}
    with pytest.raises(ValidationError) as invalid:
        utilities.run("conax_sms_send_message", subscription=sub, provider=sms, data=data)
    assert invalid.value.message_dict == {
        "sequence": ["Ensure this value is greater than or equal to 1."],
        "text": ["A bark message holds at most 129 characters."],
    }


def test_the_message_run_sends_pending_communications(
    sms_catalog, sms, subscribe, conax_sms_simulator
):
    subs = [subscribe("AGRICULTURE", number=f"ZX-COM-{n}") for n in range(3)]
    system = sms_catalog.external_system
    for n, sub in enumerate(subs):
        CommunicationQueueEntry.objects.create(
            number=f"COM-{n}", external_system=system, subscription=sub, text=f"Hello {n}"
        )
    CommunicationQueueEntry.objects.create(
        number="COM-LONG", external_system=system, subscription=subs[0], text="y" * 142
    )
    definition = RunDefinition(
        name="Messages",
        run_type="conax_sms_messages",
        provider=sms,
        input_settings={
            "message_type": "MAIL",
            "external_system": system.code,
            "sequence": 7,
            "process_immediately": True,
        },
    )
    runs.validate(definition, schedule=False)
    definition.save()

    run = runs.execute(definition.pk, ProcessRun.Trigger.RUN_NOW)

    assert (run.status, run.total, run.examined, run.created) == (
        ProcessRun.Status.COMPLETED_WITH_ERRORS,
        4,
        4,
        3,
    )
    assert list(run.error_log.values_list("subscription__number", "message")) == [
        ("ZX-COM-0", "COM-LONG: The text has 142 characters; a mail message holds at most 141.")
    ]
    assert run.message == (
        "Sent 3 of 4 communications as messages to 3 smartcards; 1 failed; 1 error (see the log)."
    )
    states = dict(CommunicationQueueEntry.objects.values_list("number", "state"))
    assert states == {
        "COM-0": "completed",
        "COM-1": "completed",
        "COM-2": "completed",
        "COM-LONG": "failed",
    }
    # Process immediately: exported at the end of the run.
    assert out_files(sms).get().records == 3
    conax_sms_simulator.cas.run_once()
    assert sorted(
        (m["text"], m["type"], m["sequence"]) for m in conax_sms_simulator.cas.messages
    ) == [
        ("Hello 0", "MAIL", 7),
        ("Hello 1", "MAIL", 7),
        ("Hello 2", "MAIL", 7),
    ]
    assert {r.parameters["communication"] for r in Req.objects.all()} == {"COM-0", "COM-1", "COM-2"}


def test_the_message_run_leaves_them_for_the_export_run_when_conax_is_unreachable(
    sms_catalog, sms, subscribe, conax_sms_simulator, monkeypatch
):
    sub = subscribe("AGRICULTURE", number="ZX-COM-DOWN")
    system = sms_catalog.external_system
    CommunicationQueueEntry.objects.create(
        number="COM-DOWN", external_system=system, subscription=sub, text="Hello"
    )
    definition = RunDefinition(
        name="Messages",
        run_type="conax_sms_messages",
        provider=sms,
        input_settings={
            "message_type": "MAIL",
            "external_system": system.code,
            "process_immediately": True,
        },
    )
    runs.validate(definition, schedule=False)
    definition.save()
    monkeypatch.setenv(CONAX_SMS_PASSWORD_ENV, "not-the-password")  # the SFTP server refuses us

    run = runs.execute(definition.pk, ProcessRun.Trigger.RUN_NOW)

    assert (run.status, run.examined, run.created) == (
        ProcessRun.Status.COMPLETED_WITH_ERRORS,
        1,
        1,
    )
    ((subscription, message),) = run.error_log.values_list("subscription", "message")
    assert subscription is None
    assert message.startswith("Could not export now (")
    assert message.endswith("); the next export run sends them.")
    assert not out_files(sms).exists()
    assert export.waiting(sms) == 1


def test_export_now_waits_for_the_commit(
    sms, subscribe, conax_sms_simulator, django_capture_on_commit_callbacks
):
    from django.db import transaction

    from providers.conax_sms import messages

    sub = subscribe("AGRICULTURE")
    card = sub.installed_items.get(kind="smartcard")
    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        messages.send_message(
            sms, card, message_type="MAIL", text="hi", trigger="utility", trigger_name="t"
        )
        assert (
            export.export_now(PIPELINE, sms)
            == "They will be exported when this transaction commits."
        )
        assert not out_files(sms).exists()
    assert out_files(sms).get().state == "uploaded"
    assert export.waiting(sms) == 0
