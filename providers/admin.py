"""Back office for providers, distributors, CA IDs and provisioning requests.

A provider's ``connection`` and ``parameters`` are shown as the fields of its type's forms and
judged by ``provider_settings``, as the API's are; each error lands on its field.
Provisioning requests are created by the system only: the admin shows them and nothing else,
whoever asks (superusers included).
"""

import copy
import json
from datetime import timedelta

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Q
from django.forms.utils import pretty_name
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import escape, format_html
from django.utils.text import Truncator
from django.utils.timesince import timesince

from catalogue.models import Distributor, ProductCAId, Provider
from subscriptions import search
from subscriptions.admin import ViewOnlyAdmin, searched
from subscriptions.models import InstalledItem

from . import delivery, history, provider_settings, registry, sealed
from .models import ArchivedRequest, ConnectorToken, ProvisioningRequest


def _setting_field(name: str, field: forms.Field) -> forms.Field:
    """A copy of a type's setting field to show on the provider's form: its help says the range
    and the default; it keeps what was typed, for ``provider_settings`` to judge (one check)."""
    shown = copy.deepcopy(field)
    shown.label = shown.label or pretty_name(name)
    if type(shown.widget) in (forms.TextInput, forms.URLInput):
        shown.widget.attrs.setdefault("class", "vTextField")  # the admin's width
    said = [str(shown.help_text)] if shown.help_text else []
    low, high = getattr(shown, "min_value", None), getattr(shown, "max_value", None)
    if low is not None and high is not None:
        said.append(f"From {low} to {high}.")
    if shown.initial not in (None, ""):
        said.append(f"Default: {shown.initial}.")
    shown.help_text = escape(" ".join(said))  # the admin shows help as HTML
    shown.clean = lambda value: value
    return shown


def _setting_forms(type_code: str | None) -> dict[str, type[forms.Form]]:
    """The connection and parameters forms the type declares (none for an unknown type)."""
    adapter = registry.adapter_classes().get(type_code or "")
    if adapter is None:
        return {}
    return {"connection": adapter.connection_form, "parameters": adapter.parameters_form}


def setting_field_names(type_code: str | None) -> dict[str, list[str]]:
    """The provider form's field names of each settings group, e.g. ``connection__host``."""
    return {
        group: [f"{group}__{name}" for name in form_class.base_fields]
        for group, form_class in _setting_forms(type_code).items()
    }


class ProviderForm(forms.ModelForm):
    """The provider with its type's settings as fields (``for_type``). What is typed is judged
    by ``provider_settings`` (as the API's is) and stored as the same JSON, cleaned, defaults
    filled in; each error lands on its field."""

    type_code: str | None = None

    @classmethod
    def for_type(cls, type_code: str | None) -> type["ProviderForm"]:
        fields = {
            f"{group}__{name}": _setting_field(name, field)
            for group, form_class in _setting_forms(type_code).items()
            for name, field in form_class.base_fields.items()
        }
        return type("ProviderForm", (cls,), {"type_code": type_code, **fields})

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        stored = self.instance
        # What the history compares with (providers.history.initial).
        self.initial["connection"] = copy.deepcopy(stored.connection)
        self.initial["parameters"] = copy.deepcopy(stored.parameters)
        if stored.pk and stored.type == self.type_code:
            for group in provider_settings.GROUPS:
                for name, value in (getattr(stored, group) or {}).items():
                    self.initial[f"{group}__{name}"] = value

    def _typed(self, group: str) -> dict:
        # A setting not posted at all (None) takes the type's default, as a key left out does.
        prefix = f"{group}__"
        return {
            name.removeprefix(prefix): value
            for name, value in self.cleaned_data.items()
            if name.startswith(prefix) and value is not None
        }

    def clean(self):
        data = super().clean()
        if self.has_error("type") or data.get("type") != self.type_code:
            return data
        provider = Provider(
            type=self.type_code,
            connection=self._typed("connection"),
            parameters=self._typed("parameters"),
        )
        found = provider_settings.problems(provider)
        for group, errors in found.items():
            for name, said in errors.items():
                field = f"{group}__{name}"
                if field in self.fields:
                    self.add_error(field, said)
                else:  # the settings together (e.g. "give the WSDL or the endpoint")
                    self.add_error(None, [f"{group.capitalize()}: {m}" for m in said])
        if not found:
            self.instance.connection = provider.connection
            self.instance.parameters = provider.parameters
        return data


