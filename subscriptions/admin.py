"""Back office for subscriptions.

Subscription state changes only through ``subscriptions.actions``: the subscription page shows
the actions allowed in its state as buttons that post to ``<id>/action/<name>/``; that view
parses the posted form, checks ``subscriptions.perform_actions`` and calls the action. Services,
installed items, pairings and events are view-only here for the same reason.

A deployment holds millions of subscriptions, services and events, so the big lists skip the
unfiltered count and facets, fetch related rows in the same query, and search with exact,
index-backed lookups only (see ``subscription_ids_matching``).
"""

from django.contrib import admin, messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db.models import Q
from django.http import Http404, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html_join

from catalogue.models import ExternalSystem, Product, ProductCAId, SubscriptionType

from . import actions, history
from .actions import ActionError
from .admin_forms import (
    ACTION_FORMS,
    BecomeSubscriber,
    action_label,
    distributors,
    error_text,
    in_use_distributors,
)
from .models import (
    CommunicationQueueEntry,
    CustomerAccount,
    InstalledItem,
    Pairing,
    Segment,
    Subscription,
    SubscriptionEvent,
    SubscriptionService,
)

# How many subscriptions one bulk action may change; more is a job for a run.
BULK_LIMIT = 500
# How many failures a bulk action lists one by one before summing up the rest.
BULK_ERRORS_SHOWN = 20
SEARCH_HELP = "Exact subscription number, account number, or a device's serial number or CA ID."


def subscription_ids_matching(term: str, limit: int = 1000) -> set[int]:
    """Subscriptions a search term names exactly: by number, account number or device.

    Each lookup is a separate query on a unique or indexed column; one query OR-ing across the
    joined tables would scan millions of rows.
    """
    term = term.strip()
    if not term:
        return set()
    ids = set(Subscription.objects.filter(number=term).values_list("pk", flat=True))
    ids.update(
        Subscription.objects.filter(account__number=term).values_list("pk", flat=True)[:limit]
    )
    ids.update(
        InstalledItem.objects.filter(Q(serial_number=term) | Q(ca_id=term)).values_list(
            "subscription_id", flat=True
        )[:limit]
    )
    return ids


class SubscriptionSearch:
    """Search a list by the subscription its rows belong to (see subscription_ids_matching)."""

    search_fields = ["subscription__number"]  # Shows the search box; the lookup is ours.
    search_help_text = SEARCH_HELP
    subscription_field = "subscription"

    def get_search_results(self, request, queryset, search_term):
        if not search_term.strip():
            return queryset, False
        ids = subscription_ids_matching(search_term)
        return queryset.filter(**{f"{self.subscription_field}__in": ids}), False


class DistributorListFilter(admin.RelatedFieldListFilter):
    """Distributors by name, with their provider fetched in the same query."""

    def field_choices(self, field, request, model_admin):
        return [(d.pk, str(d)) for d in distributors()]


