"""The back office: Django's admin site with the product's name and the worker status."""

from django.contrib import admin
from django.contrib.admin.apps import AdminConfig


class BackOffice(admin.AdminSite):
    site_header = "CRM Provisioning"
    site_title = "CRM Provisioning"
    index_title = "Back office"

    def index(self, request, extra_context=None):
        from runs.admin import worker_status

        context = {"worker_status": worker_status(), **(extra_context or {})}
        return super().index(request, extra_context=context)


class BackOfficeConfig(AdminConfig):
    default_site = "crm_provisioning.admin_site.BackOffice"
