"""The Conax WS utilities an agent runs on one subscription: what each validates (with the
message the agent sees, at the limits SPEC gives), what it sends, and what the CAS then holds."""

import pytest
from django.core.exceptions import ValidationError
from rest_framework.test import APIClient

from providers.extensions import UtilityError
from providers.models import ProvisioningRequest
from tests.fixtures import card_of, deliver
from utilities import services
from utilities.registry import for_provider

pytestmark = pytest.mark.django_db

Req = ProvisioningRequest


@pytest.fixture
def catalog(conax):  # this module's catalogue, where ``subscribe`` subscribes, is Conax WS
    return conax


@pytest.fixture
def sub(conax, subscribe):
    """A Bundle A subscriber whose card and box the CAS has paired and entitled."""
    made = subscribe("BUNDLE_A")
    deliver(conax)
    return made


def run(conax, sub, code, **data):
    return services.run(code, subscription=sub, provider=conax.provider, data=data)


def refused(conax, sub, code, **data) -> dict:
    with pytest.raises(ValidationError) as err:
        run(conax, sub, code, **data)
    return err.value.message_dict


def test_conax_ws_offers_its_utilities(conax):
    assert [u.name for u in for_provider(conax.provider)] == [
        "Reset single subscription",
        "Get Conax information",
        "Display fingerprint",
        "Pair smartcards & STBs",
        "Reset smartcard PIN",
        "Send mail & bark message",
    ]


# --- Get Conax information ---------------------------------------------------------------------


def test_active_subscriptions_of_a_card_as_a_table(conax, sub):
    outcome = run(conax, sub, "conax_ws_information", type="active_subscriptions")
    assert outcome.columns == ("Service CA ID", "Code", "Description")
    assert outcome.rows == (
        ("EFA2", "ENTERTAIN", "Entertain"),
        ("GFA1", "GEOLOGICAL", "Geological"),
    )
    assert outcome.message == f"Conax WS holds 2 active subscription(s) on card {card_of(sub)}."
    (request,) = outcome.requests
    assert (request.command, request.state, request.trigger) == (
        "GET_ACTIVE_SUBSCRIPTIONS",
        "completed",
        "utility",
    )
    assert [s["product_id"] for s in request.response["subscriptions"]] == ["EFA2", "GFA1"]


def test_pairing_status_for_a_card_and_for_a_box(conax, sub):
    card = sub.installed_items.get(kind="smartcard")
    box = sub.installed_items.get(kind="stb")
    columns = ("Smartcard CA ID", "STB CA ID", "Serial number", "Product code", "Description")
    rows = (
        (card.ca_id, "", card.serial_number, "SC-01", "Smartcard"),
        ("", box.ca_id, box.serial_number, "STB-01", "Decoder"),
    )
    for kind in ("pairing_for_smartcard", "pairing_for_stb"):
        outcome = run(conax, sub, "conax_ws_information", type=kind)
        assert (outcome.columns, outcome.rows) == (columns, rows)
    assert outcome.message.startswith(f"Conax WS has set-top box {box.ca_id} in pairing P")


def test_information_when_the_cas_is_down_or_refuses(conax, sub, conax_ws_simulator):
    conax_ws_simulator.state.controls.down = True
    with pytest.raises(UtilityError) as err:
        run(conax, sub, "conax_ws_information", type="active_subscriptions")
    assert str(err.value) == (
        "Conax WS did not answer: HTTP 503 from the CAS for GetActiveSubscriptions. "
        "Try again later."
    )
    failed = Req.objects.get(command="GET_ACTIVE_SUBSCRIPTIONS")
    assert (failed.state, failed.attempts) == ("failed", 1)
    conax_ws_simulator.state.controls.down = False
    conax_ws_simulator.state.controls.reject_cards = frozenset({card_of(sub)})
    outcome = run(conax, sub, "conax_ws_information", type="pairing_for_smartcard")
    assert outcome.message == (
        f"Conax WS refused the query: CA_CLIENT_BLOCKED CA client {card_of(sub)} is blocked."
    )
    assert outcome.rows == () and outcome.requests[0].state == "rejected"


