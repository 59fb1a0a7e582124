"""URLs: the back office under /admin/ (/ leads there) and the Web API under /api/."""

from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

urlpatterns = [
    path("", RedirectView.as_view(url="/admin/", permanent=False)),
    path("admin/", admin.site.urls),
    path("api/v1/generic/", include("providers.generic.urls")),
]
