"""The Generic provider's Web API: *Get Pending* and *Send Response*.

A connector authenticates with its provider's token, reads Pending requests page by page
(reading changes nothing: a request stays Pending until it is answered) and posts answers.
"""

from typing import NoReturn

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import permissions, serializers
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from catalogue.models import Provider
from core.api_errors import Conflict
from core.api_permissions import ErrorAwareSchema
from providers.answers import Answer, AnswerConflict, UnknownRequests, record_answers
from providers.authentication import Connector
from providers.models import ProvisioningRequest

from .pending import decode_cursor, pending_page
from .responses import SendResponseIn, read_answers

MAX_PAGE = 1000
Req = ProvisioningRequest


class IsConnector(permissions.BasePermission):
    """Connector tokens only. Their answers are the platform's word (a rejection rolls a
    subscription back) and reading Pending is the platform's queue: no person, administrators
    included, answers in its name by session; one who must stands in with a connector token of
    the provider, issued and revoked in the back office."""

    message = "Only a connector token of a Generic provider may use this."

    def has_permission(self, request, view) -> bool:
        return isinstance(request.user, Connector)


def provider_for(request, provider_id: int | None) -> Provider:
    """The connector's own provider; naming another is refused."""
    connector = request.user
    if provider_id is not None and provider_id != connector.provider_id:
        raise PermissionDenied("This token is for another provider's requests.")
    return connector.token.provider


def _provider_param(request) -> int | None:
    value = request.query_params.get("provider")
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        raise ValidationError({"provider": ["A valid integer is required."]}) from None


# --- Get Pending ----------------------------------------------------------------------------


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


class PendingView(APIView):
    permission_classes = [IsConnector]
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


class AnswerResultOut(serializers.Serializer):
    request = serializers.UUIDField()
    result = serializers.CharField(help_text="What the answer did to the request.")
    state = serializers.CharField(help_text="The request's state now, e.g. COMPLETED.")


class SendResponseOut(serializers.Serializer):
    """Schema only: the answer to Send Response."""

    results = AnswerResultOut(many=True)


class ResponsesView(APIView):
    permission_classes = [IsConnector]
    schema = ErrorAwareSchema()

    @extend_schema(
        operation_id="generic_responses",
        request=SendResponseIn,
        responses={200: SendResponseOut},
        parameters=[
            OpenApiParameter(
                "provider",
                int,
                description="Optional: the token's own provider's id (another is refused).",
            )
        ],
        summary="Send Response: the platform's answers to requests",
        tags=["generic"],
    )
    def post(self, request):
        answers = read_answers(request.data)
        provider = provider_for(request, _provider_param(request))
        errors, seen = {}, {}
        for index, answer in enumerate(answers):
            uid = answer["request"]
            if uid in seen and seen[uid] != answer["status"]:
                errors[index] = {"status": ["This request is answered twice, differently."]}
            seen[uid] = answer["status"]
        if errors:  # named with the unknown requests, if there are any as well
            _refuse(answers, provider, errors, _unknown(provider, seen))
        try:
            # All answers or none: a conflict anywhere leaves every request as it was. The
            # requests are found by uid among the provider's as they are locked.
            outcomes = record_answers(
                [
                    Answer(
                        a["request"],
                        accepted=a["status"] == "ACCEPTED",
                        error_code=a["error_code"],
                        error_description=a["error_description"],
                        response=a.get("response"),
                    )
                    for a in answers
                ],
                provider=provider,
            )
        except UnknownRequests as unknown:
            _refuse(answers, provider, errors, unknown.keys)
        except AnswerConflict as conflict:
            raise Conflict(str(conflict)) from None
        results = [
            {"request": str(o.uid), "result": o.result, "state": o.state.upper()} for o in outcomes
        ]
        return Response({"results": results})


def _unknown(provider: Provider, uids) -> list:
    known = set(Req.objects.filter(provider=provider, uid__in=uids).values_list("uid", flat=True))
    return [uid for uid in uids if uid not in known]


def _refuse(answers: list[dict], provider: Provider, errors: dict, unknown) -> NoReturn:
    """A 400 naming each bad answer by its position."""
    unknown = set(unknown)
    for index, answer in enumerate(answers):
        if answer["request"] in unknown:
            uid = answer["request"]
            errors[index] = {"request": [f"No request {uid} for provider {provider.name}."]}
    raise ValidationError({"responses": [errors.get(i, {}) for i in range(len(answers))]})
