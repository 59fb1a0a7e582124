"""Irdeto's utilities through the Web API, and its Mail run, against the KMS simulator over the
network: what each sends and what the KMS then holds (mailbox, screen, broadcasts, parental
PIN, sector), and Query secure client's nine sections as the agent reads them."""

import logging
from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from catalogue.models import ExternalSystem
from providers.models import ProvisioningRequest
from runs import services as runs
from runs import types
from runs.models import ProcessRun, RunDefinition
from subscriptions.demo import ensure_catalog
from subscriptions.models import CommunicationQueueEntry
from tests.fixtures import deliver, requests_of

pytestmark = pytest.mark.django_db

Req = ProvisioningRequest
Entry = CommunicationQueueEntry


@pytest.fixture
def catalog(irdeto):  # this module's catalogue, where ``subscribe`` subscribes, is Irdeto
    return irdeto


@pytest.fixture
def kms(irdeto_simulator):
    return irdeto_simulator.state


@pytest.fixture
def api(agent) -> APIClient:
    client = APIClient()
    client.force_authenticate(agent)
    return client


@pytest.fixture
def sub(irdeto, subscribe):
    """A Bundle A subscriber whose card and box the KMS has paired and entitled."""
    made = subscribe("BUNDLE_A", number="IRD-1")
    assert deliver(irdeto) == 3
    return made


def device(subscription, kind: str, distributor: str = "MAIN") -> str:
    return subscription.installed_items.get(kind=kind, distributor__code=distributor).ca_id


def run(api, irdeto, subscription, code: str, **fields):
    response = api.post(
        f"/api/v1/utilities/{code}/",
        {"subscription": subscription.pk, "provider": irdeto.provider.pk, "fields": fields},
        format="json",
    )
    return response.status_code, response.json()


def sent(irdeto, body) -> Req:
    """The utility's one request, once delivered to the KMS."""
    (request,) = body["requests"]
    deliver(irdeto)
    return Req.objects.get(pk=request["id"])


def test_irdeto_offers_its_run_types(irdeto):
    assert [t.name for t in types.for_provider(irdeto.provider)] == [
        "Reset Subscriptions",
        "Mail",
        "Archive requests",
    ]


# --- Send single message -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "typed", "shown"),
    [
        ("ANSI", "Café tonight: 5 €", "Café tonight: 5 €"),
        ("UNICODE", "Szőlő — ΚΑΛΗΣΠΕΡΑ", "Szőlő — ΚΑΛΗΣΠΕΡΑ"),
        ("RAW", "48 65 6c 6c 6f", "48 65 6C 6C 6F"),
    ],
)
def test_a_message_reaches_the_device_in_each_text_mode(api, irdeto, sub, kms, mode, typed, shown):
    stb = device(sub, "stb")
    for message_type, box in (("mail", "mailbox"), ("message", "screen")):
        status, body = run(
            api,
            irdeto,
            sub,
            "irdeto_send_message",
            message_type=message_type,
            recipients="device",
            device=stb,
            text_mode=mode,
            text=typed,
        )
        assert status == 201, body
        assert sent(irdeto, body).state == "completed"
        (got,) = kms.clients[stb][box]
        assert (got["text_mode"], got["text"]) == (mode, shown)
    assert kms.broadcasts == {"mailbox": [], "screen": []}


def test_a_message_to_all_subscribers_is_one_broadcast(api, irdeto, sub, kms):
    status, body = run(
        api,
        irdeto,
        sub,
        "irdeto_send_message",
        message_type="message",
        recipients="all",
        text_mode="ANSI",
        text="Maintenance on Sunday 02:00-04:00",
    )
    assert status == 201, body
    request = sent(irdeto, body)
    assert (request.state, request.subscription, request.installed_item) == (
        "completed",
        None,
        None,
    )
    assert [m["text"] for m in kms.broadcasts["screen"]] == ["Maintenance on Sunday 02:00-04:00"]
    assert all(not c["screen"] for c in kms.clients.values())


