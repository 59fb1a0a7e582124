"""Back office for providers, distributors, CA IDs and provisioning requests.

A provider's ``connection`` and ``parameters`` are validated by ``provider_settings.clean`` through
the provider type's forms; the provider's form runs it, so its errors land on those two fields.
Provisioning requests are created by the system only: the admin shows them and nothing else,
whoever asks (superusers included).
"""

import json
from datetime import timedelta

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Q
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.text import Truncator
from django.utils.timesince import timesince

from catalogue.models import Distributor, ProductCAId, Provider
from subscriptions import search
from subscriptions.admin import ViewOnlyAdmin, searched
from subscriptions.models import InstalledItem

from . import delivery, history, provider_settings, registry, sealed
from .models import ArchivedRequest, ConnectorToken, ProvisioningRequest


def _settings_table(form_class) -> str:
    """What a settings form accepts: key, label, whether required, range and default."""
    rows = []
    for name, field in form_class.base_fields.items():
        bounds = []
        if getattr(field, "min_value", None) is not None:
            bounds.append(f"min {field.min_value}")
        if getattr(field, "max_value", None) is not None:
            bounds.append(f"max {field.max_value}")
        if getattr(field, "choices", None):
            bounds.append(" / ".join(str(value) for value, _ in field.choices))
        rows.append(
            (
                name,
                field.label or name.replace("_", " ").capitalize(),
                "required" if field.required else "optional",
                ", ".join(bounds) or "-",
                "-" if field.initial is None else field.initial,
            )
        )
    if not rows:
        return format_html("<p>{}</p>", "No settings.")
    return format_html(
        "<table><thead><tr><th>Key</th><th>Meaning</th><th></th><th>Allowed</th>"
        "<th>Default</th></tr></thead><tbody>{}</tbody></table>",
        format_html_join(
            "",
            "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            rows,
        ),
    )


class ProviderForm(forms.ModelForm):
    """The settings checked against the chosen type's forms and stored cleaned (defaults filled
    in): the model's own ``full_clean`` cannot, the catalogue sits below the adapters."""

    def clean(self):
        data = super().clean()
        if self.has_error("connection") or self.has_error("parameters"):
            return data
        provider = Provider(
            type=data.get("type"),
            connection=data.get("connection"),
            parameters=data.get("parameters"),
        )
        try:
            provider_settings.clean(provider)
        except ValidationError as error:
            for field, messages in error.message_dict.items():
                self.add_error(field, messages)
        else:
            data["connection"], data["parameters"] = provider.connection, provider.parameters
        return data


@admin.register(Provider)
class ProviderAdmin(admin.ModelAdmin):
    form = ProviderForm
    list_display = ["name", "type", "provisioning_model_display", "enabled", "external_system"]
    list_filter = ["type", "enabled"]
    list_select_related = ["external_system"]
    search_fields = ["name"]
    readonly_fields = [
        "provisioning_model_display",
        "settings_reference",
        "created_at",
        "updated_at",
    ]
    fieldsets = [
        (None, {"fields": ["name", "type", "provisioning_model_display", "enabled"]}),
        (
            "Settings",
            {
                "fields": ["connection", "parameters"],
                "description": "JSON objects, checked against the provider type. Secrets are "
                "never stored: a <code>*_env</code> setting names the environment variable "
                "that holds the secret, which must start with "
                f"<code>{settings.PROVIDER_SECRET_ENV_PREFIX}</code>.",
            },
        ),
        ("Settings of the type", {"fields": ["settings_reference"], "classes": ["collapse"]}),
        (None, {"fields": ["external_system", "created_at", "updated_at"]}),
    ]

    def construct_change_message(self, request, form, formsets, add=False):
        # Each changed setting with its old and new value, as the API records it (history).
        before = None if add else history.initial(form)
        return history.message(before, history.snapshot(form.instance))

    @admin.display(description="Provisioning model")
    def provisioning_model_display(self, obj):
        if obj is None or obj.type not in registry.adapter_classes():
            return "-"
        return registry.model_label(registry.adapter_class(obj.type).model)

    @admin.display(description="Accepted keys")
    def settings_reference(self, obj):
        if obj is not None and obj.type in registry.adapter_classes():
            chosen = [registry.adapter_class(obj.type)]
        else:
            chosen = list(registry.adapter_classes().values())
        return format_html_join(
            "",
            "<h3>{} — connection</h3>{}<h3>{} — parameters</h3>{}",
            (
                (
                    t.name,
                    _settings_table(t.connection_form),
                    t.name,
                    _settings_table(t.parameters_form),
                )
                for t in chosen
            ),
        )


