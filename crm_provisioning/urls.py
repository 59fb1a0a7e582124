"""URLs: the back office under /admin/ (/ leads there) and the Web API under /api/, whose
errors Django answers itself (no such path, a server error) are in the API's error shape too."""

from django.contrib import admin
from django.urls import include, path
from django.views import defaults
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from crm_provisioning.api_errors import error_response
from crm_provisioning.api_middleware import API_PREFIX

urlpatterns = [
    path("", RedirectView.as_view(url="/admin/", permanent=False)),
    path("admin/", admin.site.urls),
    path("api/v1/", include("crm_provisioning.api_urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
]


def _api_or_django(status: int, code: str, message: str, django_view):
    """An error handler: the error shape under /api/, Django's own page elsewhere."""

    def handler(request, exception=None):
        if request.path_info.startswith(API_PREFIX):
            text = message.format(path=request.path)
            return error_response(status, code, text)
        return django_view(request) if exception is None else django_view(request, exception)

    return handler


handler400 = _api_or_django(400, "bad_request", "The request is malformed.", defaults.bad_request)
handler403 = _api_or_django(
    403, "permission_denied", "You may not do this.", defaults.permission_denied
)
handler404 = _api_or_django(
    404, "not_found", "Nothing at {path}: see /api/schema/ for the API.", defaults.page_not_found
)
handler500 = _api_or_django(
    500, "server_error", "A server error occurred; it has been logged.", defaults.server_error
)
