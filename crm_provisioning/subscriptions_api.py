"""Web API for subscriptions, their services and installed items, and the product catalogue.

It sits in the composition layer, above the providers: an action's answer carries the
provisioning requests the action made.

Every action is one endpoint that parses its input, calls the same function of
``subscriptions.actions`` the back office calls, and answers with the subscription as it now
is plus the provisioning requests the action created. An ``ActionError`` becomes the one
error shape: 409 when the subscription's current state refuses the action, 400 when the input
itself is wrong.
"""

from collections.abc import Callable
from dataclasses import asdict
from functools import cache

import django_filters
from django.db.models import Prefetch, Q
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import mixins, serializers, status
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.response import Response

from catalogue.models import Distributor, Product, SubscriptionType
from core import api_query
from core.api_permissions import (
    ApiViewSet,
    ErrorSerializer,
    ServiceRefused,
    choice_field,
)
from core.api_serializers import JsonTypes
from providers import fast_path, idempotency
from providers.api import ProvisioningRequestSerializer, with_relations
from providers.fast_path import action_answer
from providers.models import ProvisioningRequest
from subscriptions import actions
from subscriptions import history as subscription_history
from subscriptions import search as subscription_search
from subscriptions.actions import ActionError, ItemSpec
from subscriptions.models import (
    CustomerAccount,
    InstalledItem,
    Subscription,
    SubscriptionEvent,
    SubscriptionService,
)
from subscriptions.signals import ActionChange

PERFORM = "subscriptions.perform_actions"
# Where ``_detail_queryset`` puts a subscription's installed items in use.
ITEMS_IN_USE = "items_in_use"
LATEST_REQUESTS = 20

# ActionError codes that mean the input is wrong (400); every other code means the current
# state of the subscription, service or device refuses the action (409).
BAD_INPUT = frozenset(
    {
        "invalid",
        "invalid_item",
        "no_services",
        "same_distributor",
        "same_product",
        "product_not_allowed",
        "empty_bundle",
        "missing_ca_id",
    }
)


# --- Read serializers -------------------------------------------------------------------------


class ProductSerializer(JsonTypes, serializers.ModelSerializer):
    kind = choice_field("ProductKind", Product.Kind.choices, required=False)

    class Meta:
        model = Product
        fields = ["id", "code", "name", "kind", "service_type", "components"]


