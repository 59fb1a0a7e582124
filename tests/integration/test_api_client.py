"""A client generated from the served OpenAPI schema works: an external system and a connector
drive the Generic provider end to end through it, over HTTP, with nothing hand-written.

openapi-python-client reads ``/api/schema/`` from the live server, writes a package into a
temporary directory, and the test imports that package and uses only its typed functions and
models. A schema that lied about a body, a response or an error would break here.
"""

import importlib
import subprocess
import sys
from datetime import timedelta

import pytest
import requests
from django.utils import timezone
from rest_framework.authtoken.models import Token

from providers.models import ConnectorToken, ProvisioningRequest

PACKAGE = "crm_api_client"


@pytest.fixture
def generated(live_server, administrator, tmp_path, monkeypatch):
    """The client package generated from the schema the running server serves."""
    key = Token.objects.create(user=administrator).key
    served = requests.get(
        f"{live_server.url}/api/schema/?format=json",
        headers={"Authorization": f"Token {key}"},
        timeout=30,
    )
    assert served.status_code == 200
    schema = tmp_path / "schema.json"
    schema.write_text(served.text)
    config = tmp_path / "config.yaml"
    config.write_text("post_hooks: []\n")  # no formatter run: the code is imported as is
    out = tmp_path / "src" / PACKAGE
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "openapi_python_client",
            "generate",
            "--path",
            str(schema),
            "--output-path",
            str(out),
            "--meta",
            "none",
            "--config",
            str(config),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    # The generator says what it could not turn into code; nothing may be left out.
    assert "Warning" not in result.stdout + result.stderr, result.stdout + result.stderr
    monkeypatch.syspath_prepend(str(out.parent))
    for name in [m for m in sys.modules if m == PACKAGE or m.startswith(f"{PACKAGE}.")]:
        del sys.modules[name]
    yield importlib.import_module(PACKAGE)


def _module(package, path: str):
    return importlib.import_module(f"{package.__name__}.{path}")


def _client(package, live_server, key: str):
    return package.AuthenticatedClient(base_url=live_server.url, token=key, prefix="Token")


