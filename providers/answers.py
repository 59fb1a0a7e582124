"""Answers from a platform: a request accepted or rejected, applied exactly once.

Accepted → ``Completed`` and the provider state updated (a service authorized, a device
initialized). Rejected → ``Rejected`` with the reason, and the change the request carried rolled
back through the action layer, so the rollback is itself recorded on the subscription. The same
answer twice is applied once and then reported as already done; a different answer to a request
already answered is a conflict.
"""

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from subscriptions import actions
from subscriptions.models import InstalledItem, SubscriptionService

from .models import ProvisioningRequest

State = ProvisioningRequest.State
Op = ProvisioningRequest.Operation

APPLIED = "applied"
ALREADY_DONE = "already_done"


class AnswerConflict(Exception):
    def __init__(self, request: ProvisioningRequest, wanted: str):
        self.request = request
        super().__init__(
            f"Request {request.uid} is already {request.get_state_display()}; "
            f"it cannot also be {State(wanted).label}."
        )


@dataclass(frozen=True)
class Outcome:
    request: ProvisioningRequest
    result: str  # APPLIED or ALREADY_DONE


@dataclass(frozen=True)
class Answer:
    """One platform answer to one request (by its primary key)."""

    request_id: int
    accepted: bool
    error_code: str = ""
    error_description: str = ""
    response: dict | None = None


FINISHED = (State.COMPLETED, State.REJECTED, State.ARCHIVED)


def record_answer(
    request: ProvisioningRequest,
    *,
    accepted: bool,
    error_code: str = "",
    error_description: str = "",
    response: dict | None = None,
) -> Outcome:
    """Apply one answer. Runs in the caller's transaction if there is one."""
    answer = Answer(request.pk, accepted, error_code, error_description, response)
    return record_answers([answer])[0]


def record_answers(answers: Sequence[Answer]) -> list[Outcome]:
    """Apply many answers at once, in one transaction, with a handful of statements whatever
    their number (a connector answers a thousand requests per call). One outcome per answer,
    in order; the same request answered twice alike is applied once. A conflicting answer
    raises ``AnswerConflict`` before anything is written."""
    if not answers:
        return []
    with transaction.atomic():
        ids = sorted({a.request_id for a in answers})
        # Locked in id order, so two callers answering overlapping sets cannot deadlock.
        locked = {
            r.pk: r
            for r in ProvisioningRequest.objects.select_for_update()
            .filter(pk__in=ids)
            .order_by("pk")
        }
        now = timezone.now()
        outcomes: list[Outcome] = []
        applied: dict[int, ProvisioningRequest] = {}
        for answer in answers:
            request = locked.get(answer.request_id)
            if request is None:
                raise ProvisioningRequest.DoesNotExist(f"No request {answer.request_id}.")
            wanted = State.COMPLETED if answer.accepted else State.REJECTED
            if request.state in FINISHED:
                if request.state != wanted:
                    raise AnswerConflict(request, wanted)
                outcomes.append(Outcome(request, ALREADY_DONE))
                continue
            request.state = wanted
            request.answered_at = now
            request.updated_at = now
            request.error_code = answer.error_code[:60]
            if not answer.accepted:
                request.last_error = answer.error_description
            if answer.response is not None:
                request.response = answer.response
            applied[request.pk] = request
            outcomes.append(Outcome(request, APPLIED))
        _save(list(applied.values()), now)
        accepted = [r for r in applied.values() if r.state == State.COMPLETED]
        _apply_acceptances(accepted, now)
        for request in applied.values():
            if request.state == State.REJECTED:
                _roll_back(request)  # rare, and it goes through the action layer
        return outcomes


def _save(requests: list[ProvisioningRequest], now) -> None:
    # The common answer (accepted, nothing more to keep) is one UPDATE for the lot.
    plain = [r.pk for r in requests if r.state == State.COMPLETED and not r.error_code]
    plain_ids = set(plain)
    if plain:
        ProvisioningRequest.objects.filter(pk__in=plain).update(
            state=State.COMPLETED, answered_at=now, updated_at=now
        )
    plain_with_response = [r for r in requests if r.pk in plain_ids and r.response]
    rest = [r for r in requests if r.pk not in plain_ids]
    if plain_with_response:
        ProvisioningRequest.objects.bulk_update(plain_with_response, ["response"])
    if rest:
        ProvisioningRequest.objects.bulk_update(
            rest, ["state", "answered_at", "error_code", "last_error", "response", "updated_at"]
        )


def _apply_acceptances(requests: list[ProvisioningRequest], now) -> None:
    """The provider holds what the accepted requests asked for: set-based, by operation.
    Activations before deactivations, the order in which a provider received them."""
    by_op: dict[str, list[ProvisioningRequest]] = defaultdict(list)
    for request in requests:
        by_op[request.operation].append(request)
    activated = [r.service_id for r in by_op[Op.ACTIVATE] if r.service_id]
    if activated:
        SubscriptionService.objects.filter(pk__in=activated).update(
            authorized=True, authorization_date=now
        )
    deactivated = by_op[Op.DEACTIVATE]
    if deactivated:
        # A device taken away: once its services are cancelled the provider may forget it.
        InstalledItem.objects.filter(
            pk__in=[r.installed_item_id for r in deactivated if r.installed_item_id],
            removed_at__isnull=False,
        ).update(initialized=False)
        SubscriptionService.objects.filter(
            pk__in=[r.service_id for r in deactivated if r.service_id]
        ).exclude(state__in=SubscriptionService.ON_STATES).update(
            authorized=False, authorization_date=now, updated_at=now
        )
    paired = [r.pk for r in by_op[Op.CREATE_PAIRING] + by_op[Op.ADD_TO_PAIRING]]
    if paired:
        Through = ProvisioningRequest.items.through
        InstalledItem.objects.filter(
            pk__in=Through.objects.filter(provisioningrequest_id__in=paired).values(
                "installeditem_id"
            )
        ).update(initialized=True)


def _roll_back(request: ProvisioningRequest) -> None:
    reason = f"Request {request.uid} ({request.command}) rejected"
    if request.error_code or request.last_error:
        reason += f": {request.error_code} {request.last_error}".rstrip()
    service_id = request.rollback.get("switch_off_service")
    if service_id:
        service = SubscriptionService.objects.filter(pk=service_id).first()
        if service is not None:
            actions.switch_off_rejected_service(service, reason=reason)
    # A rejected pairing leaves its devices not initialized, which they already are; a
    # rejected deactivation leaves the service authorized, so the next reset tries again.
