"""Utilities any provider may offer."""

from providers import batch, registry
from providers.extensions import NoFields, Outcome, Utility, UtilityError


def _reset(provider, subscription, data, user, priority, process_immediately) -> Outcome:
    try:
        done = batch.reset(subscription, provider=provider, priority=priority, by=user)
    except registry.PlatformQueryError as error:
        raise UtilityError(f"{error}. Nothing was changed; try again later.") from None
    requests = list(done.requests)
    judged = f" (as {provider.name} itself says)" if done.asked else ""
    corrected = (
        f" Corrected to what {provider.name} holds: {'; '.join(done.corrected)}."
        if done.corrected
        else ""
    ) + (
        f" {done.superseded} Failed request(s) superseded: this reset replaces them."
        if done.superseded
        else ""
    )
    if not requests:
        return Outcome(
            [],
            f"{subscription.number} is in step with {provider.name}{judged}: nothing to send."
            + corrected,
        )
    return Outcome(
        requests,
        f"{len(requests)} request(s) will bring {subscription.number} in "
        f"step with {provider.name}{judged}.{corrected}",
    )


RESET_SUBSCRIPTION = Utility(
    code="reset_subscription",
    name="Reset single subscription",
    description="Find what the provider holds differently from the subscription and send "
    "the requests that bring it in step. A provider that can tell what it holds (Conax "
    "WS) is asked first, and our records are corrected to its answer.",
    form=NoFields,
    run=_reset,
    may_be_express=True,
)

SHARED = (RESET_SUBSCRIPTION,)