class ServiceSerializer(serializers.ModelSerializer):
    product_code = serializers.CharField(source="product.code", read_only=True)
    distributor_code = serializers.CharField(source="distributor.code", read_only=True)
    is_on = serializers.BooleanField(read_only=True)
    state = choice_field("ServiceState", SubscriptionService.State.choices, read_only=True)

    class Meta:
        model = SubscriptionService
        fields = [
            "id",
            "subscription",
            "product",
            "product_code",
            "distributor",
            "distributor_code",
            "state",
            "is_on",
            "swapped_from",
            "authorized",
            "authorization_date",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class InstalledItemSerializer(serializers.ModelSerializer):
    distributor_code = serializers.CharField(source="distributor.code", read_only=True)
    in_use = serializers.BooleanField(read_only=True)
    kind = choice_field("ItemKind", InstalledItem.Kind.choices, read_only=True)

    class Meta:
        model = InstalledItem
        fields = [
            "id",
            "subscription",
            "kind",
            "serial_number",
            "ca_id",
            "product_code",
            "description",
            "distributor",
            "distributor_code",
            "initialized",
            "in_use",
            "installed_at",
            "removed_at",
            "replaced_by",
        ]
        read_only_fields = fields


class SubscriptionSerializer(serializers.ModelSerializer):
    account_number = serializers.CharField(source="account.number", read_only=True)
    account_name = serializers.CharField(source="account.name", read_only=True)
    subscription_type = serializers.CharField(source="subscription_type.code", read_only=True)
    state = choice_field("SubscriptionState", Subscription.State.choices, read_only=True)

    class Meta:
        model = Subscription
        fields = [
            "id",
            "number",
            "account_number",
            "account_name",
            "subscription_type",
            "state",
            "created_at",
            "updated_at",
            "terminated_at",
        ]
        read_only_fields = fields


class SubscriptionStateSerializer(SubscriptionSerializer):
    """A subscription with its services and the devices in use: what an action answers with.
    Serializes subscriptions fetched by ``_detail_queryset``, which prefetches both."""

    services = ServiceSerializer(many=True, read_only=True)
    installed_items = InstalledItemSerializer(many=True, read_only=True, source=ITEMS_IN_USE)

    class Meta(SubscriptionSerializer.Meta):
        fields = [*SubscriptionSerializer.Meta.fields, "services", "installed_items"]
        read_only_fields = fields


class SubscriptionDetailSerializer(SubscriptionStateSerializer):
    """The subscription's page: its state and its latest provisioning requests."""

    latest_requests = serializers.SerializerMethodField()

    class Meta(SubscriptionStateSerializer.Meta):
        fields = [*SubscriptionStateSerializer.Meta.fields, "latest_requests"]
        read_only_fields = fields

    @extend_schema_field(ProvisioningRequestSerializer(many=True))
    def get_latest_requests(self, obj) -> list[dict]:
        requests = with_relations(obj.provisioning_requests.all())[:LATEST_REQUESTS]
        return ProvisioningRequestSerializer(requests, many=True).data


class ActionResultSerializer(serializers.Serializer):
    # Not the subscription's whole page: its request history is not what an action changed,
    # and serializing it on every action would cost a real-time action more than the action.
    subscription = SubscriptionStateSerializer()
    requests = ProvisioningRequestSerializer(many=True, help_text="What the action created.")
    provisioning = serializers.CharField(
        help_text="What the action did at the providers, in a sentence: the requests made, the "
        "batch provider whose run will send it, or that no provider was changed."
    )


# --- Action input -----------------------------------------------------------------------------


def _distributors():
    return Distributor.objects.select_related("provider")


class HistoryEntryOut(serializers.Serializer):
    """One event of a subscription's history, in words (``subscriptions.history``)."""

    id = serializers.IntegerField()
    at = serializers.DateTimeField()
    action = serializers.CharField(help_text="The action's code, e.g. `stop_service`.")
    action_label = serializers.CharField()
    changes = serializers.ListField(
        child=serializers.CharField(),
        help_text="What changed, a sentence each: `Service SPORT on MAIN off → on`, "
        "`Card 123 → 456`, `PIN reset on card 123 (Conax WS)`.",
    )
    by_kind = choice_field("HistorySource", SubscriptionEvent.Source.choices)
    by = serializers.CharField(
        help_text="Who did it: a person's user name, a run, a connector or the CA's answer."
    )
    reason = serializers.CharField()


class ReasonIn(JsonTypes, serializers.Serializer):
    reason = serializers.CharField(
        max_length=300, required=False, allow_blank=True, default="", help_text="For the audit."
    )


class ServiceIn(JsonTypes, serializers.Serializer):
    product = serializers.SlugRelatedField(slug_field="code", queryset=Product.objects.all())
    distributor = serializers.PrimaryKeyRelatedField(queryset=_distributors())


class ItemIn(JsonTypes, serializers.Serializer):
    kind = choice_field("ItemKind", InstalledItem.Kind.choices)
    serial_number = serializers.CharField(max_length=64)
    ca_id = serializers.CharField(max_length=64)
    distributor = serializers.PrimaryKeyRelatedField(queryset=_distributors())
    product_code = serializers.CharField(
        max_length=32, required=False, allow_blank=True, default=""
    )
    description = serializers.CharField(
        max_length=200, required=False, allow_blank=True, default=""
    )

    def spec(self, data) -> ItemSpec:
        return ItemSpec.from_data(data)


class BecomeSubscriberIn(ReasonIn):
    account = serializers.SlugRelatedField(
        slug_field="number", queryset=CustomerAccount.objects.all(), help_text="Account number."
    )
    subscription_type = serializers.SlugRelatedField(
        slug_field="code", queryset=SubscriptionType.objects.all()
    )
    number = serializers.CharField(
        max_length=32, required=False, help_text="Subscription number; given one if left out."
    )
    services = ServiceIn(many=True, allow_empty=False, max_length=50)
    items = ItemIn(many=True, required=False, default=list, max_length=20)

    def validate_number(self, value):
        if Subscription.objects.filter(number=value).exists():
            raise serializers.ValidationError(f"Subscription {value} already exists.")
        return value


class ChangeDistributionIn(ReasonIn):
    from_distributor = serializers.PrimaryKeyRelatedField(queryset=_distributors())
    to_distributor = serializers.PrimaryKeyRelatedField(queryset=_distributors())


class AddServiceIn(ReasonIn, ServiceIn):
    pass


class SwapServiceIn(ReasonIn):
    product = serializers.SlugRelatedField(
        slug_field="code", queryset=Product.objects.all(), help_text="The new product's code."
    )


class AddItemIn(ReasonIn, ItemIn):
    pass


class SwapItemIn(ReasonIn):
    serial_number = serializers.CharField(max_length=64)
    ca_id = serializers.CharField(max_length=64)
    product_code = serializers.CharField(
        max_length=32, required=False, allow_blank=True, default=""
    )
    description = serializers.CharField(
        max_length=200, required=False, allow_blank=True, default=""
    )


# --- Performing an action ---------------------------------------------------------------------


def _detail_queryset():
    services = SubscriptionService.objects.select_related("product", "distributor")
    in_use = InstalledItem.objects.filter(removed_at__isnull=True).select_related("distributor")
    return Subscription.objects.select_related("account", "subscription_type").prefetch_related(
        Prefetch("services", queryset=services),
        Prefetch("installed_items", queryset=in_use, to_attr=ITEMS_IN_USE),
    )


def action_result(change: ActionChange) -> dict:
    """What an action answers with: its subscription as it now is and the requests it made,
    as ``ActionResultSerializer`` represents them, read once the action has committed, by a
    fixed number of statements whatever the subscription or the database holds."""
    if fast_path.enabled():
        # The same bytes by one statement (ADR 0007).
        result = action_answer.action_result(change.subscription.pk, sorted(change.request_ids))
        return {**result, "provisioning": change.provisioning}
    subscription = _detail_queryset().get(pk=change.subscription.pk)
    requests = with_relations(ProvisioningRequest.objects.filter(pk__in=change.request_ids))
    return _action_result_serializer().to_representation(
        {
            "subscription": subscription,
            "requests": requests.order_by("id"),
            "provisioning": change.provisioning,
        }
    )


@cache
def _action_result_serializer() -> ActionResultSerializer:
    # One per process: a serializer builds its fields (and its nested serializers' fields)
    # from the models on first use, which on every action cost more than representing them.
    return ActionResultSerializer()


class ActionMixin:
    """Parse, authorize (``perform_actions``), call the action, answer with what it did."""

    def perform(
        self,
        request,
        input_class: type[serializers.Serializer],
        call: Callable[[dict], object],
        *,
        created: bool = False,
    ) -> Response:
        def work() -> Response:
            # Validated inside: a repeat is answered from its record before it is validated.
            body = input_class(data=request.data)
            body.is_valid(raise_exception=True)
            data = body.validated_data
            try:
                change = call(data)
            except ActionError as error:
                refused = status.HTTP_400_BAD_REQUEST if error.code in BAD_INPUT else 409
                raise ServiceRefused(error.message, error.code, refused) from None
            return Response(action_result(change), status=201 if created else 200)

        # Every action is one transaction of its own; the answer is read once it has committed.
        return idempotency.once(request, work, atomic=False)


def action_schema(input_class, summary: str, *, created: bool = False):
    return extend_schema(
        request=input_class,
        # 422: the Idempotency-Key was used before with another body.
        responses={201 if created else 200: ActionResultSerializer, 422: ErrorSerializer},
        parameters=[idempotency.PARAMETER],
        summary=summary,
    )


# --- Viewsets ---------------------------------------------------------------------------------


class SubscriptionFilter(api_query.FilterSet):
    number = django_filters.CharFilter()
    account = django_filters.CharFilter(field_name="account__number", label="Account number")
    state = django_filters.ChoiceFilter(choices=Subscription.State.choices)
    subscription_type = django_filters.CharFilter(
        field_name="subscription_type__code", label="Subscription type code"
    )
    created_after = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="lt")
    card = django_filters.CharFilter(
        method="filter_card", label="Serial number or CA ID of an installed item in use"
    )
    search = django_filters.CharFilter(
        method="filter_search",
        label=f"{subscription_search.HELP} At most {subscription_search.LIMIT} are listed.",
    )

    class Meta:
        model = Subscription
        fields = []

    def filter_card(self, queryset, name, value):
        items = InstalledItem.objects.filter(removed_at__isnull=True).filter(
            Q(serial_number=value) | Q(ca_id=value)
        )
        return queryset.filter(pk__in=items.values("subscription_id"))

    def filter_search(self, queryset, name, value):
        found = subscription_search.find(value)
        return queryset if found is None else queryset.filter(pk__in=found.subscription_ids)