def test_with_two_cards_the_agent_chooses_one(conax, subscribe):
    sub = subscribe("AGRICULTURE", ("BUNDLE_B", "TWIN1"))
    deliver(conax)
    cards = [card.ca_id for card in sub.installed_items.filter(kind="smartcard").order_by("pk")]
    assert refused(conax, sub, "conax_ws_information", type="active_subscriptions") == {
        "smartcard": [f"Choose the smartcard: {cards[0]}, {cards[1]}."]
    }
    twin_rows = run(
        conax, sub, "conax_ws_information", type="active_subscriptions", smartcard=cards[1]
    ).rows
    assert [r[0] for r in twin_rows] == ["BFB2", "RFB1"]
    assert refused(conax, sub, "conax_ws_information", smartcard="CA-XX-1", type="x") == {
        "type": ["Select a valid choice. x is not one of the available choices."],
        "smartcard": ["Select a valid choice. CA-XX-1 is not one of the available choices."],
    }


# --- Send mail & bark message -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "errors"),
    [
        ({"message_type": "mail", "text": "m" * 141}, None),
        (
            {"message_type": "mail", "text": "m" * 142},
            {"text": ["A mail message holds at most 141 characters; this one has 142."]},
        ),
        (
            {"message_type": "mail", "text": "m" * 2001},
            {"text": ["A mail message holds at most 141 characters; this one has 2001."]},
        ),
        ({"message_type": "bark", "text": "b" * 129}, None),
        (
            {"message_type": "bark", "text": "b" * 130},
            {"text": ["A bark message holds at most 129 characters; this one has 130."]},
        ),
        (
            {
                "message_type": "repeating_bark",
                "text": "r" * 130,
                "repetition_count": 3,
                "repetition_interval_seconds": 10,
            },
            {"text": ["A repeating bark message holds at most 129 characters; this one has 130."]},
        ),
        (
            {
                "message_type": "repeating_bark",
                "text": "Free preview tonight",
                "repetition_count": 3,
                "repetition_interval_seconds": 10,
            },
            None,
        ),
        (
            {
                "message_type": "repeating_bark",
                "text": "Free preview tonight",
                "repetition_count": 3,
                "repetition_interval_seconds": 2550,
            },
            None,
        ),
        (
            {
                "message_type": "repeating_bark",
                "text": "Free preview tonight",
                "repetition_count": 3,
                "repetition_interval_seconds": 2555,
            },
            {
                "repetition_interval_seconds": [
                    "The repetition interval is 10 to 2550 seconds; 2555 is out of range."
                ]
            },
        ),
        (
            {
                "message_type": "repeating_bark",
                "text": "Free preview tonight",
                "repetition_count": 3,
                "repetition_interval_seconds": 15,
            },
            {
                "repetition_interval_seconds": [
                    "The repetition interval goes in steps of 10 seconds (10, 20, 30 … 2550); "
                    "15 is not one of them."
                ]
            },
        ),
        (
            {"message_type": "repeating_bark", "text": "Free preview tonight"},
            {
                "repetition_count": ["A repeating bark message needs its repetition count."],
                "repetition_interval_seconds": [
                    "A repeating bark message needs its repetition interval."
                ],
            },
        ),
        (
            {"message_type": "bark", "text": "Hello", "repetition_count": 2},
            {"repetition_count": ["Only a repeating bark message has a repetition count."]},
        ),
        (
            {"message_type": "mail", "text": "Hello", "display_duration_seconds": 30},
            {"display_duration_seconds": ["A mail message waits in the inbox: no duration."]},
        ),
        ({"message_type": "mail", "text": ""}, {"text": ["This field is required."]}),
    ],
    ids=[
        "mail-141",
        "mail-142",
        "mail-2001",
        "bark-129",
        "bark-130",
        "repeating-130",
        "interval-10",
        "interval-2550",
        "interval-2555",
        "interval-15",
        "repeating-without-repetition",
        "bark-with-count",
        "mail-with-duration",
        "empty",
    ],
)
def test_message_validation_at_the_limits(conax, sub, data, errors):
    if errors is None:
        outcome = run(conax, sub, "conax_ws_message", **data)
        assert [r.command for r in outcome.requests] == [
            {
                "mail": "SEND_MAIL_MESSAGE_TO_CLIENT",
                "bark": "SEND_BARK_MESSAGE_TO_CLIENT",
                "repeating_bark": "SEND_REPEATING_BARK_MESSAGE_TO_CLIENT",
            }[data["message_type"]]
        ]
    else:
        assert refused(conax, sub, "conax_ws_message", **data) == errors
        assert not Req.objects.filter(command__startswith="SEND_").exists()


