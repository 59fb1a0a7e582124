"""The back office (Django admin) as its users see it: pages, buttons, messages, and what the
database holds afterwards."""

import re
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from catalogue.models import Provider
from providers.models import ArchivedRequest, ConnectorToken, ProvisioningRequest
from runs.models import WorkerHeartbeat
from subscriptions.models import InstalledItem, Subscription, SubscriptionEvent, SubscriptionService

SubState = Subscription.State
SvcState = SubscriptionService.State

CONAX_SMS_CONNECTION = {
    "protocol": "sftp",
    "host": "sms.example.net",
    "username": "crm",
    "password_env": "CRM_SECRET_CONAX_SMS_PASSWORD",
    "host_key": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExampleKey",
}


def login(user: User) -> Client:
    client = Client()
    assert client.login(username=user.username, password="pw-" + user.username)
    return client


def page_url(sub: Subscription) -> str:
    return reverse("admin:subscriptions_subscription_change", args=[sub.pk])


def action_url(sub: Subscription, name: str) -> str:
    return reverse("admin:subscriptions_subscription_action", args=[sub.pk, name])


def shown(response) -> list[tuple[str, str]]:
    """The messages the user sees on the page: (level, text)."""
    return [(m.level_tag, m.message) for m in response.context["messages"]]


def provider_form(name: str, **overrides) -> dict:
    """A Conax SMS provider's add page as posted: each setting a field of its own."""
    data = {
        "name": name,
        "type": "conax_sms",
        "enabled": "on",
        **{f"connection__{key}": value for key, value in CONAX_SMS_CONNECTION.items()},
        "parameters__add_end_period_months": "12",
        "external_system": "",
    }
    data.update(overrides)
    return data


@pytest.fixture
def superuser(db):
    return User.objects.create_superuser("root", password="pw-root")


@pytest.fixture
def request_row(subscribe, catalog):
    """A provisioning request as the system makes one (here directly, for the test)."""
    sub = subscribe("AGRICULTURE")
    return ProvisioningRequest.objects.create(
        command="ADD_SUBSCRIPTIONS",
        parameters={"ca_id": "AF1"},
        provider=catalog.provider,
        distributor=catalog.main,
        subscription=sub,
        trigger=ProvisioningRequest.Trigger.ACTION,
        trigger_name="become_subscriber",
    )


# --- Signing in ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "/admin/",
        "/admin/subscriptions/subscription/",
        "/admin/providers/provisioningrequest/",
    ],
)
def test_anonymous_is_sent_to_the_login_page(db, url):
    response = Client().get(url)
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/?next=" + url)


def test_the_root_leads_to_the_back_office(db):
    response = Client().get("/")
    assert response.status_code == 302
    assert response["Location"] == "/admin/"


# --- Subscriptions: the agent's pages and buttons ------------------------------------------


def test_agent_sees_the_subscription_list_and_page(agent, subscribe):
    sub = subscribe("BUNDLE_A")
    client = login(agent)

    listing = client.get(reverse("admin:subscriptions_subscription_changelist"))
    assert listing.status_code == 200
    assert sub.number in listing.content.decode()

    page = client.get(page_url(sub))
    assert page.status_code == 200
    html = page.content.decode()
    assert f"Subscription {sub.number}" in html
    # Services, devices, history and the buttons of the moves allowed from Effective.
    assert "BUNDLE_A" in html
    for item in sub.installed_items.all():
        assert item.serial_number in html and item.ca_id in html
    assert "<td>Become subscriber</td>" in html  # the history
    assert action_url(sub, "deactivate") in html
    assert action_url(sub, "rest") in html
    assert action_url(sub, "activate") not in html  # not from Effective


def test_agent_deactivates_by_button(agent, subscribe):
    sub = subscribe("AGRICULTURE")
    client = login(agent)

    response = client.post(action_url(sub, "deactivate"), {"reason": "Unpaid"}, follow=True)

    assert response.status_code == 200
    assert response.redirect_chain[-1][0] == page_url(sub)
    sub.refresh_from_db()
    assert sub.state == SubState.NOT_EFFECTIVE
    assert list(sub.services.values_list("state", flat=True)) == [SvcState.NOT_EFFECTIVE]
    assert (
        "success",
        f"Deactivate: done, 1 provisioning request made. Subscription {sub.number} is Not Effective.",
    ) in shown(response)
    event = sub.events.get(action="deactivate")
    assert event.performed_by == agent
    assert event.reason == "Unpaid"


