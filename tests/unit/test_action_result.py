"""An action's answer, as a client reads it: the subscription as it now is (its services and the
devices in use) and the requests the action made, each shown as its own resource shows it, read
by a fixed number of statements whatever the subscription or the database holds. On both paths
(``providers.fast_path.action_answer``, PostgreSQL's fast path, and the serializers)."""

import dataclasses

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.renderers import JSONRenderer
from rest_framework.test import APIClient

from bench import load
from crm_provisioning.subscriptions_api import action_result
from providers.models import ProvisioningRequest
from subscriptions import actions

Req = ProvisioningRequest
API = "/api/v1"

SUBSCRIPTION = [
    "id",
    "number",
    "account_number",
    "account_name",
    "subscription_type",
    "state",
    "created_at",
    "updated_at",
    "terminated_at",
    "services",
    "installed_items",
]
SERVICE = [
    "id",
    "subscription",
    "product",
    "product_code",
    "distributor",
    "distributor_code",
    "state",
    "is_on",
    "swapped_from",
    "authorized",
    "authorization_date",
    "created_at",
    "updated_at",
]
ITEM = [
    "id",
    "subscription",
    "kind",
    "serial_number",
    "ca_id",
    "product_code",
    "description",
    "distributor",
    "distributor_code",
    "initialized",
    "in_use",
    "installed_at",
    "removed_at",
    "replaced_by",
]
REQUEST = [
    "id",
    "uid",
    "command",
    "operation",
    "ca_id",
    "parameters",
    "provider",
    "distributor",
    "distributor_code",
    "subscription",
    "subscription_number",
    "service",
    "installed_item",
    "card_ca_id",
    "items",
    "priority",
    "trigger",
    "trigger_name",
    "state",
    "attempts",
    "next_attempt_at",
    "last_error",
    "error_code",
    "response",
    "process_run",
    "created_by",
    "created_at",
    "updated_at",
    "sent_at",
    "answered_at",
]

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True, params=["fast path", "serializers"])
def answer_path(request, settings):
    if request.param == "fast path" and connection.vendor != "postgresql":
        pytest.skip("the fast path is PostgreSQL's")
    settings.PROVISIONING_FAST_PATH = request.param == "fast path"
    return request.param


@pytest.fixture
def client(administrator) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=administrator).key}")
    return client


def post(client: APIClient, path: str, body: dict | None = None) -> dict:
    response = client.post(f"{API}/{path}", body or {}, format="json")
    assert response.status_code in (200, 201), response.content
    return response.json()


def get(client: APIClient, path: str) -> dict:
    response = client.get(f"{API}/{path}")
    assert response.status_code == 200, response.content
    return response.json()


