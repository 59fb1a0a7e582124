"""Back office for runs: definitions with their buttons, process runs with live progress, and
the worker status of the index.

Everything that changes a definition's life goes through ``runs.services``: the definition's
page posts Submit, Cancel and Run now to ``<id>/operate/<operation>/`` (permission
``runs.operate_rundefinition``), and its Preview page pages through ``services.preview``.
Process runs are written by the system only; a run's page polls ``<id>/progress/`` (JSON) every
second while the run is running, and offers every error as CSV at ``<id>/errors.csv``.
"""

import csv
import itertools
from collections import Counter
from dataclasses import dataclass
from datetime import datetime

import cron_descriptor
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Count, OuterRef, Subquery
from django.http import Http404, HttpResponseRedirect, JsonResponse, StreamingHttpResponse
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe

from catalogue.models import Provider
from providers.models import ProvisioningRequest
from subscriptions.admin import ViewOnlyAdmin
from subscriptions.models import Subscription

from . import admin_forms, schedules, services, types
from .models import ProcessRun, ProcessRunError, RunDefinition, WorkerHeartbeat

# How many subscriptions one preview page shows.
PREVIEW_PAGE_SIZE = 50
# How many previewed subscriptions the CSV looks their customers up for at once.
PREVIEW_CSV_CHUNK = 500
# How many errors the run's page lists; the CSV holds every one.
ERRORS_SHOWN = 200


@dataclass(frozen=True)
class WorkerStatus:
    alive: bool
    hostname: str = ""
    last_seen: datetime | None = None
    seconds_ago: int | None = None


def worker_status(now: datetime | None = None) -> WorkerStatus:
    """Whether a worker (with beat) has beaten lately, from the freshest heartbeat."""
    latest = WorkerHeartbeat.objects.order_by("-last_seen").first()
    if latest is None:
        return WorkerStatus(alive=False)
    age = (now or timezone.now()) - latest.last_seen
    return WorkerStatus(
        alive=age <= WorkerHeartbeat.ALIVE_WITHIN,
        hostname=latest.hostname,
        last_seen=latest.last_seen,
        seconds_ago=max(int(age.total_seconds()), 0),
    )


