"""An action's answer, read by hand-written SQL, is exactly what the serializers of the schema
(``ActionResultSerializer``) would give: the same keys in the same order, the same values."""

import pytest
from django.utils import timezone
from rest_framework.renderers import JSONRenderer

from providers.models import ProvisioningRequest
from subscriptions import actions
from subscriptions.action_result import action_result
from subscriptions.api import ActionResultSerializer, _detail_queryset
from tests.conftest import card_and_box

Req = ProvisioningRequest


def serialized(subscription_id: int, request_ids: list[int]) -> bytes:
    from providers.api import with_relations

    made = with_relations(Req.objects.filter(pk__in=request_ids)).order_by("id")
    sub = _detail_queryset().get(pk=subscription_id)
    return JSONRenderer().render(
        ActionResultSerializer().to_representation({"subscription": sub, "requests": made})
    )


def hand_built(subscription_id: int, request_ids: list[int]) -> bytes:
    return JSONRenderer().render(action_result(subscription_id, request_ids))


@pytest.mark.django_db
def test_the_answer_is_the_serializers(subscribe, catalog):
    sub = subscribe("BUNDLE_A", "AGRICULTURE")
    made = list(Req.objects.filter(subscription=sub).values_list("pk", flat=True))
    # A pairing's request (item rows for its members) and activations to one card.
    assert Req.objects.filter(pk__in=made, items__isnull=False).exists()
    assert hand_built(sub.pk, made) == serialized(sub.pk, made)

    # An answered, express request with a response; a service authorized on a date; a
    # device added and then removed (no longer in use, so not in the answer).
    first = Req.objects.get(pk=min(made))
    first.state = Req.State.COMPLETED
    first.priority = Req.Priority.EXPRESS
    first.response = {"status": "ok", "cards": ["CA-1"]}
    first.answered_at = first.sent_at = timezone.now()
    first.attempts = 1
    first.save()
    sub.services.filter(product__code="AGRICULTURE").update(
        authorized=True, authorization_date=timezone.now()
    )
    added = actions.add_installed_item(sub, card_and_box(catalog.main)[0])
    (new_card,) = added.items_added
    removed = actions.remove_installed_item(new_card)
    stopped = actions.stop_service(sub.services.get(product__code="AGRICULTURE"))
    ids = [*made, *added.request_ids, *removed.request_ids, *stopped.request_ids]
    answer = action_result(sub.pk, ids)
    assert new_card.pk not in {i["id"] for i in answer["subscription"]["installed_items"]}
    assert {s["product_code"]: s["is_on"] for s in answer["subscription"]["services"]} == {
        "BUNDLE_A": True,
        "AGRICULTURE": False,
    }
    assert answer["requests"][0]["priority"] == "express"
    assert hand_built(sub.pk, ids) == serialized(sub.pk, ids)


@pytest.mark.django_db
def test_an_action_without_requests_answers_with_none(subscribe):
    sub = subscribe("AGRICULTURE", with_items=False)
    assert hand_built(sub.pk, []) == serialized(sub.pk, [])
    assert action_result(sub.pk, [])["requests"] == []


@pytest.mark.django_db
def test_the_answer_is_read_by_one_statement(subscribe, django_assert_num_queries):
    # The real-time path: one round trip for the subscription, its services, its devices and
    # the requests; a second only for the item rows of a request that has them (a pairing's).
    sub = subscribe("BUNDLE_A", "AGRICULTURE")
    made = list(Req.objects.filter(subscription=sub).values_list("pk", flat=True))
    stopped = actions.stop_service(sub.services.get(product__code="AGRICULTURE"))
    with django_assert_num_queries(1):
        action_result(sub.pk, stopped.request_ids)
    with django_assert_num_queries(1):
        action_result(sub.pk, [])
    with django_assert_num_queries(2):
        action_result(sub.pk, made)
