"""The back office: Django's admin site with the product's name, the worker status and, for
operators and administrators, the operations dashboard (monitoring.dashboard)."""

from django.contrib import admin
from django.contrib.admin.apps import AdminConfig


class BackOffice(admin.AdminSite):
    site_header = "CRM Provisioning"
    site_title = "CRM Provisioning"
    index_title = "Back office"

    def get_urls(self):
        from django.urls import path

        from monitoring import admin as monitoring_admin
        from utilities import views as utility_views

        wrap = self.admin_view
        return [
            path("utilities/", wrap(utility_views.search), name="utilities-search"),
            path(
                "utilities/states/",
                wrap(utility_views.request_states),
                name="utilities-request-states",
            ),
            path(
                "utilities/<int:subscription_id>/",
                wrap(utility_views.subscription_utilities),
                name="utilities-subscription",
            ),
            path(
                "utilities/<int:subscription_id>/<int:provider_id>/<str:code>/",
                wrap(utility_views.run_utility),
                name="utilities-run",
            ),
            path(
                "dashboard/",
                wrap(monitoring_admin.dashboard_fragment),
                name="monitoring-dashboard",
            ),
            path(
                "catalogue/provider/<int:object_id>/test-connection/",
                wrap(monitoring_admin.test_connection),
                name="catalogue_provider_test_connection",
            ),
            *super().get_urls(),
        ]

    def index(self, request, extra_context=None):
        from monitoring import dashboard
        from runs.admin import worker_status

        context = {"worker_status": worker_status(), **(extra_context or {})}
        # Operators and administrators: the home page is the operations dashboard.
        if dashboard.may_see(request.user):
            context["dashboard"] = dashboard.context()
        return super().index(request, extra_context=context)


class BackOfficeConfig(AdminConfig):
    default_site = "crm_provisioning.admin_site.BackOffice"