def test_messages_reach_the_cards_inbox_and_screen(conax, sub, conax_ws_simulator):
    card = card_of(sub)
    mail = run(conax, sub, "conax_ws_message", message_type="mail", text="Your bill is ready.")
    assert mail.message == f"A mail message for card {card} is on its way to Conax WS."
    assert mail.requests[0].parameters == {
        "subscription": sub.number,
        "distributor": "MAIN",
        "card_ca_id": card,
        "card_serial_number": sub.installed_items.get(kind="smartcard").serial_number,
        "message_type": "mail",
        "text": "Your bill is ready.",
        "start_at": None,
    }
    services.run(
        "conax_ws_message",
        subscription=sub,
        provider=conax.provider,
        express=True,
        data={
            "message_type": "repeating_bark",
            "text": "Free preview tonight",
            "start_at": "2030-01-01 20:00",
            "repetition_count": 3,
            "repetition_interval_seconds": 600,
        },
    )
    assert deliver(conax) == 2
    assert set(Req.objects.filter(trigger="utility").values_list("state", flat=True)) == {
        "completed"
    }
    held = conax_ws_simulator.state.cards[card]
    assert [m["text"] for m in held["mailbox"]] == ["Your bill is ready."]
    (bark,) = held["screen"]
    assert (
        bark["kind"],
        bark["display_seconds"],
        bark["repetition_count"],
        bark["repetition_interval"],
    ) == ("repeating_bark", 20, 3, 600)
    assert bark["start"].startswith("2030-01-01T20:00:00")
    express = Req.objects.get(command="SEND_REPEATING_BARK_MESSAGE_TO_CLIENT")
    assert express.priority == Req.Priority.EXPRESS


def test_a_utility_of_a_real_time_provider_is_always_processed_immediately(conax, sub):
    with pytest.raises(UtilityError) as err:
        services.run(
            "conax_ws_message",
            subscription=sub,
            provider=conax.provider,
            data={"message_type": "mail", "text": "Hi"},
            process_immediately=False,
        )
    assert str(err.value) == "Send mail & bark message is always processed immediately."


# --- Reset smartcard PIN --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "errors"),
    [
        (
            {"reset_to": "new", "pin": "12a4"},
            {"pin": ["A PIN is exactly 4 digits (0 to 9)."]},
        ),
        (
            {"reset_to": "new", "pin": "123"},
            {"pin": ["A PIN is exactly 4 digits (0 to 9)."]},
        ),
        (
            {"reset_to": "new", "pin": "12345"},
            {"pin": ["A PIN is exactly 4 digits (0 to 9)."]},
        ),
        ({"reset_to": "new"}, {"pin": ["Give the new PIN: exactly 4 digits (0 to 9)."]}),
        (
            {"reset_to": "default", "pin": "4321"},
            {"pin": ["Leave the PIN empty to reset to the default (1234), or choose a new value."]},
        ),
    ],
)
def test_pin_validation(conax, sub, data, errors):
    assert refused(conax, sub, "conax_ws_reset_pin", **data) == errors


