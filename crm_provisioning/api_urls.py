"""The Web API, version 1, under /api/v1/: one router for every resource, the utilities, and
each installed adapter's own routes under /api/v1/<code>/ (the Generic provider's Get Pending /
Send Response)."""

from django.core.signals import setting_changed
from django.dispatch import receiver
from django.urls import clear_url_caches, include, path
from rest_framework.routers import DefaultRouter

from crm_provisioning.subscriptions_api import (
    InstalledItemViewSet,
    ProductViewSet,
    ServiceViewSet,
    SubscriptionViewSet,
)
from providers import registry
from providers.api import DistributorViewSet, ProviderViewSet, ProvisioningRequestViewSet
from runs.api import ProcessRunViewSet, RunDefinitionViewSet

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


def _patterns() -> list:
    return [
        path("", include(router.urls)),
        *(
            path(f"{code}/", include(routes))
            for code, adapter in registry.adapter_classes().items()
            if (routes := adapter.api_urls())
        ),
        path("utilities/", include("utilities.urls")),
    ]


urlpatterns = _patterns()


@receiver(setting_changed)
def _rebuild(setting, **kwargs) -> None:
    # Tests install an adapter with override_settings: its routes come and go with it. The
    # list is changed in place, as the resolver of /api/v1/ holds this very list.
    if setting == "PROVISIONING_ADAPTERS":
        urlpatterns[:] = _patterns()
        clear_url_caches()
