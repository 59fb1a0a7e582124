"""``/health/live``, ``/health/ready`` (served by ``monitoring.middleware``) and ``/metrics``:
thin views over health and metrics.

Health answers anyone (a load balancer has no account) and says nothing but ok or what is
down. Metrics answer Prometheus by ``METRICS_TOKEN`` and people whose role may read them.
"""

import hmac

from django.conf import settings
from django.http import HttpResponse, JsonResponse
from django.views.decorators.http import require_safe
from drf_spectacular.utils import extend_schema
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from rest_framework import permissions
from rest_framework.decorators import api_view, permission_classes

from core.api_permissions import has_permission

from . import health, metrics


@require_safe
def live(request):
    return JsonResponse({"status": "ok"})


@require_safe
def ready(request):
    checks = health.ready()
    ok = all(check.ok for check in checks)
    body = {
        "status": "ok" if ok else "unavailable",
        "checks": {check.name: check.detail for check in checks},
    }
    return JsonResponse(body, status=200 if ok else 503)


class MayReadMetrics(permissions.BasePermission):
    message = "Reading the metrics needs METRICS_TOKEN or a role that may read them."

    def has_permission(self, request, view) -> bool:
        token = settings.METRICS_TOKEN
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        if token and scheme.lower() == "bearer":
            return hmac.compare_digest(given.strip().encode(), token.encode())
        user = request.user
        if getattr(user, "is_connector", False) or not user.is_authenticated:
            return False
        return has_permission(user, "monitoring.view_metrics")


@extend_schema(exclude=True)  # Prometheus' text format, not part of the JSON Web API
@api_view(["GET"])
@permission_classes([MayReadMetrics])
def metrics_view(request):
    return HttpResponse(generate_latest(metrics.registry()), content_type=CONTENT_TYPE_LATEST)
