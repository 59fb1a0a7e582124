"""Irdeto's utilities as an agent or an API caller meets them, before anything is sent: what
each form refuses (text modes at their byte limits, hex bytes, the device), the request each
makes, the parental PIN's default chain, and the PIN kept out of every record, answer and log.
(Sending to the KMS: tests/integration/test_irdeto_utilities.py.)"""

import json
import logging

import pytest
from rest_framework.test import APIClient

from providers import sealed
from providers.models import ConnectorToken, ProvisioningRequest
from subscriptions.demo import ensure_catalog
from tests.fixtures import staff_user
from utilities.registry import for_provider

Req = ProvisioningRequest


@pytest.fixture
def catalog(db):  # ``subscribe`` subscribes at Irdeto
    return ensure_catalog("Irdeto", "irdeto")


@pytest.fixture
def api(agent) -> APIClient:
    client = APIClient()
    client.force_authenticate(agent)
    return client


@pytest.fixture
def sub(subscribe):
    """Agriculture on MAIN, with a card and a box."""
    return subscribe("AGRICULTURE", number="IRD-1")


def device(subscription, kind: str, distributor: str = "MAIN"):
    return subscription.installed_items.get(kind=kind, distributor__code=distributor)


def run(api, catalog, subscription, code: str, **fields):
    return api.post(
        f"/api/v1/utilities/{code}/",
        {"subscription": subscription.pk, "provider": catalog.provider.pk, "fields": fields},
        format="json",
    )


def refused(response) -> dict:
    """The form's errors by field, as the API names them (``fields.<name>``)."""
    assert response.status_code == 400, response.content
    return {
        name.removeprefix("fields."): messages
        for name, messages in response.json()["error"]["fields"].items()
    }


def made(response) -> Req:
    assert response.status_code == 201, response.content
    (request,) = response.json()["requests"]
    return Req.objects.get(pk=request["id"])


def message(api, catalog, sub, text, mode="ANSI", **fields):
    stb = device(sub, "stb").ca_id
    return run(
        api,
        catalog,
        sub,
        "irdeto_send_message",
        message_type="mail",
        recipients="device",
        device=stb,
        text_mode=mode,
        text=text,
        **fields,
    )


def test_a_message_names_one_device_unless_it_is_for_all(api, catalog, sub):
    stb = device(sub, "stb").ca_id
    fields = dict(message_type="mail", device=stb, text_mode="ANSI", text="Hi")
    request = made(run(api, catalog, sub, "irdeto_send_message", **fields))
    assert request.parameters["device_ca_id"] == stb


def test_irdeto_offers_its_utilities(catalog):
    assert [u.name for u in for_provider(catalog.provider)] == [
        "Reset single subscription",
        "Send single message",
        "Set parental PIN",
        "Query secure client",
        "Re-authorize secure client's sector",
    ]


# --- Send single message: text modes at their limits -------------------------------------------


def test_ansi_takes_1000_characters_and_refuses_1001(api, catalog, sub):
    request = made(message(api, catalog, sub, "A" * 1000))
    assert request.command == "SEND_MAIL"
    assert request.parameters["payload_hex"] == "41" * 1000
    assert (request.parameters["text_mode"], request.parameters["text"]) == ("ANSI", "A" * 1000)
    assert refused(message(api, catalog, sub, "A" * 1001)) == {
        "text": ["The message is 1001 bytes in ANSI; at most 1000 fit."]
    }
    assert Req.objects.filter(command="SEND_MAIL").count() == 1


def test_unicode_takes_500_characters_and_refuses_501(api, catalog, sub):
    request = made(message(api, catalog, sub, "Ω" * 500, mode="UNICODE"))
    assert request.parameters["payload_hex"] == "03A9" * 500
    assert request.parameters["text"] == "Ω" * 500
    assert refused(message(api, catalog, sub, "Ω" * 501, mode="UNICODE")) == {
        "text": ["The message is 1002 bytes in Unicode; at most 1000 fit."]
    }


def test_ansi_names_a_character_outside_windows_1252(api, catalog, sub):
    # The euro sign and French accents are Windows-1252; Hungarian's double acute is not.
    request = made(message(api, catalog, sub, "Café: 5 €"))
    assert request.parameters["payload_hex"] == "Café: 5 €".encode("cp1252").hex().upper()
    assert refused(message(api, catalog, sub, "Szőlő")) == {
        "text": [
            "'ő' (U+0151, character 3) has no ANSI (Windows-1252) code: choose Unicode, or "
            "leave it out."
        ]
    }
    assert made(message(api, catalog, sub, "Szőlő", mode="UNICODE")).parameters["text"] == ("Szőlő")


