"""Run definitions: validate, submit (schedule on beat), cancel, run now, execute, preview.

Scheduling lives in django-celery-beat's tables: submitting a definition creates its
``PeriodicTask`` (clocked for once, interval or crontab for recurring), cancelling deletes it,
and beat — reading the database — picks changes up while the system runs.

An execution logs a ``ProcessRun``. The running row is also the lock: a definition whose last
run is still *running* with a fresh heartbeat is not started again ("already running" is logged
instead). A worker that dies leaves its run's heartbeat to go stale; the sweeper then marks the
run Failed with what it had done, and the next execution goes ahead. Because runs reconcile,
running again finishes the work without creating any request twice.
"""

import json
import logging
import os
import socket
import threading
from collections import Counter
from collections.abc import Callable
from datetime import timedelta

from celery import current_app
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone
from django_celery_beat.models import (
    ClockedSchedule,
    CrontabSchedule,
    IntervalSchedule,
    PeriodicTask,
)

from core.db import plans_per_call
from providers import bulk
from providers import types as settings_forms
from providers.extensions import Progress, RunType, counted
from providers.models import ProvisioningRequest

from . import schedules, types
from .models import ProcessRun, ProcessRunError, ProcessRunPart, RunDefinition

log = logging.getLogger(__name__)

# The tasks by name (runs.tasks registers them under these): sent by name, so this module needs
# no import of the tasks that call it.
TASK = "runs.tasks.execute_definition"
PART_TASK = "runs.tasks.execute_part"
# A part that created at least this many requests checks that the planner knows of them.
REFRESH_STATISTICS_AFTER = 1000
State = RunDefinition.State
Status = ProcessRun.Status


class RunError(Exception):
    """A request about a definition that cannot be carried out; the message says why."""


# --- Validation -------------------------------------------------------------------------------


def run_type_of(definition: RunDefinition) -> RunType:
    return types.all_types()[definition.run_type]


def validate(definition: RunDefinition, *, schedule: bool = True) -> None:
    """Raise ValidationError naming each field that is wrong; store cleaned settings.

    ``schedule=False`` leaves the scheduling settings out (run now, preview)."""
    errors: dict[str, list[str]] = {}
    run_type = types.get(definition.run_type)
    if run_type is None:
        errors["run_type"] = [f"Unknown run type '{definition.run_type}'."]
    elif definition.provider_id and run_type not in types.for_provider(definition.provider):
        offered = ", ".join(t.name for t in types.for_provider(definition.provider)) or "none"
        errors["run_type"] = [
            f"{definition.provider.name} does not offer {run_type.name} (it offers: {offered})."
        ]
    else:
        for field, form_class in (
            ("criteria", run_type.criteria_form),
            ("input_settings", run_type.input_form),
        ):
            cleaned, field_errors = settings_forms.validate(form_class, getattr(definition, field))
            if field_errors:
                errors[field] = [f"{k}: {m}" for k, ms in field_errors.items() for m in ms]
            else:
                setattr(definition, field, json.loads(json.dumps(cleaned, default=str)))
        if run_type.checks is not None and definition.provider_id and not errors:
            errors.update(run_type.checks(definition))
    if schedule:
        errors.update(_schedule_errors(definition))
    if errors:
        raise ValidationError(errors)


