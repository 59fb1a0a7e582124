"""Several answers recorded together, as a worker records a batch it delivered: all or nothing,
each request once, the provider state as if they were applied one after the other.

On PostgreSQL these run on both paths: the one statement of ``providers.fast_path.accept`` and
the portable one."""

from types import SimpleNamespace

import pytest

from providers.answers import (
    ALREADY_DONE,
    APPLIED,
    Answer,
    AnswerConflict,
    UnknownRequests,
    record_answers,
)
from providers.models import ProvisioningRequest
from subscriptions import actions
from subscriptions.models import SubscriptionService

pytestmark = pytest.mark.usefixtures("fast_path")

Req = ProvisioningRequest


@pytest.fixture
def two_cards(subscribe):
    """A subscription to AGRICULTURE on two viewing points, everything accepted but the
    activation on the first card (``held_back``)."""
    sub = subscribe("AGRICULTURE", devices=["smartcard", "stb", "smartcard", "stb"])
    first, second = sub.installed_items.filter(kind="smartcard").order_by("pk")
    pending = sub.provisioning_requests.order_by("pk")
    held_back = pending.get(operation="activate", installed_item=first)
    record_answers([Answer(r.pk, True) for r in pending.exclude(pk=held_back.pk)])
    return SimpleNamespace(sub=sub, first=first, second=second, held_back=held_back)


def _deactivation(sub, card) -> Req:
    return sub.provisioning_requests.get(operation="deactivate", installed_item=card)


def test_an_activation_and_a_later_deactivation_together_leave_an_off_service_unauthorized(
    two_cards,
):
    t = two_cards
    service = t.sub.services.get()
    actions.stop_service(service)
    outcomes = record_answers(
        [Answer(t.held_back.pk, True), Answer(_deactivation(t.sub, t.second).pk, True)]
    )
    assert [o.result for o in outcomes] == [APPLIED, APPLIED]
    service.refresh_from_db()
    assert (service.state, service.authorized) == (SubscriptionService.State.NOT_EFFECTIVE, False)


def test_a_service_on_again_stays_authorized_when_its_old_deactivation_is_answered(two_cards):
    t = two_cards
    service = t.sub.services.get()
    actions.stop_service(service)
    deactivation = _deactivation(t.sub, t.second)
    actions.start_service(service)
    record_answers([Answer(t.held_back.pk, True), Answer(deactivation.pk, True)])
    service.refresh_from_db()
    assert (service.state, service.authorized) == (SubscriptionService.State.EFFECTIVE, True)


def test_an_unknown_request_in_a_batch_leaves_every_request_as_it_was(two_cards):
    t = two_cards
    missing = Req.objects.order_by("-pk").values_list("pk", flat=True).first() + 1000
    with pytest.raises(UnknownRequests) as error:
        record_answers([Answer(t.held_back.pk, True), Answer(missing, True)])
    assert error.value.keys == [missing]
    t.held_back.refresh_from_db()
    assert (t.held_back.state, t.held_back.answered_at) == (Req.State.PENDING, None)


def test_a_conflict_in_a_batch_is_refused_before_anything_is_written(two_cards):
    t = two_cards
    service = t.sub.services.get()
    actions.stop_service(service)
    rejected = _deactivation(t.sub, t.second)
    record_answers([Answer(rejected.pk, False, "E1", "No such card")])
    with pytest.raises(AnswerConflict) as error:
        record_answers([Answer(t.held_back.pk, True), Answer(rejected.pk, True)])
    assert str(error.value) == (
        f"Request {rejected.uid} is already Rejected; it cannot also be Completed."
    )
    t.held_back.refresh_from_db()
    assert (t.held_back.state, t.held_back.answered_at) == (Req.State.PENDING, None)


def test_the_same_request_twice_in_a_batch_is_applied_once_with_the_first_answer(two_cards):
    t = two_cards
    outcomes = record_answers(
        [
            Answer(t.held_back.pk, True, response={"request_id": "first"}),
            Answer(t.held_back.pk, True, response={"request_id": "second"}),
        ]
    )
    assert [(o.state, o.result) for o in outcomes] == [
        (Req.State.COMPLETED, APPLIED),
        (Req.State.COMPLETED, ALREADY_DONE),
    ]
    t.held_back.refresh_from_db()
    assert t.held_back.response == {"request_id": "first"}
    assert t.sub.services.get().authorized


def test_an_acceptance_keeps_its_code_and_response_and_a_plain_one_changes_neither(two_cards):
    t = two_cards
    actions.stop_service(t.sub.services.get())
    coded, plain = _deactivation(t.sub, t.first), _deactivation(t.sub, t.second)
    Req.objects.filter(pk=plain.pk).update(error_code="W7", response={"kept": True})
    record_answers(
        [Answer(coded.pk, True, "W1", response={"duplicate": True}), Answer(plain.pk, True)]
    )
    coded.refresh_from_db()
    plain.refresh_from_db()
    assert (coded.state, coded.error_code, coded.response) == (
        Req.State.COMPLETED,
        "W1",
        {"duplicate": True},
    )
    assert (plain.state, plain.error_code, plain.response) == (
        Req.State.COMPLETED,
        "W7",
        {"kept": True},
    )
    assert coded.answered_at is not None and plain.answered_at is not None
