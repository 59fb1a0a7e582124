"""The reference connector against the running Web API, over HTTP."""

import pytest

from providers.answers import record_answer
from providers.generic.connector import GenericConnector, Platform
from providers.models import ConnectorToken, ProvisioningRequest
from subscriptions import actions

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def connector(live_server, catalog):
    _, key = ConnectorToken.issue(catalog.provider, "reference")
    return GenericConnector(live_server.url, key, Platform(), page_size=2)


def card(sub):
    return sub.installed_items.get(kind="smartcard", removed_at=None).ca_id


def test_the_connector_takes_applies_and_answers_everything(connector, catalog, subscribe):
    a, b = subscribe("BUNDLE_A"), subscribe("AGRICULTURE")

    assert connector.poll_once() == 5

    state = connector.platform.state()
    assert state["entitlements"] == {card(a): ["EFA2", "GFA1"], card(b): ["AF1"]}
    assert set(ProvisioningRequest.objects.values_list("state", flat=True)) == {"completed"}
    assert a.services.get().authorized

    actions.swap_service(a.services.get(), catalog.products["BUNDLE_B"])
    assert connector.poll_once() == 4
    assert connector.platform.state()["entitlements"][card(a)] == ["BFB2", "RFB1"]
    assert connector.poll_once() == 0
    state = connector.platform.state()
    assert set(state["applied"].values()) == {1}
    # Each page answered while the next was read (two a page, groups cut across pages), and
    # still nothing came twice.
    assert set(state["received"].values()) == {1}
    assert len(state["received"]) == ProvisioningRequest.objects.count() == 9


def test_a_rejected_request_rolls_back_and_the_platform_is_cancelled_too(
    connector, catalog, subscribe
):
    sub = subscribe("AGRICULTURE")
    connector.poll_once()
    connector.platform.reject_ca_ids = {"EFA2"}

    actions.add_service(sub, catalog.products["BUNDLE_A"], catalog.main)
    connector.poll_once()  # GFA1 accepted, EFA2 refused → the service is switched off again
    connector.poll_once()  # … and the rollback's cancellations are applied

    bundle = sub.services.get(product__code="BUNDLE_A")
    assert bundle.state == "not_effective"
    assert not bundle.authorized
    assert connector.platform.state()["entitlements"] == {card(sub): ["AF1"]}
    rejected = ProvisioningRequest.objects.get(state="rejected")
    assert rejected.ca_id == "EFA2"
    assert rejected.last_error == f"The platform refuses EFA2 on {card(sub)}."


def test_an_offline_connector_takes_nothing_and_catches_up(connector, subscribe):
    connector.platform.online = False
    sub = subscribe("AGRICULTURE")
    assert connector.poll_once() == 0
    assert sub.provisioning_requests.filter(state="pending").count() == 2
    connector.platform.online = True
    assert connector.poll_once() == 2
    assert connector.platform.state()["entitlements"] == {card(sub): ["AF1"]}


def test_an_answer_made_moot_is_dropped_and_the_others_still_sent(connector, subscribe):
    sub = subscribe("AGRICULTURE")
    pairing = sub.provisioning_requests.get(operation="create_pairing")
    activation = sub.provisioning_requests.get(operation="activate")
    # Answers the connector holds from a poll that failed, while someone else answered the
    # activation the other way.
    connector.unsent = {
        str(r.uid): {"request": str(r.uid), "status": "ACCEPTED"} for r in (activation, pairing)
    }
    record_answer(activation, accepted=False, error_description="Refused at the desk")

    connector.poll_once()

    pairing.refresh_from_db()
    activation.refresh_from_db()
    assert (pairing.state, activation.state) == ("completed", "rejected")
    assert connector.unsent == {}