def test_an_illegal_move_shows_the_action_error_and_changes_nothing(agent, subscribe):
    sub = subscribe("AGRICULTURE")
    events_before = SubscriptionEvent.objects.count()

    response = login(agent).post(action_url(sub, "activate"), follow=True)

    assert response.status_code == 200
    sub.refresh_from_db()
    assert sub.state == SubState.EFFECTIVE
    assert SubscriptionEvent.objects.count() == events_before
    assert shown(response) == [
        (
            "error",
            f"Cannot activate subscription {sub.number}: it is Effective; "
            "this action needs it Not Effective.",
        )
    ]


def test_service_and_device_buttons_call_their_actions(agent, subscribe, catalog):
    sub = subscribe("BUNDLE_A")
    service = sub.services.get()
    card = sub.installed_items.get(kind=InstalledItem.Kind.SMARTCARD)
    client = login(agent)

    client.post(
        action_url(sub, "swap_service"),
        {"service": service.pk, "new_product": catalog.products["BUNDLE_B"].pk},
    )
    service.refresh_from_db()
    assert service.state == SvcState.SWAPPED
    new = sub.services.get(swapped_from=service)
    assert new.product.code == "BUNDLE_B" and new.state == SvcState.EFFECTIVE

    client.post(action_url(sub, "regret_swap"), {"service": new.pk})
    new.refresh_from_db()
    service.refresh_from_db()
    assert (new.state, service.state) == (SvcState.REGRETTED, SvcState.EFFECTIVE)

    response = client.post(
        action_url(sub, "swap_installed_item"),
        {"item": card.pk, "serial_number": "SC-NEW-1", "ca_id": "CA-NEW-1"},
        follow=True,
    )
    card.refresh_from_db()
    assert card.removed_at is not None
    assert card.replaced_by.serial_number == "SC-NEW-1"
    assert shown(response)[-1][0] == "success"

    response = client.post(action_url(sub, "stop_service"), {"service": service.pk}, follow=True)
    service.refresh_from_db()
    assert service.state == SvcState.NOT_EFFECTIVE
    # The page now offers Start for it, and no longer Stop.
    html = response.content.decode()
    assert action_url(sub, "start_service") in html
    assert action_url(sub, "stop_service") not in html


def test_a_service_of_another_subscription_is_refused(agent, subscribe):
    mine = subscribe("AGRICULTURE")
    other = subscribe("AGRICULTURE")
    theirs = other.services.get()

    response = login(agent).post(
        action_url(mine, "stop_service"), {"service": theirs.pk}, follow=True
    )

    theirs.refresh_from_db()
    assert theirs.state == SvcState.EFFECTIVE
    level, text = shown(response)[0]
    assert level == "error" and text.startswith("Stop service: ")


def test_terminate_needs_confirmation(agent, subscribe):
    sub = subscribe("AGRICULTURE")
    client = login(agent)

    response = client.post(action_url(sub, "terminate"), {"reason": "Moved"}, follow=True)
    sub.refresh_from_db()
    assert sub.state == SubState.EFFECTIVE
    assert shown(response)[0][0] == "error"
    assert "Tick the box to confirm" in shown(response)[0][1]

    client.post(action_url(sub, "terminate"), {"reason": "Moved", "confirm": "on"})
    sub.refresh_from_db()
    assert sub.state == SubState.TERMINATED
    assert not sub.installed_items.filter(removed_at__isnull=True).exists()


def test_actions_need_a_post(agent, subscribe):
    sub = subscribe("AGRICULTURE")
    response = login(agent).get(action_url(sub, "deactivate"))
    assert response.status_code == 302
    sub.refresh_from_db()
    assert sub.state == SubState.EFFECTIVE


