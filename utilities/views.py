"""The agents' utility screens, generic over every declared utility (no per-utility view code).

Find a subscription (``subscriptions.search``), see the utilities its providers offer, fill
the chosen utility's form, and watch the requests it made until the provider answers. Served
inside the back office (``BackOffice.get_urls``).
"""

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import JsonResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.views.decorators.debug import sensitive_post_parameters

from catalogue.models import Provider
from providers.extensions import UtilityError
from providers.models import ProvisioningRequest
from subscriptions import search as subscription_search
from subscriptions.models import Subscription

from . import services
from .registry import for_subscription

PERMISSION = "subscriptions.perform_actions"
Req = ProvisioningRequest
# How many subscriptions a search shows at most.
RESULTS = 50


def _context(request, title: str, **extra) -> dict:
    return {**admin.site.each_context(request), "title": title, **extra}


def _require(request) -> None:
    if not request.user.has_perm(PERMISSION):
        raise PermissionDenied


def search(request):
    _require(request)
    term = request.GET.get("q", "")
    found = subscription_search.find(term, limit=RESULTS)
    results = None
    if found is not None:
        results = (
            Subscription.objects.filter(pk__in=found.subscription_ids)
            .select_related("account", "subscription_type")
            .order_by("number")
        )
    return TemplateResponse(
        request,
        "admin/utilities/search.html",
        _context(
            request,
            "Utilities",
            term=term,
            found=found,
            results=results,
            help=subscription_search.HELP,
        ),
    )


def subscription_utilities(request, subscription_id: int):
    _require(request)
    sub = get_object_or_404(Subscription.objects.select_related("account"), pk=subscription_id)
    return TemplateResponse(
        request,
        "admin/utilities/subscription.html",
        _context(
            request, f"Utilities for {sub.number}", subscription=sub, offered=for_subscription(sub)
        ),
    )


# A PIN typed into a utility's form stays out of any error report of the request.
@sensitive_post_parameters("pin")
def run_utility(request, subscription_id: int, provider_id: int, code: str):
    _require(request)
    sub = get_object_or_404(Subscription, pk=subscription_id)
    provider = get_object_or_404(Provider, pk=provider_id)
    try:
        utility = services.offered(sub, provider, code)
    except UtilityError as exc:
        messages.error(request, str(exc))
        return redirect("admin:utilities-subscription", subscription_id=sub.pk)
    form = utility.form(request.POST or None, subscription=sub, provider=provider)
    if request.method == "POST" and form.is_valid():
        try:
            outcome = services.run(
                code,
                subscription=sub,
                provider=provider,
                data=request.POST,
                user=request.user,
                express=request.POST.get("priority") == "express",
                # A box shown unticked is sent as nothing; without the box, always at once.
                process_immediately=not utility.may_process_immediately
                or request.POST.get("process_immediately") == "on",
            )
        except (UtilityError, ValidationError) as exc:
            messages.error(request, "; ".join(getattr(exc, "messages", [str(exc)])))
        else:
            messages.success(request, outcome.message or f"{utility.name} done.")
            return TemplateResponse(
                request,
                "admin/utilities/result.html",
                _context(
                    request,
                    utility.name,
                    subscription=sub,
                    provider=provider,
                    utility=utility,
                    outcome=outcome,
                    states_url=reverse("admin:utilities-request-states"),
                ),
            )
    return TemplateResponse(
        request,
        "admin/utilities/form.html",
        _context(
            request,
            f"{utility.name} — {sub.number}",
            subscription=sub,
            provider=provider,
            utility=utility,
            form=form,
        ),
    )


def request_states(request):
    """{uid: state} for the requests a result page watches (polled until all are answered)."""
    _require(request)
    ids = [i for i in request.GET.get("ids", "").split(",") if i.isdigit()][:200]
    rows = Req.objects.filter(pk__in=ids).values_list("pk", "state", "last_error")
    return JsonResponse(
        {str(pk): {"state": Req.State(state).label, "error": error} for pk, state, error in rows}
    )
