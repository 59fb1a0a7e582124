"""The OpenAPI schema: generated with no error or warning, and listing every endpoint."""

import json

import pytest
from django.core.management import call_command

EXPECTED_PATHS = [
    "/api/v1/subscriptions/",
    "/api/v1/subscriptions/{id}/",
    *(
        f"/api/v1/subscriptions/{{id}}/{name}/"
        for name in (
            "activate",
            "deactivate",
            "terminate",
            "rest",
            "end-resting",
            "short-term-activation",
            "end-short-term-activation",
            "short-term-deactivation",
            "end-short-term-deactivation",
            "change-distribution",
            "add-service",
            "add-item",
        )
    ),
    "/api/v1/services/",
    *(f"/api/v1/services/{{id}}/{name}/" for name in ("remove", "swap", "regret", "start", "stop")),
    "/api/v1/installed-items/",
    "/api/v1/installed-items/{id}/remove/",
    "/api/v1/installed-items/{id}/swap/",
    "/api/v1/products/",
    "/api/v1/products/{id}/",
    "/api/v1/providers/",
    "/api/v1/providers/{id}/",
    "/api/v1/distributors/",
    "/api/v1/distributors/{id}/",
    "/api/v1/requests/",
    "/api/v1/requests/{id}/",
    "/api/v1/requests/{id}/retry/",
    "/api/v1/run-definitions/",
    "/api/v1/run-definitions/{id}/",
    *(
        f"/api/v1/run-definitions/{{id}}/{name}/"
        for name in ("submit", "cancel", "run-now", "preview")
    ),
    "/api/v1/process-runs/",
    "/api/v1/process-runs/{id}/",
    "/api/v1/process-runs/{id}/progress/",
    "/api/v1/generic/pending/",
    "/api/v1/generic/responses/",
]


def test_the_schema_generates_without_errors_or_warnings(tmp_path):
    out = tmp_path / "schema.yml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(out))
    assert out.stat().st_size > 0


@pytest.mark.django_db
def test_the_schema_lists_every_endpoint_with_the_error_shape(client, administrator):
    client.force_login(administrator)
    schema = client.get("/api/schema/?format=json").json()
    missing = [p for p in EXPECTED_PATHS if p not in schema["paths"]]
    assert not missing
    assert set(schema["components"]["schemas"]["Error"]["properties"]) == {"error"}
    activate = schema["paths"]["/api/v1/subscriptions/{id}/activate/"]["post"]
    for code in ("400", "401", "403", "404", "409", "413"):
        ref = activate["responses"][code]["content"]["application/json"]["schema"]["$ref"]
        assert ref == "#/components/schemas/Error"
    assert "Idempotency-Key" in [p["name"] for p in activate["parameters"]]
    # A reused Idempotency-Key (another body) is a 422, declared wherever the key is taken.
    for path, operation in (
        ("/api/v1/subscriptions/", "post"),
        ("/api/v1/subscriptions/{id}/activate/", "post"),
        ("/api/v1/requests/{id}/retry/", "post"),
        ("/api/v1/run-definitions/", "post"),
        ("/api/v1/run-definitions/{id}/run-now/", "post"),
    ):
        declared = schema["paths"][path][operation]
        assert "Idempotency-Key" in [p["name"] for p in declared["parameters"]], path
        ref = declared["responses"]["422"]["content"]["application/json"]["schema"]["$ref"]
        assert ref == "#/components/schemas/Error"


# --- The schema and the server agree: schemathesis, every check --------------------------------

import schemathesis  # noqa: E402
from django.core.wsgi import get_wsgi_application  # noqa: E402
from drf_spectacular.generators import SchemaGenerator  # noqa: E402
from hypothesis import HealthCheck, settings  # noqa: E402
from rest_framework.authtoken.models import Token  # noqa: E402
from schemathesis.config import SchemathesisConfig  # noqa: E402

# Every check is on (schemathesis' default, like `--checks all`), on positive and negative data.
# A schema-valid request may still be refused with 400 for what a schema cannot state: an id or
# code nothing has, a value a rule refuses (a provider's settings, a run's schedule), a cursor
# this server never gave. Every other answer to it must be one the check expects.
CONFIG = SchemathesisConfig.from_str(
    """
[checks.positive_data_acceptance]
expected-statuses = ["2xx", "400", "401", "403", "404", "409"]
"""
)
schema = schemathesis.openapi.from_dict(
    json.loads(json.dumps(SchemaGenerator().get_schema(request=None, public=True), default=str)),
    config=CONFIG,
)
schema.app = get_wsgi_application()


@pytest.fixture
def admin_token(db, catalog, subscribe, administrator):
    # Like Django's test client: the WSGI handler must not close the test's connection.
    from django.core.signals import request_finished, request_started
    from django.db import close_old_connections

    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    subscribe("AGRICULTURE")
    yield Token.objects.create(user=administrator).key
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.mark.schema
@schema.parametrize()
@settings(
    max_examples=10,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_the_server_answers_as_its_schema_says(case, admin_token):
    case.call_and_validate(headers={"Authorization": f"Token {admin_token}"})


@pytest.mark.django_db
def test_the_schema_and_its_docs_are_for_signed_in_users(client, agent):
    assert client.get("/api/schema/").status_code in (401, 403)
    assert client.get("/api/docs/").status_code in (401, 403)
    client.force_login(agent)
    assert client.get("/api/schema/?format=json").status_code == 200
    docs = client.get("/api/docs/")
    assert docs.status_code == 200
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js" in (
        docs.content.decode()
    )


@pytest.mark.schema
def test_workflows_across_operations_keep_to_the_schema(admin_token):
    """The stateful checks (use_after_free, ensure_resource_availability, …) follow the links
    schemathesis infers between operations: what one answer names, the next call uses."""

    auth = {"Authorization": f"Token {admin_token}"}

    class Workflow(schema.as_state_machine()):
        def get_call_kwargs(self, case):
            return {"headers": auth}

        def validate_response(self, response, case, additional_checks=None, **kwargs):
            # As call_and_validate(headers=…): the checks know the token was given, not made up.
            case.validate_response(
                response,
                additional_checks=additional_checks,
                headers=auth,
                transport_kwargs=kwargs,
                recorder=self.recorder,
            )

    Workflow.run(
        settings=settings(
            max_examples=50,
            stateful_step_count=5,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
        )
    )
