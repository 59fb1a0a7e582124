"""Bad input gets a clear 4xx in the one error shape, and changes nothing: control characters,
JSON nested too deep, a body too large, and Django's own errors (unknown path, an id that is not
one, a wrong method, a server error) under /api/ answer JSON too."""

import json

import pytest
from django.conf import settings
from django.http import HttpResponse
from django.test import Client
from django.urls import path
from rest_framework.authtoken.models import Token

from crm_provisioning.urls import urlpatterns as real_urlpatterns
from providers.models import IdempotencyRecord
from subscriptions.models import Subscription, SubscriptionService

API = "/api/v1"


def boom(request):
    raise RuntimeError("a fault no input should cause")


def html_elsewhere(request):
    raise RuntimeError("outside the API")


# A test-only URLconf (``pytest.mark.urls``): the real one plus a view that fails, under /api/
# and outside it.
urlpatterns = [
    path("api/v1/test-boom/", boom),
    path("test-boom/", html_elsewhere),
    *real_urlpatterns,
]


@pytest.fixture
def api(administrator):
    client = Client(raise_request_exception=False)
    client.defaults["HTTP_AUTHORIZATION"] = f"Token {Token.objects.create(user=administrator).key}"
    return client


def post(client, url, body, **headers):
    data = body if isinstance(body, str | bytes) else json.dumps(body)
    return client.post(url, data, content_type="application/json", **headers)


def error_of(response, status: int) -> dict:
    assert response.status_code == status, response.content[:500]
    assert response["Content-Type"] == "application/json", response.content[:500]
    error = response.json()["error"]
    assert set(error) <= {"code", "message", "fields"}
    assert error["code"] and error["message"]
    return error


def become_body(catalog, **change) -> dict:
    body = {
        "account": "ACC-1",
        "subscription_type": "RES",
        "services": [{"product": "BUNDLE_A", "distributor": catalog.main.pk}],
        "items": [
            {
                "kind": "smartcard",
                "serial_number": "SC9",
                "ca_id": "CA-SC-9",
                "distributor": catalog.main.pk,
            }
        ],
    }
    body.update(change)
    return body


# --- Control characters -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"account": "ACC\x00-1"}, "account"),
        ({"subscription_type": "R\x00ES"}, "subscription_type"),
        ({"services": [{"product": "BUNDLE\x00_A", "distributor": 0}]}, "services[0].product"),
        ({"services": [{"product": "BUNDLE_A", "distributor": "\x00"}]}, "services[0].distributor"),
        ({"number": "ZX\x00-1"}, "number"),
        ({"reason": "because\x07"}, "reason"),
    ],
)
def test_a_control_character_is_refused_naming_its_field_and_creates_nothing(
    api, catalog, account, change, field
):
    body = become_body(catalog, **change)
    if "services" in change and change["services"][0]["distributor"] == 0:
        body["services"][0]["distributor"] = catalog.main.pk
    response = post(api, f"{API}/subscriptions/", body, HTTP_IDEMPOTENCY_KEY="k-1")
    error = error_of(response, 400)
    assert error["code"] == "invalid"
    assert field in error["fields"], error
    assert "control character" in " ".join(error["fields"][field])
    assert not Subscription.objects.exists()
    assert not IdempotencyRecord.objects.exists()
    # The same key, corrected, goes through: the refusal claimed nothing.
    fixed = post(api, f"{API}/subscriptions/", become_body(catalog), HTTP_IDEMPOTENCY_KEY="k-1")
    assert fixed.status_code == 201, fixed.content


def test_a_control_character_in_a_swapped_product_code_is_refused(api, subscribe):
    service = subscribe("AGRICULTURE").services.get()
    response = post(api, f"{API}/services/{service.pk}/swap/", {"product": "NEWS\x00"})
    error = error_of(response, 400)
    assert "control character" in error["fields"]["product"][0]
    assert SubscriptionService.objects.get(pk=service.pk).product.code == "AGRICULTURE"