def test_pin_reset_to_a_new_value_and_back_to_the_default(conax, sub, conax_ws_simulator):
    card = card_of(sub)
    outcome = run(conax, sub, "conax_ws_reset_pin", reset_to="new", pin="0042")
    assert outcome.requests[0].command == "UPDATE_CA_PIN_TO_GIVEN_VALUE"
    deliver(conax)
    assert conax_ws_simulator.state.cards[card]["pin"] == "0042"
    outcome = run(conax, sub, "conax_ws_reset_pin")
    assert outcome.message == f"The PIN of card {card} will be reset to 1234."
    assert outcome.requests[0].command == "UPDATE_CA_PIN_TO_DEFAULT_VALUE"
    deliver(conax)
    assert conax_ws_simulator.state.cards[card]["pin"] == "1234"


# --- Display fingerprint ------------------------------------------------------------------------


def test_fingerprint_with_the_seed_defaults_and_a_position(conax, sub, conax_ws_simulator):
    assert refused(conax, sub, "conax_ws_display_fingerprint", position_x=100) == {
        "position_y": [
            "Give both X and Y of the position, or neither (the CA system's own position)."
        ]
    }
    assert refused(conax, sub, "conax_ws_display_fingerprint", slot="C") == {
        "slot": ["Select a valid choice. C is not one of the available choices."]
    }
    plain = run(conax, sub, "conax_ws_display_fingerprint").requests[0]
    assert {k: plain.parameters[k] for k in ("duration_seconds", "height", "slot")} == {
        "duration_seconds": 10,
        "height": 12,
        "slot": "A",
    }
    run(
        conax,
        sub,
        "conax_ws_display_fingerprint",
        position_x=100,
        position_y=50,
        height=20,
        slot="B",
        duration_seconds=5,
    )
    deliver(conax)
    shown = conax_ws_simulator.state.cards[card_of(sub)]["fingerprints"]
    assert [(f["x"], f["y"], f["height"], f["slot"], f["duration_seconds"]) for f in shown] == [
        (None, None, 12, "A", 10),
        (100, 50, 20, "B", 5),
    ]


# --- Pair smartcards & STBs -------------------------------------------------------------------


@pytest.fixture
def two_points(conax, subscribe):
    """A subscriber with a card and a box on MAIN and on TWIN1, each pair already paired."""
    sub = subscribe("AGRICULTURE", ("AGRICULTURE", "TWIN1"))
    deliver(conax)
    items = sub.installed_items.order_by("pk")
    return sub, [i.ca_id for i in items]  # main card, main box, twin card, twin box


def pairing_rows(conax, sub, card):
    outcome = run(conax, sub, "conax_ws_information", type="pairing_for_smartcard", smartcard=card)
    return sorted(r[0] or r[1] for r in outcome.rows)


def test_pair_update_adds_a_box_to_a_cards_pairing_and_new_pairs_anew(conax, two_points):
    sub, (main_card, main_box, twin_card, twin_box) = two_points
    assert pairing_rows(conax, sub, main_card) == [main_card, main_box]

    outcome = services.run(
        "conax_ws_pair",
        subscription=sub,
        provider=conax.provider,
        express=True,
        data={"type": "update", "paired_smartcard": main_card, "stb": twin_box},
    )
    (request,) = outcome.requests
    assert (request.command, request.priority, request.parameters["paired_card_ca_id"]) == (
        "ADD_TO_EXISTING_PAIRING",
        Req.Priority.EXPRESS,
        main_card,
    )
    assert outcome.message == (f"{twin_box} will join the pairing of card {main_card} at Conax WS.")
    deliver(conax)
    assert pairing_rows(conax, sub, main_card) == sorted([main_card, main_box, twin_box])
    assert pairing_rows(conax, sub, twin_card) == [twin_card]  # its box moved away

    outcome = run(conax, sub, "conax_ws_pair", type="new", smartcard=main_card, stb=twin_box)
    assert outcome.requests[0].command == "CREATE_PAIRING"
    deliver(conax)
    # New: the card left its other pairing, with the box; the main box stays behind alone.
    assert pairing_rows(conax, sub, main_card) == sorted([main_card, twin_box])
    assert run(conax, sub, "conax_ws_information", type="pairing_for_stb", stb=main_box).rows == (
        ("", main_box, "STB" + main_box[-6:], "STB-01", "Decoder"),
    )


