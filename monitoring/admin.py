"""Back office for alerts: the channels operators set up, the incidents the watch opened, a
provider page's Test connection, and the dashboard alone as the home page polls it."""

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.views.decorators.http import require_safe

from catalogue.models import Provider

from . import alerts, dashboard
from .models import AlertChannel, Incident

HEALTH_LEVEL = {True: messages.SUCCESS, False: messages.ERROR, None: messages.WARNING}


def test_connection(request, object_id):
    """The provider's health check now (kept as the watch keeps it), said as a message on the
    provider's page; for those who may edit the provider."""
    provider = get_object_or_404(Provider, pk=object_id)
    back = reverse("admin:catalogue_provider_change", args=[provider.pk])
    if request.method != "POST":
        return redirect(back)
    if not request.user.has_perm("catalogue.change_provider"):
        raise PermissionDenied
    health = alerts.check_provider(provider)
    verdict = {True: "OK", False: "failed", None: "not available"}[health.ok]
    messages.add_message(
        request, HEALTH_LEVEL[health.ok], f"Test connection {verdict}: {health.message}"
    )
    return redirect(back)


@require_safe
def dashboard_fragment(request):
    """The dashboard without the page around it: the home page asks for it every
    ``REFRESH_SECONDS`` and swaps it in, for those whose home page it is."""
    if not dashboard.may_see(request.user):
        raise PermissionDenied
    return TemplateResponse(
        request, "admin/monitoring/dashboard_live.html", {"dashboard": dashboard.context()}
    )


@admin.register(AlertChannel)
class AlertChannelAdmin(admin.ModelAdmin):
    list_display = ["name", "kind", "enabled", "last_sent_at", "last_error"]
    fields = ["name", "kind", "recipients", "url_env", "enabled", "last_sent_at", "last_error"]
    readonly_fields = ["last_sent_at", "last_error"]


@admin.register(Incident)
class IncidentAdmin(admin.ModelAdmin):
    list_display = ["title", "kind", "opened_at", "resolved_at", "notified_open_at"]
    list_filter = ["kind", ("resolved_at", admin.EmptyFieldListFilter)]
    readonly_fields = [f.name for f in Incident._meta.fields]

    # Opened and resolved by the watch only.
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
