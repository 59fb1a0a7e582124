"""URLs: the back office under /admin/ (/ leads there), the Web API under /api/, metrics for
Prometheus (health for load balancers is answered earlier, by monitoring.middleware)."""

from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from monitoring import views as monitoring

urlpatterns = [
    path("", RedirectView.as_view(url="/admin/", permanent=False)),
    path("admin/", admin.site.urls),
    path("api/v1/", include("crm_provisioning.api_urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("metrics", monitoring.metrics_view, name="metrics"),
]

# The back office's error pages; under /api/ they become JSON (core.api_middleware).
handler403 = "crm_provisioning.error_pages.permission_denied"
handler404 = "crm_provisioning.error_pages.page_not_found"