def test_a_control_character_in_a_key_is_named_too(api, catalog, account):
    body = become_body(catalog)
    body["items"][0]["odd\x00key"] = "x"
    error = error_of(post(api, f"{API}/subscriptions/", body), 400)
    assert list(error["fields"]) == ["items[0].odd\\x00key"]


def test_tab_newline_and_carriage_return_are_text(api, catalog, account):
    response = post(api, f"{API}/subscriptions/", become_body(catalog, reason="a\tb\r\nc"))
    assert response.status_code == 201, response.content


@pytest.mark.parametrize(
    "url",
    [
        "/subscriptions/?account=ACC%00",
        "/subscriptions/?subscription_type=%00",
        "/subscriptions/?card=%1b",
        "/products/?code=BUNDLE%00",
        "/distributors/?code=%00MAIN",
        "/requests/?subscription_number=%00",
        "/generic/pending/?command=%00",
    ],
)
def test_a_control_character_in_a_query_parameter_is_refused_naming_it(api, catalog, url):
    error = error_of(api.get(API + url), 400)
    name = url.split("?")[1].split("=")[0]
    assert "control character" in error["fields"][name][0]


# --- Nesting and size ---------------------------------------------------------------------------


@pytest.mark.parametrize("depth", [101, 100_000])
def test_json_nested_too_deep_is_refused(api, catalog, account, depth):
    body = '{"account": ' + "[" * depth + "]" * depth + "}"
    error = error_of(post(api, f"{API}/subscriptions/", body), 400)
    assert error["code"] == "parse_error"
    assert "nested" in error["message"]
    assert not Subscription.objects.exists()


def test_brackets_inside_strings_are_not_nesting(api, catalog, account):
    body = become_body(catalog, reason='[{"' * 100)
    assert post(api, f"{API}/subscriptions/", body).status_code == 201


def test_json_nested_to_the_limit_is_read(api, catalog, account):
    body = become_body(catalog)
    deep = "[" * 99 + "]" * 99  # 100 levels with the body's own object
    text = json.dumps(body)[:-1] + ', "extra": ' + deep + "}"
    assert post(api, f"{API}/subscriptions/", text).status_code == 201


def test_a_body_too_large_is_refused_with_413(api, catalog, account):
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    body = json.dumps(become_body(catalog, reason="x" * limit))
    error = error_of(post(api, f"{API}/subscriptions/", body), 413)
    assert error["code"] == "too_large"
    assert str(limit) in error["message"]
    assert not Subscription.objects.exists()


# --- Django's own errors under /api/ ------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    ["/api/v1/nothing-here/", "/api/v1/subscriptions/1.5/", "/api/nothing/", "/api/v1/x%00/"],
)
def test_an_unknown_api_path_answers_404_in_the_error_shape(api, catalog, url):
    error = error_of(api.get(url), 404)
    assert error["code"] == "not_found"


def test_an_id_that_is_not_one_answers_404_in_the_error_shape(api, catalog):
    for url in ("/subscriptions/abc/activate/", "/services/abc/swap/", "/products/1.5/"):
        response = api.post(API + url, {}, content_type="application/json")
        assert error_of(response, 404)["code"] == "not_found"
    assert error_of(api.get(f"{API}/subscriptions/abc/"), 404)["code"] == "not_found"


def test_a_wrong_method_answers_405_in_the_error_shape(api, subscribe):
    sub = subscribe("AGRICULTURE")
    error = error_of(api.delete(f"{API}/subscriptions/{sub.pk}/"), 405)
    assert error["code"] == "method_not_allowed"
    assert "DELETE" in error["message"]
    assert Subscription.objects.filter(pk=sub.pk).exists()


def test_a_bad_request_django_refuses_answers_400_in_the_error_shape(api):
    error = error_of(api.get(f"{API}/subscriptions/", HTTP_HOST="evil.example"), 400)
    assert error["code"] == "bad_request"


def test_outside_the_api_django_answers_html_as_before(client):
    response = client.get("/admin/nothing-here/", follow=False)
    assert response.status_code in (302, 404)
    assert client.get("/nothing-here/").status_code == 404
    assert "application/json" not in client.get("/nothing-here/")["Content-Type"]


