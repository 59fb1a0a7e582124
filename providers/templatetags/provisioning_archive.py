"""``{% archived_requests subscription %}``: a subscription's archived requests, for its page.

A tag rather than a context key: the subscription's page (``subscriptions``) sits below the
providers app and cannot import the archive; the template can load it."""

from django import template

from providers import archive

register = template.Library()


@register.inclusion_tag("admin/providers/archived_requests.html", takes_context=True)
def archived_requests(context, subscription) -> dict:
    user = context["request"].user
    allowed = user.has_perm("providers.view_archivedrequest")
    return {
        "allowed": allowed,
        "archived": archive.of_subscription(subscription.pk) if allowed else [],
        "limit": archive.LATEST,
    }