def _schedule_errors(definition: RunDefinition) -> dict[str, list[str]]:
    Schedule = RunDefinition.Schedule
    if definition.schedule == Schedule.ONCE and not definition.run_at:
        return {"run_at": ["Give the date and time to run at."]}
    if definition.schedule == Schedule.INTERVAL:
        errors = {}
        if not definition.every:
            errors["every"] = ["Give how many units apart the runs are (at least 1)."]
        if not definition.unit:
            errors["unit"] = ["Give the unit: seconds, minutes, hours or days."]
        elif definition.unit == RunDefinition.Unit.SECONDS and (definition.every or 0) < 10:
            errors["every"] = ["Runs every few seconds would overlap; use at least 10 seconds."]
        return errors
    if definition.schedule in (Schedule.DAILY, Schedule.WEEKLY):
        errors = {}
        if definition.at is None:
            errors["at"] = ["Give the time of day (HH:MM)."]
        days = set((definition.weekdays or "").split(",")) - {""}
        if definition.schedule == Schedule.WEEKLY and not days:
            errors["weekdays"] = ["Choose at least one day of the week."]
        elif days - set(dict(RunDefinition.WEEKDAYS)):
            errors["weekdays"] = ["Days are cron's numbers 0 (Sunday) to 6, e.g. '1,3,5'."]
        return errors
    if definition.schedule == Schedule.CRON:
        try:
            schedules.crontab_fields(definition)
        except ValueError as exc:
            return {"cron": [str(exc)]}
    return {}


# --- Scheduling -------------------------------------------------------------------------------


def _task_name(definition: RunDefinition) -> str:
    return f"Run definition {definition.pk}: {definition.name}"[:200]


def _unschedule(definition: RunDefinition) -> None:
    task = definition.periodic_task
    if task is None:
        return
    clocked = task.clocked
    definition.periodic_task = None
    definition.save(update_fields=["periodic_task", "updated_at"])
    task.delete()
    if clocked is not None and not clocked.periodictask_set.exists():
        clocked.delete()


def _schedule(definition: RunDefinition) -> None:
    Schedule = RunDefinition.Schedule
    task = PeriodicTask(
        name=_task_name(definition),
        task=TASK,
        args=json.dumps([definition.pk]),
        kwargs=json.dumps({"trigger": ProcessRun.Trigger.SCHEDULE}),
        # Keep a pile-up from forming: a run not started within a while is dropped, not queued.
        expires=None,
    )
    if definition.schedule == Schedule.ONCE:
        task.clocked = ClockedSchedule.objects.create(clocked_time=definition.run_at)
        task.one_off = True
    elif definition.schedule == Schedule.INTERVAL:
        task.interval, _ = IntervalSchedule.objects.get_or_create(
            every=definition.every, period=definition.unit
        )
    else:
        task.crontab, _ = CrontabSchedule.objects.get_or_create(
            **schedules.crontab_fields(definition), timezone=settings.TIME_ZONE
        )
    task.save()
    definition.periodic_task = task
    definition.save(update_fields=["periodic_task", "updated_at"])


@transaction.atomic
def submit(definition: RunDefinition) -> RunDefinition:
    definition = RunDefinition.objects.select_for_update().get(pk=definition.pk)
    if definition.state not in (State.DRAFT, State.CANCELLED):
        raise RunError(
            f"{definition.name} is {definition.get_state_display()}; it cannot be submitted again."
        )
    validate(definition)
    _refuse_past(definition)
    definition.state = State.SUBMITTED
    definition.save()
    _schedule(definition)
    return definition


@transaction.atomic
def cancel(definition: RunDefinition) -> RunDefinition:
    definition = RunDefinition.objects.select_for_update().get(pk=definition.pk)
    if definition.state != State.SUBMITTED:
        raise RunError(
            f"{definition.name} is {definition.get_state_display()}; only a "
            "submitted definition can be cancelled."
        )
    _unschedule(definition)
    definition.state = State.CANCELLED
    definition.save(update_fields=["state", "updated_at"])
    return definition


def _refuse_past(definition: RunDefinition) -> None:
    if definition.schedule == RunDefinition.Schedule.ONCE and definition.run_at <= timezone.now():
        raise RunError(
            f"{definition.name} is set to run at {definition.run_at:%Y-%m-%d %H:%M}, "
            "which has passed; choose a later time."
        )


@transaction.atomic
def reschedule(definition: RunDefinition) -> None:
    """After an edit of a submitted definition: its beat schedule follows the new settings."""
    if definition.state == State.SUBMITTED:
        _refuse_past(definition)
        _unschedule(definition)
        _schedule(definition)