def test_an_external_system_and_a_connector_work_through_the_generated_client(
    generated, live_server, catalog, account, agent, operator
):
    api = lambda path: _module(generated, f"api.{path}")  # noqa: E731
    models = _module(generated, "models")
    billing = _client(generated, live_server, Token.objects.create(user=agent).key)
    _, connector_key = ConnectorToken.issue(catalog.provider, "connector")
    connector = _client(generated, live_server, connector_key)
    main = catalog.distributors["MAIN"]

    # Become subscriber with Bundle A, a card and a box: Create Pairing + Add GFA1 + Add EFA2.
    body = models.BecomeSubscriberInRequest(
        account=account.number,
        subscription_type="RES",
        number="ZX-CLIENT-1",
        services=[models.ServiceInRequest(product="BUNDLE_A", distributor=main.pk)],
        items=[
            models.ItemInRequest(
                kind=models.ItemKindEnum.SMARTCARD,
                serial_number="SC-CLIENT-1",
                ca_id="CA-SC-CLIENT-1",
                distributor=main.pk,
            ),
            models.ItemInRequest(
                kind=models.ItemKindEnum.STB,
                serial_number="STB-CLIENT-1",
                ca_id="CA-STB-CLIENT-1",
                distributor=main.pk,
            ),
        ],
    )
    created = api("v1.v1_subscriptions_create").sync(
        client=billing, body=body, idempotency_key="become-1"
    )
    assert isinstance(created, models.ActionResult), created
    assert created.subscription.number == "ZX-CLIENT-1"
    assert sorted((r.command, r.ca_id) for r in created.requests) == [
        ("ACTIVATE_SERVICE", "EFA2"),
        ("ACTIVATE_SERVICE", "GFA1"),
        ("CREATE_PAIRING", ""),
    ]

    # The same key and body again: the first answer, nothing new.
    again = api("v1.v1_subscriptions_create").sync(
        client=billing, body=body, idempotency_key="become-1"
    )
    assert [r.id for r in again.requests] == [r.id for r in created.requests]
    assert ProvisioningRequest.objects.count() == 3

    # Found again by card; the list is paginated.
    page = api("v1.v1_subscriptions_list").sync(client=billing, card="SC-CLIENT-1")
    assert [s.number for s in page.results] == ["ZX-CLIENT-1"]
    assert page.count == 1
    sub_id = page.results[0].id

    # The connector pulls the three requests and answers them all.
    pending = api("generic.generic_pending").sync(client=connector)
    assert isinstance(pending, models.PendingPageOut), pending
    assert {p.uid for p in pending.results} == {r.uid for r in created.requests}
    answered = api("generic.generic_responses").sync(
        client=connector,
        body=models.SendResponseInRequest(
            responses=[
                models.AnswerInRequest(request=p.uid, status=models.StatusEnum.ACCEPTED)
                for p in pending.results
            ]
        ),
    )
    assert isinstance(answered, models.SendResponseOut), answered

    requests_page = api("v1.v1_requests_list").sync(client=billing, subscription=sub_id)
    assert {r.state for r in requests_page.results} == {models.RequestStateEnum.COMPLETED}

    # A connector token is refused anywhere else, with the error shape.
    refused = api("v1.v1_subscriptions_list").sync(client=connector)
    assert isinstance(refused, models.Error)
    assert refused.error.code

    # An action the state forbids: a 409 parsed into the Error model, naming the problem.
    deactivated = api("v1.v1_subscriptions_deactivate_create").sync(
        sub_id, client=billing, body=models.ReasonInRequest(reason="moved away")
    )
    assert isinstance(deactivated, models.ActionResult)
    again_off = api("v1.v1_subscriptions_deactivate_create").sync(
        sub_id, client=billing, body=models.ReasonInRequest(reason="twice")
    )
    assert isinstance(again_off, models.Error)
    assert again_off.error.code == "illegal_transition"
    assert "Not Effective" in again_off.error.message

    # The agent's utility: the connector has not answered the cancellations yet, so the
    # subscription is in step once they are counted; answer them, then reset finds nothing.
    pending = api("generic.generic_pending").sync(client=connector)
    api("generic.generic_responses").sync(
        client=connector,
        body=models.SendResponseInRequest(
            responses=[
                models.AnswerInRequest(request=p.uid, status=models.StatusEnum.ACCEPTED)
                for p in pending.results
            ]
        ),
    )
    offered = api("v1.v1_utilities_list").sync(client=billing, subscription=sub_id)
    assert "reset_subscription" in [u.code for u in offered]
    outcome = api("v1.v1_utilities_create").sync(
        "reset_subscription",
        client=billing,
        body=models.RunInRequest(subscription=sub_id, provider=catalog.provider.pk),
    )
    assert isinstance(outcome, models.UtilityOutcome), outcome
    assert outcome.requests == []
    assert "in step" in outcome.message

    # The operator's run: define a reset, preview it, run it now.
    runs = _client(generated, live_server, Token.objects.create(user=operator).key)
    definition = api("v1.v1_run_definitions_create").sync(
        client=runs,
        body=models.RunDefinitionRequest(
            name="Nightly reset",
            run_type=models.RunTypeEnum.RESET_SUBSCRIPTIONS,
            provider=catalog.provider.pk,
            schedule=models.ScheduleEnum.ONCE,
            run_at=timezone.now() + timedelta(hours=1),
        ),
        idempotency_key="define-1",
    )
    assert isinstance(definition, models.RunDefinition), definition
    preview = api("v1.v1_run_definitions_preview_retrieve").sync(definition.id, client=runs)
    assert isinstance(preview, models.PreviewPage), preview
    assert preview.results == []
    submitted = api("v1.v1_run_definitions_submit_create").sync(definition.id, client=runs)
    assert isinstance(submitted, models.RunDefinition), submitted
    assert submitted.state == models.RunDefinitionStateEnum.SUBMITTED
    assert submitted.next_run_at is not None
    # An agent's token may not define runs.
    refused = api("v1.v1_run_definitions_create").sync(
        client=billing,
        body=models.RunDefinitionRequest(
            name="Not mine",
            run_type=models.RunTypeEnum.RESET_SUBSCRIPTIONS,
            provider=catalog.provider.pk,
        ),
    )
    assert isinstance(refused, models.Error)
    assert refused.error.code == "permission_denied"


def test_the_generated_client_reports_bad_input_field_by_field(
    generated, live_server, catalog, account, agent
):
    api = _module(generated, "api.v1.v1_subscriptions_create")
    models = _module(generated, "models")
    billing = _client(generated, live_server, Token.objects.create(user=agent).key)
    response = api.sync_detailed(
        client=billing,
        body=models.BecomeSubscriberInRequest(
            account="NO-SUCH-ACCOUNT",
            subscription_type="RES",
            services=[models.ServiceInRequest(product="BUNDLE_A", distributor=999999)],
        ),
    )
    assert response.status_code == 400
    error = response.parsed
    assert isinstance(error, models.Error)
    assert error.error.code == "invalid"
    fields = error.error.fields.additional_properties
    assert "account" in fields
    assert "services[0].distributor" in fields
