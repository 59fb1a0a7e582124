"""The back office's 403 and 404 pages: in its look (header, navigation, the user's links) with
a way back, the previous page when the browser says where it came from and the home page.

Under /api/ the same answers become the Web API's JSON errors (``core.api_middleware``). The
500 page is Django's own handler with ``templates/500.html``, which needs no database and no
request, since either may be what failed.
"""

from django.contrib import admin
from django.shortcuts import render
from django.utils.http import url_has_allowed_host_and_scheme


def _previous_page(request) -> str:
    """The page the browser came from, if it is one of ours and not this one; else ""."""
    referer = request.META.get("HTTP_REFERER", "")
    ours = url_has_allowed_host_and_scheme(
        referer, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    )
    return referer if ours and referer != request.build_absolute_uri() else ""


def _error_page(request, template: str, title: str, status: int):
    context = {
        **admin.site.each_context(request),
        "title": title,
        "previous_page": _previous_page(request),
    }
    # Someone signed out (or not staff) would see an empty navigation saying they may see nothing.
    context["is_nav_sidebar_enabled"] &= context["has_permission"]
    return render(request, template, context, status=status)


def permission_denied(request, exception=None):
    return _error_page(request, "403.html", "You may not open this page", 403)


def page_not_found(request, exception=None):
    return _error_page(request, "404.html", "Page not found", 404)
