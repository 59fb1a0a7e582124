"""EXSET SMS utilities (seed 002) as agents and API callers use them: Send Infocas Message,
Display Fingerprint, Recall Subscription and the shared Reset single subscription — each an
endpoint of the Web API and a screen of the back office."""

import pytest
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from providers.models import ProvisioningRequest
from subscriptions.models import SubscriptionService

Req = ProvisioningRequest


@pytest.fixture
def catalog(exset_msg_catalog):  # ``subscribe`` subscribes at EXSET SMS
    return exset_msg_catalog


@pytest.fixture
def api(agent) -> APIClient:
    client = APIClient()
    client.force_authenticate(agent)
    return client


@pytest.fixture
def sub(subscribe):
    """Bundle A on MAIN, Agriculture on TWIN1: a card and a box on each."""
    return subscribe("BUNDLE_A", ("AGRICULTURE", "TWIN1"), number="ZX-UTIL")


def card(subscription, distributor="MAIN") -> str:
    return subscription.installed_items.get(kind="smartcard", distributor__code=distributor).ca_id


def run(api, catalog, subscription, code: str, fields: dict, **body):
    return api.post(
        f"/api/v1/utilities/{code}/",
        {
            "subscription": subscription.pk,
            "provider": catalog.provider.pk,
            "fields": fields,
            **body,
        },
        format="json",
    )


def made(response) -> list[tuple]:
    assert response.status_code == 201, response.json()
    return [
        (r["command"], r["priority"], r["state"], r["parameters"])
        for r in response.json()["requests"]
    ]


def field_errors(response) -> dict:
    assert response.status_code == 400
    assert not Req.objects.exists()
    return response.json()["error"]["fields"]


def test_the_provider_offers_its_utilities_in_the_api(api, catalog, sub):
    listed = api.get("/api/v1/utilities/", {"subscription": sub.pk})

    assert [(u["code"], u["name"], u["fields"]) for u in listed.json()] == [
        (
            "exset_send_infocas_message",
            "Send Infocas Message",
            ["type", "card_ca_id", "message", "duration_minutes", "interval_minutes"],
        ),
        (
            "exset_display_fingerprint",
            "Display Fingerprint",
            [
                "type",
                "card_ca_id",
                "service_ca_id",
                "window_type",
                "position_x",
                "position_y",
                "duration_seconds",
                "font_size",
                "text_color",
                "background_color",
            ],
        ),
        ("exset_recall_subscription", "Recall Subscription", ["card_ca_id"]),
        ("reset_subscription", "Reset single subscription", []),
    ]


# --- Send Infocas Message ----------------------------------------------------------------------


def test_an_infocas_message_to_a_single_subscriber(api, catalog, sub):
    response = run(
        api,
        catalog,
        sub,
        "exset_send_infocas_message",
        {
            "type": "single_subscriber",
            "card_ca_id": card(sub, "TWIN1"),
            "message": "Your package renews on Monday",
            "duration_minutes": 30,
            "interval_minutes": 5,
        },
        priority="EXPRESS",
        process_immediately=False,
    )

    assert made(response) == [
        (
            "ADD_INDIVIDUAL_INFOCAS_MESSAGE",
            "Express",
            "Pending",
            {
                "subscription": "ZX-UTIL",
                "distributor": "TWIN1",
                "card_ca_id": card(sub, "TWIN1"),
                "message": "Your package renews on Monday",
                "duration_minutes": 30,
                "interval_minutes": 5,
            },
        )
    ]
    assert response.json()["message"] == (
        f"An infocas message to card {card(sub, 'TWIN1')} waits for the next TQUEUE writing."
    )
    request = Req.objects.get()
    assert (request.subscription, request.trigger, request.trigger_name) == (
        sub,
        Req.Trigger.UTILITY,
        "exset_send_infocas_message",
    )


def test_an_infocas_message_to_all_subscribers(api, catalog, sub):
    response = run(
        api,
        catalog,
        sub,
        "exset_send_infocas_message",
        {
            "type": "all_subscribers",
            "message": "New channel on air",
            "duration_minutes": 1440,
            "interval_minutes": 60,
        },
    )

    assert made(response) == [
        (
            "ADD_BROADCAST_INFOCAS_MESSAGE",
            "Normal",
            "Pending",
            {"message": "New channel on air", "duration_minutes": 1440, "interval_minutes": 60},
        )
    ]
    # Process immediately (the default): written to TQUEUE once the request is committed.
    assert response.json()["message"] == (
        "An infocas message to all subscribers. They will be exported when this transaction "
        "commits."
    )
    assert Req.objects.get().subscription is None


