"""The Generic provider's Get Pending and Send Response, as a connector uses them."""

from datetime import timedelta

import pytest
from rest_framework.test import APIClient

from catalogue.models import Provider
from providers.models import ConnectorToken, ProvisioningRequest
from subscriptions import actions

Req = ProvisioningRequest
PENDING = "/api/v1/generic/pending/"
RESPONSES = "/api/v1/generic/responses/"


@pytest.fixture
def connector(catalog):
    _, key = ConnectorToken.issue(catalog.provider, "reference connector")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


def pull_all(client, **params):
    seen, url, pages = [], PENDING, 0
    params.setdefault("page_size", 2)
    while url:
        response = client.get(url, params if url == PENDING else None)
        assert response.status_code == 200, response.content
        seen.extend(response.json()["results"])
        url, pages = response.json()["next"], pages + 1
    return seen, pages


def test_get_pending_pages_express_first_then_oldest_grouped_by_subscription(connector, subscribe):
    first = subscribe("AGRICULTURE")
    second = subscribe("BUNDLE_A")
    # An Express request for the second subscription: its whole group goes first, in order.
    Req.objects.filter(subscription=second, ca_id="EFA2").update(priority=Req.Priority.EXPRESS)

    results, pages = pull_all(connector)

    order = [
        (r["subscription"], r["command"], r["parameters"].get("service_ca_id")) for r in results
    ]
    assert order == [
        (second.number, "CREATE_PAIRING", None),
        (second.number, "ACTIVATE_SERVICE", "GFA1"),
        (second.number, "ACTIVATE_SERVICE", "EFA2"),
        (first.number, "CREATE_PAIRING", None),
        (first.number, "ACTIVATE_SERVICE", "AF1"),
    ]
    assert pages == 3
    assert [r["priority"] for r in results].count("EXPRESS") == 1
    # Reading changed nothing.
    assert Req.objects.filter(state="pending").count() == 5


def test_get_pending_filters_by_command_and_rejects_bad_parameters(connector, subscribe):
    subscribe("BUNDLE_A")
    results, _ = pull_all(connector, command="ACTIVATE_SERVICE", page_size=1000)
    assert [r["parameters"]["service_ca_id"] for r in results] == ["GFA1", "EFA2"]

    response = connector.get(PENDING, {"page_size": 1001})
    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {
        "page_size": ["Ensure this value is less than or equal to 1000."]
    }
    response = connector.get(PENDING, {"cursor": "not-a-cursor"})
    assert response.status_code == 400
    assert response.json()["error"]["message"] == "cursor: Invalid cursor."


def test_a_connector_token_reads_only_its_own_provider(connector, catalog, subscribe):
    other = Provider.objects.create(name="Other platform", type="generic")
    response = connector.get(PENDING, {"provider": other.pk})
    assert response.status_code == 403
    assert response.json()["error"]["message"] == "This token is for another provider's requests."
    assert APIClient().get(PENDING).status_code in (401, 403)
    bad = APIClient()
    bad.credentials(HTTP_AUTHORIZATION="Token not-a-real-key")
    assert bad.get(PENDING).status_code == 401


def answer(client, *items):
    return client.post(RESPONSES, {"responses": list(items)}, format="json")


def test_send_response_accepts_and_rejects_in_one_call(connector, subscribe):
    sub = subscribe("BUNDLE_A")
    pairing, gfa1, efa2 = sub.provisioning_requests.order_by("pk")

    response = answer(
        connector,
        {"request": str(pairing.uid), "status": "ACCEPTED"},
        {"request": str(gfa1.uid), "status": "ACCEPTED"},
        {
            "request": str(efa2.uid),
            "status": "REJECTED",
            "error_code": "E7",
            "error_description": "No such package",
        },
    )

    assert response.status_code == 200
    assert [r["state"] for r in response.json()["results"]] == [
        "COMPLETED",
        "COMPLETED",
        "REJECTED",
    ]
    sub.refresh_from_db()
    service = sub.services.get()
    assert service.state == "not_effective"  # the rejected activation was rolled back
    assert sub.events.first().action == "provisioning_rollback"


