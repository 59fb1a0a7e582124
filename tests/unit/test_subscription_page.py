"""The subscription page as a call-centre agent reads it: who, what state, each viewing point
with its provider, each service's status at its provider with the CA's reason, Retry and Reset
at hand, choices that only offer what is valid, and a plain word when no provider changed; its
live part; and its cost, which the database's size does not change."""

import re

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from bench import load
from providers.answers import Answer, record_answers
from providers.models import ProvisioningRequest
from subscriptions import actions
from subscriptions.demo import ensure_catalog
from subscriptions.models import SubscriptionService
from tests.fixtures import card_and_box

pytestmark = pytest.mark.django_db


def page_url(sub) -> str:
    return reverse("admin:subscriptions_subscription_change", args=[sub.pk])


def status_url(sub) -> str:
    return reverse("admin:subscriptions_subscription_status", args=[sub.pk])


def action_url(sub, name: str) -> str:
    return reverse("admin:subscriptions_subscription_action", args=[sub.pk, name])


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def shown(response) -> list[tuple[str, str]]:
    return [(m.level_tag, m.message) for m in response.context["messages"]]


def text(html: str) -> str:
    """The page's text as a reader sees it: tags dropped, white space folded."""
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", html))


def select(html: str, name: str) -> list[tuple[str, str]]:
    """The (value, label) options of the page's first <select name=...>, in order."""
    body = re.search(rf'<select name="{name}"[^>]*>(.*?)</select>', html, re.S).group(1)
    return [
        (value, label.strip())
        for value, label in re.findall(r'<option value="([^"]*)">([^<]*)<', body)
    ]


def answer(sub, accepted: bool, **reason) -> None:
    """The platform answers every Pending request of the subscription."""
    pending = sub.provisioning_requests.filter(state="pending").values_list("pk", flat=True)
    record_answers([Answer(pk, accepted, **reason) for pk in pending])


@pytest.fixture
def other_provider(catalog):
    """A second provider with its own MAIN, as in the demo (four providers each have one)."""
    return ensure_catalog("Conax WS", "conax_ws")


def test_the_first_screen_names_customer_state_and_each_viewing_point_with_its_provider(
    agent, subscribe, catalog, other_provider
):
    sub = subscribe("BUNDLE_A")
    html = logged_in(agent).get(page_url(sub)).content.decode()
    seen = text(html)

    assert "Maria Georgiou" in seen and "ACC-1" in seen and "Effective" in seen
    points = text(re.search(r'id="viewing-points".*?</div>\s*</div>', html, re.S).group(0))
    assert "Generic — MAIN" in points and "Conax WS" not in points
    card = sub.installed_items.get(kind="smartcard")
    assert card.serial_number in points and "Paired" in points
    # The service's status: its requests wait for the platform.
    status = text(re.search(r'id="status-\d+".*?</tr>', html, re.S).group(0))
    assert "Generic — MAIN" in status and "Pending" in status
    # A viewing point is never a bare code.
    assert ">MAIN<" not in html and "> MAIN <" not in seen
    assert reverse("admin:utilities-subscription", args=[sub.pk]) in html


def test_add_service_offers_only_this_subscriptions_viewing_points_nothing_chosen(
    agent, subscribe, catalog, other_provider
):
    sub = subscribe("AGRICULTURE")
    html = logged_in(agent).get(page_url(sub)).content.decode()

    points = select(html, "distributor")
    assert points[0] == ("", "— choose —")
    assert [label for _v, label in points[1:]] == [
        "Generic — MAIN",
        "Generic — TWIN1",
        "Generic — TWIN2",
        "Generic — TWIN3",
    ]
    products = select(html, "product")
    assert products[0] == ("", "— choose —")
    assert "selected" not in re.search(r'id="add-service".*?</form>', html, re.S).group(0)

    # Another provider's MAIN, posted all the same, is refused and nothing is made.
    response = logged_in(agent).post(
        action_url(sub, "add_service"),
        {"product": catalog.products["BUNDLE_B"].pk, "distributor": other_provider.main.pk},
        follow=True,
    )
    assert shown(response) == [
        ("error", "Add service: Viewing point: Choose one of this subscription's providers.")
    ]
    assert sub.services.count() == 1