def test_raw_takes_hex_bytes_and_names_what_is_not(api, catalog, sub):
    request = made(message(api, catalog, sub, "48 69 0a", mode="RAW"))
    assert (request.parameters["payload_hex"], request.parameters["text"]) == ("48690A", "48 69 0A")
    assert refused(message(api, catalog, sub, "48 6", mode="RAW")) == {
        "text": ["Raw text is hex bytes: an even number of hex digits (0-9, A-F)."]
    }
    assert refused(message(api, catalog, sub, "48 6G", mode="RAW")) == {
        "text": ["Raw text is hex bytes (0-9, A-F); 'G' is not a hex digit."]
    }
    assert made(message(api, catalog, sub, "AB" * 1000, mode="RAW"))
    assert refused(message(api, catalog, sub, "AB" * 1001, mode="RAW")) == {
        "text": ["The message is 1001 bytes in Raw; at most 1000 fit."]
    }


def test_a_message_to_one_device_names_it(api, catalog, sub):
    stb = device(sub, "stb")
    response = run(
        api,
        catalog,
        sub,
        "irdeto_send_message",
        message_type="message",
        recipients="device",
        device=stb.ca_id,
        text_mode="ANSI",
        text="Your box will restart tonight",
    )
    request = made(response)
    assert response.json()["message"] == (
        f"An on-screen message to set-top box {stb.ca_id} (ANSI, 29 bytes) is on its way to Irdeto."
    )
    assert (request.command, request.installed_item, request.subscription) == (
        "SEND_SCREEN_MESSAGE",
        stb,
        sub,
    )
    assert request.parameters == {
        "subscription": "IRD-1",
        "distributor": "MAIN",
        "device_kind": "stb",
        "device_ca_id": stb.ca_id,
        "device_serial_number": stb.serial_number,
        "message_type": "message",
        "text_mode": "ANSI",
        "payload_hex": b"Your box will restart tonight".hex().upper(),
        "text": "Your box will restart tonight",
    }
    # Two devices: the agent chooses; none chosen is refused, naming them.
    card = device(sub, "smartcard")
    assert refused(
        run(
            api,
            catalog,
            sub,
            "irdeto_send_message",
            message_type="mail",
            recipients="device",
            text_mode="ANSI",
            text="Hi",
        )
    ) == {"device": [f"Choose the device: {card.ca_id}, {stb.ca_id}."]}


def test_a_message_to_all_subscribers_is_one_request_naming_no_device(api, catalog, sub):
    response = run(
        api,
        catalog,
        sub,
        "irdeto_send_message",
        message_type="mail",
        recipients="all",
        text_mode="ANSI",
        text="Maintenance on Sunday",
    )
    request = made(response)
    assert response.json()["message"] == (
        "A mail to all subscribers (ANSI, 21 bytes) is on its way to Irdeto."
    )
    assert (request.command, request.subscription, request.installed_item) == (
        "SEND_MAIL",
        None,
        None,
    )
    assert "device_ca_id" not in request.parameters
    assert refused(
        run(
            api,
            catalog,
            sub,
            "irdeto_send_message",
            message_type="mail",
            recipients="all",
            device=device(sub, "stb").ca_id,
            text_mode="ANSI",
            text="Hi",
        )
    ) == {"device": ["A message to all subscribers names no device."]}


# --- Set parental PIN --------------------------------------------------------------------------


def test_the_pin_is_the_given_one_else_the_providers_default_else_0001(api, catalog, sub):
    stb = device(sub, "stb")
    given = made(run(api, catalog, sub, "irdeto_set_parental_pin", pin="4826"))
    provider = catalog.provider
    provider.parameters = {"default_pin": "7319"}
    provider.save()
    by_provider = made(run(api, catalog, sub, "irdeto_set_parental_pin"))
    provider.parameters = {}
    provider.save()
    standard = made(run(api, catalog, sub, "irdeto_set_parental_pin"))
    for request in (given, by_provider, standard):
        # The only device holding the PIN (the box: the card is no choice) is taken.
        assert (request.command, request.installed_item) == ("SET_PARENTAL_PIN", stb)
        assert set(request.parameters) == {
            "subscription",
            "distributor",
            "device_kind",
            "device_ca_id",
            "device_serial_number",
            "pin_sealed",
        }
    assert [sealed.unseal(r.parameters["pin_sealed"]) for r in (given, by_provider, standard)] == [
        "4826",
        "7319",
        "0001",
    ]


def test_the_pin_is_never_in_clear_in_parameters_answers_or_logs(api, catalog, sub, caplog):
    caplog.set_level(logging.DEBUG)
    stb = device(sub, "stb")
    response = run(api, catalog, sub, "irdeto_set_parental_pin", device=stb.ca_id, pin="5862")
    request = made(response)
    body = response.json()
    assert (
        body["message"]
        == f"The parental PIN of set-top box {stb.ca_id} will be set to the given PIN."
    )
    shown = body["requests"][0]["parameters"]
    # Sealed where stored, and masked where shown: not even the sealed token is given out.
    assert shown["pin_sealed"] == "****" and request.parameters["pin_sealed"] != "5862"
    assert "5862" not in json.dumps(request.parameters)
    assert "5862" not in json.dumps(body)
    detail = api.get(f"/api/v1/requests/{request.pk}/")
    assert detail.status_code == 200 and "5862" not in detail.content.decode()
    assert "5862" not in caplog.text