def test_pair_validation(conax, two_points):
    sub, (main_card, _main_box, twin_card, _twin_box) = two_points
    assert refused(conax, sub, "conax_ws_pair", type="new") == {
        "smartcard": ["Choose the smartcard to pair."]
    }
    assert refused(conax, sub, "conax_ws_pair", type="update", paired_smartcard=main_card) == {
        "smartcard": ["Choose a smartcard or a set-top box to add."]
    }
    assert refused(
        conax, sub, "conax_ws_pair", type="update", paired_smartcard=main_card, smartcard=main_card
    ) == {"smartcard": ["This smartcard is the one already paired."]}
    assert refused(conax, sub, "conax_ws_pair", type="update", smartcard=twin_card) == {
        "paired_smartcard": ["Choose the smartcard whose pairing the devices join."]
    }


# --- Through the Web API ---------------------------------------------------------------------


def test_utilities_through_the_web_api(agent, conax, sub, conax_ws_simulator):
    client = APIClient()
    client.force_authenticate(agent)
    listed = client.get("/api/v1/utilities/", {"subscription": sub.pk}).json()
    assert [(u["code"], u["may_be_express"], u["may_process_immediately"]) for u in listed] == [
        ("reset_subscription", True, True),
        ("conax_ws_information", False, False),
        ("conax_ws_display_fingerprint", True, False),
        ("conax_ws_pair", True, False),
        ("conax_ws_reset_pin", True, False),
        ("conax_ws_message", True, False),
    ]
    body = {"subscription": sub.pk, "provider": conax.provider.pk}
    too_long = client.post(
        "/api/v1/utilities/conax_ws_message/",
        {**body, "fields": {"message_type": "mail", "text": "x" * 142}},
        format="json",
    )
    assert too_long.status_code == 400
    assert too_long.json()["error"]["fields"] == {
        "fields.text": ["A mail message holds at most 141 characters; this one has 142."]
    }
    interval = client.post(
        "/api/v1/utilities/conax_ws_message/",
        {
            **body,
            "fields": {
                "message_type": "repeating_bark",
                "text": "Tonight",
                "repetition_count": 2,
                "repetition_interval_seconds": 2555,
            },
        },
        format="json",
    )
    assert interval.json()["error"]["fields"] == {
        "fields.repetition_interval_seconds": [
            "The repetition interval is 10 to 2550 seconds; 2555 is out of range."
        ]
    }
    sent = client.post(
        "/api/v1/utilities/conax_ws_message/",
        {**body, "priority": "EXPRESS", "fields": {"message_type": "bark", "text": "Hello"}},
        format="json",
    )
    assert sent.status_code == 201
    assert [(r["command"], r["priority"], r["state"]) for r in sent.json()["requests"]] == [
        ("SEND_BARK_MESSAGE_TO_CLIENT", "Express", "Pending")
    ]
    asked = client.post(
        "/api/v1/utilities/conax_ws_information/",
        {**body, "fields": {"type": "active_subscriptions"}},
        format="json",
    ).json()
    assert asked["columns"] == ["Service CA ID", "Code", "Description"]
    assert asked["rows"] == [
        ["EFA2", "ENTERTAIN", "Entertain"],
        ["GFA1", "GEOLOGICAL", "Geological"],
    ]


def test_the_agent_screen_shows_the_message_and_the_table(agent, conax, sub):
    from django.test import Client
    from django.urls import reverse

    client = Client()
    client.force_login(agent)
    url = reverse("admin:utilities-run", args=[sub.pk, conax.provider.pk, "conax_ws_message"])
    page = client.post(url, {"message_type": "bark", "text": "b" * 130})
    assert "A bark message holds at most 129 characters; this one has 130." in (
        page.content.decode()
    )
    assert not Req.objects.filter(command__startswith="SEND_").exists()
    url = reverse("admin:utilities-run", args=[sub.pk, conax.provider.pk, "conax_ws_information"])
    page = client.post(url, {"type": "active_subscriptions"}).content.decode()
    assert "<th>Service CA ID</th>" in page and "<td>GEOLOGICAL</td>" in page