@admin.register(Distributor)
class DistributorAdmin(admin.ModelAdmin):
    list_display = ["code", "name", "provider", "required_distributor"]
    list_filter = ["provider"]
    list_select_related = ["provider", "required_distributor__provider"]
    search_fields = ["code", "name"]
    filter_horizontal = ["allowed_products"]

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "required_distributor":
            kwargs["queryset"] = Distributor.objects.select_related("provider")
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


@admin.register(ProductCAId)
class ProductCAIdAdmin(admin.ModelAdmin):
    list_display = ["ca_id", "product", "provider"]
    list_filter = ["provider"]
    list_select_related = ["product", "provider"]
    search_fields = ["ca_id__exact", "product__code"]
    autocomplete_fields = ["product"]


def _pretty_json(value) -> str:
    if value in (None, {}, []):
        return "-"
    return format_html("<pre>{}</pre>", json.dumps(value, indent=2, sort_keys=True, default=str))


class RequestFieldsMixin:
    """A request's page (working or archived): every field, the JSON ones indented."""

    pretty_json = {"parameters": "parameters_json", "response": "response_json"}

    def get_fields(self, request, obj=None):
        fields = [*self.model._meta.fields, *self.model._meta.many_to_many]
        return [self.pretty_json.get(f.name, f.name) for f in fields if not f.primary_key]

    # PINs masked: a sealed one says nothing, but a page shows no PIN at all (providers.sealed).
    @admin.display(description="Parameters")
    def parameters_json(self, obj):
        return _pretty_json(sealed.masked(obj.parameters))

    @admin.display(description="Response")
    def response_json(self, obj):
        return _pretty_json(sealed.masked(obj.response))


class AgeFilter(admin.SimpleListFilter):
    """How long ago a request was made: with the state filter, "Pending over 1 hour"."""

    title = "age"
    parameter_name = "older_than"
    AGES = {"15m": timedelta(minutes=15), "1h": timedelta(hours=1), "1d": timedelta(days=1)}

    def lookups(self, request, model_admin):
        return [("15m", "Over 15 minutes"), ("1h", "Over 1 hour"), ("1d", "Over 1 day")]

    def queryset(self, request, queryset):
        age = self.AGES.get(self.value())
        return queryset.filter(created_at__lt=timezone.now() - age) if age else queryset


