"""The scheduler's own periodic tasks (the heartbeat, sweepers and the watch, which
CELERY_BEAT_SCHEDULE puts into django-celery-beat's table, and celery's own) are the
administrators': operators see and manage only the periodic tasks that execute run definitions
(runs.services schedules those), and may not change or delete a schedule a system task uses."""

from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError
from django_celery_beat import admin as beat_admin
from django_celery_beat.models import (
    ClockedSchedule,
    CrontabSchedule,
    IntervalSchedule,
    PeriodicTask,
    SolarSchedule,
)

from core import roles
from runs.services import TASK as RUN_DEFINITION_TASK

ONLY_RUN_DEFINITIONS = (
    f"Only administrators schedule other tasks than run definitions ({RUN_DEFINITION_TASK}); "
    "submit a run definition to schedule it."
)


def sees_system_tasks(request) -> bool:
    return request.user.has_perm(roles.SYSTEM_TASKS_PERMISSION)


def is_system_task(task: PeriodicTask) -> bool:
    return task.task != RUN_DEFINITION_TASK


class SchedulerTaskAdmin(beat_admin.PeriodicTaskAdmin):
    def get_queryset(self, request):
        tasks = super().get_queryset(request)
        return tasks if sees_system_tasks(request) else tasks.filter(task=RUN_DEFINITION_TASK)

    def get_object(self, request, object_id, from_field=None):
        # Found whoever asks, so that an operator's change or delete of a system task is
        # refused (403) by the permissions below rather than looking like a missing page.
        try:
            return PeriodicTask.objects.get(pk=PeriodicTask._meta.pk.to_python(object_id))
        except (PeriodicTask.DoesNotExist, ValidationError, ValueError):
            return None

    def _mine(self, request, task) -> bool:
        return task is None or not is_system_task(task) or sees_system_tasks(request)

    def has_view_permission(self, request, obj=None):
        return self._mine(request, obj) and super().has_view_permission(request, obj)

    def has_change_permission(self, request, obj=None):
        return self._mine(request, obj) and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return self._mine(request, obj) and super().has_delete_permission(request, obj)

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)
        if sees_system_tasks(request):
            return form

        class RunDefinitionTaskForm(form):
            def clean(self):
                data = super().clean()
                if data.get("task") != RUN_DEFINITION_TASK:
                    raise forms.ValidationError(ONLY_RUN_DEFINITIONS)
                return data

        return RunDefinitionTaskForm


class VisibleTasksInline(beat_admin.PeriodicTaskInline):
    def get_queryset(self, request):
        tasks = super().get_queryset(request)
        return tasks if sees_system_tasks(request) else tasks.filter(task=RUN_DEFINITION_TASK)


class SharedScheduleMixin:
    """A schedule that a system task uses is read-only to whoever may not change that task."""

    inlines = [VisibleTasksInline]

    def _mine(self, request, schedule) -> bool:
        if schedule is None or sees_system_tasks(request):
            return True
        return not schedule.periodictask_set.exclude(task=RUN_DEFINITION_TASK).exists()

    def has_change_permission(self, request, obj=None):
        return self._mine(request, obj) and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return self._mine(request, obj) and super().has_delete_permission(request, obj)


class ClockedAdmin(SharedScheduleMixin, beat_admin.ClockedScheduleAdmin):
    pass


class CrontabAdmin(SharedScheduleMixin, beat_admin.CrontabScheduleAdmin):
    pass


class IntervalAdmin(SharedScheduleMixin, beat_admin.IntervalScheduleAdmin):
    pass


class SolarAdmin(SharedScheduleMixin, beat_admin.SolarScheduleAdmin):
    pass


for model, model_admin in (
    (PeriodicTask, SchedulerTaskAdmin),
    (ClockedSchedule, ClockedAdmin),
    (CrontabSchedule, CrontabAdmin),
    (IntervalSchedule, IntervalAdmin),
    (SolarSchedule, SolarAdmin),
):
    admin.site.unregister(model)
    admin.site.register(model, model_admin)
