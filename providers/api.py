"""Web API for providers, distributors and provisioning requests.

Providers and distributors are validated by their models' ``full_clean`` (a provider's
connection settings and operation parameters by its type's forms too, through
``provider_settings.full_clean``), so the API accepts exactly what the back office accepts.
Requests are read-only: the system creates them; an operator may only send a Failed one again
(``retry``).
"""

import copy

import django_filters
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import transaction
from django.db.models import Q
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import mixins, serializers, status
from rest_framework.decorators import action
from rest_framework.response import Response

from catalogue.models import Distributor, Provider, provider_types
from core import api_query
from core.api_permissions import (
    ApiViewSet,
    ErrorSerializer,
    ServiceRefused,
    choice_field,
    field_errors,
)
from core.api_serializers import JsonTypes

from . import delivery, history, idempotency, provider_settings, registry, sealed
from .models import ProvisioningRequest

Req = ProvisioningRequest


class FullCleanSerializer(JsonTypes, serializers.ModelSerializer):
    """Runs the model's ``full_clean`` on the would-be object; its errors come back per field
    and what it cleaned (e.g. a provider's settings with their defaults) is what is saved."""

    def validate(self, attrs):
        model = self.Meta.model
        instance = copy.copy(self.instance) if self.instance else model()
        plain = {k: v for k, v in attrs.items() if not model._meta.get_field(k).many_to_many}
        for name, value in plain.items():
            setattr(instance, name, value)
        try:
            self.full_clean(instance)
        except DjangoValidationError as error:
            raise field_errors(error) from None
        for name in plain:
            attrs[name] = getattr(instance, name)
        return attrs

    def full_clean(self, instance) -> None:
        instance.full_clean()


class ProviderSerializer(FullCleanSerializer):
    type = serializers.ChoiceField(choices=provider_types())
    provisioning_model = serializers.SerializerMethodField()
    connection = serializers.DictField(
        required=False,
        help_text="Connection settings of the provider's type; secrets by variable name only.",
    )
    parameters = serializers.DictField(
        required=False, help_text="Operation parameters of the provider's type."
    )

    class Meta:
        model = Provider
        fields = [
            "id",
            "name",
            "type",
            "provisioning_model",
            "enabled",
            "connection",
            "parameters",
            "external_system",
            "created_at",
            "updated_at",
        ]

    def full_clean(self, instance) -> None:
        provider_settings.full_clean(instance)

    @extend_schema_field(serializers.CharField())
    def get_provisioning_model(self, provider) -> str:
        return registry.adapter_class(provider.type).model


class DistributorSerializer(FullCleanSerializer):
    class Meta:
        model = Distributor
        fields = ["id", "provider", "code", "name", "allowed_products", "required_distributor"]


class MaskedJSONField(serializers.JSONField):
    """A request's parameters or response as shown: every PIN masked (``sealed.masked``)."""

    def __init__(self, **kwargs):
        super().__init__(read_only=True, **kwargs)

    def to_representation(self, value):
        return super().to_representation(sealed.masked(value))


class ProvisioningRequestSerializer(serializers.ModelSerializer):
    parameters = MaskedJSONField()
    response = MaskedJSONField(allow_null=True)
    subscription_number = serializers.CharField(
        source="subscription.number", default=None, read_only=True
    )
    distributor_code = serializers.CharField(
        source="distributor.code", default=None, read_only=True
    )
    card_ca_id = serializers.CharField(source="installed_item.ca_id", default=None, read_only=True)
    # Every device the request concerns: a request to one card keeps no item row for it.
    items = serializers.ListField(
        source="device_ids", child=serializers.IntegerField(), read_only=True
    )
    priority = serializers.SerializerMethodField()
    state = choice_field("RequestState", Req.State.choices, read_only=True)
    trigger = choice_field("RequestTrigger", Req.Trigger.choices, read_only=True)

    class Meta:
        model = Req
        fields = [
            "id",
            "uid",
            "command",
            "operation",
            "ca_id",
            "parameters",
            "provider",
            "distributor",
            "distributor_code",
            "subscription",
            "subscription_number",
            "service",
            "installed_item",
            "card_ca_id",
            "items",
            "priority",
            "trigger",
            "trigger_name",
            "state",
            "attempts",
            "next_attempt_at",
            "last_error",
            "error_code",
            "response",
            "process_run",
            "created_by",
            "created_at",
            "updated_at",
            "sent_at",
            "answered_at",
        ]
        read_only_fields = fields

    def get_priority(self, obj) -> str:
        return "express" if obj.priority == Req.Priority.EXPRESS else "normal"