def test_the_answer_is_the_subscription_and_the_requests_as_their_resources_show_them(
    client, catalog, account
):
    main = catalog.main.pk
    body = {
        "account": "ACC-1",
        "subscription_type": "RES",
        "services": [
            {"product": "BUNDLE_A", "distributor": main},
            {"product": "AGRICULTURE", "distributor": main},
        ],
        "items": [
            {"kind": "smartcard", "serial_number": "SC9", "ca_id": "CA-SC-9", "distributor": main},
            {"kind": "stb", "serial_number": "BX9", "ca_id": "CA-BX-9", "distributor": main},
        ],
    }
    made = post(client, "subscriptions/", body)
    sub = made["subscription"]
    assert list(made) == ["subscription", "requests", "provisioning"]
    assert list(sub) == SUBSCRIPTION
    assert [list(s) for s in sub["services"]] == [SERVICE, SERVICE]
    assert [list(i) for i in sub["installed_items"]] == [ITEM, ITEM]
    assert all(list(r) == REQUEST for r in made["requests"])
    # The pairing's request names both devices; an activation, the card it is addressed to.
    card, box = (i["id"] for i in sub["installed_items"])
    by_command = {r["command"]: r for r in made["requests"]}
    assert by_command["CREATE_PAIRING"]["items"] == [card, box]
    assert by_command["ACTIVATE_SERVICE"]["items"] == [card]

    # The requests as the requests' resource shows them, in the order they were made.
    ids = sorted(r["id"] for r in made["requests"])
    assert [r["id"] for r in made["requests"]] == ids
    assert made["requests"] == [get(client, f"requests/{pk}/") for pk in ids]
    # The subscription as its page shows it, but for its request history.
    page = get(client, f"subscriptions/{sub['id']}/")
    assert {k: v for k, v in page.items() if k != "latest_requests"} == sub

    # An answered, express request; a service authorized on a date; a device added and then
    # removed (no longer in use, so not in the answer).
    first = Req.objects.get(pk=ids[0])
    first.state = Req.State.COMPLETED
    first.priority = Req.Priority.EXPRESS
    first.response = {"status": "ok", "cards": ["CA-1"]}
    first.answered_at = first.sent_at = timezone.now()
    first.save()
    agriculture = next(s for s in sub["services"] if s["product_code"] == "AGRICULTURE")
    device = {
        "kind": "smartcard",
        "serial_number": "SC10",
        "ca_id": "CA-SC-10",
        "distributor": main,
    }
    added = post(client, f"subscriptions/{sub['id']}/add-item/", device)
    (new_card,) = (
        i["id"] for i in added["subscription"]["installed_items"] if i["serial_number"] == "SC10"
    )
    removed = post(client, f"installed-items/{new_card}/remove/")
    assert new_card not in {i["id"] for i in removed["subscription"]["installed_items"]}
    first.subscription.services.filter(product__code="AGRICULTURE").update(
        authorized=True, authorization_date=timezone.now()
    )

    stopped = post(client, f"services/{agriculture['id']}/stop/")
    assert {s["product_code"]: s["is_on"] for s in stopped["subscription"]["services"]} == {
        "BUNDLE_A": True,
        "AGRICULTURE": False,
    }
    authorized = next(
        s for s in stopped["subscription"]["services"] if s["product_code"] == "AGRICULTURE"
    )
    assert authorized["authorized"] is True and authorized["authorization_date"].endswith("Z")
    assert all(i["in_use"] for i in stopped["subscription"]["installed_items"])
    assert [r["command"] for r in stopped["requests"]] == ["DEACTIVATE_SERVICE"]
    assert stopped["requests"] == [get(client, f"requests/{r['id']}/") for r in stopped["requests"]]
    assert get(client, f"requests/{first.pk}/")["priority"] == "express"


def test_an_action_without_requests_answers_with_none(client, subscribe, catalog):
    sub = subscribe("AGRICULTURE", devices=[])
    catalog.provider.enabled = False
    catalog.provider.save()
    answer = post(client, f"subscriptions/{sub.pk}/deactivate/")
    assert answer["subscription"]["state"] == "not_effective"
    assert answer["requests"] == []


def statements(client: APIClient, service_id: int, action: str) -> list[str]:
    with CaptureQueriesContext(connection) as queries:
        post(client, f"services/{service_id}/{action}/")
    return [q["sql"] for q in queries.captured_queries]


def test_an_actions_statements_are_as_many_whatever_the_database_holds(client, subscribe):
    sub = subscribe("BUNDLE_A", "AGRICULTURE")
    service = sub.services.get(product__code="AGRICULTURE").pk
    statements(client, service, "stop")  # the first calls fill the per-process caches
    statements(client, service, "start")
    few = statements(client, service, "stop")
    load.generate(300)
    statements(client, service, "start")
    many = statements(client, service, "stop")
    assert len(many) == len(few), "\n".join(many)


def test_both_paths_give_the_same_bytes(subscribe, settings, answer_path):
    if answer_path != "fast path":
        pytest.skip("compares the two paths once")
    sub = subscribe("BUNDLE_A", "AGRICULTURE")
    made = list(Req.objects.filter(subscription=sub).order_by("id").values_list("pk", flat=True))
    Req.objects.filter(pk=made[0]).update(
        priority=Req.Priority.EXPRESS, response={"status": "ok"}, answered_at=timezone.now()
    )
    stopped = actions.stop_service(sub.services.get(product__code="AGRICULTURE"))
    for change in (stopped, dataclasses.replace(stopped, request_ids=made)):
        fast = JSONRenderer().render(action_result(change))
        settings.PROVISIONING_FAST_PATH = False
        assert JSONRenderer().render(action_result(change)) == fast
        settings.PROVISIONING_FAST_PATH = True