@pytest.mark.urls(__name__)
def test_a_server_error_under_the_api_answers_500_in_the_error_shape(api):
    error = error_of(api.get("/api/v1/test-boom/"), 500)
    assert error["code"] == "server_error"
    assert "a fault no input should cause" not in error["message"]  # no internals shown
    elsewhere = api.get("/test-boom/")
    assert elsewhere.status_code == 500
    assert isinstance(elsewhere, HttpResponse)
    assert "application/json" not in elsewhere["Content-Type"]


# --- Types, pages and filters as the schema states them -----------------------------------------


@pytest.mark.parametrize(
    ("url", "body", "field", "message"),
    [
        ("/providers/", {"name": "P", "type": "generic", "enabled": 0}, "enabled", "true or false"),
        ("/products/", {"code": 5, "name": "Five"}, "code", "a string"),
        ("/products/", {"code": "P5", "name": "Five", "components": {}}, "components", "a list"),
        ("/distributors/", {"provider": "1", "code": "D", "name": "D"}, "provider", "an integer"),
    ],
)
def test_a_value_of_another_json_type_is_refused_naming_its_field(
    api, catalog, url, body, field, message
):
    error = error_of(post(api, API + url, body), 400)
    assert error["fields"][field] == [f"Give {message}."]


@pytest.mark.parametrize(
    "query", ["offset=true", "offset=-1", "limit=0", "limit=1001", "limit=5.0", "offset=1e3"]
)
def test_a_page_the_schema_refuses_is_refused(api, catalog, query):
    error = error_of(api.get(f"{API}/products/?{query}"), 400)
    assert query.split("=")[0] in error["fields"]


def test_a_filter_by_an_id_nothing_has_lists_nothing(api, catalog):
    for url in ("/distributors/?provider=999999", "/services/?product=999999"):
        response = api.get(API + url)
        assert response.status_code == 200, response.content
        assert response.json()["results"] == []
    assert error_of(api.get(f"{API}/distributors/?provider=0"), 400)["fields"]["provider"]
    assert api.get(f"{API}/distributors/?provider={catalog.provider.pk}").json()["count"] >= 1


@pytest.mark.parametrize(
    "query",
    [
        "/installed-items/?initialized=null",
        "/installed-items/?in_use=1",
        "/providers/?enabled=True",
        "/requests/?created_before=",
        "/subscriptions/?state=",
        "/services/?product=",
    ],
)
def test_a_filter_value_the_schema_refuses_is_refused(api, catalog, query):
    name = query.split("?")[1].split("=")[0]
    assert error_of(api.get(API + query), 400)["fields"][name]


def test_boolean_filters_take_true_and_false(api, subscribe):
    subscribe("AGRICULTURE")
    in_use = api.get(f"{API}/installed-items/?in_use=true").json()["count"]
    assert in_use == 2
    assert api.get(f"{API}/installed-items/?in_use=false").json()["count"] == 0
    assert api.get(f"{API}/subscriptions/?number=").json()["count"] == 1  # text: "" is no filter


@pytest.mark.urls(__name__)
def test_with_debug_on_the_api_still_answers_its_error_shape(api, settings):
    settings.DEBUG = True  # the embedded default: Django would answer its debug pages
    assert error_of(api.get("/api/v1/nothing-here/"), 404)["code"] == "not_found"
    assert error_of(api.get("/api/v1/test-boom/"), 500)["code"] == "server_error"
    assert "application/json" not in api.get("/nothing-here/")["Content-Type"]


def test_a_control_character_in_a_looked_up_header_is_refused_naming_it(api, catalog, account):
    keyed = post(api, f"{API}/subscriptions/", become_body(catalog), HTTP_IDEMPOTENCY_KEY="k\x00")
    assert "Idempotency-Key" in error_of(keyed, 400)["fields"]
    token = api.get(f"{API}/products/", HTTP_AUTHORIZATION="Token " + "a" * 39 + "\x00")
    assert "Authorization" in error_of(token, 400)["fields"]
    assert not Subscription.objects.exists()