def _transition_action(name: str, url_path: str, summary: str):
    function = getattr(actions, name)

    def view(self, request, pk=None):
        sub = self.get_object()
        return self.perform(
            request, ReasonIn, lambda d: function(sub, by=request.user, reason=d["reason"])
        )

    view.__name__ = name
    # extend_schema goes on the action, not under it, or the schema never sees it.
    return action_schema(ReasonIn, summary)(
        action(detail=True, methods=["post"], url_path=url_path)(view)
    )


class SubscriptionViewSet(
    ActionMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, ApiViewSet
):
    """Subscriptions and the subscription actions. Create = Become subscriber."""

    queryset = Subscription.objects.select_related("account", "subscription_type")
    filterset_class = SubscriptionFilter
    read_permission = "subscriptions.view_subscription"
    write_permission = PERFORM

    def get_queryset(self):
        if self.action == "history":
            return Subscription.objects.only("pk")
        if self.action == "retrieve" or self.action not in ("list", None):
            return _detail_queryset()
        return super().get_queryset()

    def get_serializer_class(self):
        return SubscriptionSerializer if self.action == "list" else SubscriptionDetailSerializer

    @action_schema(BecomeSubscriberIn, "Become subscriber", created=True)
    def create(self, request):
        def become(d):
            return actions.become_subscriber(
                d["account"],
                d["subscription_type"],
                [(s["product"], s["distributor"]) for s in d["services"]],
                [ItemIn().spec(i) for i in d["items"]],
                number=d.get("number"),
                by=request.user,
                reason=d["reason"],
            )

        return self.perform(request, BecomeSubscriberIn, become, created=True)

    activate = _transition_action("activate", "activate", "Activate")
    deactivate = _transition_action("deactivate", "deactivate", "Deactivate")
    terminate = _transition_action("terminate", "terminate", "Terminate")
    rest = _transition_action("rest", "rest", "Rest")
    end_resting = _transition_action("end_resting", "end-resting", "End resting")
    short_term_activation = _transition_action(
        "short_term_activation", "short-term-activation", "Short term activation"
    )
    end_short_term_activation = _transition_action(
        "end_short_term_activation", "end-short-term-activation", "End short term activation"
    )
    short_term_deactivation = _transition_action(
        "short_term_deactivation", "short-term-deactivation", "Short term deactivation"
    )
    end_short_term_deactivation = _transition_action(
        "end_short_term_deactivation",
        "end-short-term-deactivation",
        "End short term deactivation",
    )

    def permission_for(self, request):
        if self.action == "history":
            return "subscriptions.view_subscriptionevent"
        return super().permission_for(request)

    @extend_schema(
        summary="Subscription history",
        description=f"The latest {subscription_history.PAGE} events, newest first: what each "
        "changed, in words, and who did it.",
        responses=HistoryEntryOut(many=True),
    )
    # One bounded list, not a page of the subscriptions' list: no paging, no list filters.
    @action(detail=True, methods=["get"], pagination_class=None, filter_backends=[])
    def history(self, request, pk=None):
        sub = self.get_object()
        entries = subscription_history.describe(subscription_history.events(sub))
        return Response(HistoryEntryOut([asdict(e) for e in entries], many=True).data)

    @action_schema(ChangeDistributionIn, "Change subscription distribution")
    @action(detail=True, methods=["post"], url_path="change-distribution")
    def change_distribution(self, request, pk=None):
        sub = self.get_object()
        return self.perform(
            request,
            ChangeDistributionIn,
            lambda d: actions.change_distribution(
                sub, d["from_distributor"], d["to_distributor"], by=request.user, reason=d["reason"]
            ),
        )

    @action_schema(AddServiceIn, "Add service")
    @action(detail=True, methods=["post"], url_path="add-service")
    def add_service(self, request, pk=None):
        sub = self.get_object()
        return self.perform(
            request,
            AddServiceIn,
            lambda d: actions.add_service(
                sub, d["product"], d["distributor"], by=request.user, reason=d["reason"]
            ),
        )

    @action_schema(AddItemIn, "Add installed item")
    @action(detail=True, methods=["post"], url_path="add-item")
    def add_item(self, request, pk=None):
        sub = self.get_object()
        return self.perform(
            request,
            AddItemIn,
            lambda d: actions.add_installed_item(
                sub, ItemIn().spec(d), by=request.user, reason=d["reason"]
            ),
        )