def test_a_bad_infocas_message_is_refused_naming_each_field(api, catalog, sub):
    response = run(
        api,
        catalog,
        sub,
        "exset_send_infocas_message",
        {
            "type": "single_subscriber",
            "card_ca_id": "CA-SC-UNKNOWN",
            "message": "x" * 201,
            "duration_minutes": 0,
            "interval_minutes": 5,
        },
    )

    assert field_errors(response) == {
        "fields.card_ca_id": [
            "No smartcard with CA ID CA-SC-UNKNOWN is in use on ZX-UTIL at EXSET SMS."
        ],
        "fields.message": ["An infocas message holds at most 200 characters; this one has 201."],
        "fields.duration_minutes": [
            "The broadcast duration is 1 to 10080 minutes (a week); 0 is out of range."
        ],
    }
    two_cards = run(
        api,
        catalog,
        sub,
        "exset_send_infocas_message",
        {
            "type": "single_subscriber",
            "message": "Hi",
            "duration_minutes": 10,
            "interval_minutes": 20,
        },
    )
    assert field_errors(two_cards) == {
        "fields.card_ca_id": [f"Choose the smartcard: {card(sub)}, {card(sub, 'TWIN1')}."],
        "fields.interval_minutes": [
            "The interval (20 minutes) is longer than the broadcast duration (10 minutes): "
            "the message would be shown once only."
        ],
    }


# --- Display Fingerprint -----------------------------------------------------------------------


def test_a_fingerprint_to_one_card_and_to_the_holders_of_a_service(api, catalog, subscribe):
    one_card = subscribe("AGRICULTURE", number="ZX-ONE")

    single = run(
        api,
        catalog,
        one_card,
        "exset_display_fingerprint",
        {"type": "single_subscriber", "window_type": "COVERT", "position_x": 100},
    )
    holders = run(
        api,
        catalog,
        one_card,
        "exset_display_fingerprint",
        {"type": "all_subscribers", "service_ca_id": "GFA1", "duration_seconds": 30},
    )

    defaults = {
        "window_type": "OVERT",
        "position_x": 50,
        "position_y": 50,
        "duration_seconds": 10,
        "font_size": 16,
        "text_color": "#FFFFFF",
        "background_color": "#000000",
    }
    assert made(single) == [
        (
            "ADD_INDIVIDUAL_FINGERPRINT_MESSAGE",
            "Normal",
            "Pending",
            {
                "subscription": "ZX-ONE",
                "distributor": "MAIN",
                "card_ca_id": card(one_card),  # its only card, left out
                "fingerprint": {**defaults, "window_type": "COVERT", "position_x": 100},
            },
        )
    ]
    assert made(holders) == [
        (
            "ADD_BROADCAST_FINGERPRINT_MESSAGE",
            "Normal",
            "Pending",
            {"fingerprint": {**defaults, "duration_seconds": 30}, "service_ca_id": "GFA1"},
        )
    ]
    assert holders.json()["message"].startswith("A fingerprint to all subscribers holding GFA1.")


def test_bad_fingerprint_parameters_are_refused_naming_each_field(api, catalog, sub):
    response = run(
        api,
        catalog,
        sub,
        "exset_display_fingerprint",
        {
            "type": "all_subscribers",
            "service_ca_id": "NOPE",
            "window_type": "HUGE",
            "position_y": 101,
            "font_size": 4,
            "background_color": "black",
        },
    )

    assert field_errors(response) == {
        "fields.service_ca_id": [
            "Select a valid choice. NOPE is not one of the available choices."
        ],
        "fields.window_type": ["Select a valid choice. HUGE is not one of the available choices."],
        "fields.position_y": [
            "The vertical position is 0 to 100 % of the height; 101 is out of range."
        ],
        "fields.font_size": ["The font size is 8 to 48 points; 4 is out of range."],
        "fields.background_color": ["Give the colour as #RRGGBB (e.g. #FFFFFF); 'black' is not."],
    }
    single = run(
        api,
        catalog,
        sub,
        "exset_display_fingerprint",
        {"type": "single_subscriber", "card_ca_id": card(sub), "duration_seconds": 0},
    )
    assert field_errors(single) == {
        "fields.duration_seconds": ["The display duration is 1 to 600 seconds; 0 is out of range."]
    }


