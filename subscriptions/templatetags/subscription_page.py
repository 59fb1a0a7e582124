"""Template filters of the subscription page."""

from django import template

from subscriptions.page import point_label

register = template.Library()


@register.filter
def point(distributor) -> str:
    """A viewing point named with its provider ("Generic — MAIN"), never a bare code."""
    return point_label(distributor) if distributor is not None else "-"
