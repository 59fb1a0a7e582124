"""The Web API v1 as an external system uses it: subscription actions and what they create,
idempotency, who may call what, filters and pages."""

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from providers.models import ConnectorToken, IdempotencyRecord, ProvisioningRequest
from runs.models import RunDefinition
from subscriptions.models import CustomerAccount, InstalledItem, Subscription
from tests.fixtures import staff_user

Req = ProvisioningRequest
API = "/api/v1"


def client_for(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    return client


@pytest.fixture
def as_agent(agent):
    return client_for(agent)


@pytest.fixture
def as_admin(administrator):
    return client_for(administrator)


def become(client, catalog, key=None, **extra):
    main = catalog.main.pk
    body = {
        "account": "ACC-1",
        "subscription_type": "RES",
        "services": [{"product": "BUNDLE_A", "distributor": main}],
        "items": [
            {"kind": "smartcard", "serial_number": "SC9", "ca_id": "CA-SC-9", "distributor": main},
        ],
        **extra,
    }
    headers = {"HTTP_IDEMPOTENCY_KEY": key} if key else {}
    return client.post(f"{API}/subscriptions/", body, format="json", **headers)


def commands(requests: list[dict]) -> list[tuple[str, str]]:
    return [(r["command"], r["ca_id"]) for r in requests]


# --- Subscription actions ---------------------------------------------------------------------


def test_become_subscriber_creates_the_subscription_and_its_requests(as_agent, catalog, account):
    response = become(as_agent, catalog)
    assert response.status_code == 201, response.content
    body = response.json()
    sub = Subscription.objects.get(pk=body["subscription"]["id"])
    assert body["subscription"]["state"] == "effective"
    assert [s["product_code"] for s in body["subscription"]["services"]] == ["BUNDLE_A"]
    assert [i["serial_number"] for i in body["subscription"]["installed_items"]] == ["SC9"]
    assert commands(body["requests"]) == [
        ("CREATE_PAIRING", ""),
        ("ACTIVATE_SERVICE", "GFA1"),
        ("ACTIVATE_SERVICE", "EFA2"),
    ]
    assert sorted(r["id"] for r in body["requests"]) == sorted(
        sub.provisioning_requests.values_list("id", flat=True)
    )
    assert sub.events.get().performed_by.username == "agent"


@pytest.mark.parametrize(
    ("steps", "state", "last_commands"),
    [
        (["deactivate"], "not_effective", ["DEACTIVATE_SERVICE"]),
        (["deactivate", "activate"], "effective", ["ACTIVATE_SERVICE"]),
        (["rest"], "in_resting", ["DEACTIVATE_SERVICE"]),
        (["rest", "end-resting"], "effective", ["ACTIVATE_SERVICE"]),
        (["deactivate", "short-term-activation"], "short_term_effective", ["ACTIVATE_SERVICE"]),
        (
            ["deactivate", "short-term-activation", "end-short-term-activation"],
            "not_effective",
            ["DEACTIVATE_SERVICE"],
        ),
        (["short-term-deactivation"], "short_term_not_effective", ["DEACTIVATE_SERVICE"]),
        (
            ["short-term-deactivation", "end-short-term-deactivation"],
            "effective",
            ["ACTIVATE_SERVICE"],
        ),
        (["terminate"], "terminated", ["DEACTIVATE_SERVICE"]),
    ],
)
def test_subscription_actions(as_agent, subscribe, steps, state, last_commands):
    sub = subscribe("AGRICULTURE")
    for step in steps:
        response = as_agent.post(f"{API}/subscriptions/{sub.pk}/{step}/", {"reason": "test"})
        assert response.status_code == 200, response.content
    body = response.json()
    assert body["subscription"]["state"] == state
    sub.refresh_from_db()
    assert sub.state == state
    made = {r["command"] for r in body["requests"]}
    assert set(last_commands) <= made
    assert all(r["subscription"] == sub.pk and r["state"] == "pending" for r in body["requests"])


def test_an_illegal_action_is_409_naming_the_problem(as_agent, subscribe):
    sub = subscribe("AGRICULTURE")
    response = as_agent.post(f"{API}/subscriptions/{sub.pk}/activate/")
    assert response.status_code == 409
    assert response.json() == {
        "error": {
            "code": "illegal_transition",
            "message": f"Cannot activate subscription {sub.number}: it is Effective; "
            "this action needs it Not Effective.",
        }
    }
    assert not Req.objects.filter(trigger_name="activate").exists()


def test_bad_input_is_400_with_fields(as_agent, catalog, account):
    response = become(as_agent, catalog, services=[{"product": "NOPE", "distributor": 999}])
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid"
    assert set(error["fields"]) == {"services[0].product", "services[0].distributor"}
    assert not Subscription.objects.exists()


@pytest.mark.usefixtures("fast_path")
def test_service_actions(as_agent, subscribe, catalog):
    sub = subscribe("BUNDLE_A")
    service = sub.services.get()
    swapped = as_agent.post(f"{API}/services/{service.pk}/swap/", {"product": "AGRICULTURE"})
    assert swapped.status_code == 200, swapped.content
    assert sorted(commands(swapped.json()["requests"])) == [
        ("ACTIVATE_SERVICE", "AF1"),
        ("DEACTIVATE_SERVICE", "EFA2"),
        ("DEACTIVATE_SERVICE", "GFA1"),
    ]
    new = sub.services.get(state="effective")
    regret = as_agent.post(f"{API}/services/{new.pk}/regret/")
    assert regret.status_code == 200
    assert {s["product_code"]: s["state"] for s in regret.json()["subscription"]["services"]} == {
        "BUNDLE_A": "effective",
        "AGRICULTURE": "regretted",
    }
    stop = as_agent.post(f"{API}/services/{service.pk}/stop/")
    assert stop.status_code == 200
    assert {r["command"] for r in stop.json()["requests"]} == {"DEACTIVATE_SERVICE"}
    start = as_agent.post(f"{API}/services/{service.pk}/start/")
    assert {r["command"] for r in start.json()["requests"]} == {"ACTIVATE_SERVICE"}
    again = as_agent.post(f"{API}/services/{service.pk}/start/")
    assert again.status_code == 409
    assert "only a Not Effective service can be started" in again.json()["error"]["message"]
    added = as_agent.post(
        f"{API}/subscriptions/{sub.pk}/add-service/",
        {"product": "BUNDLE_B", "distributor": catalog.main.pk},
    )
    assert commands(added.json()["requests"]) == [
        ("ACTIVATE_SERVICE", "RFB1"),
        ("ACTIVATE_SERVICE", "BFB2"),
    ]
    assert added.json()["provisioning"] == "2 provisioning requests made."
    removed = as_agent.post(f"{API}/services/{service.pk}/remove/")
    assert removed.status_code == 200
    assert {s.state for s in sub.services.filter(product__code="BUNDLE_A")} == {"removed"}


def test_an_action_that_changes_no_provider_says_so(as_agent, subscribe, catalog):
    sub = subscribe("AGRICULTURE")  # devices on MAIN only: a service on TWIN1 reaches nothing
    added = as_agent.post(
        f"{API}/subscriptions/{sub.pk}/add-service/",
        {"product": "BUNDLE_B", "distributor": catalog.distributors["TWIN1"].pk},
    )
    assert added.status_code == 200, added.content
    assert added.json()["requests"] == []
    assert added.json()["provisioning"] == (
        "No provider was changed: no provisioning request was made."
    )


def test_item_actions_and_change_distribution(as_agent, subscribe, catalog):
    sub = subscribe("AGRICULTURE")
    main = catalog.main
    added = as_agent.post(
        f"{API}/subscriptions/{sub.pk}/add-item/",
        {"kind": "smartcard", "serial_number": "SC-T1", "ca_id": "CA-T1", "distributor": main.pk},
    )
    assert added.status_code == 200, added.content
    made = added.json()["requests"]
    assert made and all(r["subscription"] == sub.pk for r in made), made
    item = InstalledItem.objects.get(serial_number="SC-T1")
    swapped = as_agent.post(
        f"{API}/installed-items/{item.pk}/swap/", {"serial_number": "SC-T2", "ca_id": "CA-T2"}
    )
    assert swapped.status_code == 200, swapped.content
    new = InstalledItem.objects.get(serial_number="SC-T2", removed_at__isnull=True)
    removed = as_agent.post(f"{API}/installed-items/{new.pk}/remove/")
    assert removed.status_code == 200
    again = as_agent.post(f"{API}/installed-items/{new.pk}/remove/")
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "item_removed"
    moved = as_agent.post(
        f"{API}/subscriptions/{sub.pk}/change-distribution/",
        {"from_distributor": catalog.main.pk, "to_distributor": catalog.main.pk},
    )
    assert moved.status_code == 400
    assert moved.json()["error"]["message"] == "Choose a different distributor to move to."


# --- Idempotency ------------------------------------------------------------------------------


def test_the_same_key_and_body_return_the_first_answer_and_create_nothing(
    as_agent, catalog, account
):
    first = become(as_agent, catalog, key="k-1")
    requests = Req.objects.count()
    second = become(as_agent, catalog, key="k-1")
    assert second.status_code == first.status_code == 201
    assert second.json() == first.json()
    assert second.headers["Idempotent-Replayed"] == "true"
    assert Subscription.objects.count() == 1
    assert Req.objects.count() == requests


def test_the_same_key_with_another_body_is_refused(as_agent, catalog, account):
    become(as_agent, catalog, key="k-2")
    other = become(as_agent, catalog, key="k-2", reason="another")
    assert other.status_code == 422
    assert other.json()["error"]["code"] == "idempotency_key_reused"
    assert Subscription.objects.count() == 1


def test_a_failed_request_keeps_no_claim(as_agent, subscribe):
    sub = subscribe("AGRICULTURE")
    url = f"{API}/subscriptions/{sub.pk}/activate/"
    assert as_agent.post(url, HTTP_IDEMPOTENCY_KEY="k-3").status_code == 409
    assert not IdempotencyRecord.objects.exists()
    as_agent.post(f"{API}/subscriptions/{sub.pk}/deactivate/")
    assert as_agent.post(url, HTTP_IDEMPOTENCY_KEY="k-3").status_code == 200
    replay = as_agent.post(url, HTTP_IDEMPOTENCY_KEY="k-3")
    assert replay.status_code == 200 and replay.headers["Idempotent-Replayed"] == "true"


def test_keys_are_per_user(as_agent, administrator, catalog, account):
    become(as_agent, catalog, key="shared")
    other = become(client_for(administrator), catalog, key="shared", items=[])
    assert other.status_code == 201
    assert Subscription.objects.count() == 2


# --- Who may call what ------------------------------------------------------------------------


@pytest.fixture
def world(catalog, subscribe):
    """One subscription, one Failed request, and the URLs of each endpoint group."""
    sub = subscribe("AGRICULTURE")
    failed = sub.provisioning_requests.first()
    Req.objects.filter(pk=failed.pk).update(state="failed", last_error="timed out")
    return {"sub": sub, "request": failed, "catalog": catalog}


def _calls(world) -> dict:
    sub, catalog = world["sub"], world["catalog"]
    provider = catalog.provider.pk
    return {
        "read subscriptions": ("get", f"{API}/subscriptions/{sub.pk}/", None),
        "subscription action": ("post", f"{API}/subscriptions/{sub.pk}/deactivate/", {}),
        "read catalogue": ("get", f"{API}/products/", None),
        "write catalogue": ("post", f"{API}/products/", {"code": "NEW", "name": "New"}),
        "write provider": ("patch", f"{API}/providers/{provider}/", {"enabled": True}),
        "read requests": ("get", f"{API}/requests/", None),
        "retry request": ("post", f"{API}/requests/{world['request'].pk}/retry/", None),
        "read runs": ("get", f"{API}/process-runs/", None),
        "write runs": (
            "post",
            f"{API}/run-definitions/",
            {
                "name": "Reset",
                "run_type": "reset_subscriptions",
                "provider": provider,
                "schedule": "cron",
                "cron": "0 2 * * *",
            },
        ),
        "generic pending": ("get", f"{API}/generic/pending/?provider={provider}", None),
    }


OK, NO, ANON = "ok", 403, 401
MATRIX = {
    # group:                 anonymous, connector, agent, operator, administrator
    "read subscriptions": (ANON, NO, OK, OK, OK),
    "subscription action": (ANON, NO, OK, NO, OK),
    "read catalogue": (ANON, NO, OK, OK, OK),
    "write catalogue": (ANON, NO, NO, NO, OK),
    "write provider": (ANON, NO, NO, OK, OK),
    "read requests": (ANON, NO, OK, OK, OK),
    "retry request": (ANON, NO, NO, OK, OK),
    "read runs": (ANON, NO, OK, OK, OK),
    "write runs": (ANON, NO, NO, OK, OK),
    "generic pending": (ANON, OK, NO, NO, NO),
}
ROLES = ["anonymous", "connector", "agent", "operator", "administrator"]


@pytest.mark.parametrize(
    ("group", "role", "expected"),
    [(group, role, row[i]) for group, row in MATRIX.items() for i, role in enumerate(ROLES)],
)
def test_permissions_matrix(world, group, role, expected):
    client = APIClient()
    if role == "connector":
        _, key = ConnectorToken.issue(world["catalog"].provider, "connector")
        client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    elif role != "anonymous":
        client = client_for(staff_user(role, role))
    method, url, body = _calls(world)[group]
    response = getattr(client, method)(url, body, format="json")
    if expected == OK:
        assert response.status_code < 300, response.content
    else:
        assert response.status_code == expected, response.content
        assert set(response.json()["error"]) >= {"code", "message"}


@pytest.mark.usefixtures("fast_path")
def test_a_service_that_is_not_there_is_404(as_agent):
    for pk in ("999999", "abc", str(10**20)):
        response = as_agent.post(f"{API}/services/{pk}/stop/")
        assert response.status_code == 404, response.content
        assert response.json()["error"] == {"code": "not_found", "message": f"No service {pk}."}


def test_a_permission_given_to_the_person_and_not_their_role_counts(subscribe):
    from django.contrib.auth.models import Permission, User

    sub = subscribe("AGRICULTURE")
    service = sub.services.get()
    person = User.objects.create_user("no-role", password="pw")
    client = client_for(person)
    refused = client.post(f"{API}/services/{service.pk}/stop/")
    assert refused.status_code == 403, refused.content
    person.user_permissions.add(Permission.objects.get(codename="perform_actions"))
    stopped = client.post(f"{API}/services/{service.pk}/stop/")
    assert stopped.status_code == 200, stopped.content
    # Signed in otherwise than by token (a session): the permissions are asked for on their own.
    signed_in = APIClient()
    signed_in.force_authenticate(User.objects.get(pk=person.pk))
    assert signed_in.post(f"{API}/services/{service.pk}/start/").status_code == 200
    person.user_permissions.clear()
    signed_in.force_authenticate(User.objects.get(pk=person.pk))
    assert signed_in.post(f"{API}/services/{service.pk}/stop/").status_code == 403
    person.user_permissions.add(Permission.objects.get(codename="perform_actions"))
    person.is_active = False
    person.save()
    assert client.post(f"{API}/services/{service.pk}/start/").status_code == 401


# --- Catalogue, providers, requests, runs -----------------------------------------------------


def test_provider_settings_are_validated_per_field(as_admin, catalog):
    response = as_admin.patch(
        f"{API}/providers/{catalog.provider.pk}/",
        {"connection": {"mode": "push", "push_url": "not a url"}},
        format="json",
    )
    assert response.status_code == 400
    assert "connection" in response.json()["error"]["fields"]
    created = as_admin.post(
        f"{API}/providers/", {"name": "Second", "type": "generic"}, format="json"
    )
    assert created.status_code == 201, created.content
    assert created.json()["provisioning_model"]
    duplicate = as_admin.post(f"{API}/providers/", {"name": "Second", "type": "generic"})
    assert duplicate.status_code == 400
    assert "name" in duplicate.json()["error"]["fields"]


def test_retry_sends_a_failed_request_again_once(world, operator):
    client = client_for(operator)
    url = f"{API}/requests/{world['request'].pk}/retry/"
    response = client.post(url)
    assert response.status_code == 200
    assert response.json()["state"] == "pending"
    again = client.post(url)
    assert again.status_code == 409
    assert "only a Failed request can be retried" in again.json()["error"]["message"]


def test_request_filters_and_pages(as_agent, subscribe):
    first = subscribe("BUNDLE_A")
    second = subscribe("AGRICULTURE")
    card = second.installed_items.get(kind="smartcard")
    listing = as_agent.get(f"{API}/requests/", {"subscription": first.pk}).json()
    assert listing["count"] == 3
    by_card = as_agent.get(f"{API}/requests/", {"card": card.ca_id}).json()
    assert {r["subscription_number"] for r in by_card["results"]} == {second.number}
    by_command = as_agent.get(f"{API}/requests/", {"command": "ACTIVATE_SERVICE"}).json()
    assert by_command["count"] == 3
    page = as_agent.get(f"{API}/requests/", {"limit": 2, "offset": 0}).json()
    assert page["count"] == 5 and len(page["results"]) == 2 and page["next"]
    future = (timezone.now() + timedelta(days=1)).isoformat()
    assert as_agent.get(f"{API}/requests/", {"created_after": future}).json()["count"] == 0
    bad = as_agent.get(f"{API}/requests/", {"state": "nonsense"})
    assert bad.status_code == 400 and "state" in bad.json()["error"]["fields"]


def test_a_request_lists_every_device_it_concerns(as_agent, subscribe):
    sub = subscribe("AGRICULTURE")
    card = sub.installed_items.get(kind="smartcard")
    box = sub.installed_items.get(kind="stb")
    listing = as_agent.get(f"{API}/requests/", {"subscription": sub.pk}).json()["results"]
    devices = {r["command"]: sorted(r["items"]) for r in listing}
    assert devices == {
        "CREATE_PAIRING": sorted([card.pk, box.pk]),
        "ACTIVATE_SERVICE": [card.pk],
    }


def test_subscription_filters(as_agent, subscribe, catalog):
    first = subscribe("BUNDLE_A")
    second = subscribe("AGRICULTURE")
    second_card = second.installed_items.get(kind="smartcard")
    as_agent.post(f"{API}/subscriptions/{second.pk}/deactivate/")
    other = CustomerAccount.objects.create(number="ACC-2", name="Other")
    Subscription.objects.filter(pk=first.pk).update(account=other)

    def numbers(**params):
        return [
            s["number"] for s in as_agent.get(f"{API}/subscriptions/", params).json()["results"]
        ]

    assert numbers(state="not_effective") == [second.number]
    assert numbers(account="ACC-2") == [first.number]
    assert numbers(card=second_card.serial_number) == [second.number]
    assert numbers(card=second_card.ca_id) == [second.number]
    assert numbers(number=first.number) == [first.number]
    assert numbers(subscription_type="BUS") == []
    assert len(numbers(created_after="2000-01-01T00:00:00Z")) == 2
    detail = as_agent.get(f"{API}/subscriptions/{first.pk}/").json()
    assert len(detail["latest_requests"]) == 3 and len(detail["installed_items"]) == 2
    # Filters narrow lists only: an object named in the path is answered (or acted on) by its
    # id, whatever a query string left over from a list says.
    named = as_agent.get(f"{API}/subscriptions/{first.pk}/", {"state": "not_effective"})
    assert named.status_code == 200 and named.json()["number"] == first.number
    acted = as_agent.post(f"{API}/subscriptions/{first.pk}/deactivate/?state=not_effective")
    assert acted.status_code == 200 and acted.json()["subscription"]["state"] == "not_effective"


def test_run_definition_life_cycle(catalog, operator, subscribe):
    client = client_for(operator)
    bad = client.post(
        f"{API}/run-definitions/",
        {
            "name": "Reset",
            "run_type": "reset_subscriptions",
            "provider": catalog.provider.pk,
            "schedule": "cron",
            "cron": "every night",
        },
        format="json",
    )
    assert bad.status_code == 400 and "cron" in bad.json()["error"]["fields"]
    body = {
        "name": "Reset",
        "run_type": "reset_subscriptions",
        "provider": catalog.provider.pk,
        "schedule": "cron",
        "cron": "0 2 * * *",
    }
    created = client.post(f"{API}/run-definitions/", body, format="json", HTTP_IDEMPOTENCY_KEY="r1")
    assert created.status_code == 201, created.content
    replay = client.post(f"{API}/run-definitions/", body, format="json", HTTP_IDEMPOTENCY_KEY="r1")
    assert replay.json() == created.json()
    assert RunDefinition.objects.count() == 1
    pk = created.json()["id"]
    submitted = client.post(f"{API}/run-definitions/{pk}/submit/")
    assert submitted.status_code == 200 and submitted.json()["state"] == "submitted"
    assert submitted.json()["next_run_at"]
    twice = client.post(f"{API}/run-definitions/{pk}/submit/")
    assert twice.status_code == 409
    assert "it cannot be submitted again" in twice.json()["error"]["message"]
    cancelled = client.post(f"{API}/run-definitions/{pk}/cancel/")
    assert cancelled.json()["state"] == "cancelled"
    # The provider never confirmed it: a reset would send it again.
    drifted = subscribe("AGRICULTURE")
    Req.objects.update(state="completed")
    preview = client.get(f"{API}/run-definitions/{pk}/preview/", {"limit": 1})
    assert preview.status_code == 200
    assert [r["subscription"] for r in preview.json()["results"]] == [drifted.number]
    what = preview.json()["results"][0]["what"]
    assert "ACTIVATE_SERVICE" in {w["command"] for w in what}
    # Each with why, in words.
    devices = " and ".join(
        f"{'card' if d.kind == 'smartcard' else 'set-top box'} {d.serial_number}"
        for d in drifted.installed_items.order_by("pk")
    )
    assert [w["reason"] for w in what] == [
        f"Create pairing: {devices} not initialized at the provider",
        "Activate AGRICULTURE: service Effective, not authorized at the provider",
    ]
    assert preview.json()["next_offset"] is None
    queued = client.post(f"{API}/run-definitions/{pk}/run-now/")
    assert queued.status_code == 202


def test_an_id_beyond_what_the_database_holds_is_a_clear_answer(administrator):
    from rest_framework.test import APIClient

    client = APIClient()
    client.force_authenticate(administrator)
    huge = 10**20
    assert client.get(f"/api/v1/requests/{huge}/").status_code == 404
    response = client.get("/api/v1/requests/", {"provider": huge})
    # Beyond the schema's maximum for an id: refused, naming the parameter, on every database.
    assert response.status_code == 400
    assert "provider" in response.json()["error"]["fields"]
