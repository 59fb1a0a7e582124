"""Utilities for agents: found by subscription or device, offered per provider, run through one
generic screen, their requests followed until the provider answers."""

import pytest
from django.test import Client
from django.urls import reverse

from catalogue.models import Provider
from providers.answers import record_answer
from providers.extensions import UtilityError
from providers.models import ProvisioningRequest
from subscriptions.models import SubscriptionService
from utilities import services
from utilities.registry import for_provider, for_subscription

Req = ProvisioningRequest


def login(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def drifted(subscribe):
    sub = subscribe("BUNDLE_A")
    for r in Req.objects.order_by("pk"):
        record_answer(r, accepted=True)
    SubscriptionService.objects.update(authorized=False)
    return sub


def test_each_provider_offers_its_own_utilities(catalog, subscribe):
    assert [u.code for u in for_provider(catalog.provider)] == ["reset_subscription"]
    sms = Provider.objects.create(name="SMS", type="conax_sms")
    assert [u.code for u in for_provider(sms)] == [
        "conax_sms_pair_devices",
        "conax_sms_send_message",
        "reset_subscription",
    ]
    sub = subscribe("AGRICULTURE")
    assert [(p.name, u.code) for p, u in for_subscription(sub)] == [
        ("Generic", "reset_subscription")
    ]


def test_reset_single_subscription_through_the_service(catalog, drifted):
    outcome = services.run(
        "reset_subscription", subscription=drifted, provider=catalog.provider, express=True
    )
    assert [(r.command, r.ca_id, r.priority, r.trigger) for r in outcome.requests] == [
        ("ACTIVATE_SERVICE", "GFA1", Req.Priority.EXPRESS, "utility"),
        ("ACTIVATE_SERVICE", "EFA2", Req.Priority.EXPRESS, "utility"),
    ]
    assert outcome.message == f"2 request(s) will bring {drifted.number} in step with Generic."
    again = services.run("reset_subscription", subscription=drifted, provider=catalog.provider)
    assert again.requests == []
    assert again.message == f"{drifted.number} is in step with Generic: nothing to send."


def test_a_utility_the_provider_does_not_offer_is_refused(catalog, drifted):
    with pytest.raises(UtilityError) as err:
        services.run("display_fingerprint", subscription=drifted, provider=catalog.provider)
    assert str(err.value) == (
        f"Generic offers no utility 'display_fingerprint' for {drifted.number} "
        "(it offers: Reset single subscription)."
    )


def test_an_agent_finds_a_subscription_by_its_card_and_resets_it(agent, catalog, drifted):
    client = login(agent)
    card = drifted.installed_items.get(kind="smartcard")
    page = client.get(reverse("admin:utilities-search"), {"q": card.serial_number})
    assert page.status_code == 200
    assert drifted.number in page.content.decode()

    page = client.get(reverse("admin:utilities-subscription", args=[drifted.pk]))
    assert "Reset single subscription" in page.content.decode()

    url = reverse(
        "admin:utilities-run", args=[drifted.pk, catalog.provider.pk, "reset_subscription"]
    )
    assert client.get(url).status_code == 200
    result = client.post(url, {"priority": "express", "process_immediately": "on"})
    body = result.content.decode()
    assert result.status_code == 200
    assert "ACTIVATE_SERVICE" in body and "GFA1" in body and "Express" in body
    made = Req.objects.filter(trigger="utility")
    assert made.count() == 2

    states = client.get(
        reverse("admin:utilities-request-states"), {"ids": ",".join(str(r.pk) for r in made)}
    ).json()
    assert {s["state"] for s in states.values()} == {"Pending"}
    for r in made:
        record_answer(r, accepted=True)
    states = client.get(
        reverse("admin:utilities-request-states"), {"ids": ",".join(str(r.pk) for r in made)}
    ).json()
    assert {s["state"] for s in states.values()} == {"Completed"}


def test_utilities_need_the_agents_permission(operator, catalog, drifted):
    client = login(operator)
    assert client.get(reverse("admin:utilities-search")).status_code == 403
    url = reverse(
        "admin:utilities-run", args=[drifted.pk, catalog.provider.pk, "reset_subscription"]
    )
    assert client.post(url, {}).status_code == 403
    assert not Req.objects.filter(trigger="utility").exists()
    anonymous = Client().get(reverse("admin:utilities-search"))
    assert anonymous.status_code == 302 and "/admin/login/" in anonymous["Location"]


def test_utilities_through_the_web_api(agent, operator, catalog, drifted):
    from rest_framework.test import APIClient

    client = APIClient()
    client.force_authenticate(agent)
    listed = client.get("/api/v1/utilities/", {"subscription": drifted.pk})
    assert listed.status_code == 200
    assert [(u["code"], u["provider_name"], u["may_be_express"]) for u in listed.json()] == [
        ("reset_subscription", "Generic", True)
    ]
    body = {"subscription": drifted.pk, "provider": catalog.provider.pk, "priority": "EXPRESS"}
    made = client.post("/api/v1/utilities/reset_subscription/", body, format="json")
    assert made.status_code == 201
    assert [
        (r["command"], r["ca_id"], r["priority"], r["state"]) for r in made.json()["requests"]
    ] == [
        ("ACTIVATE_SERVICE", "GFA1", "Express", "Pending"),
        ("ACTIVATE_SERVICE", "EFA2", "Express", "Pending"),
    ]
    unknown = client.post("/api/v1/utilities/display_fingerprint/", body, format="json")
    assert unknown.status_code == 400
    assert unknown.json()["error"]["fields"] == {"code": ["No utility 'display_fingerprint'."]}

    client.force_authenticate(operator)
    assert (
        client.post("/api/v1/utilities/reset_subscription/", body, format="json").status_code == 403
    )


def test_an_unticked_process_immediately_box_leaves_the_request_for_the_next_run(
    agent, sms, sms_catalog, subscribe
):
    """A browser sends no field for an unticked box: the request waits for the export run."""
    sub = subscribe("AGRICULTURE", catalog=sms_catalog)
    card = sub.installed_items.get(kind="smartcard")
    url = reverse("admin:utilities-run", args=[sub.pk, sms.pk, "conax_sms_send_message"])
    page = login(agent).post(
        url, {"message_type": "MAIL", "smartcard": card.pk, "text": "Your bill is ready"}
    )
    assert page.status_code == 200
    assert f"Mail message to {card.serial_number} waits for the next export to Conax." in (
        page.content.decode()
    )
    assert Req.objects.get(trigger="utility").state == Req.State.PENDING
