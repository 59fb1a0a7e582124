"""The Web API, version 1, under /api/v1/: one router for every resource, plus the Generic
provider's Get Pending / Send Response."""

from django.urls import include, path
from rest_framework.routers import DefaultRouter

router = DefaultRouter()
# Resources register here, each from its own app's api module.

urlpatterns = [
    path("", include(router.urls)),
    path("generic/", include("providers.generic.urls")),
]
