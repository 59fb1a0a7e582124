"""Batch runs: definitions operators schedule, and the process run each execution logs."""

from datetime import timedelta

from django.conf import settings
from django.db import models
from django.db.models import Q


class WorkerHeartbeat(models.Model):
    """One row per worker host and queue, touched by a beat-scheduled task: proof that beat and
    a worker taking that queue are both alive and share the broker and the database."""

    # A worker that has not beaten for this long is taken for down (heartbeats come every 15 s).
    ALIVE_WITHIN = timedelta(seconds=60)

    hostname = models.CharField(max_length=200)
    # The queue the beat came through: "celery" (the real-time worker's) or "batch".
    queue = models.CharField(max_length=50, blank=True)
    last_seen = models.DateTimeField()
    beats = models.PositiveBigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["hostname", "queue"], name="heartbeat_per_queue")
        ]

    def __str__(self) -> str:
        return f"{self.hostname} ({self.queue or 'any queue'}) @ {self.last_seen:%Y-%m-%d %H:%M:%S}"


class RunDefinition(models.Model):
    """What to run (a run type of one provider, with its criteria and input settings) and when.

    Life cycle: Draft → Submitted (scheduled on beat) → Cancelled, or Completed once a
    run-once definition has run.
    """

    class State(models.TextChoices):
        DRAFT = "draft", "Draft"
        SUBMITTED = "submitted", "Submitted"
        CANCELLED = "cancelled", "Cancelled"
        COMPLETED = "completed", "Completed"

    class Schedule(models.TextChoices):
        ONCE = "once", "Once, at a date and time"
        DAILY = "daily", "Daily at a time"
        WEEKLY = "weekly", "Weekly on chosen days at a time"
        INTERVAL = "interval", "Every N minutes, hours or days"
        CRON = "cron", "Cron expression"

    # Cron's day-of-week numbers (Sunday is 0), in the order a week is read.
    WEEKDAYS = [
        ("1", "Monday"),
        ("2", "Tuesday"),
        ("3", "Wednesday"),
        ("4", "Thursday"),
        ("5", "Friday"),
        ("6", "Saturday"),
        ("0", "Sunday"),
    ]

    class Unit(models.TextChoices):
        SECONDS = "seconds", "seconds"
        MINUTES = "minutes", "minutes"
        HOURS = "hours", "hours"
        DAYS = "days", "days"

    name = models.CharField(max_length=100, unique=True)
    alternative_code = models.CharField(max_length=32, blank=True)
    run_type = models.CharField(max_length=40)
    provider = models.ForeignKey(
        "catalogue.Provider", on_delete=models.PROTECT, related_name="run_definitions"
    )
    criteria = models.JSONField(default=dict, blank=True)
    input_settings = models.JSONField(default=dict, blank=True)
    schedule = models.CharField(max_length=10, choices=Schedule.choices, default=Schedule.ONCE)
    run_at = models.DateTimeField("run at", null=True, blank=True)
    at = models.TimeField(
        "at", null=True, blank=True, help_text="Time of day (daily and weekly), in TIME_ZONE."
    )
    weekdays = models.CharField(
        max_length=20, blank=True, help_text="Days of a weekly run: cron day numbers, e.g. '1,3'."
    )
    every = models.PositiveIntegerField(null=True, blank=True)
    unit = models.CharField(max_length=10, choices=Unit.choices, blank=True)
    cron = models.CharField(
        "cron expression",
        max_length=100,
        blank=True,
        help_text="Five fields: minute hour day-of-month month day-of-week, e.g. '0 2 * * *'.",
    )
    state = models.CharField(max_length=10, choices=State.choices, default=State.DRAFT)
    # Scheduled runs that found nothing to do leave no process run, only these (see
    # services._finish_part): the history keeps the runs that did something.
    empty_runs = models.PositiveIntegerField(
        "runs with nothing to do",
        default=0,
        help_text="Scheduled runs that found nothing to do; they are counted, not listed.",
    )
    last_empty_at = models.DateTimeField("last run with nothing to do", null=True, blank=True)
    periodic_task = models.OneToOneField(
        "django_celery_beat.PeriodicTask",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="run_definition",
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        permissions = [("operate_rundefinition", "Can submit, cancel and run definitions")]
        constraints = [
            models.UniqueConstraint(
                fields=["alternative_code"],
                condition=~Q(alternative_code=""),
                name="run_definition_alternative_code_unique",
            )
        ]

    def __str__(self) -> str:
        return self.name


class ProcessRun(models.Model):
    """One execution of a definition: when, how it went, what it did, and every error."""

    class Status(models.TextChoices):
        # Run now's row, shown at once, until a worker takes it (see services.run_now).
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        COMPLETED = "completed", "Completed"
        COMPLETED_WITH_ERRORS = "completed_with_errors", "Completed with errors"
        FAILED = "failed", "Failed"
        SKIPPED = "skipped", "Skipped"

    # Not ended yet: waiting for a worker, or executing.
    UNFINISHED = (Status.QUEUED, Status.RUNNING)

    class Trigger(models.TextChoices):
        SCHEDULE = "schedule", "Schedule"
        RUN_NOW = "run_now", "Run now"
        COMMAND = "command", "Command line"

    # PROTECT: a definition with a history is cancelled, never deleted with it.
    definition = models.ForeignKey(
        RunDefinition, on_delete=models.PROTECT, related_name="process_runs"
    )
    trigger = models.CharField(max_length=10, choices=Trigger.choices)
    status = models.CharField(max_length=25, choices=Status.choices, default=Status.RUNNING)
    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(
        null=True, blank=True, help_text="Last sign of life of the worker running it."
    )
    worker = models.CharField(max_length=200, blank=True)
    total = models.PositiveIntegerField(
        null=True, blank=True, help_text="How many subscriptions (or rows) it will look at."
    )
    examined = models.PositiveIntegerField(default=0)
    created = models.PositiveIntegerField("requests created", default=0)
    errors = models.PositiveIntegerField(default=0)
    counts = models.JSONField(
        default=dict,
        blank=True,
        help_text="What the run did in its own type's terms (e.g. records and files exported).",
    )
    message = models.TextField(blank=True)

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["definition", "status"])]

    def __str__(self) -> str:
        return f"{self.definition} #{self.pk}"


class ProcessRunError(models.Model):
    run = models.ForeignKey(ProcessRun, on_delete=models.CASCADE, related_name="error_log")
    subscription = models.ForeignKey(
        "subscriptions.Subscription",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    message = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.message[:80]


class ProcessRunPart(models.Model):
    """One independent piece of a process run, executed by whichever worker takes it: a run over
    millions of subscriptions is split by subscription id so that several workers (on several
    machines) share it. A run without pieces has one part covering everything."""

    run = models.ForeignKey(ProcessRun, on_delete=models.CASCADE, related_name="parts")
    number = models.PositiveIntegerField()
    low = models.BigIntegerField(null=True, blank=True, help_text="First subscription id.")
    high = models.BigIntegerField(
        null=True, blank=True, help_text="Subscription id after the last."
    )
    worker = models.CharField(max_length=200, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["run", "number"]
        constraints = [models.UniqueConstraint(fields=["run", "number"], name="run_part_once")]

    def __str__(self) -> str:
        return f"{self.run} part {self.number}"
