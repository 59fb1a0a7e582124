"""Get Pending's order and cursor, page after page, while a connector answers what it read."""

import random

import pytest

from providers.models import ProvisioningRequest
from subscriptions import actions
from tests.unit import test_generic_api as generic

PENDING, RESPONSES = generic.PENDING, generic.RESPONSES
connector = generic.connector  # the fixture: a client with a connector token

Req = ProvisioningRequest
EXPRESS = Req.Priority.EXPRESS


def pages(client, page_size, answer_each=False):
    """Every page until the last; with ``answer_each`` each page is accepted once the next is
    read, as the reference connector does."""
    url, params, unanswered, seen = PENDING, {"page_size": page_size}, [], []
    while url:
        response = client.get(url, params)
        assert response.status_code == 200, response.content
        body = response.json()
        if unanswered:
            accept(client, unanswered)
        unanswered = [r["uid"] for r in body["results"]]
        seen.append(body["results"])
        url, params = body["next"], None
    if answer_each and unanswered:
        accept(client, unanswered)
    return seen


def accept(client, uids):
    answers = [{"request": uid, "status": "ACCEPTED"} for uid in uids]
    response = client.post(RESPONSES, {"responses": answers}, format="json")
    assert response.status_code == 200, response.content


def expected_order(pending):
    """By hand: a subscription's requests together in creation order, the groups ordered by
    their leader — the most urgent request, the oldest of those."""
    groups: dict = {}
    for request in pending:
        groups.setdefault(request.subscription_id or -request.pk, []).append(request)
    ordered = sorted(groups.values(), key=lambda g: min((r.priority, r.pk) for r in g))
    return [r.pk for group in ordered for r in sorted(group, key=lambda r: r.pk)]


def test_groups_go_by_their_oldest_most_urgent_request(connector, catalog, subscribe):
    first = subscribe("AGRICULTURE")
    second = subscribe("BUNDLE_A")
    third = subscribe("AGRICULTURE")
    actions.add_service(first, catalog.products["BUNDLE_B"], catalog.main)
    # Express: the second's pairing, and the first's newest request (made after it).
    Req.objects.filter(subscription=second, command="CREATE_PAIRING").update(priority=EXPRESS)
    newest = first.provisioning_requests.order_by("pk").last()
    Req.objects.filter(pk=newest.pk).update(priority=EXPRESS)

    (results,) = pages(connector, 1000)

    assert [(r["subscription"], r["priority"]) for r in results] == [
        (second.number, "EXPRESS"),
        (second.number, "NORMAL"),
        (second.number, "NORMAL"),
        (first.number, "NORMAL"),
        (first.number, "NORMAL"),
        (first.number, "NORMAL"),
        (first.number, "EXPRESS"),
        (third.number, "NORMAL"),
        (third.number, "NORMAL"),
    ]
    assert [r["id"] for r in results] == expected_order(Req.objects.filter(state="pending"))
    made = Req.objects.get(pk=results[0]["id"]).created_at
    assert results[0]["created_at"] == made.isoformat().replace("+00:00", "Z")


def test_a_group_cut_by_a_page_goes_on_where_it_was_cut_even_once_answered(connector, subscribe):
    bundle = subscribe("BUNDLE_A")  # three requests
    other = subscribe("AGRICULTURE")

    first = connector.get(PENDING, {"page_size": 2}).json()
    assert [r["subscription"] for r in first["results"]] == [bundle.number, bundle.number]
    accept(connector, [r["uid"] for r in first["results"]])  # the group's leader is answered
    second = connector.get(first["next"]).json()
    third = connector.get(second["next"]).json()

    assert [r["subscription"] for r in second["results"]] == [bundle.number, other.number]
    assert [r["subscription"] for r in third["results"]] == [other.number]
    assert third["next"] is None
    given = [r["id"] for page in (first, second, third) for r in page["results"]]
    assert sorted(given) == sorted(
        Req.objects.filter(subscription__in=[bundle, other]).values_list("pk", flat=True)
    )


def test_a_request_without_subscription_is_a_group_of_its_own(connector, catalog, subscribe):
    sub = subscribe("AGRICULTURE")
    lone = Req.objects.create(
        provider=catalog.provider, command="BROADCAST", trigger=Req.Trigger.UTILITY
    )
    later = subscribe("AGRICULTURE")

    (results,) = pages(connector, 1000)

    def requests_of(sub):
        return [(pk, sub.number) for pk in sub.provisioning_requests.values_list("pk", flat=True)]

    assert [(r["id"], r["subscription"]) for r in results] == [
        *sorted(requests_of(sub)),
        (lone.pk, None),
        *sorted(requests_of(later)),
    ]


@pytest.mark.parametrize("page_size", [1, 2, 3, 7])
def test_every_request_comes_once_in_order_while_pages_are_answered(
    connector, catalog, subscribe, page_size
):
    rng = random.Random(page_size)  # noqa: S311 (test data, not secrets)
    subs = [subscribe(rng.choice(["AGRICULTURE", "BUNDLE_A", "BUNDLE_B"])) for _ in range(12)]
    for sub in rng.sample(subs, 4):  # a group's requests need not be next to each other
        actions.add_service(sub, catalog.products["RELIGION"], catalog.main)
    pending = list(Req.objects.filter(state="pending").order_by("pk"))
    for request in rng.sample(pending, len(pending) // 4):
        Req.objects.filter(pk=request.pk).update(priority=EXPRESS)
    expected = expected_order(Req.objects.filter(state="pending"))

    given = [r["id"] for page in pages(connector, page_size, answer_each=True) for r in page]

    assert given == expected  # each once, in order, none lost to the answers in between
    assert not Req.objects.filter(state="pending").exists()
