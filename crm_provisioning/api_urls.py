"""The Web API, version 1, under /api/v1/: one router for every resource, plus the Generic
provider's Get Pending / Send Response."""

from django.urls import include, path
from rest_framework.routers import DefaultRouter

from providers.api import DistributorViewSet, ProviderViewSet, ProvisioningRequestViewSet
from runs.api import ProcessRunViewSet, RunDefinitionViewSet
from subscriptions.api import (
    InstalledItemViewSet,
    ProductViewSet,
    ServiceViewSet,
    SubscriptionViewSet,
)

router = DefaultRouter()
# Resources register here, each from its own app's api module.
router.register("subscriptions", SubscriptionViewSet, basename="subscription")
router.register("services", ServiceViewSet, basename="service")
router.register("installed-items", InstalledItemViewSet, basename="installed-item")
router.register("products", ProductViewSet, basename="product")
router.register("providers", ProviderViewSet, basename="provider")
router.register("distributors", DistributorViewSet, basename="distributor")
router.register("requests", ProvisioningRequestViewSet, basename="request")
router.register("run-definitions", RunDefinitionViewSet, basename="run-definition")
router.register("process-runs", ProcessRunViewSet, basename="process-run")

urlpatterns = [
    path("", include(router.urls)),
    path("generic/", include("providers.generic.urls")),
    path("utilities/", include("utilities.urls")),
]