@admin.register(WorkerHeartbeat)
class WorkerHeartbeatAdmin(admin.ModelAdmin):
    """Rows written by the heartbeat task; a stale host may be deleted, nothing edited."""

    list_display = ["hostname", "queue", "last_seen", "seconds_ago", "alive", "beats"]
    search_fields = ["hostname"]
    ordering = ["-last_seen"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.display(description="Seconds ago")
    def seconds_ago(self, obj):
        return max(int((timezone.now() - obj.last_seen).total_seconds()), 0)

    @admin.display(description="Alive", boolean=True)
    def alive(self, obj):
        return timezone.now() - obj.last_seen <= WorkerHeartbeat.ALIVE_WITHIN


# --- Run definitions ---------------------------------------------------------------------------


def schedule_text(definition: RunDefinition, *, words: bool = True) -> str:
    """The schedule in words: "Once at …", "Every 2 hours", "Cron 30 2 * * 1-5 (At 02:30 AM…)"."""
    Schedule = RunDefinition.Schedule
    if definition.schedule == Schedule.ONCE:
        if not definition.run_at:
            return "Once (no time set)"
        return f"Once at {timezone.localtime(definition.run_at):%Y-%m-%d %H:%M}"
    if definition.schedule in (Schedule.DAILY, Schedule.WEEKLY):
        at = f"{definition.at:%H:%M}" if definition.at else "(no time set)"
        if definition.schedule == Schedule.DAILY:
            return f"Daily at {at}"
        return f"Weekly on {schedules.weekday_names(definition.weekdays) or '(no day)'} at {at}"
    if definition.schedule == Schedule.INTERVAL:
        unit = definition.unit or "?"
        if definition.every == 1:
            unit = unit.rstrip("s")
        return f"Every {definition.every} {unit}"
    if not words:
        return f"Cron {definition.cron}"
    try:
        description = cron_descriptor.get_description(definition.cron)
    except Exception:  # a description is a courtesy; the expression is shown anyway
        return f"Cron {definition.cron}"
    return f"Cron {definition.cron} ({description})"


def _errors_text(error: ValidationError) -> str:
    if hasattr(error, "error_dict"):
        return "; ".join(
            f"{name.replace('_', ' ')}: {message}"
            for name, messages in error.message_dict.items()
            for message in messages
        )
    return " ".join(error.messages)


def _setting_text(value) -> str:
    if value in (None, "", [], {}):
        return "-"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return str(value)


def _local(when: datetime | None) -> str:
    """A moment on the operator's clock (TIME_ZONE), its zone named: "2026-03-08 03:00:00 EDT"."""
    return f"{timezone.localtime(when):%Y-%m-%d %H:%M:%S %Z}" if when else "-"


def _run_type_name(code: str) -> str:
    run_type = types.get(code)
    return run_type.name if run_type else code


class RunTypeFilter(admin.SimpleListFilter):
    title = "run type"
    parameter_name = "run_type"

    def lookups(self, request, model_admin):
        return types.choices()

    def queryset(self, request, queryset):
        return queryset.filter(run_type=self.value()) if self.value() else queryset


@admin.register(RunDefinition)
class RunDefinitionAdmin(admin.ModelAdmin):
    """Definitions are edited here; submitting, cancelling, running and previewing are buttons
    on the definition's page that post to ``<id>/<operation>/`` and call ``runs.services``."""

    list_display = [
        "name",
        "alternative_code",
        "run_type_display",
        "provider",
        "state",
        "schedule_display",
        "next_run_display",
        "last_run_display",
    ]
    list_filter = ["state", RunTypeFilter, "provider"]
    list_select_related = [
        "provider",
        "periodic_task__clocked",
        "periodic_task__interval",
        "periodic_task__crontab",
    ]
    search_fields = ["name", "alternative_code__exact"]
    search_help_text = "Name, or the exact alternative code."
    readonly_fields = [
        "run_type_display",
        "schedule_text_display",
        "criteria_display",
        "input_display",
        "state",
        "next_run_display",
        "empty_runs_display",
        "created_by",
        "created_at",
        "updated_at",
    ]

    form = admin_forms.form_class()

    def get_fieldsets(self, request, obj=None):
        editable = (
            self.has_change_permission(request, obj)
            if obj is not None
            else self.has_add_permission(request)
        )
        if editable:
            settings = admin_forms.settings_fieldsets()
        else:
            settings = [("Settings", {"fields": ["criteria_display", "input_display"]})]
        fieldsets = [
            (None, {"fields": ["name", "alternative_code", "provider", "run_type_display"]}),
            *settings,
            (
                "Scheduling",
                {
                    "fields": ["schedule", "run_at", "at", "weekdays", ("every", "unit"), "cron"]
                    if editable
                    else ["schedule_text_display"]
                },
            ),
        ]
        if editable:
            fieldsets[0][1]["fields"][-1] = "run_type"
        if obj is not None:
            fieldsets.append(
                (
                    "State",
                    {
                        "fields": [
                            "state",
                            "next_run_display",
                            "empty_runs_display",
                            "created_by",
                            "created_at",
                            "updated_at",
                        ]
                    },
                )
            )
        return fieldsets

    def get_queryset(self, request):
        last_status = ProcessRun.objects.filter(definition=OuterRef("pk")).order_by("-id")
        return (
            super()
            .get_queryset(request)
            .annotate(
                last_run_id=Subquery(last_status.values("pk")[:1]),
                last_run_status=Subquery(last_status.values("status")[:1]),
            )
        )

    @admin.display(description="Run type", ordering="run_type")
    def run_type_display(self, obj):
        return _run_type_name(obj.run_type)

    def _settings_display(self, obj, prefix: str):
        run_type = types.get(obj.run_type)
        if run_type is None:
            return "-"
        for kind, attr, form_attr, _title in admin_forms.SETTINGS:
            if kind == prefix:
                fields = getattr(run_type, form_attr).base_fields
                stored = getattr(obj, attr) or {}
        rows = [
            (field.label or name.replace("_", " ").capitalize(), _setting_text(stored.get(name)))
            for name, field in fields.items()
        ]
        if not rows:
            return "None for this run type."
        return format_html_join(mark_safe("<br>"), "{}: {}", rows)

    @admin.display(description="Criteria")
    def criteria_display(self, obj):
        return self._settings_display(obj, "criteria")

    @admin.display(description="Input settings")
    def input_display(self, obj):
        return self._settings_display(obj, "input")

    @admin.display(description="Schedule")
    def schedule_display(self, obj):
        # Narrow in the list; the cron expression in words shows on hovering.
        return format_html(
            '<span title="{}">{}</span>', schedule_text(obj), schedule_text(obj, words=False)
        )

    @admin.display(description="Schedule")
    def schedule_text_display(self, obj):
        return schedule_text(obj)

    @admin.display(description="Next run")
    def next_run_display(self, obj):
        return _local(services.next_run_time(obj) if obj.pk else None)

    @admin.display(description="Runs with nothing to do")
    def empty_runs_display(self, obj):
        # Scheduled runs that found nothing leave no process run: counted here instead.
        if not obj.empty_runs:
            return "None"
        return f"{obj.empty_runs}, the last at {_local(obj.last_empty_at)} (not listed)"

    @admin.display(description="Last process run")
    def last_run_display(self, obj):
        if not getattr(obj, "last_run_id", None):
            return "-"
        return format_html(
            '<a href="{}">#{} {}</a>',
            reverse("admin:runs_processrun_change", args=[obj.last_run_id]),
            obj.last_run_id,
            ProcessRun.Status(obj.last_run_status).label,
        )

    # --- Saving and deleting ---

    def save_model(self, request, obj, form, change):
        if not change:
            obj.created_by = request.user
        super().save_model(request, obj, form, change)
        if change and obj.state == RunDefinition.State.SUBMITTED:
            services.reschedule(obj)
            messages.info(request, f"{obj.name} is rescheduled: {schedule_text(obj)}.")

    def delete_model(self, request, obj):
        services.delete(obj)

    def delete_queryset(self, request, queryset):
        for definition in queryset:
            services.delete(definition)

    def get_deleted_objects(self, objs, request):
        """A definition that has run keeps its history: it is cancelled, not deleted."""
        deleted, model_count, perms_needed, protected = super().get_deleted_objects(objs, request)
        for definition in objs:
            count = definition.process_runs.count()
            if count:
                protected = [
                    *protected,
                    f"{definition.name}: {count} process run(s) in its history; cancel it instead.",
                ]
        if protected:
            # Say why (the history), rather than that nobody may delete process runs.
            perms_needed = perms_needed - {
                str(ProcessRun._meta.verbose_name),
                str(ProcessRunError._meta.verbose_name),
            }
        return deleted, model_count, perms_needed, protected

    # --- The page and its buttons ---

    def has_operate_permission(self, request) -> bool:
        return request.user.has_perm("runs.operate_rundefinition")

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path(
                "<path:object_id>/preview/",
                view(self.preview_view),
                name="runs_rundefinition_preview",
            ),
            path(
                "<path:object_id>/preview.csv",
                view(self.preview_csv_view),
                name="runs_rundefinition_preview_csv",
            ),
            path(
                "<path:object_id>/operate/<str:operation>/",
                view(self.operate_view),
                name="runs_rundefinition_operate",
            ),
            *super().get_urls(),
        ]

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        providers = Provider.objects.order_by("name")
        context["run_types_by_provider"] = admin_forms.run_types_by_provider(providers)
        if obj is not None:
            can_operate = self.has_operate_permission(request)
            run_type = types.get(obj.run_type)
            context.update(
                {
                    "definition": obj,
                    "can_operate": can_operate,
                    "can_submit": can_operate
                    and obj.state in (RunDefinition.State.DRAFT, RunDefinition.State.CANCELLED),
                    "can_cancel": can_operate and obj.state == RunDefinition.State.SUBMITTED,
                    "can_preview": bool(can_operate and run_type and run_type.preview),
                    "schedule_text": schedule_text(obj),
                    "next_runs": [_local(when) for when in services.next_run_times(obj)],
                    "last_empty": _local(obj.last_empty_at),
                    "time_zone": timezone.get_current_timezone_name(),
                    "runs_url": reverse("admin:runs_processrun_changelist")
                    + f"?definition__id__exact={obj.pk}",
                    "recent_runs": [
                        (run, services.summary(run))
                        for run in obj.process_runs.select_related("definition")[:5]
                    ],
                }
            )
        return super().render_change_form(request, context, add, change, form_url, obj)

    def operate_view(self, request, object_id, operation):
        """Submit, cancel or run now — a POST from the definition's page."""
        definition = self.get_object(request, unquote(object_id))
        if definition is None:
            raise Http404
        page = reverse("admin:runs_rundefinition_change", args=[definition.pk])
        if not self.has_operate_permission(request):
            raise PermissionDenied
        if request.method != "POST":
            return HttpResponseRedirect(page)
        try:
            if operation == "submit":
                definition = services.submit(definition)
                messages.success(
                    request,
                    f"{definition.name} is submitted: {schedule_text(definition)}; "
                    f"next run {_local(services.next_run_time(definition))}.",
                )
            elif operation == "cancel":
                definition = services.cancel(definition)
                messages.success(request, f"{definition.name} is cancelled: it will not run again.")
            elif operation == "run_now":
                run = services.run_now(definition)
                messages.success(
                    request,
                    f"{definition.name} will run as soon as a worker is free; its process run "
                    f"#{run.pk} appears below, Queued until a worker takes it.",
                )
            else:
                raise Http404
        except services.RunError as error:
            messages.error(request, str(error))
        except ValidationError as error:
            messages.error(request, f"{definition.name} cannot run: {_errors_text(error)}")
        return HttpResponseRedirect(page)

    def preview_view(self, request, object_id):
        """A page of what the definition would do now. Writes nothing."""
        definition = self.get_object(request, unquote(object_id))
        if definition is None:
            raise Http404
        if not self.has_operate_permission(request):
            raise PermissionDenied
        page_url = reverse("admin:runs_rundefinition_change", args=[definition.pk])
        try:
            page = max(int(request.GET.get("page", 1)), 1)
        except ValueError:
            page = 1
        offset = (page - 1) * PREVIEW_PAGE_SIZE
        try:
            rows, more = services.preview(definition, offset=offset, limit=PREVIEW_PAGE_SIZE)
        except services.RunError as error:
            messages.error(request, str(error))
            return HttpResponseRedirect(page_url)
        except ValidationError as error:
            messages.error(request, f"{definition.name} cannot be previewed: {_errors_text(error)}")
            return HttpResponseRedirect(page_url)
        context = {
            **self.admin_site.each_context(request),
            "title": f"Preview of {definition.name}",
            "subtitle": None,
            "opts": self.opts,
            "definition": definition,
            "original": definition,
            "rows": rows,
            "page": page,
            "first_number": offset + 1,
            "last_number": offset + len(rows),
            "previous_page": page - 1 if page > 1 else None,
            "next_page": page + 1 if more else None,
            "request_count": sum(len(row.what) for row in rows),
            "commands": Counter(r["command"] for row in rows for r in row.what).most_common(),
            "table": _with_customers(rows),
        }
        return TemplateResponse(request, "admin/runs/rundefinition/preview.html", context)

    def preview_csv_view(self, request, object_id):
        """The whole preview, a line per request: subscription, customer, command, why,
        parameters."""
        definition = self.get_object(request, unquote(object_id))
        if definition is None:
            raise Http404
        if not self.has_operate_permission(request):
            raise PermissionDenied
        try:
            found = services.preview_rows(definition)
        except (services.RunError, ValidationError) as error:
            text = str(error) if isinstance(error, services.RunError) else _errors_text(error)
            messages.error(request, f"{definition.name} cannot be previewed: {text}")
            return HttpResponseRedirect(
                reverse("admin:runs_rundefinition_change", args=[definition.pk])
            )

        class Echo:
            def write(self, value):
                return value

        writer = csv.writer(Echo())

        def lines():
            # One query for the customers of each slice of rows, not one per subscription.
            found_rows = iter(found)
            while chunk := list(itertools.islice(found_rows, PREVIEW_CSV_CHUNK)):
                customers = _customers(chunk)
                for row in chunk:
                    for r in row.what:
                        parameters = "; ".join(f"{k}={v}" for k, v in r["parameters"].items())
                        yield writer.writerow(
                            [
                                row.subscription,
                                customers.get(row.subscription_id, ""),
                                r["command"],
                                r.get("reason", ""),
                                parameters,
                            ]
                        )

        header = writer.writerow(["subscription", "customer", "command", "reason", "parameters"])
        response = StreamingHttpResponse(
            itertools.chain([header], lines()),
            content_type="text/csv; charset=utf-8",
        )
        response["Content-Disposition"] = (
            f'attachment; filename="run-definition-{definition.pk}-preview.csv"'
        )
        return response


