"""Push delivery (the Generic provider in push mode) against the reference connector's server."""

import pytest

from providers import delivery
from providers.models import ProvisioningRequest

pytestmark = pytest.mark.usefixtures("fast_path")

Req = ProvisioningRequest


def card(sub):
    return sub.installed_items.get(kind="smartcard", removed_at=None).ca_id


def test_due_requests_are_sent_in_order_and_answered(push_provider, platform, subscribe):
    a, b = subscribe("BUNDLE_A"), subscribe("AGRICULTURE")

    assert delivery.drain(push_provider).answered == 5

    assert set(Req.objects.values_list("state", flat=True)) == {"completed"}
    state = platform.state()
    assert state["entitlements"] == {card(a): ["EFA2", "GFA1"], card(b): ["AF1"]}
    assert set(state["received"].values()) == {1}
    assert all(r.attempts == 1 and r.sent_at for r in Req.objects.all())


def test_only_the_oldest_pending_request_of_a_card_is_due(push_provider, subscribe):
    sub = subscribe("BUNDLE_A")
    first = sub.provisioning_requests.order_by("pk").first()
    assert list(delivery.due(push_provider)) == [first]
    # Express goes first among what is due.
    other = subscribe("AGRICULTURE")
    express = other.provisioning_requests.order_by("pk").first()
    Req.objects.filter(pk=express.pk).update(priority=Req.Priority.EXPRESS)
    assert list(delivery.due(push_provider)) == [express, first]


def test_an_offline_platform_means_retries_with_backoff_then_failed(
    push_provider, platform, subscribe
):
    platform.online = False
    sub = subscribe("AGRICULTURE")
    pairing = sub.provisioning_requests.get(operation="create_pairing")

    delivery.drain(push_provider)
    pairing.refresh_from_db()
    assert (pairing.state, pairing.attempts) == ("pending", 1)
    assert pairing.last_error == "Attempt 1 failed: HTTP 503 from the connector"
    assert pairing.next_attempt_at > pairing.sent_at
    assert list(delivery.due(push_provider)) == []  # waiting for its retry time

    for _attempt in (2, 3):
        Req.objects.filter(pk=pairing.pk).update(next_attempt_at=None)  # its time has come
        delivery.drain(push_provider)
    pairing.refresh_from_db()
    assert pairing.state == "failed"
    assert pairing.last_error == (
        "Attempt 3 failed: HTTP 503 from the connector. Gave up after 3 attempts."
    )
    # With the card's first request Failed, the next one for the card goes out at the next
    # delivery (each stops at a failure: the platform is down) and waits in turn.
    delivery.drain(push_provider)
    activation = sub.provisioning_requests.get(operation="activate")
    assert (activation.state, activation.attempts) == ("pending", 1)
    Req.objects.filter(pk=activation.pk).update(next_attempt_at=None)

    platform.online = True
    assert delivery.retry(Req.objects.filter(pk=pairing.pk)) == 1
    delivery.drain(push_provider)
    assert set(Req.objects.values_list("state", flat=True)) == {"completed"}
    assert platform.state()["pairings"] == {
        card(sub): sorted(i.ca_id for i in sub.installed_items.all())
    }


def test_a_request_sent_twice_is_applied_once(push_provider, platform, subscribe):
    sub = subscribe("AGRICULTURE")
    activation = sub.provisioning_requests.get(operation="activate")
    platform.take(
        {
            "uid": str(activation.uid),
            "command": activation.command,
            "parameters": activation.parameters,
        }
    )  # as if a worker had sent it and died before recording the answer

    delivery.drain(push_provider)

    state = platform.state()
    assert state["received"][str(activation.uid)] == 2
    assert state["applied"][str(activation.uid)] == 1
    activation.refresh_from_db()
    assert activation.state == "completed"


def test_a_connection_refused_is_a_transport_failure(push_provider, subscribe):
    push_provider.connection["push_url"] = "http://127.0.0.1:9/requests"
    push_provider.save()
    sub = subscribe("AGRICULTURE")
    delivery.drain(push_provider)
    pairing = sub.provisioning_requests.get(operation="create_pairing")
    assert pairing.state == "pending"
    assert pairing.last_error.startswith("Attempt 1 failed: ConnectionError")


def test_pull_requests_past_their_answer_deadline_fail_with_the_reason(catalog, subscribe):
    from datetime import timedelta

    from django.utils import timezone

    sub = subscribe("AGRICULTURE")
    catalog.provider.parameters = {"answer_deadline_hours": 24}
    catalog.provider.save()
    Req.objects.filter(subscription=sub).update(created_at=timezone.now() - timedelta(hours=25))

    assert delivery.sweep() == {"woken": [], "expired": 2}

    failed = sub.provisioning_requests.first()
    assert failed.state == "failed"
    assert failed.last_error.startswith("No answer within 24 hours; the connector may be offline.")
