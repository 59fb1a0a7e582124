"""URLs: the back office under /admin/ (and / leads there); the Web API will live under /api/."""

from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

from runs.admin import worker_status

admin.site.site_header = "CRM Provisioning"
admin.site.site_title = "CRM Provisioning"
admin.site.index_title = "Back office"


def admin_index(request, extra_context=None):
    """The admin index with the worker status banner (see templates/admin/index.html)."""
    context = {"worker_status": worker_status(), **(extra_context or {})}
    return admin.site.index(request, extra_context=context)


urlpatterns = [
    path("", RedirectView.as_view(url="/admin/", permanent=False)),
    # Placed before admin.site.urls so it answers /admin/ itself; "admin:index" still reverses
    # to the same address.
    path("admin/", admin.site.admin_view(admin_index), name="admin-index"),
    path("admin/", admin.site.urls),
    path("api/v1/generic/", include("providers.generic.urls")),
]