def _with_customers(rows) -> list[tuple]:
    customers = _customers(rows)
    return [(row, customers.get(row.subscription_id, "")) for row in rows]


def _customers(rows) -> dict[int, str]:
    """The customer account ("number name") of each previewed subscription, in one query."""
    ids = [row.subscription_id for row in rows if row.subscription_id]
    found = Subscription.objects.filter(pk__in=ids).values_list(
        "pk", "account__number", "account__name"
    )
    return {pk: f"{number} {name}" for pk, number, name in found}


# --- Process runs ------------------------------------------------------------------------------


def progress(run: ProcessRun, now=None) -> dict:
    """What the run's page shows and its script polls: counts, ETA, and its requests' states."""
    now = now or timezone.now()
    eta = None
    if run.status == ProcessRun.Status.RUNNING and run.total and run.examined:
        elapsed = (now - run.started_at).total_seconds()
        remaining = max(run.total - run.examined, 0)
        eta = round(elapsed / run.examined * remaining) if elapsed > 0 else None
    counts = dict(
        ProvisioningRequest.objects.filter(process_run=run)
        .values_list("state")
        .annotate(n=Count("pk"))
        .values_list("state", "n")
    )
    percent = None
    if run.total:
        percent = min(100, round(100 * run.examined / run.total))
    elif run.total == 0 and run.status != ProcessRun.Status.RUNNING:
        percent = 100
    requests = {state.value: counts.get(state.value, 0) for state in ProvisioningRequest.State}
    parts = list(run.parts.values_list("finished_at", "worker"))
    workers = sorted({worker for _, worker in parts if worker})
    parts_text = f"{sum(1 for done, _ in parts if done)} of {len(parts)} done" + (
        f", on {', '.join(workers)}" if workers else ""
    )
    return {
        "parts_text": parts_text if parts else "-",
        "id": run.pk,
        "status": run.status,
        "status_label": ProcessRun.Status(run.status).label,
        # Queued or running: the page keeps following it.
        "running": run.status in (ProcessRun.Status.QUEUED, ProcessRun.Status.RUNNING),
        "total": run.total,
        "total_label": _total_label(run),
        "examined": run.examined,
        "created": run.created,
        "counts": [
            {"key": key, "label": label, "value": value}
            for key, label, value in services.count_rows(run)
        ],
        "errors": run.errors,
        "percent": percent,
        "eta_seconds": eta,
        "message": run.message,
        "started_at": run.started_at.isoformat() if run.started_at else None,
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
        "requests": requests,
        # Ready-made texts, so that the page and its script say the same.
        "summary": _summary(run, percent, eta),
        "eta_text": _duration(eta) if eta is not None else "-",
        "finished_text": _local(run.finished_at),
        "request_counts": list(requests.items()),
    }


