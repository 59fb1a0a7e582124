"""Requests sent in the process that makes them, for an agent who waits for the answer (a query
of what the platform holds: Conax WS's Get Conax information, Irdeto's Query secure client).

The request is recorded like any other, and claimed as the worker claims one (lease, attempt)
in the transaction that creates it, so no worker sends it as well; its answer is recorded as
the worker records one. A platform that does not answer: the request is Failed with the reason
(an agent asks again rather than waiting for a retry), and ``TransportError`` raised.
"""

from collections.abc import Callable

from django.db import transaction
from django.utils import timezone

from . import delivery, engine, registry
from .answers import record_answer
from .models import ProvisioningRequest

Req = ProvisioningRequest


def create(provider, command: str, parameters: dict, **how) -> Req:
    """A request (``engine.create_request``'s ``how``), claimed for this process."""
    now = timezone.now()
    with transaction.atomic():
        request = engine.create_request(provider, command, parameters, deliver_now=False, **how)
        Req.objects.filter(pk=request.pk).update(
            next_attempt_at=now + delivery.lease(), attempts=1, sent_at=now
        )
    return request


def send(request: Req, send: Callable[[Req], registry.Answer]) -> registry.Answer:
    """Send a request ``create`` made with ``send`` and record its answer."""
    try:
        answer = send(request)
    except registry.TransportError as error:
        delivery.fail(request, f"Attempt 1 failed: {error}")
        raise
    record_answer(
        request,
        accepted=answer.accepted,
        error_code=answer.error_code,
        error_description=answer.error_description,
        response=answer.response,
    )
    request.refresh_from_db()
    return answer
