"""*Send Response*'s body: a connector's answers, up to a thousand a call.

``SendResponseIn`` is the contract (and the schema). A thousand nested serializers cost more
than recording the answers, so ``read_answers`` first checks the common, plainly valid body by
hand; anything it is not sure of goes through the serializer, whose messages name the problem.
The hand check only ever accepts what the serializer accepts, and gives the same values.
"""

import uuid
from collections.abc import Mapping

from rest_framework import serializers

MAX_ANSWERS = 1000
STATUSES = ("ACCEPTED", "REJECTED")


class AnswerIn(serializers.Serializer):
    request = serializers.UUIDField(help_text="The request's uid, as Get Pending gave it.")
    status = serializers.ChoiceField(choices=list(STATUSES))
    error_code = serializers.CharField(max_length=60, required=False, allow_blank=True, default="")
    error_description = serializers.CharField(
        max_length=2000, required=False, allow_blank=True, default=""
    )
    response = serializers.JSONField(required=False, help_text="The platform's raw answer.")


class SendResponseIn(serializers.Serializer):
    responses = AnswerIn(many=True, allow_empty=False, max_length=MAX_ANSWERS)


def read_answers(data) -> list[dict]:
    """The answers as ``SendResponseIn`` validates them; raises its ``ValidationError``."""
    answers = _plainly_valid(data)
    if answers is None:
        body = SendResponseIn(data=data)
        body.is_valid(raise_exception=True)
        answers = body.validated_data["responses"]
    return answers


def _plainly_valid(data) -> list[dict] | None:
    """The answers, if the body is a JSON object whose every answer is plainly valid; else
    None (the serializer decides)."""
    if not isinstance(data, dict):
        return None
    items = data.get("responses")
    if not isinstance(items, list) or not 0 < len(items) <= MAX_ANSWERS:
        return None
    answers = []
    for item in items:
        if not isinstance(item, dict):
            return None
        request, status = item.get("request"), item.get("status")
        if not isinstance(request, str) or status not in STATUSES:
            return None
        try:
            uid = uuid.UUID(hex=request)
        except ValueError:
            return None
        error_code = _text(item, "error_code", 60)
        error_description = _text(item, "error_description", 2000)
        if error_code is None or error_description is None:
            return None
        answer = {
            "request": uid,
            "status": status,
            "error_code": error_code,
            "error_description": error_description,
        }
        if "response" in item:
            if item["response"] is None:
                return None  # "may not be null"
            answer["response"] = item["response"]
        answers.append(answer)
    return answers


def _text(item: Mapping, name: str, max_length: int) -> str | None:
    """A text field as ``CharField`` gives it (trimmed; "" if absent), or None if unsure."""
    if name not in item:
        return ""
    value = item[name]
    if not isinstance(value, str):
        return None
    value = value.strip()
    if len(value) > max_length or "\x00" in value:
        return None
    if not value.isascii() and any(0xD800 <= ord(c) <= 0xDFFF for c in value):
        return None  # a lone surrogate: refused by the serializer
    return value