@transaction.atomic
def delete(definition: RunDefinition) -> None:
    """Delete a definition that never ran (one with a history is cancelled instead), taking its
    beat schedule with it."""
    if definition.process_runs.exists():
        raise RunError(
            f"{definition.name} has process runs; cancel it instead, so that its history stays."
        )
    _unschedule(definition)
    definition.delete()


def run_now(definition: RunDefinition) -> ProcessRun:
    """Execute on a worker as soon as one is free (outside any schedule). Its process run is
    written at once, Queued, and sent with the task: the worker takes that row (a redelivered
    task finds it taken and does nothing), so the run shows before any worker is free."""
    validate(definition, schedule=False)
    run = ProcessRun.objects.create(
        definition=definition, trigger=ProcessRun.Trigger.RUN_NOW, status=Status.QUEUED
    )
    transaction.on_commit(lambda: _queue_run_now(run))
    return run


def _queue_run_now(run: ProcessRun) -> None:
    """Send the run to the workers; a broker that cannot take it (down, frozen) leaves the
    queued run Failed, saying so, at once, rather than an answer that hangs or a run that never
    comes."""
    from providers.wakeups import broker_errors

    try:
        current_app.send_task(
            TASK,
            (run.definition_id, ProcessRun.Trigger.RUN_NOW),
            {"run_id": run.pk},
            retry=False,
        )
    except broker_errors() as error:
        log.warning("Could not queue %s: %s", run.definition.name, error)
        ProcessRun.objects.filter(pk=run.pk, status=Status.QUEUED).update(
            status=Status.FAILED,
            finished_at=timezone.now(),
            message=(
                f"Not started: the task broker did not take the run ({error}). Nothing ran; "
                "use Run now again once the broker is back."
            ),
        )


def next_run_times(definition: RunDefinition, count: int = 5) -> list:
    """The next moments beat will run the definition (none unless it is submitted)."""
    return schedules.next_times(definition, count)


def next_run_time(definition: RunDefinition):
    times = schedules.next_times(definition, 1)
    return times[0] if times else None


# --- Executing --------------------------------------------------------------------------------


def _stale_before():
    return timezone.now() - timedelta(seconds=settings.RUN_STALE_SECONDS)


def _fail_stale(run: ProcessRun) -> None:
    ProcessRun.objects.filter(pk=run.pk, status=Status.RUNNING).update(
        status=Status.FAILED,
        finished_at=timezone.now(),
        message=(
            f"The worker stopped during the run (last sign of life at "
            f"{run.heartbeat_at or run.started_at:%Y-%m-%d %H:%M:%S %Z}); {_done_so_far(run)}. "
            "Run it again to finish the work: nothing done is done twice."
        ),
    )


def fail_stale_runs() -> int:
    """Sweeper: runs whose worker went silent are Failed, with what they had done."""
    stale = list(ProcessRun.objects.filter(status=Status.RUNNING, heartbeat_at__lt=_stale_before()))
    for run in stale:
        _fail_stale(run)
    return len(stale)


class _Heartbeat(threading.Thread):
    """Touches the run's heartbeat while it executes, however long one chunk takes."""

    def __init__(self, run_id: int):
        super().__init__(daemon=True)
        self.run_id = run_id
        self.stopped = threading.Event()

    def run(self) -> None:
        interval = max(settings.RUN_STALE_SECONDS / 5, 1)
        try:
            while not self.stopped.wait(interval):
                ProcessRun.objects.filter(pk=self.run_id, status=Status.RUNNING).update(
                    heartbeat_at=timezone.now()
                )
        finally:
            connection.close()