def test_bulk_actions_report_each_subscription(agent, subscribe):
    effective = subscribe("AGRICULTURE")
    resting = subscribe("AGRICULTURE")
    resting_client = login(agent)
    resting_client.post(action_url(resting, "rest"))
    resting.refresh_from_db()
    assert resting.state == SubState.IN_RESTING

    response = resting_client.post(
        reverse("admin:subscriptions_subscription_changelist"),
        {"action": "bulk_deactivate", "_selected_action": [effective.pk, resting.pk]},
        follow=True,
    )

    effective.refresh_from_db()
    resting.refresh_from_db()
    assert (effective.state, resting.state) == (SubState.NOT_EFFECTIVE, SubState.IN_RESTING)
    messages = shown(response)
    assert ("success", f"Deactivate: done on 1: {effective.number}.") in messages
    assert (
        "error",
        f"Deactivate failed on {resting.number}: Cannot deactivate subscription "
        f"{resting.number}: it is In Resting; this action needs it Effective or "
        "Short Term Effective.",
    ) in messages


def test_bulk_terminate_asks_first(agent, subscribe):
    subs = [subscribe("AGRICULTURE"), subscribe("AGRICULTURE")]
    client = login(agent)
    changelist = reverse("admin:subscriptions_subscription_changelist")
    selected = {"action": "bulk_terminate", "_selected_action": [s.pk for s in subs]}

    question = client.post(changelist, selected)

    assert question.status_code == 200
    assert "Terminate these subscriptions?" in question.content.decode()
    assert all(s.number in question.content.decode() for s in subs)
    assert not Subscription.objects.filter(state=SubState.TERMINATED).exists()

    response = client.post(changelist, {**selected, "confirm": "yes"}, follow=True)

    assert Subscription.objects.filter(state=SubState.TERMINATED).count() == 2
    assert ("success", f"Terminate: done on 2: {subs[0].number}, {subs[1].number}.") in shown(
        response
    )


def test_nobody_edits_or_deletes_a_subscription_by_hand(administrator, subscribe):
    sub = subscribe("AGRICULTURE")
    client = login(administrator)
    response = client.post(page_url(sub), {"state": SubState.TERMINATED})
    assert response.status_code == 403
    response = client.post(
        reverse("admin:subscriptions_subscription_delete", args=[sub.pk]), {"post": "yes"}
    )
    assert response.status_code == 403
    sub.refresh_from_db()
    assert sub.state == SubState.EFFECTIVE


@pytest.mark.parametrize(
    "model", ["subscriptionservice", "installeditem", "pairing", "subscriptionevent"]
)
def test_rows_written_by_actions_are_view_only(administrator, subscribe, model):
    sub = subscribe("AGRICULTURE")
    row = {
        "subscriptionservice": sub.services.first,
        "installeditem": sub.installed_items.first,
        "pairing": sub.pairings.first,
        "subscriptionevent": sub.events.first,
    }[model]()
    client = login(administrator)
    assert client.get(reverse(f"admin:subscriptions_{model}_changelist")).status_code == 200
    change = reverse(f"admin:subscriptions_{model}_change", args=[row.pk])
    assert client.get(change).status_code == 200
    assert client.get(reverse(f"admin:subscriptions_{model}_add")).status_code == 403
    assert client.post(change, {}).status_code == 403
    delete = reverse(f"admin:subscriptions_{model}_delete", args=[row.pk])
    assert client.post(delete, {"post": "yes"}).status_code == 403


def test_search_finds_a_subscription_by_its_smartcard(agent, subscribe):
    wanted = subscribe("AGRICULTURE")
    other = subscribe("AGRICULTURE")
    card = wanted.installed_items.get(kind=InstalledItem.Kind.SMARTCARD)

    response = login(agent).get(
        reverse("admin:subscriptions_subscription_changelist"), {"q": card.ca_id}
    )

    assert list(response.context["cl"].result_list) == [wanted]
    assert other.number not in response.content.decode()


# --- Become subscriber -------------------------------------------------------------------------