def _total_label(run: ProcessRun) -> str:
    run_type = types.get(run.definition.run_type)
    return run_type.total_label if run_type is not None else "Subscriptions to examine"


def _duration(seconds: int) -> str:
    if seconds < 60:
        return f"about {seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"about {minutes} min {seconds} s"
    hours, minutes = divmod(minutes, 60)
    return f"about {hours} h {minutes} min"


def _summary(run: ProcessRun, percent: int | None, eta: int | None) -> str:
    """E.g. "Examined 3 of 10 (30%) · 5 requests created · 1 error · about 12 s left", or
    what the run's type counts: "Exported 7 records in 1 file (70%) · 0 errors"."""
    own = services.own_summary(run)
    done = own or f"Examined {run.examined}" + ("" if run.total is None else f" of {run.total}")
    if percent is not None:
        done += f" ({percent}%)"
    parts = [done]
    if own is None:
        parts.append(f"{run.created} request{'s' if run.created != 1 else ''} created")
    parts.append(f"{run.errors} error{'s' if run.errors != 1 else ''}")
    if eta is not None:
        parts.append(f"{_duration(eta)} left")
    return " · ".join(parts)


@admin.register(ProcessRun)
class ProcessRunAdmin(ViewOnlyAdmin):
    """Written by the system only. The page follows a running run live (see progress())."""

    list_display = [
        "__str__",
        "started",
        "finished",
        "status",
        "trigger",
        "examined_of_total",
        "done",
        "errors",
    ]
    list_filter = ["definition", "status", "trigger", "started_at"]
    list_select_related = ["definition"]
    date_hierarchy = "started_at"
    search_fields = ["definition__name", "definition__alternative_code__exact"]
    search_help_text = "Definition name, or its exact alternative code."
    show_facets = admin.ShowFacets.NEVER
    fields = ["definition", "trigger", "worker", "started_at", "heartbeat_at"]
    readonly_fields = fields

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path(
                "<path:object_id>/progress/",
                view(self.progress_view),
                name="runs_processrun_progress",
            ),
            path(
                "<path:object_id>/errors.csv",
                view(self.errors_csv_view),
                name="runs_processrun_errors_csv",
            ),
            *super().get_urls(),
        ]

    @admin.display(description="Started", ordering="started_at")
    def started(self, obj):
        return _local(obj.started_at)

    @admin.display(description="Finished", ordering="finished_at")
    def finished(self, obj):
        return _local(obj.finished_at)

    @admin.display(description="Examined / total")
    def examined_of_total(self, obj):
        return f"{obj.examined} / {'-' if obj.total is None else obj.total}"

    @admin.display(description="What it did")
    def done(self, obj):
        return services.summary(obj)

    def _viewable(self, request, object_id) -> ProcessRun:
        run = self.get_object(request, unquote(object_id))
        if run is None:
            raise Http404
        if not self.has_view_permission(request, run):
            raise PermissionDenied
        return run

    def change_view(self, request, object_id, form_url="", extra_context=None):
        run = self.get_object(request, unquote(object_id))
        if run is not None and self.has_view_permission(request, run):
            errors = list(run.error_log.select_related("subscription")[:ERRORS_SHOWN])
            extra_context = {
                "title": f"Process run #{run.pk} of {run.definition}",
                "progress": progress(run),
                "request_states": ProvisioningRequest.State.choices,
                "error_rows": errors,
                "errors_not_shown": max(run.errors - len(errors), 0),
                "requests_url": reverse("admin:providers_provisioningrequest_changelist")
                + f"?process_run__id__exact={run.pk}",
                "can_see_requests": request.user.has_perm("providers.view_provisioningrequest"),
                **(extra_context or {}),
            }
        return super().change_view(request, object_id, form_url, extra_context)

    def progress_view(self, request, object_id):
        return JsonResponse(progress(self._viewable(request, object_id)))

    def errors_csv_view(self, request, object_id):
        """Every error of the run: subscription number, message, time."""
        run = self._viewable(request, object_id)

        class Echo:
            def write(self, value):
                return value

        writer = csv.writer(Echo())
        rows = (
            writer.writerow(
                [
                    error.subscription.number if error.subscription else "",
                    error.message,
                    error.created_at.isoformat(),
                ]
            )
            for error in run.error_log.select_related("subscription").iterator(chunk_size=2000)
        )
        response = StreamingHttpResponse(
            itertools.chain([writer.writerow(["subscription", "message", "time"])], rows),
            content_type="text/csv; charset=utf-8",
        )
        response["Content-Disposition"] = f'attachment; filename="process-run-{run.pk}-errors.csv"'
        return response