@admin.register(ProvisioningRequest)
class ProvisioningRequestAdmin(RequestFieldsMixin, ViewOnlyAdmin):
    list_display = [
        "id",
        "command",
        "state",
        "provider",
        "distributor",
        "subscription",
        "age",
        "attempts",
        "next_attempt_at",
        "last_error_short",
    ]
    list_filter = ["state", AgeFilter, "priority", "trigger", "provider"]
    list_select_related = ["provider", "distributor__provider", "subscription"]
    search_fields = ["subscription__number"]
    search_help_text = search.HELP
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    change_form_template = "admin/providers/provisioningrequest/change_form.html"
    # The JSON columns are shown indented; every other field as Django displays it.
    pretty_json = {
        "parameters": "parameters_json",
        "response": "response_json",
        "rollback": "rollback_json",
    }
    readonly_fields = list(pretty_json.values())
    actions = ["retry_failed"]

    @admin.display(description="Age", ordering="created_at")
    def age(self, obj):
        return timesince(obj.created_at).split(",")[0]

    @admin.display(description="Last error")
    def last_error_short(self, obj):
        text = f"{obj.error_code} {obj.last_error}".strip()
        return Truncator(text).chars(80) if text else "-"

    def change_view(self, request, object_id, form_url="", extra_context=None):
        req = self.get_object(request, object_id)
        can_retry = (
            req is not None
            and req.state == ProvisioningRequest.State.FAILED
            and self.has_retry_permission(request)
        )
        extra_context = {"can_retry": can_retry, **(extra_context or {})}
        return super().change_view(request, object_id, form_url, extra_context)

    def has_retry_permission(self, request) -> bool:
        return request.user.has_perm("providers.retry_provisioningrequest")

    @admin.action(description="Retry the selected Failed requests", permissions=["retry"])
    def retry_failed(self, request, queryset):
        chosen = queryset.count()  # before: once retried, a "Failed" filter would match none
        retried = delivery.retry(queryset)
        skipped = chosen - retried
        self.message_user(
            request,
            f"{retried} Failed request(s) are Pending again."
            + (f" {skipped} not Failed, left as they were." if skipped else ""),
            messages.SUCCESS if retried else messages.WARNING,
        )

    def get_urls(self):
        return [
            path(
                "<int:object_id>/retry/",
                self.admin_site.admin_view(self.retry_view),
                name="providers_provisioningrequest_retry",
            ),
            *super().get_urls(),
        ]

    def retry_view(self, request, object_id):
        """A Retry button (the subscription page's, or the request's own page's when it posts
        ``back=request``): one Failed request Pending again, then back where it was."""
        req = get_object_or_404(ProvisioningRequest, pk=object_id)
        own_page = reverse("admin:providers_provisioningrequest_change", args=[req.pk])
        back = (
            reverse("admin:subscriptions_subscription_change", args=[req.subscription_id])
            if req.subscription_id and request.POST.get("back") != "request"
            else own_page
        )
        if request.method != "POST":
            return HttpResponseRedirect(back)
        if not self.has_retry_permission(request):
            raise PermissionDenied
        if delivery.retry(ProvisioningRequest.objects.filter(pk=req.pk)):
            messages.success(request, f"Request #{req.pk} ({req.command}) is Pending again.")
        else:
            messages.warning(
                request,
                f"Request #{req.pk} is {req.get_state_display()}, not Failed: left as it was.",
            )
        return HttpResponseRedirect(back)

    def get_search_results(self, request, queryset, search_term):
        """The requests of the subscriptions a term names, or addressed to the device it names."""
        found = searched(request, search_term)
        if found is None:
            return queryset, False
        term = found.term
        items = InstalledItem.objects.filter(Q(serial_number=term) | Q(ca_id=term)).values_list(
            "pk", flat=True
        )[:1000]
        return queryset.filter(
            Q(subscription_id__in=found.subscription_ids) | Q(installed_item_id__in=list(items))
        ), False

    @admin.display(description="Rollback if rejected")
    def rollback_json(self, obj):
        return _pretty_json(obj.rollback)


@admin.register(ArchivedRequest)
class ArchivedRequestAdmin(RequestFieldsMixin, ViewOnlyAdmin):
    list_display = [
        "original_id",
        "command",
        "final_state",
        "provider",
        "distributor_code",
        "subscription_number",
        "card_ca_id",
        "created_at",
        "archived_at",
    ]
    list_filter = ["final_state", "provider"]
    list_select_related = ["provider"]
    search_fields = ["subscription_number__exact", "card_ca_id__exact"]
    search_help_text = "Exact subscription number or card CA ID."
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    readonly_fields = list(RequestFieldsMixin.pretty_json.values())


@admin.register(ConnectorToken)
class ConnectorTokenAdmin(admin.ModelAdmin):
    """Keys of platform connectors to the Web API: issued here, shown once, then only revoked."""

    list_display = ["name", "provider", "prefix", "created_at", "last_used_at", "revoked_at"]
    list_filter = ["provider", ("revoked_at", admin.EmptyFieldListFilter)]
    list_select_related = ["provider"]
    search_fields = ["name", "prefix__exact"]
    actions = ["revoke"]

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["provider", "name"]
        return ["provider", "name", "prefix", "created_at", "last_used_at", "revoked_at"]

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return []
        return ["provider", "prefix", "created_at", "last_used_at", "revoked_at"]

    def save_model(self, request, obj, form, change):
        if change:
            return super().save_model(request, obj, form, change)
        # The key is made by the model and never stored: this message is the only place it shows.
        token, key = ConnectorToken.issue(obj.provider, obj.name)
        obj.pk, obj.prefix, obj.created_at = token.pk, token.prefix, token.created_at
        messages.warning(
            request,
            f"Key for {token.name}: {key} — copy it now; it is not stored and cannot be "
            "shown again.",
        )
        return None

    @admin.action(description="Revoke selected tokens", permissions=["change"])
    def revoke(self, request, queryset):
        count = queryset.filter(revoked_at__isnull=True).update(revoked_at=timezone.now())
        messages.success(request, f"Revoked {count} token(s).")