def test_an_action_that_changes_no_provider_says_so(agent, subscribe, catalog):
    sub = subscribe("AGRICULTURE")  # devices on MAIN only
    response = logged_in(agent).post(
        action_url(sub, "add_service"),
        {
            "product": catalog.products["BUNDLE_B"].pk,
            "distributor": catalog.distributors["TWIN1"].pk,
        },
        follow=True,
    )
    assert shown(response) == [
        (
            "warning",
            "Add service: saved, but no provider was changed: no provisioning request was made. "
            f"Subscription {sub.number} is Effective.",
        )
    ]
    assert not sub.provisioning_requests.filter(distributor=catalog.distributors["TWIN1"]).exists()

    response = logged_in(agent).post(
        action_url(sub, "add_service"),
        {"product": catalog.products["BUNDLE_B"].pk, "distributor": catalog.main.pk},
        follow=True,
    )
    level, message = shown(response)[0]
    assert level == "success" and message.startswith(
        "Add service: done, 2 provisioning requests made."
    )


def test_a_failed_request_shows_its_reason_and_an_operator_retries_it(
    agent, operator, subscribe, catalog
):
    sub = subscribe("AGRICULTURE")
    answer(sub, True)
    service = sub.services.get()
    failed = ProvisioningRequest.objects.create(
        command="ADD_SUBSCRIPTIONS",
        ca_id="AF1",
        provider=catalog.provider,
        distributor=catalog.main,
        subscription=sub,
        service=service,
        trigger=ProvisioningRequest.Trigger.ACTION,
        state="failed",
        attempts=5,
        last_error="Connection refused by ca.example.net",
    )
    retry_url = reverse("admin:providers_provisioningrequest_retry", args=[failed.pk])
    reset_url = reverse(
        "admin:utilities-run", args=[sub.pk, catalog.provider.pk, "reset_subscription"]
    )

    agent_html = logged_in(agent).get(page_url(sub)).content.decode()
    row = text(re.search(rf'id="status-{service.pk}".*?</tr>', agent_html, re.S).group(0))
    assert (
        "Failed: ADD_SUBSCRIPTIONS after 5 attempt(s) — Connection refused by ca.example.net" in row
    )
    assert reset_url in agent_html  # the agent's remedy
    assert retry_url not in agent_html  # retrying is the operator's
    assert logged_in(agent).post(retry_url).status_code == 403

    operator_client = logged_in(operator)
    assert retry_url in operator_client.get(page_url(sub)).content.decode()
    response = operator_client.post(retry_url, follow=True)
    assert response.redirect_chain[-1][0] == page_url(sub)
    assert shown(response) == [
        ("success", f"Request #{failed.pk} (ADD_SUBSCRIPTIONS) is Pending again.")
    ]
    failed.refresh_from_db()
    assert (failed.state, failed.attempts) == ("pending", 0)
    row = text(
        re.search(rf'id="status-{service.pk}".*?</tr>', response.content.decode(), re.S).group(0)
    )
    assert "Pending" in row


def test_a_retrying_request_says_why(agent, subscribe):
    sub = subscribe("AGRICULTURE")
    request = sub.provisioning_requests.filter(service__isnull=False).latest("pk")
    ProvisioningRequest.objects.filter(pk=request.pk).update(
        attempts=2, last_error="Timed out after 10 s"
    )
    html = logged_in(agent).get(page_url(sub)).content.decode()
    row = text(re.search(r'id="status-\d+".*?</tr>', html, re.S).group(0))
    assert "Retrying: Generic could not be reached — Timed out after 10 s. Attempt 2" in row


