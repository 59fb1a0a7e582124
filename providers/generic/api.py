"""The Generic provider's Web API: *Get Pending* and *Send Response*.

A connector authenticates with its provider's token, reads Pending requests page by page
(reading changes nothing: a request stays Pending until it is answered) and posts answers.
"""

import base64
import binascii

from django.db.models import F, Min, Q, Window
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import permissions, serializers
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from crm_provisioning.api_errors import Conflict
from crm_provisioning.api_permissions import ErrorAwareSchema
from providers.answers import Answer, AnswerConflict, record_answers
from providers.authentication import Connector
from providers.models import Provider, ProvisioningRequest

MAX_PAGE = 1000
Req = ProvisioningRequest


class IsConnectorOrAdministrator(permissions.BasePermission):
    """Connector tokens, or people allowed to see provisioning requests."""

    def has_permission(self, request, view) -> bool:
        user = request.user
        if isinstance(user, Connector):
            return True
        return bool(user and user.is_authenticated and user.has_perm(view.person_permission))


def provider_for(request, provider_id: int | None) -> Provider:
    """The provider a call is about: a connector's own, or the one asked for by a person."""
    user = request.user
    if isinstance(user, Connector):
        if provider_id is not None and provider_id != user.provider_id:
            raise PermissionDenied("This token is for another provider's requests.")
        return user.token.provider
    if provider_id is None:
        raise ValidationError({"provider": ["This field is required."]})
    provider = Provider.objects.filter(pk=provider_id, type="generic").first()
    if provider is None:
        raise ValidationError({"provider": [f"No Generic provider with id {provider_id}."]})
    return provider


def _provider_param(request) -> int | None:
    value = request.query_params.get("provider")
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        raise ValidationError({"provider": ["A valid integer is required."]}) from None


# --- Get Pending ----------------------------------------------------------------------------


def encode_cursor(position: tuple[int, int, int]) -> str:
    return base64.urlsafe_b64encode(":".join(map(str, position)).encode()).decode()


def decode_cursor(value: str) -> tuple[int, int, int]:
    try:
        parts = base64.urlsafe_b64decode(value.encode()).decode().split(":")
        group_priority, group_first, request_id = (int(p) for p in parts)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise serializers.ValidationError("Invalid cursor.") from None
    return group_priority, group_first, request_id


class PendingQuery(serializers.Serializer):
    provider = serializers.IntegerField(required=False, min_value=1)
    command = serializers.CharField(required=False, max_length=60)
    page_size = serializers.IntegerField(
        required=False, min_value=1, max_value=MAX_PAGE, default=100
    )
    cursor = serializers.CharField(required=False, max_length=200)

    def validate_cursor(self, value):
        return decode_cursor(value)


class PendingRequestOut(serializers.ModelSerializer):
    priority = serializers.SerializerMethodField()
    subscription = serializers.CharField(
        source="subscription.number", default=None, allow_null=True
    )
    distributor = serializers.CharField(source="distributor.code", default=None, allow_null=True)
    card_ca_id = serializers.CharField(source="installed_item.ca_id", default=None, allow_null=True)

    class Meta:
        model = Req
        fields = [
            "uid",
            "id",
            "command",
            "priority",
            "created_at",
            "subscription",
            "distributor",
            "card_ca_id",
            "parameters",
        ]

    def get_priority(self, obj) -> str:
        return "EXPRESS" if obj.priority == Req.Priority.EXPRESS else "NORMAL"


class PendingPageOut(serializers.Serializer):
    """Schema only: one page of Get Pending."""

    results = PendingRequestOut(many=True)
    next_cursor = serializers.CharField(allow_null=True, help_text="Give it as ?cursor=.")
    next = serializers.URLField(allow_null=True, help_text="The next page's full address.")


PENDING_FIELDS = {
    "subscription_number": F("subscription__number"),
    "distributor_code": F("distributor__code"),
    "card_ca_id": F("installed_item__ca_id"),
}


def pending_page(provider: Provider, *, command=None, page_size=100, cursor=None):
    """One page of Pending requests: Express first, then oldest first, one subscription's
    requests together and in creation order. Returns (rows as ``PendingRequestOut`` gives
    them, next cursor or None)."""
    rows = Req.objects.filter(provider=provider, state=Req.State.PENDING)
    if command:
        rows = rows.filter(command=command)
    # A subscription's requests travel as a group: the group goes as early as its most urgent
    # and oldest request, so a later Express request never overtakes the same card's earlier one.
    group = {"partition_by": [F("subscription_id")]}
    rows = rows.annotate(
        group_priority=Window(Min("priority"), **group), group_first=Window(Min("id"), **group)
    )
    if cursor:
        gp, gf, last = cursor
        rows = rows.filter(
            Q(group_priority__gt=gp)
            | Q(group_priority=gp, group_first__gt=gf)
            | Q(group_priority=gp, group_first=gf, id__gt=last)
        )
    # The order is worked out on narrow rows (id and group keys) only; the page's own rows are
    # then read by id, as plain values: sorting every Pending request with its parameters and
    # joins, page after page, would cost a connector more than the requests themselves.
    keys = list(
        rows.order_by("group_priority", "group_first", "id").values_list(
            "id", "group_priority", "group_first"
        )[: page_size + 1]
    )
    by_id = {
        row["id"]: row
        for row in Req.objects.filter(pk__in=[k[0] for k in keys]).values(
            "uid", "id", "command", "priority", "created_at", "parameters", **PENDING_FIELDS
        )
    }
    page = [by_id[pk] | {"group_priority": gp, "group_first": gf} for pk, gp, gf in keys]
    more = len(page) > page_size
    page = page[:page_size]
    timestamp = serializers.DateTimeField().to_representation
    results = [
        {
            "uid": str(row["uid"]),
            "id": row["id"],
            "command": row["command"],
            "priority": "EXPRESS" if row["priority"] == Req.Priority.EXPRESS else "NORMAL",
            "created_at": timestamp(row["created_at"]),
            "subscription": row["subscription_number"],
            "distributor": row["distributor_code"],
            "card_ca_id": row["card_ca_id"],
            "parameters": row["parameters"],
        }
        for row in page
    ]
    if not more:
        return results, None
    tail = page[-1]
    return results, encode_cursor((tail["group_priority"], tail["group_first"], tail["id"]))