def _start(definition_id: int, trigger: str, run_id: int | None = None) -> ProcessRun | None:
    """Take the definition's lock by making its running process run (Run now's queued row, or
    a new one), or log why not."""
    with transaction.atomic():
        definition = RunDefinition.objects.select_for_update().get(pk=definition_id)
        queued = None
        if run_id is not None:
            queued = definition.process_runs.filter(pk=run_id, status=Status.QUEUED).first()
            if queued is None:
                return None  # taken already by an earlier delivery of this task
        running = definition.process_runs.filter(status=Status.RUNNING).first()
        if running is not None:
            if (running.heartbeat_at or running.started_at) >= _stale_before():
                skipped = queued or ProcessRun(definition=definition, trigger=trigger)
                skipped.status = Status.SKIPPED
                skipped.finished_at = timezone.now()
                skipped.message = (
                    f"{definition.name} is already running (process run "
                    f"#{running.pk}, started {running.started_at:%Y-%m-%d %H:%M:%S %Z}); "
                    "this execution was skipped."
                )
                skipped.save()
                return None
            _fail_stale(running)
        run = queued or ProcessRun(definition=definition, trigger=trigger)
        now = timezone.now()
        if queued is not None:
            run.started_at = now  # the run starts now; it was queued since then
        run.status = Status.RUNNING
        run.heartbeat_at = now
        run.worker = f"{socket.gethostname()}:{os.getpid()}"
        run.save()
        return run


def execute(
    definition_id: int,
    trigger: str,
    *,
    on_progress: Callable[[ProcessRun], None] | None = None,
    fan_out: bool = False,
    run_id: int | None = None,
) -> ProcessRun | None:
    """Start a run of a definition; returns its process run (None if skipped, or if a
    scheduled run found nothing to do).

    The run is split into parts (a run type over subscriptions: id ranges of
    ``RUN_PART_SIZE``; any other: one part). With ``fan_out`` each part becomes a Celery task
    on the batch queue, for whichever workers are free, and the run is returned while they
    work; the part that finishes last completes the run. Without, the parts run here, one
    after the other, and the run is returned finished. ``run_id`` is Run now's queued row."""
    run = _start(definition_id, trigger, run_id)
    if run is None:
        return None
    definition = run.definition
    run_type = run_type_of(definition)
    try:
        run.total = run_type.total(definition)
        ranges = (
            run_type.parts(definition, settings.RUN_PART_SIZE) if run_type.parts else [None]
        ) or [None]
    except Exception as exc:
        log.exception("Process run %s could not start", run.pk)
        _fail(run, exc)
        return run
    with transaction.atomic():
        run.save(update_fields=["total"])
        parts = ProcessRunPart.objects.bulk_create(
            ProcessRunPart(
                run=run,
                number=number,
                low=bounds[0] if bounds else None,
                high=bounds[1] if bounds else None,
            )
            for number, bounds in enumerate(ranges, start=1)
        )
        if fan_out:
            for part in parts:
                transaction.on_commit(
                    lambda n=part.number: current_app.send_task(PART_TASK, (run.pk, n))
                )
    if not fan_out:
        for part in parts:
            execute_part(run.pk, part.number, on_progress=on_progress)
    # None when a scheduled run found nothing to do: it is counted, not kept (_count_empty).
    return ProcessRun.objects.filter(pk=run.pk).first()