def test_the_same_answer_twice_is_already_done_and_a_conflict_is_409(connector, subscribe):
    sub = subscribe("AGRICULTURE")
    activation = sub.provisioning_requests.get(operation="activate")
    pairing = sub.provisioning_requests.get(operation="create_pairing")
    ok = {"request": str(activation.uid), "status": "ACCEPTED"}
    assert answer(connector, ok).json()["results"][0]["result"] == "applied"
    assert answer(connector, ok).json()["results"][0]["result"] == "already_done"

    response = answer(
        connector,
        {"request": str(pairing.uid), "status": "ACCEPTED"},
        {"request": str(activation.uid), "status": "REJECTED"},
    )
    assert response.status_code == 409
    assert response.json()["error"] == {
        "code": "conflict",
        "message": f"Request {activation.uid} is already Completed; it cannot also be Rejected.",
    }
    pairing.refresh_from_db()
    assert pairing.state == "pending"  # nothing half-applied


def test_send_response_names_the_bad_field_and_applies_nothing(connector, subscribe):
    sub = subscribe("AGRICULTURE")
    activation = sub.provisioning_requests.get(operation="activate")
    response = answer(
        connector,
        {"request": str(activation.uid), "status": "ACCEPTED"},
        {"request": str(activation.uid), "status": "MAYBE"},
    )
    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {
        "responses[1].status": ['"MAYBE" is not a valid choice.']
    }
    unknown = "00000000-0000-0000-0000-000000000000"
    response = answer(connector, {"request": unknown, "status": "ACCEPTED"})
    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {
        "responses[0].request": [f"No request {unknown} for provider Generic."]
    }
    activation.refresh_from_db()
    assert activation.state == "pending"
    assert answer(connector).json()["error"]["fields"] == {
        "responses": ["This list may not be empty."]
    }


def test_no_person_reads_pending_or_answers_even_an_administrator(
    client, administrator, catalog, subscribe
):
    sub = subscribe("AGRICULTURE")
    client.force_login(administrator)
    response = client.get(PENDING, {"provider": catalog.provider.pk})
    assert response.status_code == 403
    message = "Only a connector token of a Generic provider may use this."
    assert response.json()["error"]["message"] == message
    uid = str(sub.provisioning_requests.first().uid)
    refused = client.post(
        f"{RESPONSES}?provider={catalog.provider.pk}",
        {"responses": [{"request": uid, "status": "REJECTED"}]},
        content_type="application/json",
    )
    assert refused.status_code == 403
    assert sub.provisioning_requests.filter(state=Req.State.PENDING).count() == 2


def test_an_action_after_a_rejection_does_not_resend_what_is_pending(catalog, subscribe):
    sub = subscribe("AGRICULTURE")
    before = Req.objects.count()
    actions.add_service(sub, catalog.products["BUNDLE_B"], catalog.main)
    new = list(sub.provisioning_requests.filter(pk__gt=0).order_by("pk"))[before:]
    assert [(r.command, r.ca_id) for r in new] == [
        ("ACTIVATE_SERVICE", "RFB1"),
        ("ACTIVATE_SERVICE", "BFB2"),
    ]


def test_connector_token_command_prints_a_working_key_and_replaces_the_old(catalog, capsys):
    from django.core.management import call_command

    call_command("connector_token", "--provider", "Generic", "--name", "demo")
    first = capsys.readouterr().out.strip()
    call_command("connector_token", "--provider", "Generic", "--name", "demo", "--replace")
    second = capsys.readouterr().out.strip()

    def status(key):
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
        return client.get(PENDING).status_code

    assert (status(first), status(second)) == (401, 200)
    assert not ConnectorToken.objects.filter(key_hash=first).exists()  # only hashes are kept


