"""EXSET SMS utilities end to end through the Web API, against the EXSET SMS simulator on a real
SMS database (an SQLite file, a PostgreSQL and a MariaDB database): Send Infocas Message, Display
Fingerprint and Recall Subscription with *process immediately* write one TQUEUE entry each at
once, the SMS applies them to the card (its ``/control/state`` shows them), and the Read TQUEUE
answers run completes the requests; a card the SMS refuses makes the request Rejected with the
SMS's code and text; bad input is a 400 naming each field, and nothing reaches TQUEUE."""

import json
import time

import pytest
import requests
from rest_framework.test import APIClient

from providers import batch
from providers.exset import tqueue
from providers.models import ProvisioningRequest
from runs import services
from runs.models import ProcessRun, RunDefinition
from tests.fixtures import card_of

Req = ProvisioningRequest
# The utilities' writing happens once their transaction commits: real commits here. The SMS
# database is each of ``tqueue_url``'s: SQLite, PostgreSQL, and MariaDB where one answers.
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def catalog(exset):  # this module's catalogue, where ``subscribe`` subscribes, is EXSET SMS
    return exset


@pytest.fixture
def api(agent) -> APIClient:
    client = APIClient()
    client.force_authenticate(agent)
    return client


def entries(sms) -> list[dict]:
    """TQUEUE as the SMS holds it, by sequence."""
    columns = ", ".join(sms.column(c) for c in tqueue.COLUMNS)
    cursor = sms.execute(f"SELECT {columns} FROM {sms.table} ORDER BY {sms.column('sequence')}")
    rows = [dict(zip(tqueue.COLUMNS, row, strict=True)) for row in cursor.fetchall()]
    sms.conn.commit()  # a fresh snapshot next time
    return rows