def execute_part(
    run_id: int, number: int, *, on_progress: Callable[[ProcessRun], None] | None = None
) -> None:
    """Execute one part of a run, here. A part already finished (a redelivered task) or of a
    run no longer running (it failed, or went stale) is left alone."""
    part = ProcessRunPart.objects.select_related("run__definition").get(
        run_id=run_id, number=number
    )
    run = part.run
    if part.finished_at is not None or run.status != Status.RUNNING:
        return
    worker = f"{socket.gethostname()}:{os.getpid()}"
    ProcessRunPart.objects.filter(pk=part.pk).update(worker=worker)
    definition = run.definition
    run_type = run_type_of(definition)
    reported = Progress()

    def report(progress: Progress) -> None:
        # Several workers report on one run: each adds what its part did since it last
        # reported, in the transaction of the work it reports.
        problems = progress.problems
        if problems:
            ProcessRunError.objects.bulk_create(
                ProcessRunError(run_id=run_id, subscription_id=sub_id, message=message)
                for sub_id, message in problems
            )
        changes = {
            "examined": F("examined") + (progress.examined - reported.examined),
            "created": F("created") + (progress.created - reported.created),
            "errors": F("errors") + len(problems),
            "heartbeat_at": timezone.now(),
        }
        if progress.counts:
            with transaction.atomic():
                # The run type's own counts, added under the run's lock (one JSON value). No key
                # lock: requests inserted meanwhile check their foreign key to the run with a
                # key-share lock, which a plain FOR UPDATE blocks (deadlocks between parts).
                counts = ProcessRun.objects.select_for_update(no_key=True).values_list(
                    "counts", flat=True
                )
                counts = dict(counts.get(pk=run_id))
                for key, value in progress.counts.items():
                    counts[key] = counts.get(key, 0) + value - reported.counts.get(key, 0)
                ProcessRun.objects.filter(pk=run_id).update(counts=counts, **changes)
            reported.counts = dict(progress.counts)
        else:
            ProcessRun.objects.filter(pk=run_id).update(**changes)
        reported.examined, reported.created = progress.examined, progress.created
        if on_progress:
            on_progress(ProcessRun.objects.get(pk=run_id))

    heartbeat = _Heartbeat(run_id)
    heartbeat.start()
    try:
        with plans_per_call():
            if run_type.parts:
                bounds = (part.low, part.high) if part.low is not None else None
                run_type.execute(definition, run_id, report, bounds)
            else:
                run_type.execute(definition, run_id, report)
    except Exception as exc:
        log.exception("Process run %s part %s failed", run_id, number)
        _fail(ProcessRun.objects.get(pk=run_id), exc)
        return
    finally:
        heartbeat.stopped.set()
        heartbeat.join(timeout=5)
    _tell_the_planner(reported.created)
    _finish_part(part)


def _tell_the_planner(created: int) -> None:
    """A part that made many requests makes sure the planner knows they are Pending: when its
    statistics expect fewer than half of them, they are refreshed (``bulk.analyze``). Once
    they know, later parts find them so and cost one EXPLAIN each."""
    if created < REFRESH_STATISTICS_AFTER:
        return
    pending = ProvisioningRequest.objects.filter(state=ProvisioningRequest.State.PENDING)
    expected = bulk.estimated_rows(pending)
    if expected is not None and expected < created // 2:
        bulk.analyze(ProvisioningRequest, "state")


def _finish_part(part: ProcessRunPart) -> None:
    """Mark a part done; the last one completes the run (under the run's lock, so exactly
    one worker does)."""
    with transaction.atomic():
        run = (
            ProcessRun.objects.select_for_update().select_related("definition").get(pk=part.run_id)
        )
        ProcessRunPart.objects.filter(pk=part.pk).update(finished_at=timezone.now())
        if run.status != Status.RUNNING or run.parts.filter(finished_at__isnull=True).exists():
            return
        if run.trigger == ProcessRun.Trigger.SCHEDULE and _did_nothing(run):
            _count_empty(run)
        else:
            _complete(run)
    if run.trigger == ProcessRun.Trigger.SCHEDULE:
        _complete_if_once(run.definition)


def _did_nothing(run: ProcessRun) -> bool:
    return not (run.examined or run.created or run.errors or any(run.counts.values()))


def _count_empty(run: ProcessRun) -> None:
    """A scheduled run that found nothing to do (a queue read every two minutes, empty) is
    counted on its definition instead of filling the history."""
    RunDefinition.objects.filter(pk=run.definition_id).update(
        empty_runs=F("empty_runs") + 1, last_empty_at=timezone.now()
    )
    run.delete()