def become_subscriber_data(catalog, account, **overrides) -> dict:
    data = {
        "account": account.pk,
        "subscription_type": catalog.types["RES"].pk,
        "number": "",
        "reason": "New customer",
        "services-TOTAL_FORMS": "2",
        "services-INITIAL_FORMS": "0",
        "services-MIN_NUM_FORMS": "1",
        "services-MAX_NUM_FORMS": "20",
        "services-0-product": catalog.products["BUNDLE_A"].pk,
        "services-0-distributor": catalog.main.pk,
        "services-1-product": catalog.products["AGRICULTURE"].pk,
        "services-1-distributor": catalog.distributors["TWIN1"].pk,
        "devices-TOTAL_FORMS": "2",
        "devices-INITIAL_FORMS": "0",
        "devices-MIN_NUM_FORMS": "0",
        "devices-MAX_NUM_FORMS": "4",
        "devices-0-distributor": catalog.main.pk,
        "devices-0-smartcard_serial": "SC-100",
        "devices-0-smartcard_ca_id": "CA-100",
        "devices-0-stb_serial": "STB-100",
        "devices-0-stb_ca_id": "CA-STB-100",
        "devices-1-distributor": catalog.distributors["TWIN1"].pk,
        "devices-1-smartcard_serial": "SC-101",
        "devices-1-smartcard_ca_id": "CA-101",
    }
    data.update(overrides)
    return data


def test_become_subscriber_page_creates_the_subscription(agent, catalog, account):
    client = login(agent)
    add_url = reverse("admin:subscriptions_subscription_add")
    page = client.get(add_url)
    assert page.status_code == 200
    assert "Become subscriber" in page.content.decode()

    response = client.post(add_url, become_subscriber_data(catalog, account), follow=True)

    sub = Subscription.objects.get(account=account)
    assert response.redirect_chain[-1][0] == page_url(sub)
    assert sub.state == SubState.EFFECTIVE
    services = {(s.product.code, s.distributor.code, s.state) for s in sub.services.all()}
    assert services == {
        ("BUNDLE_A", "MAIN", SvcState.EFFECTIVE),
        ("AGRICULTURE", "TWIN1", SvcState.EFFECTIVE),
    }
    items = {
        (i.kind, i.serial_number, i.ca_id, i.distributor.code) for i in sub.installed_items.all()
    }
    assert items == {
        ("smartcard", "SC-100", "CA-100", "MAIN"),
        ("stb", "STB-100", "CA-STB-100", "MAIN"),
        ("smartcard", "SC-101", "CA-101", "TWIN1"),
    }
    event = sub.events.get()
    assert (event.action, event.performed_by, event.reason) == (
        "become_subscriber",
        agent,
        "New customer",
    )
    assert (
        "success",
        f"Subscription {sub.number} created with 2 service(s) and 3 device(s).",
    ) in shown(response)


def test_become_subscriber_refused_by_the_action_keeps_the_form(agent, catalog, account):
    # TWIN1 without MAIN in use: the action refuses; nothing is created.
    data = become_subscriber_data(
        catalog,
        account,
        **{
            "services-TOTAL_FORMS": "1",
            "services-0-product": catalog.products["AGRICULTURE"].pk,
            "services-0-distributor": catalog.distributors["TWIN1"].pk,
            "devices-TOTAL_FORMS": "1",
            "devices-0-distributor": catalog.distributors["TWIN1"].pk,
        },
    )

    response = login(agent).post(reverse("admin:subscriptions_subscription_add"), data)

    assert response.status_code == 200
    assert not Subscription.objects.filter(account=account).exists()
    assert ("error", "Distributor TWIN1 requires MAIN to be in use on subscription") in [
        (level, text[: len("Distributor TWIN1 requires MAIN to be in use on subscription")])
        for level, text in shown(response)
    ]
    assert 'value="SC-100"' in response.content.decode()


def test_become_subscriber_needs_both_serial_and_ca_id(agent, catalog, account):
    data = become_subscriber_data(catalog, account, **{"devices-0-smartcard_ca_id": ""})
    response = login(agent).post(reverse("admin:subscriptions_subscription_add"), data)
    assert response.status_code == 200
    assert "Give both the serial number and the CA ID." in response.content.decode()
    assert not Subscription.objects.exists()