def finished(sms, count: int, timeout: float = 20) -> list[dict]:
    """TQUEUE once it holds ``count`` entries and the SMS has finished every one."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = entries(sms)
        if len(rows) == count and all(r["status"] in ("Done", "Error") for r in rows):
            return rows
        time.sleep(0.05)
    raise AssertionError(f"The SMS did not finish {count} entries: {entries(sms)}")


def card_state(simulator, card: str) -> dict:
    response = requests.get(f"{simulator.url}/control/state", params={"card": card}, timeout=5)
    response.raise_for_status()
    return response.json()["state"]


def read_answers(provider) -> ProcessRun:
    definition, _ = RunDefinition.objects.get_or_create(
        name="Read TQUEUE answers", defaults={"run_type": "exset_read_tqueue", "provider": provider}
    )
    return services.execute(definition.pk, ProcessRun.Trigger.RUN_NOW)


def utility(api, provider, subscription, code: str, fields: dict):
    return api.post(
        f"/api/v1/utilities/{code}/",
        {
            "subscription": subscription.pk,
            "provider": provider.pk,
            "fields": fields,
            "process_immediately": True,
        },
        format="json",
    )


@pytest.fixture
def known(exset, subscribe, tqueue_sms, exset_simulator):
    """A subscription to Bundle A (GFA1, EFA2) whose card the SMS knows: processed, written,
    applied by the SMS and its answers read."""
    sub = subscribe("BUNDLE_A", number="ZX-E2E")
    batch.reconcile(batch.Selection(exset.provider), trigger_name="process_provisioning_requests")
    written = services.execute(
        RunDefinition.objects.create(
            name="Write", run_type="exset_write_tqueue", provider=exset.provider
        ).pk,
        ProcessRun.Trigger.RUN_NOW,
    )
    assert written.message == "Exported 3 records in 1 batch."
    finished(tqueue_sms, 3)
    assert read_answers(exset.provider).status == ProcessRun.Status.COMPLETED
    assert set(Req.objects.values_list("state", flat=True)) == {Req.State.COMPLETED}
    return sub


def test_the_three_utilities_reach_the_card_and_complete(
    api, exset, known, tqueue_sms, exset_simulator
):
    provider, card = exset.provider, card_of(known)

    infocas = utility(
        api,
        provider,
        known,
        "exset_send_infocas_message",
        {
            "type": "single_subscriber",
            "message": "Your package renews on Monday",
            "duration_minutes": 30,
            "interval_minutes": 5,
        },
    )
    fingerprint = utility(
        api,
        provider,
        known,
        "exset_display_fingerprint",
        {"type": "single_subscriber", "window_type": "COVERT", "position_x": 10},
    )
    recall = utility(api, provider, known, "exset_recall_subscription", {"card_ca_id": card})

    made = []
    for response, what in (
        (infocas, f"An infocas message to card {card}"),
        (fingerprint, f"A fingerprint to card {card}"),
        (recall, f"Recall of card {card} (GFA1, EFA2)"),
    ):
        assert response.status_code == 201, response.json()
        (request,) = response.json()["requests"]
        assert response.json()["message"].startswith(f"{what}. Exported now: EXSET-")
        made.append(Req.objects.get(pk=request["id"]))
    # Written at once, each request one entry naming it, in the order they were made.
    rows = finished(tqueue_sms, 6)[3:]
    assert [(r["entry_id"], r["command"], r["card_ca_id"]) for r in rows] == [
        (str(r.uid), r.command, card) for r in made
    ]
    assert [json.loads(r["parameters"]) for r in rows] == [r.parameters for r in made]
    assert {r["status"] for r in rows} == {"Done"}

    # The SMS applied each to the card.
    held = card_state(exset_simulator, card)
    assert [
        (m["message"], m["duration_minutes"], m["interval_minutes"]) for m in held["infocas"]
    ] == [("Your package renews on Monday", 30, 5)]
    (shown,) = held["fingerprints"]
    assert (shown["fingerprint"]["window_type"], shown["fingerprint"]["position_x"]) == (
        "COVERT",
        10,
    )
    (recalled,) = held["recalls"]
    assert (recalled["entry_id"], recalled["service_ca_ids"]) == (
        str(made[2].uid),
        ["GFA1", "EFA2"],
    )

    # Pending until the answers are read; then Completed.
    assert {r.state for r in Req.objects.filter(pk__in=[r.pk for r in made])} == {Req.State.PENDING}
    answers = read_answers(provider)
    assert answers.message == (  # a batch each: they were written one by one
        "Answered 3 (accepted 3, rejected 0) from 3 TQUEUE readings; 0 still waiting."
    )
    assert {r.state for r in Req.objects.filter(pk__in=[r.pk for r in made])} == {
        Req.State.COMPLETED
    }

    # Nothing twice: the writing run finds nothing left, and the SMS got each entry once.
    write = RunDefinition.objects.get(run_type="exset_write_tqueue")
    again = services.execute(write.pk, ProcessRun.Trigger.RUN_NOW)
    assert again.message == "Exported 0 records in 0 batches."
    assert len(entries(tqueue_sms)) == 6
    counts = requests.get(f"{exset_simulator.url}/control/state", timeout=5).json()["counts"]
    assert (counts["entries"], counts["arrivals"], counts["repeated"]) == (6, 6, 0)


def test_a_card_the_sms_refuses_makes_the_request_rejected_with_its_reason(
    api, exset, known, tqueue_sms, exset_simulator
):
    card = card_of(known)
    blocked = requests.post(
        f"{exset_simulator.url}/control/reject", params={"cards": card}, timeout=5
    )
    assert blocked.json()["reject_cards"] == [card]

    response = utility(api, exset.provider, known, "exset_recall_subscription", {})

    assert response.status_code == 201, response.json()
    (row,) = finished(tqueue_sms, 4)[3:]
    assert (row["status"], row["error_code"], row["error_text"]) == (
        "Error",
        "CARD_BLOCKED",
        f"Card {card} is blocked in the SMS.",
    )
    answers = read_answers(exset.provider)
    assert answers.status == ProcessRun.Status.COMPLETED_WITH_ERRORS
    recall = Req.objects.get(command="RECALL_SUBSCRIPTION")
    assert (recall.state, recall.error_code) == (Req.State.REJECTED, "CARD_BLOCKED")
    assert f"Card {card} is blocked in the SMS." in recall.last_error
    assert card_state(exset_simulator, card)["recalls"] == []
    # The services the recall named stay as they were: Effective and authorized.
    assert set(known.services.values_list("authorized", flat=True)) == {True}


def test_bad_input_is_refused_naming_the_field_and_nothing_reaches_tqueue(
    api, exset, known, tqueue_sms
):
    before = Req.objects.count()

    too_long = utility(
        api,
        exset.provider,
        known,
        "exset_send_infocas_message",
        {
            "type": "single_subscriber",
            "message": "M" * 201,
            "duration_minutes": 0,
            "interval_minutes": 5,
        },
    )
    unknown = utility(
        api,
        exset.provider,
        known,
        "exset_display_fingerprint",
        {"type": "single_subscriber", "card_ca_id": "CA-SC-UNKNOWN"},
    )
    unknown_recall = utility(
        api, exset.provider, known, "exset_recall_subscription", {"card_ca_id": "CA-SC-UNKNOWN"}
    )

    assert too_long.status_code == 400
    assert too_long.json()["error"]["fields"] == {
        "fields.message": ["An infocas message holds at most 200 characters; this one has 201."],
        "fields.duration_minutes": [
            "The broadcast duration is 1 to 10080 minutes (a week); 0 is out of range."
        ],
    }
    no_card = ["No smartcard with CA ID CA-SC-UNKNOWN is in use on ZX-E2E at EXSET SMS."]
    for response in (unknown, unknown_recall):
        assert response.status_code == 400
        assert response.json()["error"]["fields"] == {"fields.card_ca_id": no_card}
    assert Req.objects.count() == before
    assert len(entries(tqueue_sms)) == 3  # the subscriber's own: nothing more was written


def test_broadcasts_to_all_subscribers_go_first_when_express(
    api, exset, known, tqueue_sms, exset_simulator
):
    card = card_of(known)
    infocas = api.post(
        "/api/v1/utilities/exset_send_infocas_message/",
        {
            "subscription": known.pk,
            "provider": exset.provider.pk,
            "fields": {
                "type": "all_subscribers",
                "message": "Maintenance tonight from 02:00 — Συντήρηση απόψε",
                "duration_minutes": 120,
                "interval_minutes": 30,
            },
            "priority": "EXPRESS",
            "process_immediately": True,
        },
        format="json",
    )
    holders = utility(
        api,
        exset.provider,
        known,
        "exset_display_fingerprint",
        {"type": "all_subscribers", "service_ca_id": "GFA1"},
    )

    assert infocas.status_code == holders.status_code == 201
    rows = finished(tqueue_sms, 5)[3:]
    # A broadcast names no subscription nor card; Express is the SMS's priority 1.
    assert [(r["command"], r["priority"], r["subscription"], r["card_ca_id"]) for r in rows] == [
        ("ADD_BROADCAST_INFOCAS_MESSAGE", 1, None, None),
        ("ADD_BROADCAST_FINGERPRINT_MESSAGE", 5, None, None),
    ]
    broadcasts = requests.get(f"{exset_simulator.url}/control/state", timeout=5).json()[
        "broadcasts"
    ]
    assert [(b["message"], b["duration_minutes"]) for b in broadcasts["infocas"]] == [
        ("Maintenance tonight from 02:00 — Συντήρηση απόψε", 120)
    ]
    assert [(b["service_ca_id"], b["cards"]) for b in broadcasts["fingerprints"]] == [
        ("GFA1", [card])
    ]
    read_answers(exset.provider)
    assert set(Req.objects.values_list("state", flat=True)) == {Req.State.COMPLETED}
