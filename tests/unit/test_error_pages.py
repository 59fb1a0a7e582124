"""The back office's 403, 404 and 500 pages: in its look, with a way back; the Web API keeps
its JSON errors. And what an agent's navigation holds: not the scheduler's internals."""

import pytest
from django.test import Client, RequestFactory
from django.urls import get_resolver, reverse

BEAT_MODELS = (
    "clockedschedule",
    "crontabschedule",
    "intervalschedule",
    "periodictask",
    "solarschedule",
)


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.mark.django_db
def test_agents_do_not_see_the_schedulers_internals(agent, operator):
    client = logged_in(agent)
    home = client.get(reverse("admin:index")).content.decode()
    assert "Periodic tasks" not in home and "Crontabs" not in home
    assert "Provisioning requests" in home and "Subscriptions" in home
    for model in BEAT_MODELS:
        response = client.get(reverse(f"admin:django_celery_beat_{model}_changelist"))
        assert response.status_code == 403, model
    # The operators schedule runs: they keep them.
    home = logged_in(operator).get(reverse("admin:index")).content.decode()
    assert "Periodic tasks" in home


@pytest.mark.django_db
def test_a_refusal_is_the_back_offices_page_with_a_way_back(agent):
    client = logged_in(agent)
    came_from = "http://testserver" + reverse("admin:subscriptions_subscription_changelist")
    response = client.get(
        reverse("admin:django_celery_beat_periodictask_changelist"), HTTP_REFERER=came_from
    )
    assert response.status_code == 403
    page = response.content.decode()
    assert "<title>You may not open this page | CRM Provisioning</title>" in page
    assert 'id="site-name"' in page and "CRM Provisioning" in page
    assert "signed in as <strong>agent</strong>" in page
    assert f'href="{came_from}" id="previous-page"' in page
    assert f'href="{reverse("admin:index")}" id="home-page"' in page
    assert "backoffice.css" in page
    # The navigation shows what the agent may open.
    assert 'id="nav-sidebar"' in page and "Provisioning requests" in page


@pytest.mark.django_db
def test_no_previous_page_from_another_site(agent):
    response = logged_in(agent).get(
        reverse("admin:auth_user_changelist"), HTTP_REFERER="https://elsewhere.example/x"
    )
    assert response.status_code == 403
    page = response.content.decode()
    assert "elsewhere.example" not in page and 'id="previous-page"' not in page
    assert 'id="home-page"' in page


@pytest.mark.django_db
def test_a_missing_page_says_so_with_a_way_back(agent):
    response = logged_in(agent).get("/admin/subscriptions/no-such-page/")
    assert response.status_code == 404
    page = response.content.decode()
    assert "<title>Page not found | CRM Provisioning</title>" in page
    assert "There is nothing at <code>/admin/subscriptions/no-such-page/</code>" in page
    assert 'id="home-page"' in page

    # Someone not signed in sees the page without the navigation (it would offer nothing).
    response = Client().get("/no-such-page/")
    assert response.status_code == 404
    page = response.content.decode()
    assert 'id="home-page"' in page and 'id="nav-sidebar"' not in page


@pytest.mark.django_db
def test_the_web_api_keeps_its_json_errors(agent):
    response = logged_in(agent).get("/api/v1/no-such-endpoint/")
    assert response.status_code == 404
    assert response["Content-Type"].startswith("application/json")
    assert response.json()["error"]["code"] == "not_found"


def test_the_server_error_page_needs_no_database_and_no_request():
    # No database here (not a django_db test: a query would fail the test); Django's own
    # handler renders 500.html with an empty context.
    handler = get_resolver().resolve_error_handler(500)
    response = handler(RequestFactory().get("/admin/subscriptions/subscription/"))
    assert response.status_code == 500
    page = response.content.decode()
    assert "<title>Server error | CRM Provisioning</title>" in page
    assert '<a href="/admin/" id="home-page">Back office home</a>' in page
    assert 'id="previous-page"' in page
