from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import models
from django.db.models import Q

from providers import env_secrets


class Metrics(models.Model):
    """No table: only the permission to read ``/metrics`` in a browser (Prometheus itself uses
    ``METRICS_TOKEN``)."""

    class Meta:
        managed = False
        default_permissions = ()
        permissions = [("view_metrics", "Can read the metrics")]

    def __str__(self) -> str:
        return "Metrics"


class ProviderHealth(models.Model):
    """The newest health check of a provider (its adapter's ``check()``), run by the watch task
    so that no page waits on a platform."""

    provider = models.OneToOneField(
        "catalogue.Provider", on_delete=models.CASCADE, related_name="health"
    )
    checked_at = models.DateTimeField()
    reachable = models.BooleanField(null=True, help_text="Empty: this provider cannot be checked.")
    message = models.TextField()

    def __str__(self) -> str:
        return f"{self.provider}: {self.message}"


class Incident(models.Model):
    """Something an operator must hear about, from when it began until it recovered. Alerts go
    out once when it opens and once when it is resolved."""

    class Kind(models.TextChoices):
        UNREACHABLE = "unreachable", "Provider unreachable"
        FAILING = "failing", "Provider failing"
        FAILED_REQUESTS = "failed_requests", "Failed requests over the threshold"
        RUN_FAILED = "run_failed", "Run failed"
        SCHEDULE_MISSED = "schedule_missed", "Run missed its schedule"

    kind = models.CharField(max_length=20, choices=Kind.choices)
    # What it is about, stable while it lasts: "provider:3", "run:812", "definition:5".
    subject = models.CharField(max_length=100)
    title = models.CharField(max_length=300)
    detail = models.TextField(blank=True)
    opened_at = models.DateTimeField()
    resolved_at = models.DateTimeField(null=True, blank=True)
    notified_open_at = models.DateTimeField(null=True, blank=True)
    notified_resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["kind", "subject"],
                condition=Q(resolved_at__isnull=True),
                name="incident_one_open_per_subject",
            )
        ]

    def __str__(self) -> str:
        return self.title


class AlertChannel(models.Model):
    """Where alerts go: e-mail addresses, or a webhook taking Slack's JSON (``{"text": …}``)
    whose address, a secret, is read from the environment variable it names."""

    class Kind(models.TextChoices):
        EMAIL = "email", "E-mail"
        WEBHOOK = "webhook", "Webhook (Slack-compatible)"

    name = models.CharField(max_length=100, unique=True)
    kind = models.CharField(max_length=10, choices=Kind.choices)
    recipients = models.CharField(
        max_length=500, blank=True, help_text="E-mail: addresses, separated by commas."
    )
    url_env = models.CharField(
        "webhook URL variable",
        max_length=100,
        blank=True,
        help_text="Webhook: the environment variable holding its URL (the URL is a secret).",
    )
    enabled = models.BooleanField(default=True)
    last_sent_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_error = models.TextField(blank=True, editable=False)

    def __str__(self) -> str:
        return self.name

    def addresses(self) -> list[str]:
        return [a.strip() for a in self.recipients.split(",") if a.strip()]

    def clean(self) -> None:
        if self.kind == self.Kind.EMAIL:
            if not self.addresses():
                raise ValidationError({"recipients": "Name at least one e-mail address."})
            for address in self.addresses():
                try:
                    validate_email(address)
                except ValidationError:
                    raise ValidationError(
                        {"recipients": f"{address!r} is not an e-mail address."}
                    ) from None
        elif self.kind == self.Kind.WEBHOOK:
            refused = env_secrets.refusal(self.url_env) if self.url_env else "Name a variable."
            if refused:
                raise ValidationError({"url_env": refused})


class HourlyRequests(models.Model):
    """Requests of one provider created in one hour, by what became of them: what the
    dashboard's charts draw, kept by the watch so that no page counts the request table."""

    provider = models.ForeignKey("catalogue.Provider", on_delete=models.CASCADE, related_name="+")
    hour = models.DateTimeField()
    created = models.PositiveIntegerField(default=0)
    completed = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    rejected = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["provider", "hour"], name="hourly_requests_once")
        ]

    def __str__(self) -> str:
        return f"{self.provider_id} {self.hour:%Y-%m-%d %H:00}"