def with_relations(queryset):
    return queryset.select_related(
        "subscription", "distributor", "installed_item"
    ).prefetch_related("items")


# --- Viewsets ---------------------------------------------------------------------------------


class ProviderViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    ApiViewSet,
):
    """Providers: read by every role; set up by those allowed to (operators, administrators)."""

    queryset = Provider.objects.all()
    serializer_class = ProviderSerializer
    filterset_fields = ["type", "enabled"]
    read_permission = "catalogue.view_provider"
    write_permissions = {
        "create": "catalogue.add_provider",
        "update": "catalogue.change_provider",
        "partial_update": "catalogue.change_provider",
    }

    # Each write and its line in the provider's History page (providers.history) commit together.
    @transaction.atomic
    def perform_create(self, serializer):
        serializer.save()
        history.record(self.request.user, serializer.instance, None)

    @transaction.atomic
    def perform_update(self, serializer):
        before = history.snapshot(serializer.instance)
        serializer.save()
        history.record(self.request.user, serializer.instance, before)


class DistributorViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    ApiViewSet,
):
    queryset = Distributor.objects.prefetch_related("allowed_products")
    serializer_class = DistributorSerializer
    filterset_fields = ["provider", "code"]
    read_permission = "catalogue.view_distributor"
    write_permissions = {
        "create": "catalogue.add_distributor",
        "update": "catalogue.change_distributor",
        "partial_update": "catalogue.change_distributor",
    }


class RequestFilter(api_query.FilterSet):
    provider = api_query.IdFilter()
    state = django_filters.ChoiceFilter(choices=Req.State.choices)
    command = django_filters.CharFilter()
    operation = django_filters.ChoiceFilter(choices=Req.Operation.choices)
    subscription = api_query.IdFilter()
    subscription_number = django_filters.CharFilter(field_name="subscription__number")
    card = django_filters.CharFilter(
        method="filter_card", label="Serial number or CA ID of the card (or device) addressed"
    )
    created_after = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = Req
        fields = []

    def filter_card(self, queryset, name, value):
        return queryset.filter(
            Q(installed_item__serial_number=value) | Q(installed_item__ca_id=value)
        )


class ProvisioningRequestViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ApiViewSet):
    """Provisioning requests, newest first. Read-only: the system creates them."""

    queryset = with_relations(Req.objects.all())
    serializer_class = ProvisioningRequestSerializer
    filterset_class = RequestFilter
    read_permission = "providers.view_provisioningrequest"
    write_permissions = {"retry": "providers.retry_provisioningrequest"}

    @extend_schema(
        request=None,
        responses={200: ProvisioningRequestSerializer, 422: ErrorSerializer},
        parameters=[idempotency.PARAMETER],
        summary="Send a Failed request again",
    )
    @action(detail=True, methods=["post"])
    def retry(self, request, pk=None):
        req = self.get_object()

        def work():
            if delivery.retry(Req.objects.filter(pk=req.pk)) == 0:
                raise ServiceRefused(
                    f"Request {req.pk} is {req.get_state_display()}; only a Failed request "
                    "can be retried.",
                    "not_failed",
                )
            fresh = with_relations(Req.objects.all()).get(pk=req.pk)
            return Response(self.get_serializer(fresh).data, status=status.HTTP_200_OK)

        return idempotency.once(request, work)