class PendingView(APIView):
    person_permission = "providers.view_provisioningrequest"
    permission_classes = [IsConnectorOrAdministrator]
    schema = ErrorAwareSchema()

    @extend_schema(
        operation_id="generic_pending",
        parameters=[PendingQuery],
        responses={200: PendingPageOut},
        summary="Get Pending: the provider's Pending requests, page by page",
        tags=["generic"],
    )
    def get(self, request):
        query = PendingQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        params = query.validated_data
        provider = provider_for(request, params.get("provider"))
        page, next_cursor = pending_page(
            provider,
            command=params.get("command"),
            page_size=params["page_size"],
            cursor=params.get("cursor"),
        )
        next_url = None
        if next_cursor:
            query_params = request.query_params.copy()
            query_params["cursor"] = next_cursor
            next_url = request.build_absolute_uri(f"{request.path}?{query_params.urlencode()}")
        return Response(
            {
                "results": page,
                "next_cursor": next_cursor,
                "next": next_url,
            }
        )


# --- Send Response ------------------------------------------------------------------------


class AnswerIn(serializers.Serializer):
    request = serializers.UUIDField(help_text="The request's uid, as Get Pending gave it.")
    status = serializers.ChoiceField(choices=["ACCEPTED", "REJECTED"])
    error_code = serializers.CharField(max_length=60, required=False, allow_blank=True, default="")
    error_description = serializers.CharField(
        max_length=2000, required=False, allow_blank=True, default=""
    )
    response = serializers.JSONField(required=False, help_text="The platform's raw answer.")


class SendResponseIn(serializers.Serializer):
    responses = AnswerIn(many=True, allow_empty=False, max_length=MAX_PAGE)


class AnswerResultOut(serializers.Serializer):
    request = serializers.UUIDField()
    result = serializers.CharField(help_text="What the answer did to the request.")
    state = serializers.CharField(help_text="The request's state now, e.g. COMPLETED.")


class SendResponseOut(serializers.Serializer):
    """Schema only: the answer to Send Response."""

    results = AnswerResultOut(many=True)


class ResponsesView(APIView):
    person_permission = "providers.view_provisioningrequest"
    permission_classes = [IsConnectorOrAdministrator]
    schema = ErrorAwareSchema()

    @extend_schema(
        operation_id="generic_responses",
        request=SendResponseIn,
        responses={200: SendResponseOut},
        parameters=[
            OpenApiParameter(
                "provider",
                int,
                description="The Generic provider's id; people only (a token knows its own).",
            )
        ],
        summary="Send Response: the platform's answers to requests",
        tags=["generic"],
    )
    def post(self, request):
        body = SendResponseIn(data=request.data)
        body.is_valid(raise_exception=True)
        answers = body.validated_data["responses"]
        provider = provider_for(request, _provider_param(request))
        by_uid = {
            r.uid: r
            for r in Req.objects.filter(provider=provider, uid__in=[a["request"] for a in answers])
        }
        errors, seen = {}, {}
        for index, answer in enumerate(answers):
            uid = answer["request"]
            if uid not in by_uid:
                errors[index] = {"request": [f"No request {uid} for provider {provider.name}."]}
            elif uid in seen and seen[uid] != answer["status"]:
                errors[index] = {"status": ["This request is answered twice, differently."]}
            seen[uid] = answer["status"]
        if errors:
            raise ValidationError({"responses": [errors.get(i, {}) for i in range(len(answers))]})
        try:
            # All answers or none: a conflict anywhere leaves every request as it was.
            outcomes = record_answers(
                [
                    Answer(
                        by_uid[a["request"]].pk,
                        accepted=a["status"] == "ACCEPTED",
                        error_code=a["error_code"],
                        error_description=a["error_description"],
                        response=a.get("response"),
                    )
                    for a in answers
                ]
            )
        except AnswerConflict as conflict:
            raise Conflict(str(conflict)) from None
        results = [
            {
                "request": str(o.request.uid),
                "result": o.result,
                "state": o.request.state.upper(),
            }
            for o in outcomes
        ]
        return Response({"results": results})