# --- Recall Subscription -----------------------------------------------------------------------


def test_a_recall_of_a_card(api, catalog, sub):
    response = run(
        api,
        catalog,
        sub,
        "exset_recall_subscription",
        {"card_ca_id": card(sub)},
        priority="EXPRESS",
    )

    assert made(response) == [
        (
            "RECALL_SUBSCRIPTION",
            "Express",
            "Pending",
            {
                "subscription": "ZX-UTIL",
                "distributors": ["MAIN"],
                "card_ca_id": card(sub),
                "service_ca_ids": ["GFA1", "EFA2"],
            },
        )
    ]
    assert response.json()["message"] == (
        f"Recall of card {card(sub)} (GFA1, EFA2). They will be exported when this transaction "
        "commits."
    )


def test_a_recall_with_nothing_to_reauthorize_is_refused(api, catalog, subscribe):
    from subscriptions import actions

    off = subscribe("AGRICULTURE", number="ZX-OFF")
    actions.stop_service(off.services.get())

    response = run(api, catalog, off, "exset_recall_subscription", {})

    assert field_errors(response) == {
        "fields.card_ca_id": [
            f"ZX-OFF has no Effective service on MAIN at EXSET SMS: there is nothing to "
            f"re-authorize on {card(off)}."
        ]
    }


# --- Reset single subscription -----------------------------------------------------------------


def test_reset_single_subscription_sends_what_exset_lacks(api, catalog, sub):
    sub.installed_items.update(initialized=True)
    SubscriptionService.objects.filter(subscription=sub, product__code="BUNDLE_A").update(
        authorized=True
    )

    response = run(api, catalog, sub, "reset_subscription", {})

    assert response.status_code == 201
    assert [(r["command"], r["ca_id"]) for r in response.json()["requests"]] == [
        ("ADD_SUBSCRIPTION", "AF1")
    ]


# --- The back office ---------------------------------------------------------------------------


def test_an_agent_sends_an_infocas_message_from_the_back_office(agent, catalog, sub):
    client = Client()
    client.force_login(agent)
    url = reverse(
        "admin:utilities-run", args=[sub.pk, catalog.provider.pk, "exset_send_infocas_message"]
    )

    page = client.get(url)
    assert page.status_code == 200
    assert card(sub, "TWIN1") in page.content.decode()

    bad = client.post(
        url,
        {
            "type": "single_subscriber",
            "card_ca_id": card(sub),
            "message": "Hi",
            "duration_minutes": "0",
            "interval_minutes": "1",
        },
    )
    assert bad.status_code == 200
    assert "The broadcast duration is 1 to 10080 minutes (a week); 0 is out of range." in (
        bad.content.decode()
    )
    assert not Req.objects.exists()

    done = client.post(
        url,
        {
            "type": "all_subscribers",
            "message": "Hello everyone",
            "duration_minutes": "60",
            "interval_minutes": "10",
            "priority": "normal",
            "process_immediately": "on",
        },
    )
    assert done.status_code == 200
    request = Req.objects.get()
    content = done.content.decode()
    assert "ADD_BROADCAST_INFOCAS_MESSAGE" in content
    assert f'data-request="{request.pk}"' in content
    states = client.get(reverse("admin:utilities-request-states"), {"ids": str(request.pk)})
    assert states.json() == {str(request.pk): {"state": "Pending", "error": ""}}


def test_the_fingerprint_and_recall_screens_offer_the_subscriptions_cards(agent, catalog, sub):
    client = Client()
    client.force_login(agent)

    def screen(code: str) -> str:
        url = reverse("admin:utilities-run", args=[sub.pk, catalog.provider.pk, code])
        response = client.get(url)
        assert response.status_code == 200
        return response.content.decode()

    fingerprint = screen("exset_display_fingerprint")
    assert '<option value="AF1">Agriculture (AF1)</option>' in fingerprint
    assert '<option value="SCROLLING">Scrolling across the screen</option>' in fingerprint
    recall = screen("exset_recall_subscription")
    for ca_id in (card(sub), card(sub, "TWIN1")):
        assert f'<option value="{ca_id}">' in recall
