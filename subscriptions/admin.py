"""Back office for subscriptions.

Subscription state changes only through ``subscriptions.actions``: the subscription page shows
the actions allowed in its state as buttons that post to ``<id>/action/<name>/``; that view
parses the posted form, checks ``subscriptions.perform_actions`` and calls the action. Services,
installed items, pairings and events are view-only here for the same reason.

A deployment holds millions of subscriptions, services and events, so the big lists skip the
unfiltered count and facets, fetch related rows in the same query, and search through
``subscriptions.search``, whose lookups each read an index and stop at a limit.
"""

from django.contrib import admin, messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html_join
from django.utils.http import urlencode

from catalogue.models import ExternalSystem, Product, ProductCAId, Provider, SubscriptionType

from . import actions, history, search
from . import page as sub_page
from .actions import ActionError
from .admin_forms import (
    ACTION_FORMS,
    BecomeSubscriber,
    action_label,
    distributors,
    error_text,
    in_use_distributors,
    offered_distributors,
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
# While a request of the subscription is pending, its page asks for its status this often.
POLL_SECONDS = 3


def searched(request, term: str) -> search.Found | None:
    """``search.find`` for a back-office list, telling the person when the result was cut.

    The notice goes to list pages only: the pickers' autocomplete has no messages to show it.
    """
    found = search.find(term)
    match = request.resolver_match
    if found and found.notice and match and match.url_name.endswith("_changelist"):
        messages.warning(request, found.notice)
    return found


class SubscriptionSearch:
    """Search a list by the subscription its rows belong to (``subscriptions.search``)."""

    search_fields = ["subscription__number"]  # Shows the search box; the lookup is ours.
    search_help_text = search.HELP
    subscription_field = "subscription"

    def get_search_results(self, request, queryset, search_term):
        found = searched(request, search_term)
        if found is None:
            return queryset, False
        return queryset.filter(**{f"{self.subscription_field}__in": found.subscription_ids}), False


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
    list_display = ["number", "name", "email", "phone", "created_at"]
    search_fields = ["number"]  # Shows the search box; the lookup is subscriptions.search.
    search_help_text = search.HELP
    readonly_fields = ["created_at", "subscription_links"]
    show_full_result_count = False

    def get_search_results(self, request, queryset, search_term):
        found = searched(request, search_term)
        if found is None:
            return queryset, False
        return queryset.filter(pk__in=search.accounts(found)), False

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
    list_display = [
        "number",
        "customer",
        "account_number",
        "state",
        "subscription_type",
        "created_at",
    ]
    # Creation by period rather than a date hierarchy: its MIN/MAX and DISTINCT over the list
    # walk the created_at index across every subscription, searched or not.
    list_filter = ["state", "subscription_type", "created_at"]
    list_select_related = ["account", "subscription_type"]
    search_fields = ["number"]
    subscription_field = "pk"
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

    # Not sortable: sorting a million subscriptions by their customer has no index to follow.
    @admin.display(description="Customer")
    def customer(self, obj):
        return obj.account.name

    @admin.display(description="Account")
    def account_number(self, obj):
        return obj.account.number

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
                "<path:object_id>/status/",
                self.admin_site.admin_view(self.status_view),
                name=f"{info[0]}_{info[1]}_status",
            ),
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

    def get_queryset(self, request):
        # The page's summary names the customer and the type: fetched with the subscription.
        return super().get_queryset(request).select_related("account", "subscription_type")

    def _status_context(self, request, sub: Subscription, can_act: bool) -> dict:
        """The live part (services' provisioning status, latest requests): page and fragment."""
        live = sub_page.status(sub)
        for service in live["services"]:
            service.allowed = _service_actions(sub, service) if can_act else []
            service.can_start = any(name == "start_service" for name, _ in service.allowed)
        return {
            **live,
            "sub": sub,
            "can_act": can_act,
            "can_retry": request.user.has_perm("providers.retry_provisioningrequest"),
            "can_see_requests": request.user.has_perm("providers.view_provisioningrequest"),
            "status_url": reverse("admin:subscriptions_subscription_status", args=[sub.pk]),
            "poll_seconds": POLL_SECONDS,
        }

    def _can_act(self, request, sub: Subscription) -> bool:
        return self.has_perform_actions_permission(request) and (
            sub.state != Subscription.State.TERMINATED
        )

    def page_context(self, request, sub: Subscription) -> dict:
        """Everything the subscription page shows beside its fields."""
        can_act = self._can_act(request, sub)
        status = self._status_context(request, sub, can_act)
        items = sub_page.devices(sub)
        pairings = sub_page.pairings(sub)
        in_use = list(in_use_distributors(sub))
        offered = (
            list(offered_distributors(sub).prefetch_related("allowed_products")) if can_act else []
        )
        if can_act:
            sub_page.offer_swaps(status["services"])
        return {
            "title": f"Subscription {sub.number}",
            "can_act": can_act,
            "can_use_utilities": self.has_perform_actions_permission(request),
            "transitions": [
                (name, action_label(name))
                for name, t in actions.TRANSITIONS.items()
                if sub.state in t.from_states
            ]
            if can_act
            else [],
            "status": status,
            "viewing_points": sub_page.viewing_points(status["services"], items, pairings),
            "items": items,
            "pairings": pairings,
            "requests_url": reverse("admin:providers_provisioningrequest_changelist")
            + f"?subscription__id__exact={sub.pk}",
            "archive_url": reverse("admin:providers_archivedrequest_changelist")
            + "?"
            + urlencode({"q": sub.number}),
            "utilities_url": reverse("admin:utilities-subscription", args=[sub.pk]),
            "reset_providers": list(Provider.objects.of_subscription(sub))
            if self.has_perform_actions_permission(request)
            else [],
            "events": history.describe(history.events(sub)),
            "offered_distributors": offered,
            "all_distributors": list(distributors()) if can_act else [],
            "in_use_distributors": in_use,
            "item_kinds": InstalledItem.Kind.choices,
        }

    def status_view(self, request, object_id):
        """The live part of the page alone, polled while a request is pending."""
        sub = self.get_object(request, unquote(object_id))
        if sub is None:
            raise Http404
        if not self.has_view_permission(request, sub):
            raise PermissionDenied
        context = self._status_context(request, sub, self._can_act(request, sub))
        # The last answer in: the services' action buttons follow their new states too.
        context["refresh_actions"] = context["can_act"] and not context["pending"]
        if context["refresh_actions"]:
            sub_page.offer_swaps(context["services"])
        return TemplateResponse(request, "admin/subscriptions/subscription/status.html", context)

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
                messages.add_message(request, *form.outcome(change))
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
