"""``Idempotency-Key`` for the Web API's POSTs that create something.

A client that is unsure whether its POST arrived sends it again with the same key. The first
time, the key is claimed by INSERTing an ``IdempotencyRecord`` in the transaction that does the
work, and the answer is stored in it; the transaction commits both or neither. A repeat with
the same body gets the stored answer (status and body) and does nothing; a repeat with another
body is refused (422), since the key already stands for a different request. A concurrent
repeat blocks on the unique index until the first commits, then finds its record.

Failures (4xx) are not stored: their transaction rolls back, the claim with it, and nothing was
created, so the same key may be used again once the request is corrected.
"""

import hashlib
import json
from collections.abc import Callable

from django.db import IntegrityError, transaction
from drf_spectacular.utils import OpenApiParameter
from rest_framework import exceptions, status
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response

from .models import IdempotencyRecord

HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 255

# For the schema of every operation that takes the header.
PARAMETER = OpenApiParameter(
    HEADER,
    type={"type": "string", "minLength": 1, "maxLength": MAX_KEY_LENGTH},
    location=OpenApiParameter.HEADER,
    required=False,
    description="Any unique string (e.g. a UUID). A repeat with the same key and body returns "
    "the first answer and does nothing; the same key with another body is refused (422).",
)


class KeyReused(exceptions.APIException):
    status_code = status.HTTP_422_UNPROCESSABLE_ENTITY
    default_code = "idempotency_key_reused"
    default_detail = "This Idempotency-Key was already used for a different request; use a new key."


class _Discard(Exception):
    """Leaves the transaction (and the claim) on a failed answer, carrying that answer out."""

    def __init__(self, response: Response):
        self.response = response


def _fingerprint(request) -> str:
    body = json.dumps(request.data, sort_keys=True, default=str)
    return hashlib.sha256(f"{request.method} {request.path}\n{body}".encode()).hexdigest()


def _replay(record: IdempotencyRecord, fingerprint: str) -> Response:
    if record.fingerprint != fingerprint or record.status_code is None:
        raise KeyReused()
    return Response(
        record.response, status=record.status_code, headers={"Idempotent-Replayed": "true"}
    )


def once(request, work: Callable[[], Response], *, atomic: bool = True) -> Response:
    """Run ``work`` (which returns the answer) at most once per key, in a transaction.

    ``atomic=False``: without a key, ``work`` runs as it is, for work that makes its own
    transaction (an action). Nesting it in one more made every real-time action pay a
    savepoint, and delayed its delivery's wake-up until the answer had been read."""
    key = request.headers.get(HEADER)
    if key is None:
        if not atomic:
            return work()
        with transaction.atomic():
            return work()
    if not key or len(key) > MAX_KEY_LENGTH:
        raise exceptions.ValidationError(
            {HEADER: [f"Give a key of 1 to {MAX_KEY_LENGTH} characters."]}
        )
    principal = f"user:{request.user.pk}"
    fingerprint = _fingerprint(request)
    existing = IdempotencyRecord.objects.filter(principal=principal, key=key).first()
    if existing is not None:
        return _replay(existing, fingerprint)
    try:
        with transaction.atomic():
            try:
                with transaction.atomic():
                    record = IdempotencyRecord.objects.create(
                        principal=principal,
                        key=key,
                        method=request.method,
                        path=request.path[:500],
                        fingerprint=fingerprint,
                    )
            except IntegrityError:
                # Claimed meanwhile by a concurrent repeat, which has committed by now.
                return _replay(
                    IdempotencyRecord.objects.get(principal=principal, key=key), fingerprint
                )
            response = work()
            if response.status_code >= 400:
                raise _Discard(response)
            record.status_code = response.status_code
            record.response = json.loads(JSONRenderer().render(response.data) or b"null")
            record.save(update_fields=["status_code", "response"])
            return response
    except _Discard as discarded:
        return discarded.response
