"""A provider is one package and one line in PROVISIONING_ADAPTERS: the example provider, defined
only in this test suite (``tests/example_provider``), gets its run type, its utility (a screen in
the back office and a Web API endpoint), its Web API route, its simulator and its demo data
through its adapter alone."""

import io
import socket
import threading
import time

import pytest
from django.conf import settings
from django.core.management import call_command
from django.test import Client, override_settings
from django.urls import reverse
from rest_framework.test import APIClient

from providers import registry
from providers.extensions import Health
from providers.models import ProvisioningRequest
from runs import services, types
from runs.models import ProcessRun, RunDefinition
from subscriptions.demo import ensure_catalog
from tests.example_provider.adapter import PATH

Req = ProvisioningRequest


@pytest.fixture
def installed():
    with override_settings(PROVISIONING_ADAPTERS=[*settings.PROVISIONING_ADAPTERS, PATH]):
        yield


@pytest.fixture
def example(installed, db):
    return ensure_catalog("Example", "example")


@pytest.fixture
def subscriber(example, subscribe):
    return subscribe("AGRICULTURE", catalog=example)


def login(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_its_run_type_is_offered_and_runs(example, subscriber):
    provider = example.provider
    assert [t.code for t in types.for_provider(provider)] == [
        "example_count_subscribers",
        "archive_requests",
    ]
    definition = RunDefinition(
        name="Count", run_type="example_count_subscribers", provider=provider
    )
    services.validate(definition, schedule=False)
    definition.save()
    run = services.execute(definition.pk, ProcessRun.Trigger.RUN_NOW)
    assert (run.status, run.examined) == (ProcessRun.Status.COMPLETED, 1)
    assert services.summary(run) == "Counted 1 subscriber"


def test_its_utility_is_a_back_office_screen(agent, example, subscriber):
    client = login(agent)
    page = client.get(reverse("admin:utilities-subscription", args=[subscriber.pk]))
    assert "Send a note" in page.content.decode()
    url = reverse("admin:utilities-run", args=[subscriber.pk, example.provider.pk, "example_note"])
    assert client.get(url).status_code == 200
    result = client.post(url, {"text": "hello", "priority": "normal"})
    assert result.status_code == 200
    assert "waits for the connector" in result.content.decode()
    note = Req.objects.get(command="NOTE")
    assert (note.parameters["text"], note.state) == ("hello", Req.State.PENDING)


def test_its_utility_is_a_web_api_endpoint(agent, example, subscriber):
    client = APIClient()
    client.force_authenticate(agent)
    listed = client.get("/api/v1/utilities/", {"subscription": subscriber.pk}).json()
    assert [(u["code"], u["provider_name"]) for u in listed] == [
        ("example_note", "Example"),
        ("reset_subscription", "Example"),
    ]
    body = {
        "subscription": subscriber.pk,
        "provider": example.provider.pk,
        "priority": "EXPRESS",
        "fields": {"text": "hi"},
    }
    made = client.post("/api/v1/utilities/example_note/", body, format="json")
    assert made.status_code == 201
    assert [(r["command"], r["priority"]) for r in made.json()["requests"]] == [("NOTE", "Express")]


def test_its_web_api_route_comes_and_goes_with_it(operator, example, subscriber, tmp_path):
    client = APIClient()
    client.force_authenticate(operator)
    # Become subscriber's Create Pairing and Add (AF1), waiting for the platform's connector.
    assert client.get("/api/v1/example/waiting/").json() == {"pending": 2}
    assert APIClient().get("/api/v1/example/waiting/").status_code in (401, 403)
    schema = tmp_path / "schema.yml"
    call_command("spectacular", "--file", str(schema))
    assert "/api/v1/example/waiting/:" in schema.read_text()


@pytest.mark.django_db
def test_without_the_line_there_is_no_route(operator):
    client = APIClient()
    client.force_authenticate(operator)
    assert client.get("/api/v1/example/waiting/").status_code == 404
    with override_settings(PROVISIONING_ADAPTERS=[*settings.PROVISIONING_ADAPTERS, PATH]):
        assert client.get("/api/v1/example/waiting/").status_code == 200
    assert client.get("/api/v1/example/waiting/").status_code == 404


def test_its_health_check(example):
    assert registry.adapter_for(example.provider).check() == Health(
        True, "Example is always there."
    )


def test_cas_simulator_lists_and_starts_its_simulator(installed, capsys):
    with pytest.raises(SystemExit):
        call_command("cas_simulator", "--help")
    listed = " ".join(capsys.readouterr().out.split())
    assert "example (Example platform (answers every line with ok))" in listed
    out = io.StringIO()
    serving = threading.Thread(
        target=call_command, args=("cas_simulator", "example", "--once"), kwargs={"stdout": out}
    )
    serving.start()
    deadline = time.monotonic() + 10
    while "Example simulator on" not in out.getvalue() and time.monotonic() < deadline:
        time.sleep(0.05)
    port = int(out.getvalue().strip().rpartition(":")[2])
    with socket.create_connection(("127.0.0.1", port), timeout=5) as connection:
        connection.sendall(b"ping\n")
        assert connection.recv(16) == b"ok\n"
    serving.join(timeout=10)
    assert not serving.is_alive()


@pytest.mark.django_db
def test_load_demo_loads_its_demo():
    # The Generic provider of the Company ZX demo, and the example: Conax's demos need their
    # simulators' settings, which are not what this shows.
    with override_settings(
        PROVISIONING_ADAPTERS=["providers.generic.adapter.GenericAdapter", PATH]
    ):
        out = io.StringIO()
        call_command("load_demo", "--count", "2", "--example-name", "Example demo", stdout=out)
        call_command("load_demo", "--count", "2", "--example-name", "Example demo", stdout=out)
    assert out.getvalue().count("Example demo: a provider with its viewing points.") == 2
    draft = RunDefinition.objects.get(name="Example: count subscribers")
    assert (draft.provider.name, draft.provider.type, draft.state) == (
        "Example demo",
        "example",
        RunDefinition.State.DRAFT,
    )