def test_a_pin_that_is_not_4_digits_is_refused_without_repeating_it(api, catalog, sub):
    for wrong in ("123", "12345", "12a4"):
        errors = refused(run(api, catalog, sub, "irdeto_set_parental_pin", pin=wrong))
        assert errors == {"pin": ["A PIN is exactly 4 digits (0 to 9)."]}
    assert not Req.objects.filter(command="SET_PARENTAL_PIN").exists()


def test_the_pin_goes_to_a_box_or_to_the_card_of_a_viewing_point_without_one(
    api, catalog, subscribe
):
    # Only a card: its card holds the PIN.
    card_only = subscribe("AGRICULTURE", devices=["smartcard"])
    request = made(run(api, catalog, card_only, "irdeto_set_parental_pin"))
    assert request.installed_item == device(card_only, "smartcard")
    assert request.parameters["device_kind"] == "smartcard"
    # A card and a box on MAIN and on TWIN1: one of the boxes, which the agent chooses.
    twins = subscribe("AGRICULTURE", ("BUNDLE_A", "TWIN1"))
    boxes = [device(twins, "stb", "MAIN").ca_id, device(twins, "stb", "TWIN1").ca_id]
    assert refused(run(api, catalog, twins, "irdeto_set_parental_pin")) == {
        "device": [
            "Choose the set-top box (or smartcard of a viewing point without one): "
            f"{boxes[0]}, {boxes[1]}."
        ]
    }
    card = device(twins, "smartcard").ca_id
    assert refused(run(api, catalog, twins, "irdeto_set_parental_pin", device=card)) == {
        "device": [f"Select a valid choice. {card} is not one of the available choices."]
    }
    assert made(
        run(api, catalog, twins, "irdeto_set_parental_pin", device=boxes[1])
    ).installed_item == device(twins, "stb", "TWIN1")


# --- Re-authorize sector, roles, the schema ----------------------------------------------------


def test_reauthorize_sector_of_a_device(api, catalog, sub):
    card = device(sub, "smartcard")
    response = run(api, catalog, sub, "irdeto_reauthorize_sector", device=card.ca_id)
    request = made(response)
    assert response.json()["message"] == (
        f"The sector of smartcard {card.ca_id} will be re-authorized at Irdeto."
    )
    assert (request.command, request.installed_item, request.trigger, request.state) == (
        "REAUTHORIZE_SECTOR",
        card,
        "utility",
        "pending",
    )
    assert request.priority == Req.Priority.NORMAL
    express = api.post(
        "/api/v1/utilities/irdeto_reauthorize_sector/",
        {
            "subscription": sub.pk,
            "provider": catalog.provider.pk,
            "priority": "EXPRESS",
            "fields": {"device": card.ca_id},
        },
        format="json",
    )
    assert made(express).priority == Req.Priority.EXPRESS


def test_only_agents_and_administrators_may_set_a_pin_or_reauthorize(catalog, sub, operator):
    _, connector_key = ConnectorToken.issue(catalog.provider, "irdeto connector")
    people = {
        "agent": staff_user("an-agent", "agent"),
        "administrator": staff_user("boss", "administrator"),
        "operator": operator,
    }
    for code in ("irdeto_set_parental_pin", "irdeto_reauthorize_sector"):
        body = {
            "subscription": sub.pk,
            "provider": catalog.provider.pk,
            "fields": {"device": device(sub, "stb").ca_id},
        }
        for role, person in people.items():
            client = APIClient()
            client.force_authenticate(person)
            status = client.post(f"/api/v1/utilities/{code}/", body, format="json").status_code
            assert status == (403 if role == "operator" else 201), (code, role)
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {connector_key}")
        assert client.post(f"/api/v1/utilities/{code}/", body, format="json").status_code == 403
        anonymous = APIClient().post(f"/api/v1/utilities/{code}/", body, format="json")
        assert anonymous.status_code == 401


def test_the_schema_lists_the_irdeto_utilities_and_their_fields(client, administrator):
    client.force_login(administrator)
    schema = client.get("/api/schema/?format=json").json()
    run_utility = schema["paths"]["/api/v1/utilities/{code}/"]["post"]
    (code,) = [p for p in run_utility["parameters"] if p["name"] == "code"]
    assert {
        "irdeto_send_message",
        "irdeto_set_parental_pin",
        "irdeto_query_secure_client",
        "irdeto_reauthorize_sector",
        "reset_subscription",
    } <= set(code["schema"]["enum"])
    assert "- `irdeto_set_parental_pin` (Set parental PIN): `device`, `pin`" in code["description"]
    assert (
        "- `irdeto_send_message` (Send single message): `message_type`, `recipients`, `device`, "
        "`text_mode`, `text`" in code["description"]
    )
    outcome = schema["components"]["schemas"]["UtilityOutcome"]["properties"]
    assert outcome["tables"]["items"]["$ref"] == "#/components/schemas/UtilityAnswerTable"
    assert set(run_utility["responses"]) >= {"201", "400", "403", "409"}
    assert run_utility["security"]
