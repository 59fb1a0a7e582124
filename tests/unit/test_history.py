"""A subscription's history as an agent reads it, on its page and in the Web API: what each
event changed, in words, and who did it (a person, a utility's user, the CA's answer); the
requests keep who made them; archived requests stay visible from the subscription."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.template import Context, Template
from django.test import RequestFactory
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from providers import archive
from providers.answers import record_answer
from providers.models import ProvisioningRequest
from subscriptions import actions
from utilities import services

pytestmark = pytest.mark.django_db

Req = ProvisioningRequest


@pytest.fixture
def api(agent) -> APIClient:
    client = APIClient()
    client.force_authenticate(agent)
    return client


def history(api, sub) -> list[dict]:
    response = api.get(f"/api/v1/subscriptions/{sub.pk}/history/")
    assert response.status_code == 200, response.content
    return response.json()


def said(entries) -> list[tuple[str, list[str], str, str]]:
    return [(e["action"], e["changes"], e["by_kind"], e["by"]) for e in entries]


def test_each_event_says_what_changed_and_who_did_it(api, agent, subscribe):
    sub = subscribe("AGRICULTURE", devices=["smartcard"])
    service = sub.services.get()
    card = sub.installed_items.get()
    actions.stop_service(service, by=agent, reason="On holiday")
    actions.swap_installed_item(card, "SC-NEW-1", "CA-NEW-1", by=agent, reason="Broken")
    actions.start_service(service, by=agent)
    (activation,) = Req.objects.filter(service=service, operation="activate").order_by("-pk")[:1]
    record_answer(activation, accepted=False, error_code="E9", error_description="No credit")

    assert said(history(api, sub)) == [
        (
            "provisioning_rollback",
            ["Service AGRICULTURE on MAIN on → off"],
            "answer",
            "the CA's answer",
        ),
        ("start_service", ["Service AGRICULTURE on MAIN off → on"], "person", "agent"),
        ("swap_installed_item", [f"Card {card.serial_number} → SC-NEW-1"], "person", "agent"),
        ("stop_service", ["Service AGRICULTURE on MAIN on → off"], "person", "agent"),
        (
            "become_subscriber",
            ["Service AGRICULTURE on MAIN off → on", f"Card {card.serial_number} added"],
            "system",
            "system",
        ),
    ]
    # The requests of an agent's actions name the agent; the rollback's reason stays.
    assert Req.objects.get(pk=activation.pk).created_by == agent
    assert history(api, sub)[0]["reason"].endswith("rejected: E9 No credit")


def test_the_page_shows_the_same_words(client, agent, subscribe):
    sub = subscribe("AGRICULTURE", devices=["smartcard"])
    actions.stop_service(sub.services.get(), by=agent, reason="On holiday")
    client.force_login(agent)
    html = client.get(f"/admin/subscriptions/subscription/{sub.pk}/change/").content.decode()
    assert "Service AGRICULTURE on MAIN on → off" in html
    assert "services on 1" not in html
    assert '<td class="history-by history-by-person">agent</td>' in html


def test_a_utility_is_in_the_history_with_the_person_who_used_it(api, agent, catalog, subscribe):
    sub = subscribe("AGRICULTURE", devices=["smartcard"])
    sub.services.update(authorized=False)  # so that the reset has something to send
    Req.objects.filter(subscription=sub).update(state="failed")
    outcome = services.run(
        "reset_subscription", subscription=sub, provider=catalog.provider, user=agent
    )
    assert outcome.requests
    assert {r.created_by for r in Req.objects.filter(pk__in=[r.pk for r in outcome.requests])} == {
        agent
    }
    (latest, *_rest) = history(api, sub)
    card = sub.installed_items.get().serial_number
    assert (latest["action"], latest["changes"], latest["by"]) == (
        "utility",
        [f"Subscription reset at card {card} ({catalog.provider.name})"],
        "agent",
    )
    assert latest["reason"] == outcome.message


def test_reading_the_history_costs_the_same_whatever_its_length(api, agent, subscribe):
    sub = subscribe("AGRICULTURE", devices=["smartcard"])
    service = sub.services.get()

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            history(api, sub)
        return len(captured)

    history(api, sub)  # the person's permissions, read once
    few = queries()
    for _ in range(5):
        actions.stop_service(service, by=agent)
        actions.start_service(service, by=agent)
    assert queries() == few


def test_the_history_is_for_those_whose_role_reads_events(subscribe):
    sub = subscribe("AGRICULTURE", devices=["smartcard"])
    nobody = APIClient()
    nobody.force_authenticate(User.objects.create_user("no-role", is_staff=True))
    assert nobody.get(f"/api/v1/subscriptions/{sub.pk}/history/").status_code == 403
    assert APIClient().get(f"/api/v1/subscriptions/{sub.pk}/history/").status_code in (401, 403)


def archived(user, sub) -> str:
    request = RequestFactory().get("/")
    request.user = user
    template = Template("{% load provisioning_archive %}{% archived_requests sub %}")
    return template.render(Context({"request": request, "sub": sub}))


def test_archived_requests_stay_visible_from_the_subscription(agent, subscribe):
    sub, other = subscribe("AGRICULTURE", devices=["smartcard"]), subscribe("AGRICULTURE")
    for r in Req.objects.all():
        record_answer(r, accepted=True)
    Req.objects.update(created_at=timezone.now() - timedelta(days=40))
    ids = sorted(sub.provisioning_requests.values_list("pk", flat=True), reverse=True)
    assert archive.archive(30) > 1 and not Req.objects.exists()

    with CaptureQueriesContext(connection) as captured:
        html = archived(agent, sub)
    assert "LIMIT" in captured[-1]["sql"]  # however long the archive
    assert f">{ids[0]}</a>" in html and "ACTIVATE_SERVICE" in html
    # Its own only, newest first: the other subscription's are not among them.
    assert [r.original_id for r in archive.of_subscription(sub.pk)] == ids
    assert other.provisioning_requests.count() == 0
    assert archived(User.objects.create_user("no-role", is_staff=True), sub).strip() == ""