def test_send_response_keeps_what_the_platform_said(connector, subscribe):
    sub = subscribe("BUNDLE_A")
    pairing, gfa1, efa2 = sub.provisioning_requests.order_by("pk")
    Req.objects.filter(pk=gfa1.pk).update(last_error="Attempt 1 failed: timed out")

    response = answer(
        connector,
        {"request": str(pairing.uid), "status": "ACCEPTED", "response": {"pairing": "P-1"}},
        {"request": str(gfa1.uid), "status": "ACCEPTED", "error_code": "  W1 "},
        {
            "request": str(efa2.uid),
            "status": "REJECTED",
            "error_code": "E7",
            "error_description": "Paket nicht verfügbar",
            "response": {"code": 7},
            "note": "ignored",
        },
    )

    assert response.status_code == 200, response.content
    assert [(r["result"], r["state"]) for r in response.json()["results"]] == [
        ("applied", "COMPLETED"),
        ("applied", "COMPLETED"),
        ("applied", "REJECTED"),
    ]
    stored = {
        r.pk: (r.state, r.error_code, r.last_error, r.response)
        for r in Req.objects.filter(pk__in=[pairing.pk, gfa1.pk, efa2.pk])
    }
    assert stored == {
        pairing.pk: ("completed", "", "", {"pairing": "P-1"}),
        gfa1.pk: ("completed", "W1", "Attempt 1 failed: timed out", None),
        efa2.pk: ("rejected", "E7", "Paket nicht verfügbar", {"code": 7}),
    }
    assert sub.events.first().action == "provisioning_rollback"


@pytest.mark.parametrize(
    ("item", "fields"),
    [
        (
            {"error_code": "E" * 61},
            {"error_code": ["Ensure this field has no more than 60 characters."]},
        ),
        (
            {"error_description": "bad\x00byte"},
            {
                "error_description": [
                    "No control character is allowed here (tab, newline and carriage return are)."
                ]
            },
        ),
        ({"response": None}, {"response": ["This field may not be null."]}),
        ({"request": "ZX-000001"}, {"request": ["Must be a valid UUID."]}),
        ({"status": "accepted"}, {"status": ['"accepted" is not a valid choice.']}),
    ],
)
def test_send_response_refuses_a_bad_field_by_name(connector, subscribe, item, fields):
    activation = subscribe("AGRICULTURE").provisioning_requests.get(operation="activate")
    body = {"request": str(activation.uid), "status": "ACCEPTED"} | item

    response = answer(connector, {"request": str(activation.uid), "status": "ACCEPTED"}, body)

    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {
        f"responses[1].{name}": messages for name, messages in fields.items()
    }
    activation.refresh_from_db()
    assert activation.state == "pending"


def test_send_response_names_every_unknown_and_contradictory_answer(connector, catalog, subscribe):
    sub = subscribe("AGRICULTURE")
    pairing, activation = sub.provisioning_requests.order_by("pk")
    elsewhere = Provider.objects.create(name="Other platform", type="generic")
    theirs = Req.objects.create(provider=elsewhere, command="ACTIVATE_SERVICE", trigger="action")

    response = answer(
        connector,
        {"request": str(pairing.uid), "status": "ACCEPTED"},
        {"request": str(theirs.uid), "status": "ACCEPTED"},
        {"request": str(pairing.uid), "status": "REJECTED"},
    )
    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {
        "responses[1].request": [f"No request {theirs.uid} for provider Generic."],
        "responses[2].status": ["This request is answered twice, differently."],
    }

    response = answer(
        connector,
        {"request": str(activation.uid), "status": "ACCEPTED"},
        {"request": str(theirs.uid), "status": "ACCEPTED"},
    )
    assert response.json()["error"]["fields"] == {
        "responses[1].request": [f"No request {theirs.uid} for provider Generic."]
    }
    assert set(Req.objects.values_list("state", flat=True)) == {"pending"}


def test_a_token_records_when_it_was_last_used_to_the_minute(connector, catalog):
    token = ConnectorToken.objects.get(provider=catalog.provider)
    assert token.last_used_at is None
    assert connector.get(PENDING).status_code == 200
    token.refresh_from_db()
    first = token.last_used_at
    assert first is not None
    # Calls within the minute leave it: a busy connector does not write on every call.
    assert connector.get(PENDING).status_code == 200
    token.refresh_from_db()
    assert token.last_used_at == first
    earlier = first - timedelta(minutes=2)
    ConnectorToken.objects.filter(pk=token.pk).update(last_used_at=earlier)
    assert connector.get(PENDING).status_code == 200
    token.refresh_from_db()
    assert token.last_used_at > first