class ViewOnlyAdmin(admin.ModelAdmin):
    """Rows that only the actions (or the system) write: nobody adds, edits or deletes them."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


# --- Catalogue and accounts -------------------------------------------------------------------


@admin.register(CustomerAccount)
class CustomerAccountAdmin(admin.ModelAdmin):
    list_display = ["number", "name", "email", "created_at"]
    search_fields = ["number__exact", "^name", "email__exact"]
    search_help_text = "Exact account number or e-mail, or the start of the name."
    readonly_fields = ["created_at", "subscription_links"]
    show_full_result_count = False

    @admin.display(description="Subscriptions")
    def subscription_links(self, obj):
        if obj.pk is None:
            return "-"
        subs = obj.subscriptions.order_by("number")[:50]
        return (
            format_html_join(
                ", ",
                '<a href="{}">{}</a> ({})',
                (
                    (
                        reverse("admin:subscriptions_subscription_change", args=[s.pk]),
                        s.number,
                        s.get_state_display(),
                    )
                    for s in subs
                ),
            )
            or "-"
        )


@admin.register(SubscriptionType)
class SubscriptionTypeAdmin(admin.ModelAdmin):
    list_display = ["code", "name"]
    search_fields = ["code", "name"]


class ProductCAIdInline(admin.TabularInline):
    model = ProductCAId
    extra = 0
    fields = ["provider", "ca_id"]
    verbose_name_plural = "CA IDs (flat products only; a bundle uses its components' CA IDs)"


@admin.register(Product)
class ProductAdmin(admin.ModelAdmin):
    list_display = ["code", "name", "kind", "service_type", "component_codes"]
    list_filter = ["kind", "service_type"]
    search_fields = ["code", "name"]
    filter_horizontal = ["components"]
    inlines = [ProductCAIdInline]

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("components")

    @admin.display(description="Components")
    def component_codes(self, obj):
        return ", ".join(c.code for c in obj.components.all()) or "-"


@admin.register(ExternalSystem)
class ExternalSystemAdmin(admin.ModelAdmin):
    list_display = ["code", "name"]
    search_fields = ["code", "name"]


# --- Subscriptions ------------------------------------------------------------------------------


def _bulk_action(name: str):
    """A changelist action running one life-cycle move on each selected subscription."""
    label = action_label(name)

    def run(modeladmin, request, queryset):
        return modeladmin.run_bulk(request, queryset, name)

    run.__name__ = f"bulk_{name}"
    return admin.action(
        description=f"{label} (selected subscriptions)", permissions=["perform_actions"]
    )(run)


@admin.register(Subscription)
class SubscriptionAdmin(SubscriptionSearch, admin.ModelAdmin):
    list_display = ["number", "account", "subscription_type", "state", "created_at"]
    list_filter = ["state", "subscription_type"]
    list_select_related = ["account", "subscription_type"]
    search_fields = ["number"]
    subscription_field = "pk"
    date_hierarchy = "created_at"
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    # Everything on the page is set by actions; the page itself is a view plus action buttons.
    fields = [
        "number",
        "account",
        "subscription_type",
        "state",
        "created_at",
        "updated_at",
        "terminated_at",
    ]
    readonly_fields = fields
    actions = [_bulk_action(name) for name in [*actions.TRANSITIONS, "terminate"]]
    change_form_template = "admin/subscriptions/subscription/change_form.html"
    add_form_template = "admin/subscriptions/subscription/become_subscriber.html"

    # Becoming a subscriber is an action, so adding needs the action permission; nothing on a
    # subscription is edited by hand, and one is terminated, never deleted.
    def has_perform_actions_permission(self, request) -> bool:
        return request.user.has_perm("subscriptions.perform_actions")

    def has_add_permission(self, request):
        return self.has_perform_actions_permission(request)

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def get_urls(self):
        info = self.opts.app_label, self.opts.model_name
        return [
            path(
                "<path:object_id>/action/<str:action>/",
                self.admin_site.admin_view(self.action_view),
                name=f"{info[0]}_{info[1]}_action",
            ),
            *super().get_urls(),
        ]

    # --- Become subscriber (the add page) ---

    def add_view(self, request, form_url="", extra_context=None):
        if not self.has_add_permission(request):
            raise PermissionDenied
        posted = request.method == "POST"
        page = BecomeSubscriber(request.POST if posted else None)
        valid = posted and page.is_valid()
        if valid:
            try:
                change = page.perform(by=request.user)
            except ActionError as error:
                messages.error(request, error.message)
            else:
                sub = change.subscription
                messages.success(
                    request,
                    f"Subscription {sub.number} created with {len(change.services_on)} "
                    f"service(s) and {len(change.items_added)} device(s).",
                )
                return HttpResponseRedirect(
                    reverse("admin:subscriptions_subscription_change", args=[sub.pk])
                )
        context = {
            **self.admin_site.each_context(request),
            "title": "Become subscriber",
            "opts": self.opts,
            "page": page,
            "media": self.media + page.media,
            "errors": posted and not valid,
            **(extra_context or {}),
        }
        return TemplateResponse(request, self.add_form_template, context)

    # --- The subscription page ---

    def change_view(self, request, object_id, form_url="", extra_context=None):
        sub = self.get_object(request, unquote(object_id))
        if sub is not None and self.has_view_permission(request, sub):
            extra_context = {**self.page_context(request, sub), **(extra_context or {})}
        return super().change_view(request, object_id, form_url, extra_context)

    def page_context(self, request, sub: Subscription) -> dict:
        """Everything the subscription page shows beside its fields."""
        can_act = self.has_perform_actions_permission(request) and (
            sub.state != Subscription.State.TERMINATED
        )
        services = list(
            sub.services.select_related(
                "product", "distributor__provider", "swapped_from__product"
            ).order_by("-id")
        )
        for service in services:
            service.live = service.state in actions.LIVE_SERVICE_STATES
            service.allowed = _service_actions(sub, service) if can_act else []
        items = list(sub.installed_items.select_related("distributor__provider").order_by("-id"))
        can_see_requests = request.user.has_perm("providers.view_provisioningrequest")
        requests = []
        if can_see_requests:
            requests = list(
                sub.provisioning_requests.select_related("provider", "distributor").order_by("-id")[
                    :50
                ]
            )
        return {
            "title": f"Subscription {sub.number}",
            "can_act": can_act,
            "transitions": [
                (name, action_label(name))
                for name, t in actions.TRANSITIONS.items()
                if sub.state in t.from_states
            ]
            if can_act
            else [],
            "services": services,
            "items": items,
            "pairings": sub.pairings.select_related("distributor__provider")
            .prefetch_related("items")
            .order_by("-id"),
            "can_see_requests": can_see_requests,
            "requests": requests,
            "requests_url": reverse("admin:providers_provisioningrequest_changelist")
            + f"?subscription__id__exact={sub.pk}",
            "events": history.describe(history.events(sub)),
            "products": list(Product.objects.order_by("code")) if can_act else [],
            "distributors": list(distributors()) if can_act else [],
            "in_use_distributors": list(in_use_distributors(sub)) if can_act else [],
            "item_kinds": InstalledItem.Kind.choices,
        }

    # --- Actions ---

    def action_view(self, request, object_id, action):
        """Parse the posted form, check the permission, call the action, say what happened."""
        if request.method != "POST":
            return HttpResponseRedirect(
                reverse("admin:subscriptions_subscription_change", args=[object_id])
            )
        if not self.has_perform_actions_permission(request):
            raise PermissionDenied
        form_class = ACTION_FORMS.get(action)
        sub = self.get_object(request, unquote(object_id))
        if form_class is None or sub is None:
            raise Http404
        form = form_class(request.POST, subscription=sub)
        if not form.is_valid():
            messages.error(request, f"{form.label}: {error_text(form)}")
        else:
            try:
                change = form.perform(by=request.user)
            except ActionError as error:
                messages.error(request, error.message)
            else:
                messages.success(request, form.success_message(change))
        return HttpResponseRedirect(
            reverse("admin:subscriptions_subscription_change", args=[sub.pk])
        )

    def run_bulk(self, request, queryset, name: str):
        """Run one life-cycle move on each subscription, each in its own transaction.

        Terminating cannot be undone, so it first shows the subscriptions and asks to confirm.
        """
        label = action_label(name)
        subs = list(queryset.select_related("account").order_by("pk")[: BULK_LIMIT + 1])
        if len(subs) > BULK_LIMIT:
            messages.error(
                request,
                f"{label}: select at most {BULK_LIMIT} subscriptions at once "
                "(use a run for more). Nothing was changed.",
            )
            return None
        if name == "terminate" and request.POST.get("confirm") != "yes":
            context = {
                **self.admin_site.each_context(request),
                "title": "Terminate these subscriptions?",
                "opts": self.opts,
                "subscriptions": subs,
                "action_checkbox_name": ACTION_CHECKBOX_NAME,
            }
            return TemplateResponse(
                request, "admin/subscriptions/subscription/bulk_terminate.html", context
            )
        action = getattr(actions, name)
        done, failed = [], []
        for sub in subs:
            try:
                action(sub, by=request.user, reason=f"Bulk {label.lower()} in the back office")
            except ActionError as error:
                failed.append((sub, error.message))
            else:
                done.append(sub.number)
        if done:
            messages.success(request, f"{label}: done on {len(done)}: {', '.join(done)}.")
        for sub, message in failed[:BULK_ERRORS_SHOWN]:
            messages.error(request, f"{label} failed on {sub.number}: {message}")
        if len(failed) > BULK_ERRORS_SHOWN:
            messages.error(
                request, f"{label} failed on {len(failed) - BULK_ERRORS_SHOWN} more subscriptions."
            )


def _service_actions(sub: Subscription, service: SubscriptionService) -> list[tuple[str, str]]:
    """The buttons of one service row: (action name, label), for the moves its state allows.

    Only a hint for the page: the action itself decides, and says why when it refuses.
    """
    allowed = []
    if service.is_on:
        allowed.append(("stop_service", "Stop"))
    if service.state == SubscriptionService.State.NOT_EFFECTIVE and sub.state in (
        Subscription.State.EFFECTIVE,
        Subscription.State.SHORT_TERM_EFFECTIVE,
    ):
        allowed.append(("start_service", "Start"))
    if service.state in actions.LIVE_SERVICE_STATES:
        allowed.append(("remove_service", "Remove"))
        original = service.swapped_from
        if original is not None and original.state == SubscriptionService.State.SWAPPED:
            allowed.append(("regret_swap", "Regret swap"))
        allowed.append(("swap_service", "Swap"))
    return allowed


# --- View-only rows, changed by actions --------------------------------------------------------


@admin.register(SubscriptionService)
class SubscriptionServiceAdmin(SubscriptionSearch, ViewOnlyAdmin):
    list_display = [
        "id",
        "subscription",
        "product",
        "distributor",
        "state",
        "authorized",
        "authorization_date",
        "updated_at",
    ]
    list_filter = ["state", "authorized", ("distributor", DistributorListFilter)]
    list_select_related = ["subscription", "product", "distributor__provider"]
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER


@admin.register(InstalledItem)
class InstalledItemAdmin(SubscriptionSearch, ViewOnlyAdmin):
    list_display = [
        "serial_number",
        "ca_id",
        "kind",
        "subscription",
        "distributor",
        "initialized",
        "installed_at",
        "removed_at",
    ]
    list_filter = [
        "kind",
        "initialized",
        ("removed_at", admin.EmptyFieldListFilter),
        ("distributor", DistributorListFilter),
    ]
    list_select_related = ["subscription", "distributor__provider"]
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip()
        if not term:
            return queryset, False
        return queryset.filter(
            Q(serial_number=term)
            | Q(ca_id=term)
            | Q(subscription_id__in=subscription_ids_matching(term))
        ), False


@admin.register(Pairing)
class PairingAdmin(SubscriptionSearch, ViewOnlyAdmin):
    list_display = ["id", "subscription", "distributor", "members", "created_at", "cancelled_at"]
    list_filter = [
        ("cancelled_at", admin.EmptyFieldListFilter),
        ("distributor", DistributorListFilter),
    ]
    list_select_related = ["subscription", "distributor__provider"]
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("items")

    @admin.display(description="Devices")
    def members(self, obj):
        return ", ".join(str(item) for item in obj.items.all()) or "-"


class EventActionFilter(admin.SimpleListFilter):
    """The known action names; a DISTINCT over millions of events would be slow."""

    title = "action"
    parameter_name = "action"

    def lookups(self, request, model_admin):
        names = [
            "become_subscriber",
            *actions.TRANSITIONS,
            "terminate",
            "change_distribution",
            "add_service",
            "remove_service",
            "swap_service",
            "regret_swap",
            "start_service",
            "stop_service",
            "add_installed_item",
            "remove_installed_item",
            "swap_installed_item",
            "provisioning_rollback",
        ]
        return [(name, action_label(name)) for name in names]

    def queryset(self, request, queryset):
        return queryset.filter(action=self.value()) if self.value() else queryset


@admin.register(SubscriptionEvent)
class SubscriptionEventAdmin(SubscriptionSearch, ViewOnlyAdmin):
    list_display = ["performed_at", "subscription", "action", "performed_by", "reason"]
    list_filter = [EventActionFilter]
    list_select_related = ["subscription", "performed_by"]
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER


# --- Communications and segments ---------------------------------------------------------------


@admin.register(CommunicationQueueEntry)
class CommunicationQueueEntryAdmin(admin.ModelAdmin):
    list_display = [
        "number",
        "external_system",
        "subscription",
        "direction",
        "state",
        "subject",
        "created_at",
        "processed_at",
    ]
    list_filter = ["state", "direction", "external_system"]
    list_select_related = ["external_system", "subscription"]
    search_fields = ["number__exact", "subscription__number__exact"]
    search_help_text = "Exact entry number or subscription number."
    autocomplete_fields = ["subscription"]
    readonly_fields = ["created_at"]
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER


@admin.register(Segment)
class SegmentAdmin(admin.ModelAdmin):
    list_display = ["code", "name"]
    search_fields = ["code", "name"]
    # A select of every subscription would not load at scale: pick them by search instead.
    autocomplete_fields = ["subscriptions"]
