"""Utilities in the Web API: the same declarations as the agent screens, as endpoints."""

from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from catalogue.models import Provider
from core.api_errors import Conflict
from core.api_permissions import ErrorAwareSchema, RolePermission
from providers.api import MaskedJSONField
from providers.extensions import UtilityError
from providers.models import ProvisioningRequest
from subscriptions.models import Subscription

from . import services
from .registry import every, for_subscription, get


class UtilityView(APIView):
    """Agents (whoever may perform actions) list and run utilities; connectors may not."""

    permission_classes = [RolePermission]

    def permission_for(self, request) -> str:
        return "subscriptions.perform_actions"


class UtilityOut(serializers.Serializer):
    code = serializers.CharField()
    name = serializers.CharField()
    description = serializers.CharField()
    provider = serializers.IntegerField()
    provider_name = serializers.CharField()
    fields = serializers.ListField(child=serializers.CharField())
    may_be_express = serializers.BooleanField()
    may_process_immediately = serializers.BooleanField()


class UtilityRequestOut(serializers.ModelSerializer):
    parameters = MaskedJSONField()
    state = serializers.CharField(source="get_state_display")
    priority = serializers.CharField(source="get_priority_display")

    class Meta:
        model = ProvisioningRequest
        fields = ["id", "uid", "command", "ca_id", "priority", "state", "parameters"]


class RunIn(serializers.Serializer):
    subscription = serializers.PrimaryKeyRelatedField(queryset=Subscription.objects.all())
    provider = serializers.PrimaryKeyRelatedField(queryset=Provider.objects.all())
    priority = serializers.ChoiceField(choices=["NORMAL", "EXPRESS"], default="NORMAL")
    process_immediately = serializers.BooleanField(default=True)
    fields = serializers.DictField(
        required=False,
        default=dict,
        help_text="The utility's form: its fields by name (each utility's are listed under "
        "`code`).",
    )


class RunUtilitySchema(ErrorAwareSchema):
    """The ``code`` in the path: one of the installed utilities, each listed with its form's
    fields (read when the schema is made, so that every adapter's utilities are there)."""

    def get_override_parameters(self):
        utilities = every()
        listed = "\n".join(
            f"- `{u.code}` ({u.name}): "
            + (", ".join(f"`{name}`" for name in u.form.base_fields) or "no fields")
            for u in utilities
        )
        return [
            *super().get_override_parameters(),
            OpenApiParameter(
                "code",
                str,
                OpenApiParameter.PATH,
                enum=[u.code for u in utilities],
                description=f"The utility, and the fields its form takes:\n\n{listed}",
            ),
        ]


class UtilitiesView(UtilityView):
    @extend_schema(
        parameters=[OpenApiParameter("subscription", int, required=True)],
        responses=UtilityOut(many=True),
    )
    def get(self, request):
        """The utilities a subscription's providers offer."""
        try:
            sub = Subscription.objects.get(pk=int(request.query_params.get("subscription", "")))
        except (ValueError, Subscription.DoesNotExist):
            raise ValidationError({"subscription": ["Give the id of a subscription."]}) from None
        rows = [
            {
                "code": u.code,
                "name": u.name,
                "description": u.description,
                "provider": p.pk,
                "provider_name": p.name,
                "fields": list(u.form.base_fields),
                "may_be_express": u.may_be_express,
                "may_process_immediately": u.may_process_immediately,
            }
            for p, u in for_subscription(sub)
        ]
        return Response(UtilityOut(rows, many=True).data)


class RunUtilityView(UtilityView):
    schema = RunUtilitySchema()

    @extend_schema(
        request=RunIn,
        responses={
            201: inline_serializer(
                "UtilityOutcome",
                {
                    "message": serializers.CharField(),
                    "requests": UtilityRequestOut(many=True),
                    "columns": serializers.ListField(child=serializers.CharField()),
                    "rows": serializers.ListField(child=serializers.ListField()),
                    "tables": inline_serializer(
                        "UtilityAnswerTable",
                        {
                            "heading": serializers.CharField(),
                            "columns": serializers.ListField(child=serializers.CharField()),
                            "rows": serializers.ListField(child=serializers.ListField()),
                        },
                        many=True,
                    ),
                },
            )
        },
    )
    def post(self, request, code: str):
        """Run a utility on one subscription at one provider."""
        if get(code) is None:
            raise ValidationError({"code": [f"No utility '{code}'."]})
        body = RunIn(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        try:
            outcome = services.run(
                code,
                subscription=data["subscription"],
                provider=data["provider"],
                data=data["fields"],
                user=request.user,
                express=data["priority"] == "EXPRESS",
                process_immediately=data["process_immediately"],
            )
        except DjangoValidationError as exc:
            raise ValidationError({"fields": exc.message_dict}) from None
        except UtilityError as exc:
            raise Conflict(str(exc)) from None
        return Response(
            {
                "message": outcome.message,
                "requests": UtilityRequestOut(outcome.requests, many=True).data,
                "columns": list(outcome.columns),
                "rows": [list(r) for r in outcome.rows],
                "tables": [
                    {
                        "heading": t.heading,
                        "columns": list(t.columns),
                        "rows": [list(r) for r in t.rows],
                    }
                    for t in outcome.tables
                ],
            },
            status=status.HTTP_201_CREATED,
        )