def test_a_text_that_does_not_fit_is_refused_and_nothing_is_sent(api, irdeto, sub, kms):
    status, body = run(
        api,
        irdeto,
        sub,
        "irdeto_send_message",
        message_type="mail",
        recipients="all",
        text_mode="UNICODE",
        text="x" * 501,
    )
    assert (status, body["error"]["fields"]) == (
        400,
        {"fields.text": ["The message is 1002 bytes in Unicode; at most 1000 fit."]},
    )
    assert not Req.objects.filter(command="SEND_MAIL").exists()
    assert kms.broadcasts["mailbox"] == []


# --- Set parental PIN --------------------------------------------------------------------------


def test_the_pin_is_set_on_the_box_given_or_by_default(api, irdeto, sub, kms, caplog):
    caplog.set_level(logging.DEBUG)
    stb = device(sub, "stb")
    status, body = run(api, irdeto, sub, "irdeto_set_parental_pin", pin="4826")
    assert status == 201, body
    assert body["message"] == f"The parental PIN of set-top box {stb} will be set to the given PIN."
    request = sent(irdeto, body)
    assert request.state == "completed"
    assert kms.clients[stb]["pin"] == "4826"
    assert "4826" not in str(request.parameters) + str(request.response) + request.last_error
    assert "4826" not in caplog.text  # nor in what sending it logged

    provider = irdeto.provider
    provider.parameters = {**provider.parameters, "default_pin": "7319"}
    provider.save()
    status, body = run(api, irdeto, sub, "irdeto_set_parental_pin")
    assert body["message"] == (
        f"The parental PIN of set-top box {stb} will be set to Irdeto's default PIN."
    )
    sent(irdeto, body)
    assert kms.clients[stb]["pin"] == "7319"

    provider.parameters = {k: v for k, v in provider.parameters.items() if k != "default_pin"}
    provider.save()
    status, body = run(api, irdeto, sub, "irdeto_set_parental_pin")
    sent(irdeto, body)
    assert kms.clients[stb]["pin"] == "0001"


# --- Re-authorize sector -----------------------------------------------------------------------


def test_reauthorize_the_sector_of_a_device(api, irdeto, sub, kms):
    card = device(sub, "smartcard")
    assert kms.clients[card]["sector"]["reauthorizations"] == 0
    status, body = run(api, irdeto, sub, "irdeto_reauthorize_sector", device=card)
    assert status == 201, body
    assert sent(irdeto, body).state == "completed"
    assert kms.clients[card]["sector"]["reauthorizations"] == 1
    assert kms.clients[device(sub, "stb")]["sector"]["reauthorizations"] == 0


def test_a_refusal_is_the_requests_visible_reason(api, irdeto, sub, kms):
    card = device(sub, "smartcard")
    kms.controls.reject_devices = frozenset({card})
    _status, body = run(api, irdeto, sub, "irdeto_reauthorize_sector", device=card)
    request = sent(irdeto, body)
    assert (request.state, request.error_code) == ("rejected", "REFUSED_BY_KMS")
    assert request.last_error == f"Secure client {card} is blocked."
    assert kms.clients[card]["sector"]["reauthorizations"] == 0


# --- Query secure client -----------------------------------------------------------------------