def _complete(run: ProcessRun) -> None:
    run.status = Status.COMPLETED_WITH_ERRORS if run.errors else Status.COMPLETED
    errors = f"; {counted(run.errors, 'error')} (see the log)." if run.errors else "."
    run.message = summary(run) + errors
    run.finished_at = timezone.now()
    run.save(update_fields=["status", "message", "finished_at"])


def _fail(run: ProcessRun, exc: Exception) -> None:
    """The run failed: visible with its reason, and what it had done (running it again
    finishes the work; nothing done is done twice)."""
    ProcessRunError.objects.create(run=run, message=f"{type(exc).__name__}: {exc}")
    ProcessRun.objects.filter(pk=run.pk).update(errors=F("errors") + 1)
    run.refresh_from_db()
    done = _done_so_far(run)
    updated = ProcessRun.objects.filter(pk=run.pk, status=Status.RUNNING).update(
        status=Status.FAILED,
        finished_at=timezone.now(),
        message=f"Failed: {exc}. {done[:1].upper()}{done[1:]}; run it again to finish the work.",
    )
    if updated and run.trigger == ProcessRun.Trigger.SCHEDULE:
        _complete_if_once(run.definition)


def _complete_if_once(definition: RunDefinition) -> None:
    with transaction.atomic():
        definition = RunDefinition.objects.select_for_update().get(pk=definition.pk)
        if (
            definition.schedule == RunDefinition.Schedule.ONCE
            and definition.state == State.SUBMITTED
        ):
            _unschedule(definition)
            definition.state = State.COMPLETED
            definition.save(update_fields=["state", "updated_at"])


# --- What a run did ---------------------------------------------------------------------------


def _own_counts(run: ProcessRun) -> RunType | None:
    """The run's type when it counts in its own terms (``RunType.counts``)."""
    run_type = types.get(run.definition.run_type)
    return run_type if run_type is not None and run_type.summary is not None else None


def _counts(run: ProcessRun) -> Counter:
    """The run type's counts, with the total, examined and created every run keeps (under
    those keys; a total not known is 0)."""
    kept = {"total": run.total or 0, "examined": run.examined, "created": run.created}
    return Counter({**kept, **run.counts})


def own_summary(run: ProcessRun) -> str | None:
    """What the run did in its type's own terms ("Exported 7 records in 1 file"), or None for
    a type that counts only subscriptions examined and requests created."""
    run_type = _own_counts(run)
    return None if run_type is None else run_type.summary(_counts(run))


def summary(run: ProcessRun) -> str:
    """What the run did: its own summary, else "Examined 3; created 5 requests"."""
    return own_summary(run) or f"Examined {run.examined}; created {run.created} requests"


def count_rows(run: ProcessRun) -> list[tuple[str, str, int]]:
    """(key, label, value) of each count the run's page and API show."""
    run_type = _own_counts(run)
    if run_type is None:
        return [
            ("examined", "Examined", run.examined),
            ("created", "Requests created", run.created),
        ]
    counts = _counts(run)
    return [(key, label, counts[key]) for key, label in run_type.counts]


def _done_so_far(run: ProcessRun) -> str:
    done = own_summary(run)
    if done is None:
        return f"it had examined {run.examined} and created {run.created} requests"
    return f"so far: {done[:1].lower()}{done[1:]}"


def preview_rows(definition: RunDefinition):
    """Every subscription the definition would change, with its requests. Writes nothing."""
    validate(definition, schedule=False)
    run_type = run_type_of(definition)
    if run_type.preview is None:
        raise RunError(f"{run_type.name} has no preview: it changes no subscription.")
    return run_type.preview(definition)


def preview(definition: RunDefinition, *, offset: int = 0, limit: int = 50):
    """A page of what the definition would do, and whether there is more. Writes nothing."""
    rows, more = [], False
    for index, row in enumerate(preview_rows(definition)):
        if index < offset:
            continue
        if len(rows) == limit:
            more = True
            break
        rows.append(row)
    return rows, more