def test_a_rejection_shows_the_cas_reason_and_retry_starts_it_again(agent, subscribe):
    sub = subscribe("AGRICULTURE")
    answer(sub, False, error_code="E042", error_description="Product not entitled on this card")
    service = sub.services.get()
    assert service.state == SubscriptionService.State.NOT_EFFECTIVE  # rolled back
    client = logged_in(agent)

    html = client.get(page_url(sub)).content.decode()
    row = re.search(rf'id="status-{service.pk}".*?</tr>', html, re.S).group(0)
    assert "Rejected by Generic: E042 — Product not entitled on this card" in text(row)
    assert action_url(sub, "start_service") in row

    response = client.post(
        action_url(sub, "start_service"), {"service": service.pk, "reason": "Retry"}, follow=True
    )
    assert re.match(r"Start service: done, \d provisioning requests? made\.", shown(response)[0][1])
    row = re.search(rf'id="status-{service.pk}".*?</tr>', response.content.decode(), re.S).group(0)
    assert "Pending" in text(row)


def test_the_live_part_polls_only_while_a_request_is_pending(agent, subscribe):
    sub = subscribe("AGRICULTURE")
    client = logged_in(agent)

    pending = client.get(status_url(sub))
    html = pending.content.decode()
    assert html.lstrip().startswith('<div id="live-status"')
    assert 'hx-trigger="every 3s"' in html and "Pending" in text(html)
    assert 'hx-trigger="every 3s"' in client.get(page_url(sub)).content.decode()

    answer(sub, True)
    done = client.get(status_url(sub)).content.decode()
    assert "hx-trigger" not in done and "Authorized" in text(done)
    # The last answer in, the services' action buttons come along (out of band).
    assert '<table id="service-actions" hx-swap-oob="true">' in done
    assert "hx-swap-oob" not in pending.content.decode()
    assert "hx-trigger" not in client.get(page_url(sub)).content.decode()
    assert Client().get(status_url(sub)).status_code == 302  # to the login page


# --- What it costs ------------------------------------------------------------------------------


def statements(client: Client, sub) -> tuple[int, int]:
    counts = []
    for url in (page_url(sub), status_url(sub)):
        with CaptureQueriesContext(connection) as queries:
            response = client.get(url)
        assert response.status_code == 200
        assert "Generic — TWIN1" in response.content.decode()
        counts.append(len(queries))
    return tuple(counts)


def test_the_page_costs_the_same_whatever_the_database_holds(agent, subscribe, catalog):
    sub = subscribe("BUNDLE_A")
    twin = catalog.distributors["TWIN1"]
    for spec in card_and_box(twin):
        actions.add_installed_item(sub, spec)
    actions.add_service(sub, catalog.products["AGRICULTURE"], twin)
    load.generate(5)
    client = logged_in(agent)
    statements(client, sub)  # the first visit fills the per-process caches
    few = statements(client, sub)

    # Many more subscriptions, their services and requests; and many more of its own requests.
    load.generate(300)
    for _ in range(15):
        actions.stop_service(sub.services.get(product__code="AGRICULTURE", state="effective"))
        actions.start_service(sub.services.get(product__code="AGRICULTURE"))
    assert sub.provisioning_requests.count() > 30
    assert statements(client, sub) == few


def test_an_action_for_a_batch_provider_names_the_run_that_will_send_it(agent, subscribe):
    sms = ensure_catalog("Conax SMS", "conax_sms")
    sub = subscribe("BUNDLE_A", catalog=sms)
    response = logged_in(agent).post(
        action_url(sub, "add_service"),
        {"product": sms.products["AGRICULTURE"].pk, "distributor": sms.main.pk},
        follow=True,
    )
    assert shown(response) == [
        (
            "success",
            "Add service: saved; Conax SMS gets it with its next processing run (no provisioning "
            f"request yet). Subscription {sub.number} is Effective.",
        )
    ]
    status = text(re.search(r'id="status-\d+".*?</tr>', response.content.decode(), re.S).group(0))
    assert "Not authorized at Conax SMS: no request made yet" in status