# --- Roles ---------------------------------------------------------------------------------


def test_agent_cannot_add_a_provider(agent, catalog):
    client = login(agent)
    assert client.get(reverse("admin:catalogue_provider_add")).status_code == 403
    response = client.post(reverse("admin:catalogue_provider_add"), provider_form("Conax SMS"))
    assert response.status_code == 403
    assert not Provider.objects.filter(name="Conax SMS").exists()


@pytest.mark.parametrize("role", ["operator", "administrator"])
def test_operators_and_administrators_set_up_providers(request, role, catalog):
    client = login(request.getfixturevalue(role))
    add_url = reverse("admin:catalogue_provider_add")
    assert client.get(add_url).status_code == 200

    response = client.post(add_url, provider_form("Conax SMS"))

    assert response.status_code == 302
    provider = Provider.objects.get(name="Conax SMS")
    # The provider form stored the validated settings, defaults included.
    assert provider.parameters["add_end_period_months"] == 12
    assert provider.parameters["renewal_frequency_months"] == 1
    assert provider.connection["host"] == "sms.example.net"


def test_out_of_range_parameters_are_shown_on_the_field(operator, catalog):
    response = login(operator).post(
        reverse("admin:catalogue_provider_add"),
        provider_form("Conax SMS", parameters__add_end_period_months="37"),
    )

    assert response.status_code == 200
    form = response.context["adminform"].form
    assert form.errors == {
        "parameters__add_end_period_months": ["Ensure this value is less than or equal to 36."]
    }
    assert not Provider.objects.filter(name="Conax SMS").exists()


def test_provider_page_shows_its_provisioning_model(operator, catalog):
    response = login(operator).get(
        reverse("admin:catalogue_provider_change", args=[catalog.provider.pk])
    )
    html = response.content.decode()
    assert response.status_code == 200
    assert "Provisioning model" in html
    assert "Hybrid (real-time + reset runs)" in html


def test_operator_cannot_perform_subscription_actions(operator, subscribe):
    sub = subscribe("AGRICULTURE")
    client = login(operator)

    assert client.post(action_url(sub, "deactivate")).status_code == 403
    assert client.get(reverse("admin:subscriptions_subscription_add")).status_code == 403
    sub.refresh_from_db()
    assert sub.state == SubState.EFFECTIVE
    # The operator still reads the page, without action buttons.
    page = client.get(page_url(sub))
    assert page.status_code == 200
    assert action_url(sub, "deactivate") not in page.content.decode()


def test_administrator_performs_actions_too(administrator, subscribe):
    sub = subscribe("AGRICULTURE")
    response = login(administrator).post(action_url(sub, "rest"), follow=True)
    sub.refresh_from_db()
    assert sub.state == SubState.IN_RESTING
    assert shown(response)[0][0] == "success"


# --- Provisioning requests: read-only for everybody ----------------------------------------


@pytest.mark.parametrize("who", ["agent", "operator", "administrator", "superuser"])
def test_nobody_adds_changes_or_deletes_a_provisioning_request(request, who, request_row):
    client = login(request.getfixturevalue(who))
    change = reverse("admin:providers_provisioningrequest_change", args=[request_row.pk])

    assert client.get(reverse("admin:providers_provisioningrequest_add")).status_code == 403
    assert client.post(change, {"command": "CANCEL_SUBSCRIPTIONS"}).status_code == 403
    delete = reverse("admin:providers_provisioningrequest_delete", args=[request_row.pk])
    assert client.get(delete).status_code == 403
    assert client.post(delete, {"post": "yes"}).status_code == 403

    request_row.refresh_from_db()
    assert request_row.command == "ADD_SUBSCRIPTIONS"
    # ... but can look at it.
    view = client.get(change)
    assert view.status_code == 200
    assert "ADD_SUBSCRIPTIONS" in view.content.decode()
    assert "&quot;ca_id&quot;: &quot;AF1&quot;" in view.content.decode()