def test_query_shows_the_nine_sections_as_tables(api, irdeto, sub, kms):
    card, stb = device(sub, "smartcard"), device(sub, "stb")
    status, body = run(api, irdeto, sub, "irdeto_query_secure_client", device=card)
    assert status == 201, body
    assert body["message"] == f"Irdeto describes smartcard {card} in 9 sections."
    (request,) = Req.objects.filter(command="QUERY_SECURE_CLIENT")
    assert (request.state, request.trigger, request.attempts) == ("completed", "utility", 1)
    tables = {t["heading"]: t for t in body["tables"]}
    assert list(tables) == [
        "Basic information",
        "Pairing information",
        "Entitlements information",
        "Security information",
        "Anchoring information",
        "TMS attribute information",
        "Sector information",
        "PVR information",
        "Device domain information",
    ]
    entitlements = tables["Entitlements information"]
    assert entitlements["columns"] == ["Product ID", "Start", "End", "Active"]
    assert [(r[0], r[3]) for r in entitlements["rows"]] == [("EFA2", "Yes"), ("GFA1", "Yes")]
    pairing = dict(tables["Pairing information"]["rows"])
    assert (pairing["Smartcards"], pairing["STBs"]) == (card, stb)
    assert dict(tables["Basic information"]["rows"])["Secure client ID"] == card
    assert dict(tables["Security information"]["rows"])["Parental PIN set"] == "No"
    assert tables["TMS attribute information"]["columns"] == ["Name", "Value"]
    # It is asked again each time, and changes nothing at the KMS.
    assert run(api, irdeto, sub, "irdeto_query_secure_client", device=card)[0] == 201
    assert Req.objects.filter(command="QUERY_SECURE_CLIENT", state="completed").count() == 2


def test_query_when_the_kms_is_down_or_refuses(api, irdeto, sub, kms):
    card = device(sub, "smartcard")
    kms.controls.down = True
    status, body = run(api, irdeto, sub, "irdeto_query_secure_client", device=card)
    assert status == 409
    assert body["error"]["message"].startswith("Irdeto did not answer: ")
    assert body["error"]["message"].endswith(". Try again later.")
    failed = Req.objects.get(command="QUERY_SECURE_CLIENT")
    assert (failed.state, failed.attempts) == ("failed", 1)
    kms.controls.down = False
    kms.controls.reject_devices = frozenset({card})
    status, body = run(api, irdeto, sub, "irdeto_query_secure_client", device=card)
    assert (status, body["tables"]) == (201, [])
    assert body["message"] == (
        f"Irdeto refused the query: REFUSED_BY_KMS Secure client {card} is blocked."
    )


# --- The Mail run ------------------------------------------------------------------------------


def definition(irdeto, **input_settings) -> RunDefinition:
    d = RunDefinition.objects.create(
        name="Irdeto mail",
        run_type="irdeto_mail",
        provider=irdeto.provider,
        run_at=timezone.now() + timedelta(hours=1),
        input_settings=input_settings,
    )
    runs.validate(d, schedule=False)
    d.save()
    return d


def test_the_mail_run_sends_the_pending_communications(irdeto, subscribe, kms):
    one = subscribe("AGRICULTURE")
    twins = subscribe("AGRICULTURE", ("BUNDLE_A", "TWIN1"))
    card_only = subscribe("AGRICULTURE", devices=["smartcard"])
    generic = subscribe("AGRICULTURE", catalog=ensure_catalog())  # another provider's
    deliver(irdeto)
    zx = irdeto.external_system
    other = ExternalSystem.objects.create(code="PORTAL", name="Customer portal")

    def queue(number, text, sub, system=zx):
        return Entry.objects.create(
            number=number,
            external_system=system,
            subscription=sub,
            text=text,
            direction=Entry.Direction.OUTGOING,
        )

    queue("CQ-1", "Your bill is ready: 12 €", one)
    queue("CQ-2", "Welcome to your second room!", twins)
    queue("CQ-3", "Szőlő harvest special", one)  # not Windows-1252: fails, sends nothing
    queue("CQ-4", "Card only", card_only)
    untouched = [queue("CQ-5", "Not ours", generic), queue("CQ-6", "Elsewhere", one, other)]

    d = definition(irdeto, external_system="ZX-CAS", message_type="mail", text_mode="ANSI")
    done = runs.execute(d.pk, ProcessRun.Trigger.RUN_NOW)
    assert (done.status, done.total, done.examined, done.created, done.errors) == (
        "completed_with_errors",
        4,
        4,
        4,
        1,
    )
    reason = (
        "'ő' (U+0151, character 3) has no ANSI (Windows-1252) code: choose Unicode, or leave "
        "it out."
    )
    assert [(e.subscription_id, e.message) for e in done.error_log.all()] == [
        (one.pk, f"CQ-3: {reason}")
    ]
    states = dict(Entry.objects.values_list("number", "state"))
    assert states == {
        "CQ-1": "completed",
        "CQ-2": "completed",
        "CQ-3": "failed",
        "CQ-4": "completed",
        "CQ-5": "pending",
        "CQ-6": "pending",
    }
    assert Entry.objects.get(number="CQ-3").failure_reason == reason
    assert all(Entry.objects.get(pk=e.pk).state == "pending" for e in untouched)

    made = Req.objects.filter(process_run=done).order_by("pk")
    # One per viewing point: to its box, or to its card where it has none.
    assert [(r.command, r.parameters["device_ca_id"]) for r in made] == [
        ("SEND_MAIL", device(one, "stb")),
        ("SEND_MAIL", device(twins, "stb")),
        ("SEND_MAIL", device(twins, "stb", "TWIN1")),
        ("SEND_MAIL", device(card_only, "smartcard")),
    ]
    deliver(irdeto)
    assert set(made.values_list("state", flat=True)) == {"completed"}
    assert [m["text"] for m in kms.clients[device(one, "stb")]["mailbox"]] == [
        "Your bill is ready: 12 €"
    ]
    assert [m["text"] for m in kms.clients[device(twins, "stb", "TWIN1")]["mailbox"]] == [
        "Welcome to your second room!"
    ]
    assert kms.clients[device(card_only, "smartcard")]["mailbox"][0]["text"] == "Card only"
    again = runs.execute(d.pk, ProcessRun.Trigger.RUN_NOW)  # nothing Pending: nothing twice
    assert (again.examined, again.created) == (0, 0)


