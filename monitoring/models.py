from django.db import models


class Metrics(models.Model):
    """No table: only the permission to read ``/metrics`` in a browser (Prometheus itself uses
    ``METRICS_TOKEN``)."""

    class Meta:
        managed = False
        default_permissions = ()
        permissions = [("view_metrics", "Can read the metrics")]

    def __str__(self) -> str:
        return "Metrics"
