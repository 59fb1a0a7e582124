"""Request triage as an operator does it in the back office: what each request waits on (age,
attempts, next try, last error), Pending over an hour, and Retry on a request's own page and in
bulk, with counts that add up."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from providers.models import ProvisioningRequest

Req = ProvisioningRequest
LIST = reverse("admin:providers_provisioningrequest_changelist")


@pytest.fixture
def made(subscribe, catalog):
    sub = subscribe("AGRICULTURE")
    Req.objects.all().delete()

    def make(state, *, age, last_error="", error_code="", attempts=0):
        row = Req.objects.create(
            command="ADD_SUBSCRIPTIONS",
            provider=catalog.provider,
            distributor=catalog.main,
            subscription=sub,
            trigger=Req.Trigger.ACTION,
            state=state,
            attempts=attempts,
            last_error=last_error,
            error_code=error_code,
            next_attempt_at=timezone.now() + timedelta(minutes=4) if attempts else None,
        )
        Req.objects.filter(pk=row.pk).update(created_at=timezone.now() - age)
        return row

    return make


def test_the_list_says_what_each_request_waits_on(client, operator, made):
    made("pending", age=timedelta(hours=3), attempts=4, last_error="CAS timed out after 10 s")
    client.force_login(operator)
    html = client.get(LIST).content.decode()
    for heading in ("Age", "Attempts", "Next attempt at", "Last error"):
        assert f">{heading}</a>" in html or f">{heading}</span>" in html, heading
    assert "3\xa0hours" in html and "CAS timed out after 10 s" in html


def test_pending_over_an_hour(client, operator, made):
    old = made("pending", age=timedelta(hours=2))
    new = made("pending", age=timedelta(minutes=5))
    done = made("completed", age=timedelta(hours=5))
    client.force_login(operator)
    html = client.get(LIST, {"state__exact": "pending", "older_than": "1h"}).content.decode()
    assert f"/{old.pk}/change/" in html
    assert f"/{new.pk}/change/" not in html and f"/{done.pk}/change/" not in html


def test_bulk_retry_from_the_failed_view_counts_right(client, operator, made):
    failed = made("failed", age=timedelta(hours=1), last_error="gave up")
    client.force_login(operator)
    answer = client.post(
        f"{LIST}?state__exact=failed",
        {"action": "retry_failed", "_selected_action": [failed.pk]},
        follow=True,
    )
    text = answer.content.decode()
    assert "1 Failed request(s) are Pending again." in text
    assert "not Failed" not in text
    assert Req.objects.get(pk=failed.pk).state == "pending"


def test_retry_on_the_requests_own_page(client, operator, agent, made):
    failed = made("failed", age=timedelta(hours=1), error_code="E42", last_error="no answer")
    page = reverse("admin:providers_provisioningrequest_change", args=[failed.pk])
    client.force_login(agent)
    assert 'id="retry-request"' not in client.get(page).content.decode()
    client.force_login(operator)
    assert 'id="retry-request"' in client.get(page).content.decode()

    answer = client.post(
        reverse("admin:providers_provisioningrequest_retry", args=[failed.pk]), {"back": "request"}
    )

    assert answer.status_code == 302 and answer["Location"] == page
    assert Req.objects.get(pk=failed.pk).state == "pending"
    assert 'id="retry-request"' not in client.get(page).content.decode()


def test_filters_by_command_and_error_code(client, operator, made):
    timeout = made("failed", age=timedelta(hours=1), error_code="E42", last_error="timed out")
    refused = made("rejected", age=timedelta(hours=1), error_code="E7", last_error="no card")
    client.force_login(operator)

    page = client.get(LIST, {"error_code": "E42"}).content.decode()
    assert f"/{timeout.pk}/change/" in page and f"/{refused.pk}/change/" not in page
    # The codes and commands offered are those of the requests there are.
    assert "?error_code=E7" in page and "?command=ADD_SUBSCRIPTIONS" in page

    page = client.get(LIST, {"command": "REMOVE_SUBSCRIPTIONS"}).content.decode()
    assert f"/{timeout.pk}/change/" not in page and "0 provisioning requests" in page