@admin.register(Provider)
class ProviderAdmin(admin.ModelAdmin):
    form = ProviderForm
    change_form_template = "admin/providers/provider/change_form.html"
    list_display = ["name", "type", "provisioning_model_display", "enabled", "external_system"]
    list_filter = ["type", "enabled"]
    list_select_related = ["external_system"]
    search_fields = ["name"]
    readonly_fields = ["provisioning_model_display", "created_at", "updated_at"]

    @staticmethod
    def chosen_type(request, obj=None) -> str | None:
        """The type whose settings the form shows: as posted, as asked (``?type=``, the add
        page once a type is picked), else the provider's own."""
        if request.method == "POST" and "type" in request.POST:
            return request.POST["type"]
        return request.GET.get("type") or (obj.type if obj is not None else None)

    def get_fieldsets(self, request, obj=None):
        chosen = self.chosen_type(request, obj)
        names = setting_field_names(chosen)
        head = ["name", "type", "provisioning_model_display", "enabled"]
        tail = (None, {"fields": ["external_system", "created_at", "updated_at"]})
        if not names:
            picked = "Pick the provider type: its settings then appear here."
            return [(None, {"fields": head, "description": picked}), tail]
        name = registry.adapter_class(chosen).name
        secrets = (
            "Secrets are never stored: a <em>variable</em> setting names the environment "
            "variable that holds the secret, which must start with "
            f"<code>{settings.PROVIDER_SECRET_ENV_PREFIX}</code>."
        )
        return [
            (None, {"fields": head}),
            (f"{name} connection", {"fields": names["connection"], "description": secrets}),
            (f"{name} parameters", {"fields": names["parameters"]}),
            tail,
        ]

    def get_form(self, request, obj=None, change=False, **kwargs):
        kwargs["form"] = ProviderForm.for_type(self.chosen_type(request, obj))
        return super().get_form(request, obj, change, **kwargs)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = {
            "can_test_connection": self.has_change_permission(request),
            **(extra_context or {}),
        }
        return super().change_view(request, object_id, form_url, extra_context)

    def construct_change_message(self, request, form, formsets, add=False):
        # Each changed setting with its old and new value, as the API records it (history).
        before = None if add else history.initial(form)
        return history.message(before, history.snapshot(form.instance))

    @admin.display(description="Provisioning model")
    def provisioning_model_display(self, obj):
        if obj is None or obj.type not in registry.adapter_classes():
            return "-"
        return registry.model_label(registry.adapter_class(obj.type).model)


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


class RecentValueFilter(admin.SimpleListFilter):
    """A filter on a column whose choices are the values of the newest requests (``recent``):
    a DISTINCT over the whole table would grow with it."""

    SAMPLE = 1000

    def recent(self) -> set[str]:
        raise NotImplementedError

    def lookups(self, request, model_admin):
        chosen = self.value()
        values = self.recent() | ({chosen} if chosen else set())
        return [(value, value) for value in sorted(values)]

    def queryset(self, request, queryset):
        return queryset.filter(**{self.parameter_name: self.value()}) if self.value() else queryset


class CommandFilter(RecentValueFilter):
    title = "command"
    parameter_name = "command"

    def recent(self) -> set[str]:
        newest = ProvisioningRequest.objects.order_by("-id").values_list("command", flat=True)
        return set(newest[: self.SAMPLE])


class ErrorCodeFilter(RecentValueFilter):
    """The codes of the newest Failed and Rejected requests of each provider (its state index)."""

    title = "error code"
    parameter_name = "error_code"

    def recent(self) -> set[str]:
        codes = set()
        for provider_id in Provider.objects.values_list("pk", flat=True):
            for state in (ProvisioningRequest.State.FAILED, ProvisioningRequest.State.REJECTED):
                newest = ProvisioningRequest.objects.filter(provider_id=provider_id, state=state)
                codes.update(
                    newest.order_by("-created_at").values_list("error_code", flat=True)[
                        : self.SAMPLE
                    ]
                )
        return codes - {""}


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
    list_filter = [
        "state",
        AgeFilter,
        "provider",
        CommandFilter,
        ErrorCodeFilter,
        "priority",
        "trigger",
    ]
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
