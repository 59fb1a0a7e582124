"""Web API for run definitions and process runs, through ``runs.services``.

A definition is validated by ``services.validate`` (its run type's criteria and input forms and
its schedule), whose errors come back per field. Submitting schedules it on beat, cancelling
unschedules it, *run now* queues an execution on a worker, and *preview* pages through what it
would do without writing anything.
"""

import copy

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import transaction
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field
from rest_framework import mixins, serializers, status
from rest_framework.decorators import action
from rest_framework.response import Response

from core import api_query
from core.api_permissions import (
    ApiViewSet,
    ErrorSerializer,
    ServiceRefused,
    choice_field,
    field_errors,
)
from core.api_serializers import JsonTypes
from providers import idempotency

from . import services, types
from .models import ProcessRun, ProcessRunError, RunDefinition

MAX_PREVIEW_PAGE = 500


def _refused(error: services.RunError) -> ServiceRefused:
    return ServiceRefused(str(error), "run_refused")


class RunDefinitionSerializer(JsonTypes, serializers.ModelSerializer):
    run_type = serializers.ChoiceField(choices=types.choices())
    criteria = serializers.DictField(required=False, help_text="Per run type.")
    input_settings = serializers.DictField(required=False, help_text="Per run type.")
    next_run_at = serializers.SerializerMethodField()
    state = choice_field("RunDefinitionState", RunDefinition.State.choices, read_only=True)

    class Meta:
        model = RunDefinition
        fields = [
            "id",
            "name",
            "alternative_code",
            "run_type",
            "provider",
            "criteria",
            "input_settings",
            "schedule",
            "run_at",
            "at",
            "weekdays",
            "every",
            "unit",
            "cron",
            "state",
            "next_run_at",
            "empty_runs",
            "last_empty_at",
            "created_by",
            "created_at",
            "updated_at",
        ]
        read_only_fields = [
            "state",
            "empty_runs",
            "last_empty_at",
            "created_by",
            "created_at",
            "updated_at",
        ]

    def get_next_run_at(self, obj) -> str | None:
        when = services.next_run_time(obj)
        return serializers.DateTimeField().to_representation(when) if when else None

    def validate(self, attrs):
        definition = copy.copy(self.instance) if self.instance else RunDefinition()
        for name, value in attrs.items():
            setattr(definition, name, value)
        try:
            definition.full_clean(exclude=["periodic_task", "created_by"])
            services.validate(definition)
        except DjangoValidationError as error:
            raise field_errors(error) from None
        for name in ("criteria", "input_settings"):
            attrs[name] = getattr(definition, name)
        return attrs


class ProcessRunErrorSerializer(serializers.ModelSerializer):
    class Meta:
        model = ProcessRunError
        fields = ["id", "subscription", "message", "created_at"]


class RunCountSerializer(serializers.Serializer):
    key = serializers.CharField()
    label = serializers.CharField()
    value = serializers.IntegerField()


def _counts(run: ProcessRun) -> list[dict]:
    return [
        {"key": key, "label": label, "value": value}
        for key, label, value in services.count_rows(run)
    ]


class ProcessRunSerializer(serializers.ModelSerializer):
    trigger = choice_field("RunTrigger", ProcessRun.Trigger.choices, read_only=True)
    status = choice_field("RunStatus", ProcessRun.Status.choices, read_only=True)
    counts = serializers.SerializerMethodField(
        help_text="What the run did, in its type's terms (key, label, value)."
    )
    summary = serializers.SerializerMethodField(
        help_text='What the run did in a sentence, e.g. "Exported 7 records in 1 file".'
    )

    @extend_schema_field(RunCountSerializer(many=True))
    def get_counts(self, run) -> list[dict]:
        return _counts(run)

    def get_summary(self, run) -> str:
        return services.summary(run)

    class Meta:
        model = ProcessRun
        fields = [
            "id",
            "definition",
            "trigger",
            "status",
            "started_at",
            "finished_at",
            "heartbeat_at",
            "worker",
            "total",
            "examined",
            "created",
            "counts",
            "summary",
            "errors",
            "message",
        ]
        read_only_fields = fields


class ProcessRunDetailSerializer(ProcessRunSerializer):
    error_log = ProcessRunErrorSerializer(many=True, read_only=True)

    class Meta(ProcessRunSerializer.Meta):
        fields = [*ProcessRunSerializer.Meta.fields, "error_log"]
        read_only_fields = fields


class ProgressSerializer(serializers.Serializer):
    status = choice_field("RunStatus", ProcessRun.Status.choices)
    finished = serializers.BooleanField()
    total = serializers.IntegerField(allow_null=True)
    examined = serializers.IntegerField()
    created = serializers.IntegerField()
    counts = RunCountSerializer(many=True)
    summary = serializers.CharField()
    errors = serializers.IntegerField()
    percent = serializers.IntegerField(allow_null=True)
    message = serializers.CharField(allow_blank=True)


class PreviewQuery(serializers.Serializer):
    offset = serializers.IntegerField(min_value=0, default=0, required=False)
    limit = serializers.IntegerField(
        min_value=1, max_value=MAX_PREVIEW_PAGE, default=50, required=False
    )


class PreviewCommandSerializer(serializers.Serializer):
    command = serializers.CharField()
    reason = serializers.CharField(
        help_text='What it does and why, e.g. "Activate SPORT: service Effective, not '
        'authorized at the provider".',
    )
    parameters = serializers.DictField()


class PreviewRowSerializer(serializers.Serializer):
    subscription_id = serializers.IntegerField(allow_null=True)
    subscription = serializers.CharField()
    what = PreviewCommandSerializer(many=True)


