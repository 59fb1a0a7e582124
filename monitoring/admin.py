"""Back office for alerts: the channels operators set up, and the incidents the watch opened."""

from django.contrib import admin

from .models import AlertChannel, Incident


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