def test_the_mail_run_sends_on_screen_in_unicode(irdeto, subscribe, kms):
    one = subscribe("AGRICULTURE")
    deliver(irdeto)
    Entry.objects.create(
        number="CQ-1",
        external_system=irdeto.external_system,
        subscription=one,
        text="Szőlő harvest special",
        direction=Entry.Direction.OUTGOING,
    )
    d = definition(irdeto, external_system="ZX-CAS", message_type="message", text_mode="UNICODE")
    done = runs.execute(d.pk, ProcessRun.Trigger.RUN_NOW)
    assert (done.status, done.created) == ("completed", 1)
    deliver(irdeto)
    (shown,) = kms.clients[device(one, "stb")]["screen"]
    assert (shown["text_mode"], shown["text"]) == ("UNICODE", "Szőlő harvest special")


# --- Reset Subscriptions (shared, with its preview) --------------------------------------------


def test_reset_subscriptions_repairs_what_the_kms_missed_while_down(irdeto, subscribe, kms):
    kms.controls.down = True
    sub = subscribe("BUNDLE_A")
    for _attempt in range(9):  # three attempts each (the fixture's), retried at once
        deliver(irdeto)
    assert {state for _c, _id, state in requests_of(sub)} == {"failed"}
    kms.controls.down = False
    d = RunDefinition.objects.create(
        name="Irdeto reset",
        run_type="reset_subscriptions",
        provider=irdeto.provider,
        run_at=timezone.now() + timedelta(hours=1),
    )
    runs.validate(d, schedule=False)
    d.save()
    (reset,) = [t for t in types.for_provider(irdeto.provider) if t.code == "reset_subscriptions"]
    (row,) = reset.preview(d)
    assert row.subscription == sub.number
    assert [q["command"] for q in row.what] == [
        "PAIR_SECURE_CLIENTS",
        "ADD_ENTITLEMENT",
        "ADD_ENTITLEMENT",
    ]
    done = runs.execute(d.pk, ProcessRun.Trigger.RUN_NOW)
    assert (done.status, done.created) == ("completed", 3)
    deliver(irdeto)
    card = device(sub, "smartcard")
    assert kms.active(card) == ["EFA2", "GFA1"]
    assert kms.pairing_of(device(sub, "stb")) == kms.pairing_of(card) is not None
