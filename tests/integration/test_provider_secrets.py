"""A provider's secrets come only from variables the deployment allows, and its changes are in
its History page.

The risk: whoever may change a provider could name ``SECRET_KEY`` as its password variable and
point its endpoint at their own server; the worker would send the key there as a password.
"""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.contrib.admin.models import LogEntry
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from catalogue.models import Provider
from providers import delivery
from providers.models import ProvisioningRequest
from tests import workers
from tests.fixtures import CONAX_WS_PASSWORD_ENV

Req = ProvisioningRequest
WORKER_SECRET_KEY = "the-workers-own-secret-key-never-to-leave"
REFUSAL = (
    "SECRET_KEY is not a secret variable this deployment allows: name one that starts with "
    "CRM_SECRET_ (PROVIDER_SECRET_ENV_PREFIX)"
)


class Recorder(BaseHTTPRequestHandler):
    """Someone's server: notes every request it gets, with its Authorization header."""

    seen: list

    def log_message(self, *args):
        pass

    def _note(self):
        self.seen.append((self.command, self.path, self.headers.get("Authorization")))
        self.send_response(500)
        self.end_headers()

    do_GET = do_POST = _note


@pytest.fixture
def elsewhere():
    """An HTTP server of this test's, at a URL nobody configured before."""
    handler = type("Seen", (Recorder,), {"seen": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    server.url = f"http://127.0.0.1:{server.server_address[1]}"
    server.seen = handler.seen
    yield server
    server.shutdown()
    server.server_close()


def api_as(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.get_or_create(user=user)[0].key}")
    return client


def admin_form(provider: Provider, **connection) -> dict:
    """The provider's change form as the back office posts it."""
    settings = {
        **{f"connection__{k}": v for k, v in {**provider.connection, **connection}.items()},
        **{f"parameters__{k}": v for k, v in provider.parameters.items()},
    }
    return {
        "name": provider.name,
        "type": provider.type,
        "enabled": "on",
        **{k: "" if v is None else v for k, v in settings.items()},
        "external_system": provider.external_system_id or "",
    }


# --- The form and the API ---------------------------------------------------------------------


@pytest.mark.parametrize("variable", ["SECRET_KEY", "DATABASE_URL", "CONAX_PASSWORD"])
def test_the_back_office_refuses_a_variable_without_the_prefix(
    client, operator, conax, elsewhere, variable
):
    provider = conax.provider
    before = dict(provider.connection)
    client.force_login(operator)
    response = client.post(
        f"/admin/catalogue/provider/{provider.pk}/change/",
        admin_form(provider, endpoint_url=elsewhere.url, password_env=variable),
    )
    assert response.status_code == 200  # the form again, with its error
    page = response.content.decode()
    assert f"{variable} is not a secret variable this deployment allows" in page
    assert "starts with CRM_SECRET_ (PROVIDER_SECRET_ENV_PREFIX)" in page
    provider.refresh_from_db()
    assert provider.connection == before
    assert not LogEntry.objects.filter(object_id=str(provider.pk)).exists()


def test_the_api_refuses_secret_key_and_names_the_setting(operator, conax, elsewhere):
    provider = conax.provider
    before = dict(provider.connection)
    response = api_as(operator).patch(
        f"/api/v1/providers/{provider.pk}/",
        {"connection": {**before, "endpoint_url": elsewhere.url, "password_env": "SECRET_KEY"}},
        format="json",
    )
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["fields"]["connection"] == [
        f"password_env: {REFUSAL}, e.g. CRM_SECRET_CONAX_PASSWORD."
    ]
    provider.refresh_from_db()
    assert provider.connection == before
    assert not LogEntry.objects.filter(object_id=str(provider.pk)).exists()


def test_the_prefix_is_the_deployments(operator, conax, settings):
    settings.PROVIDER_SECRET_ENV_PREFIX = "ACME_VAULT_"
    provider = conax.provider
    client = api_as(operator)
    url = f"/api/v1/providers/{provider.pk}/"
    refused = client.patch(url, {"connection": {**provider.connection}}, format="json")
    assert refused.status_code == 400  # its CRM_SECRET_ name is not this deployment's
    assert "name one that starts with ACME_VAULT_" in str(refused.json()["error"]["fields"])
    connection = {**provider.connection, "password_env": "ACME_VAULT_CONAX"}
    accepted = client.patch(url, {"connection": connection}, format="json")
    assert accepted.status_code == 200, accepted.content
    assert accepted.json()["connection"]["password_env"] == "ACME_VAULT_CONAX"


# --- At send time --------------------------------------------------------------------------------


def test_a_push_provider_refuses_to_read_a_variable_written_into_its_row(
    push_provider, platform, subscribe, monkeypatch
):
    # Written past the form (a shell, an old row): the sender refuses it all the same.
    monkeypatch.setenv("SECRET_KEY", WORKER_SECRET_KEY)
    connection = {**push_provider.connection, "token_env": "SECRET_KEY"}
    Provider.objects.filter(pk=push_provider.pk).update(connection=connection)
    sub = subscribe("AGRICULTURE")
    push_provider.refresh_from_db()
    delivery.drain(push_provider)
    failed = Req.objects.filter(subscription=sub)
    assert set(failed.values_list("state", flat=True)) == {"failed"}
    for reason in failed.values_list("last_error", flat=True):
        assert f"Refusing to read the bearer token: {REFUSAL}" in reason
        assert WORKER_SECRET_KEY not in reason
    assert platform.state()["entitlements"] == {}  # nothing was sent


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_worker_refuses_to_send_its_secret_key_to_an_endpoint_written_into_the_row(
    conax, subscribe, elsewhere, operator, tmp_path
):
    connection = {
        "endpoint_url": elsewhere.url,
        "username": "crm",
        "password_env": "SECRET_KEY",
        "timeout_seconds": 2,
    }
    Provider.objects.filter(pk=conax.provider.pk).update(connection=connection)
    worker = workers.start(tmp_path, SECRET_KEY=WORKER_SECRET_KEY)
    try:
        sub = subscribe("AGRICULTURE", catalog=conax)  # commits: the worker is woken to send

        def settled() -> bool:
            return not Req.objects.filter(subscription=sub, state="pending").exists()

        workers.wait_until(settled, seconds=60, what="delivery", logs=[tmp_path / "worker.log"])
    finally:
        workers.stop(worker)
    assert elsewhere.seen == []  # the worker never called the endpoint
    requests = Req.objects.filter(subscription=sub)
    assert set(requests.values_list("state", flat=True)) == {"failed"}
    # What operators see, in the API as in the back office: the reason, never the value.
    shown = api_as(operator).get("/api/v1/requests/", {"subscription": sub.pk}).json()["results"]
    assert shown
    for request in shown:
        assert f"Refusing to read the password: {REFUSAL}" in request["last_error"]
    assert WORKER_SECRET_KEY not in json.dumps(shown)
    assert WORKER_SECRET_KEY not in (tmp_path / "worker.log").read_text()


# --- History ------------------------------------------------------------------------------------


def history_page(client, provider) -> str:
    response = client.get(f"/admin/catalogue/provider/{provider.pk}/history/")
    assert response.status_code == 200
    return response.content.decode()


def test_an_endpoint_changed_in_the_back_office_is_in_the_providers_history(
    client, operator, conax, elsewhere
):
    provider = conax.provider
    old = provider.connection["wsdl_url"]
    client.force_login(operator)
    response = client.post(
        f"/admin/catalogue/provider/{provider.pk}/change/",
        admin_form(provider, wsdl_url=f"{elsewhere.url}/ws?wsdl", password_env="CRM_SECRET_X"),
    )
    assert response.status_code == 302, response.content.decode()[-2000:]
    entry = LogEntry.objects.get(object_id=str(provider.pk))
    assert entry.user == operator
    message = entry.get_change_message()
    assert f"connection.wsdl_url: '{old}' → '{elsewhere.url}/ws?wsdl'" in message
    assert f"connection.password_env: '{CONAX_WS_PASSWORD_ENV}' → 'CRM_SECRET_X'" in message
    page = history_page(client, provider)
    assert "operator" in page
    assert f"{elsewhere.url}/ws?wsdl" in page and "CRM_SECRET_X" in page


def test_an_endpoint_changed_through_the_api_is_in_the_providers_history(
    client, operator, administrator, conax, elsewhere
):
    provider = conax.provider
    old = provider.connection["wsdl_url"]
    connection = {**provider.connection, "wsdl_url": f"{elsewhere.url}/ws?wsdl"}
    response = api_as(operator).patch(
        f"/api/v1/providers/{provider.pk}/", {"connection": connection}, format="json"
    )
    assert response.status_code == 200, response.content
    unchanged = api_as(operator).patch(
        f"/api/v1/providers/{provider.pk}/", {"connection": connection}, format="json"
    )
    assert unchanged.status_code == 200  # the same again: nothing to record
    entry = LogEntry.objects.get(object_id=str(provider.pk))
    assert entry.user == operator
    assert entry.get_change_message() == (
        f"Changed connection.wsdl_url: '{old}' → '{elsewhere.url}/ws?wsdl'."
    )
    client.force_login(administrator)
    page = history_page(client, provider)
    assert "operator" in page and f"{elsewhere.url}/ws?wsdl" in page


def test_a_provider_made_through_the_api_is_in_its_history(operator, db):
    response = api_as(operator).post(
        "/api/v1/providers/", {"name": "Other platform", "type": "generic"}, format="json"
    )
    assert response.status_code == 201, response.content
    entry = LogEntry.objects.get(object_id=str(response.json()["id"]))
    assert (entry.user, entry.is_addition()) == (operator, True)
    assert (
        entry.get_change_message()
        == "Added name: 'Other platform'; type: 'generic'; enabled: True."
    )
