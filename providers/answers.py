"""Answers from a platform: a request accepted or rejected, applied exactly once.

Accepted → ``Completed`` and the provider state updated (a service authorized, a device
initialized). Rejected → ``Rejected`` with the reason, and the change the request carried rolled
back through the action layer, so the rollback is itself recorded on the subscription. The same
answer twice is applied once and then reported as already done; a different answer to a request
already answered is a conflict.
"""

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


def record_answer(
    request: ProvisioningRequest,
    *,
    accepted: bool,
    error_code: str = "",
    error_description: str = "",
    response: dict | None = None,
) -> Outcome:
    """Apply one answer. Runs in the caller's transaction if there is one."""
    wanted = State.COMPLETED if accepted else State.REJECTED
    with transaction.atomic():
        request = ProvisioningRequest.objects.select_for_update().get(pk=request.pk)
        if request.state in (State.COMPLETED, State.REJECTED, State.ARCHIVED):
            if request.state == wanted:
                return Outcome(request, ALREADY_DONE)
            raise AnswerConflict(request, wanted)
        now = timezone.now()
        request.state = wanted
        request.answered_at = now
        request.error_code = error_code[:60]
        request.last_error = error_description if not accepted else request.last_error
        if response is not None:
            request.response = response
        request.save(
            update_fields=[
                "state",
                "answered_at",
                "error_code",
                "last_error",
                "response",
                "updated_at",
            ]
        )
        if accepted:
            _apply_acceptance(request, now)
        else:
            _roll_back(request)
        return Outcome(request, APPLIED)


def _apply_acceptance(request: ProvisioningRequest, now) -> None:
    if request.operation == Op.ACTIVATE and request.service_id:
        SubscriptionService.objects.filter(pk=request.service_id).update(
            authorized=True, authorization_date=now
        )
    elif request.operation == Op.DEACTIVATE:
        card = InstalledItem.objects.filter(pk=request.installed_item_id).first()
        if card is not None and not card.in_use:
            # A device taken away: once its services are cancelled the provider may forget it.
            card.initialized = False
            card.save(update_fields=["initialized"])
        service = SubscriptionService.objects.filter(pk=request.service_id).first()
        if service is not None and not service.is_on:
            service.authorized = False
            service.authorization_date = now
            service.save(update_fields=["authorized", "authorization_date", "updated_at"])
    elif request.operation in (Op.CREATE_PAIRING, Op.ADD_TO_PAIRING):
        InstalledItem.objects.filter(pk__in=request.items.values("pk")).update(initialized=True)


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