class PreviewPageSerializer(serializers.Serializer):
    results = PreviewRowSerializer(many=True)
    offset = serializers.IntegerField()
    next_offset = serializers.IntegerField(allow_null=True)


# --- Viewsets ---------------------------------------------------------------------------------


class RunDefinitionViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.UpdateModelMixin,
    mixins.DestroyModelMixin,
    ApiViewSet,
):
    queryset = RunDefinition.objects.select_related("provider", "periodic_task")
    serializer_class = RunDefinitionSerializer
    filterset_fields = ["provider", "run_type", "state", "schedule"]
    read_permission = "runs.view_rundefinition"
    write_permissions = {
        "create": "runs.add_rundefinition",
        "update": "runs.change_rundefinition",
        "partial_update": "runs.change_rundefinition",
        "destroy": "runs.delete_rundefinition",
        "submit": "runs.operate_rundefinition",
        "cancel": "runs.operate_rundefinition",
        "run_now": "runs.operate_rundefinition",
    }

    @extend_schema(
        parameters=[idempotency.PARAMETER],
        responses={201: RunDefinitionSerializer, 422: ErrorSerializer},
    )
    def create(self, request):
        def work():
            # Validated inside: a repeat is answered from its record before it is validated.
            body = self.get_serializer(data=request.data)
            body.is_valid(raise_exception=True)
            definition = body.save(created_by=request.user)
            return Response(self.get_serializer(definition).data, status=status.HTTP_201_CREATED)

        return idempotency.once(request, work)

    def perform_update(self, serializer):
        try:
            services.reschedule(serializer.save())
        except services.RunError as error:
            raise _refused(error) from None

    def update(self, request, *args, **kwargs):
        with transaction.atomic():
            return super().update(request, *args, **kwargs)

    def perform_destroy(self, instance):
        try:
            services.delete(instance)
        except services.RunError as error:
            raise _refused(error) from None

    def _service(self, function):
        definition = self.get_object()
        try:
            function(definition)
        except services.RunError as error:
            raise _refused(error) from None
        except DjangoValidationError as error:
            raise field_errors(error) from None
        definition = self.get_queryset().get(pk=definition.pk)
        return Response(self.get_serializer(definition).data)

    @extend_schema(request=None, responses={200: RunDefinitionSerializer}, summary="Submit")
    @action(detail=True, methods=["post"])
    def submit(self, request, pk=None):
        return self._service(services.submit)

    @extend_schema(request=None, responses={200: RunDefinitionSerializer}, summary="Cancel")
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        return self._service(services.cancel)

    @extend_schema(
        request=None,
        responses={202: RunDefinitionSerializer, 422: ErrorSerializer},
        parameters=[idempotency.PARAMETER],
        summary="Run now (queued on a worker)",
    )
    @action(detail=True, methods=["post"], url_path="run-now")
    def run_now(self, request, pk=None):
        definition = self.get_object()

        def work():
            try:
                services.run_now(definition)
            except DjangoValidationError as error:
                raise field_errors(error) from None
            return Response(self.get_serializer(definition).data, status=status.HTTP_202_ACCEPTED)

        return idempotency.once(request, work)

    @extend_schema(
        parameters=[PreviewQuery],
        responses={200: PreviewPageSerializer},
        summary="Preview what it would do (writes nothing)",
    )
    @action(detail=True, methods=["get"], pagination_class=None, filter_backends=[])
    def preview(self, request, pk=None):
        definition = self.get_object()
        query = PreviewQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        offset, limit = query.validated_data["offset"], query.validated_data["limit"]
        try:
            rows, more = services.preview(definition, offset=offset, limit=limit)
        except services.RunError as error:
            raise _refused(error) from None
        except DjangoValidationError as error:
            raise field_errors(error) from None
        page = {
            "results": [
                {
                    "subscription_id": r.subscription_id,
                    "subscription": r.subscription,
                    "what": r.what,
                }
                for r in rows
            ],
            "offset": offset,
            "next_offset": offset + len(rows) if more else None,
        }
        return Response(PreviewPageSerializer(page).data)


class ProcessRunFilter(api_query.FilterSet):
    class Meta:
        model = ProcessRun
        fields = ["definition", "status", "trigger"]


class ProcessRunViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ApiViewSet):
    queryset = ProcessRun.objects.select_related("definition")
    filterset_class = ProcessRunFilter
    read_permission = "runs.view_processrun"

    def get_queryset(self):
        if self.action == "retrieve":
            return ProcessRun.objects.select_related("definition").prefetch_related("error_log")
        return super().get_queryset()

    def get_serializer_class(self):
        return ProcessRunDetailSerializer if self.action == "retrieve" else ProcessRunSerializer

    @extend_schema(
        responses={200: ProgressSerializer},
        summary="Progress of a run",
        parameters=[OpenApiParameter("id", int, OpenApiParameter.PATH)],
    )
    @action(detail=True, methods=["get"], filter_backends=[])
    def progress(self, request, pk=None):
        run = self.get_object()
        percent = None
        if run.total:
            percent = min(100, run.examined * 100 // run.total)
        elif run.status != ProcessRun.Status.RUNNING:
            percent = 100
        data = {
            "status": run.status,
            "finished": run.status != ProcessRun.Status.RUNNING,
            "total": run.total,
            "examined": run.examined,
            "created": run.created,
            "counts": _counts(run),
            "summary": services.summary(run),
            "errors": run.errors,
            "percent": percent,
            "message": run.message,
        }
        return Response(ProgressSerializer(data).data)