def test_subscription_page_lists_its_requests_with_a_link_to_all(agent, subscribe, request_row):
    other = subscribe("AGRICULTURE")
    ProvisioningRequest.objects.create(
        command="ADD_SUBSCRIPTIONS",
        provider=request_row.provider,
        subscription=other,
        trigger=ProvisioningRequest.Trigger.ACTION,
    )
    sub = request_row.subscription
    client = login(agent)
    page = client.get(page_url(sub))
    html = page.content.decode()
    assert reverse("admin:providers_provisioningrequest_change", args=[request_row.pk]) in html

    link = page.context["requests_url"]
    assert link in html.replace("&amp;", "&")
    listing = client.get(link)
    assert listing.status_code == 200
    listed = set(listing.context["cl"].result_list)
    assert request_row in listed
    assert listed == set(ProvisioningRequest.objects.filter(subscription=sub))


def test_administrator_issues_a_connector_key_shown_once(administrator, operator, catalog):
    add_url = reverse("admin:providers_connectortoken_add")
    assert login(operator).get(add_url).status_code == 403

    response = login(administrator).post(
        add_url, {"provider": catalog.provider.pk, "name": "platform"}, follow=True
    )

    token = ConnectorToken.objects.get(name="platform")
    (key,) = [
        re.match(r"Key for platform: (\S+) — copy it now", text).group(1)
        for level, text in shown(response)
        if level == "warning"
    ]
    assert ConnectorToken.hash(key) == token.key_hash
    assert key.startswith(token.prefix)
    # The key is never shown again.
    page = login(administrator).get(
        reverse("admin:providers_connectortoken_change", args=[token.pk])
    )
    assert key not in page.content.decode()


def test_archived_requests_are_view_only(superuser):
    client = login(superuser)
    assert client.get(reverse("admin:providers_archivedrequest_changelist")).status_code == 200
    assert client.get(reverse("admin:providers_archivedrequest_add")).status_code == 403
    assert not ArchivedRequest.objects.exists()


# --- The index -----------------------------------------------------------------------------


def test_index_shows_a_live_worker(agent):
    WorkerHeartbeat.objects.create(
        hostname="worker-1", last_seen=timezone.now() - timedelta(seconds=5), beats=3
    )
    response = login(agent).get("/admin/")
    html = response.content.decode()
    assert response.status_code == 200
    assert "CRM Provisioning" in html
    assert re.search(r"Worker alive — last heartbeat [5-9] s ago \(worker-1\)", html)
    assert "No live worker" not in html


def test_index_says_when_no_worker_is_alive(agent):
    WorkerHeartbeat.objects.create(
        hostname="worker-1", last_seen=timezone.now() - timedelta(minutes=5), beats=3
    )
    html = login(agent).get("/admin/").content.decode()
    assert "No live worker" in html
    assert "Worker alive" not in html


def test_index_without_any_heartbeat(agent):
    html = login(agent).get("/admin/").content.decode()
    assert "No live worker — no heartbeat yet" in html


# --- Failed requests --------------------------------------------------------------------------


def test_an_operator_retries_failed_requests_an_agent_cannot(operator, agent, subscribe):
    sub = subscribe("AGRICULTURE")
    failed = sub.provisioning_requests.get(operation="activate")
    ProvisioningRequest.objects.filter(pk=failed.pk).update(
        state="failed", attempts=8, last_error="Gave up after 8 attempts."
    )
    pending = sub.provisioning_requests.get(operation="create_pairing")
    url = reverse("admin:providers_provisioningrequest_changelist")
    post = {"action": "retry_failed", "_selected_action": [failed.pk, pending.pk]}

    agent_page = login(agent).get(url)
    assert "retry_failed" not in agent_page.content.decode()
    login(agent).post(url, post)
    failed.refresh_from_db()
    assert failed.state == "failed"

    response = login(operator).post(url, post, follow=True)
    assert shown(response) == [
        ("success", "1 Failed request(s) are Pending again. 1 not Failed, left as they were.")
    ]
    failed.refresh_from_db()
    assert (failed.state, failed.attempts) == ("pending", 0)
