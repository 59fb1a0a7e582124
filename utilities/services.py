"""Running a utility: the one way in for the agent screens and the Web API alike; each use is
recorded in the subscription's history with the person who made it."""

from django.core.exceptions import ValidationError

from catalogue.models import Provider
from providers.extensions import Outcome, UtilityError
from providers.models import ProvisioningRequest
from subscriptions import history
from subscriptions.models import InstalledItem

from .registry import for_provider, for_subscription


def offered(subscription, provider: Provider, code: str):
    for each_provider, utility in for_subscription(subscription):
        if each_provider.pk == provider.pk and utility.code == code:
            return utility
    names = ", ".join(u.name for u in for_provider(provider)) or "none"
    raise UtilityError(
        f"{provider.name} offers no utility '{code}' for {subscription.number} "
        f"(it offers: {names})."
    )


def run(
    code: str,
    *,
    subscription,
    provider: Provider,
    data: dict | None = None,
    user=None,
    express: bool = False,
    process_immediately: bool = True,
) -> Outcome:
    utility = offered(subscription, provider, code)
    form = utility.form(data or {}, subscription=subscription, provider=provider)
    if not form.is_valid():
        raise ValidationError(
            {
                name: [e["message"] for e in errors]
                for name, errors in form.errors.get_json_data().items()
            }
        )
    if express and not utility.may_be_express:
        raise UtilityError(f"{utility.name} cannot take Express priority.")
    if not process_immediately and not utility.may_process_immediately:
        raise UtilityError(f"{utility.name} is always processed immediately.")
    priority = (
        ProvisioningRequest.Priority.EXPRESS if express else ProvisioningRequest.Priority.NORMAL
    )
    outcome = utility.run(
        provider, subscription, form.cleaned_data, user, priority, process_immediately
    )
    _record(utility, provider, subscription, outcome, user)
    return outcome


def _record(utility, provider: Provider, subscription, outcome: Outcome, user) -> None:
    """Who used the utility: on its requests (``created_by``) and in the subscription's
    history, with the devices it addressed."""
    person = user if user is not None and user.is_authenticated else None
    ids = [r.pk for r in outcome.requests]
    if ids and person is not None:
        ProvisioningRequest.objects.filter(pk__in=ids).update(created_by=person)
    item_ids = {r.installed_item_id for r in outcome.requests if r.installed_item_id}
    devices = (
        InstalledItem.objects.filter(pk__in=item_ids)
        .order_by("kind", "serial_number")
        .values_list("kind", "serial_number")
        if item_ids
        else []
    )
    history.record_utility(
        subscription,
        code=utility.code,
        name=utility.name,
        provider=provider.name,
        devices=list(devices),
        request_ids=ids,
        by=person,
        message=outcome.message,
    )