_MAX_ID = 2**63 - 1


def _service_id(pk: str) -> int:
    if not pk.isdigit() or int(pk) > _MAX_ID:
        raise NotFound(f"No service {pk}.")
    return int(pk)


def _service_action(function, summary: str, input_class=ReasonIn, **extra):
    def view(self, request, pk=None):
        # The service by its id alone: the action reads it under a row lock first thing, so
        # reading it before that as well (get_object) would be a statement for nothing.
        service_id = _service_id(pk)

        def call(d):
            try:
                return function(
                    service_id,
                    *(d[name] for name in extra.get("args", ())),
                    by=request.user,
                    reason=d["reason"],
                )
            except SubscriptionService.DoesNotExist:
                raise NotFound(f"No service {service_id}.") from None

        return self.perform(request, input_class, call)

    view.__name__ = extra["url_path"]
    return action_schema(input_class, summary)(
        action(detail=True, methods=["post"], url_path=extra["url_path"])(view)
    )


class ServiceViewSet(ActionMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, ApiViewSet):
    """Subscription services (one product on one distributor) and the service actions."""

    queryset = SubscriptionService.objects.select_related("product", "distributor", "subscription")
    serializer_class = ServiceSerializer
    filterset_fields = ["subscription", "state", "distributor", "product", "authorized"]
    read_permission = "subscriptions.view_subscriptionservice"
    write_permission = PERFORM

    remove = _service_action(actions.remove_service, "Remove service", url_path="remove")
    swap = _service_action(
        actions.swap_service, "Swap service", SwapServiceIn, args=("product",), url_path="swap"
    )
    regret = _service_action(actions.regret_swap, "Regret (swap)", url_path="regret")
    start = _service_action(actions.start_service, "Start service", url_path="start")
    stop = _service_action(actions.stop_service, "Stop service", url_path="stop")


