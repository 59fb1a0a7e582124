"""One error shape for the whole Web API.

Every error response is ``{"error": {"code": ..., "message": ..., "fields": {...}}}``: ``code``
is stable for programs, ``message`` is for people, and ``fields`` (on validation errors) maps
each offending field — with its position in a list, e.g. ``responses[2].status`` — to its
messages.
"""

from django.core.exceptions import PermissionDenied
from django.db import DataError
from django.http import Http404, JsonResponse
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler


def error_response(status_code: int, code: str, message: str, fields=None) -> JsonResponse:
    """The error shape outside DRF's views: Django's own errors and the middleware's refusals
    under /api/."""
    body = {"code": code, "message": message}
    if fields:
        body["fields"] = fields
    return JsonResponse({"error": body}, status=status_code)


class Conflict(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_code = "conflict"
    default_detail = "The request conflicts with the current state."


def _flatten(detail, prefix: str = "") -> dict[str, list[str]]:
    """DRF's nested error detail as {"a.b[0].c": [messages]}."""
    fields: dict[str, list[str]] = {}
    if isinstance(detail, dict):
        for key, value in detail.items():
            if isinstance(key, int):  # a list serializer's errors, keyed by position
                name = f"{prefix}[{key}]"
            else:
                name = f"{prefix}.{key}" if prefix else str(key)
            if key == "non_field_errors":
                name = prefix or "non_field_errors"
            fields.update(_flatten(value, name))
    elif isinstance(detail, list):
        if all(isinstance(v, str) for v in detail):
            fields.setdefault(prefix or "non_field_errors", []).extend(str(v) for v in detail)
        else:
            for index, value in enumerate(detail):
                if value:
                    fields.update(_flatten(value, f"{prefix}[{index}]"))
    else:
        fields.setdefault(prefix or "non_field_errors", []).append(str(detail))
    return fields


class OutOfRange(exceptions.APIException):
    status_code = status.HTTP_400_BAD_REQUEST
    default_code = "out_of_range"
    default_detail = (
        "A number in the request is out of range: ids and counts are at most 9223372036854775807."
    )


def _out_of_range(exc) -> bool:
    """An id or number the database cannot hold (SQLite: OverflowError; PostgreSQL: "out of
    range" DataError): the caller's input, not a server fault."""
    if isinstance(exc, OverflowError):
        return True
    return isinstance(exc, DataError) and "out of range" in str(exc)


def handle(exc, context):
    if _out_of_range(exc):
        exc = OutOfRange()
    elif isinstance(exc, Http404):  # Django's, e.g. from get_object: DRF's, with its code
        exc = exceptions.NotFound(str(exc) or None)
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied(str(exc) or None)
    response = exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        fields = _flatten(exc.detail)
        first = next(iter(fields.items()), ("", ["Invalid input."]))
        message = f"{first[0]}: {first[1][0]}" if first[0] else first[1][0]
        body = {"code": "invalid", "message": message, "fields": fields}
    else:
        detail = exc.detail if isinstance(exc, exceptions.APIException) else str(exc)
        code = getattr(exc, "default_code", "error")
        if isinstance(detail, dict | list):
            body = {"code": code, "message": str(exc.default_detail), "fields": _flatten(detail)}
        else:
            body = {"code": getattr(detail, "code", code), "message": str(detail)}
    return Response({"error": body}, status=response.status_code, headers=response.headers)