class InstalledItemFilter(api_query.FilterSet):
    in_use = api_query.BooleanFilter(field_name="removed_at", lookup_expr="isnull")

    class Meta:
        model = InstalledItem
        fields = ["subscription", "kind", "serial_number", "ca_id", "distributor", "initialized"]


class InstalledItemViewSet(
    ActionMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, ApiViewSet
):
    """Smartcards and set-top boxes, and the installed item actions."""

    queryset = InstalledItem.objects.select_related("distributor", "subscription")
    serializer_class = InstalledItemSerializer
    filterset_class = InstalledItemFilter
    read_permission = "subscriptions.view_installeditem"
    write_permission = PERFORM

    @action_schema(ReasonIn, "Remove installed item")
    @action(detail=True, methods=["post"])
    def remove(self, request, pk=None):
        item = self.get_object()
        return self.perform(
            request,
            ReasonIn,
            lambda d: actions.remove_installed_item(item, by=request.user, reason=d["reason"]),
        )

    @action_schema(SwapItemIn, "Swap installed item")
    @action(detail=True, methods=["post"])
    def swap(self, request, pk=None):
        item = self.get_object()
        return self.perform(
            request,
            SwapItemIn,
            lambda d: actions.swap_installed_item(
                item,
                d["serial_number"],
                d["ca_id"],
                product_code=d["product_code"],
                description=d["description"],
                by=request.user,
                reason=d["reason"],
            ),
        )


class ProductViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    ApiViewSet,
):
    """The catalogue: read by every role, written by administrators."""

    queryset = Product.objects.prefetch_related("components")
    serializer_class = ProductSerializer
    filterset_fields = ["code", "kind", "service_type"]
    read_permission = "catalogue.view_product"
    write_permissions = {
        "create": "catalogue.add_product",
        "update": "catalogue.change_product",
        "partial_update": "catalogue.change_product",
    }
