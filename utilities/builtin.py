"""Utilities any provider may offer."""

from providers import batch

from .registry import NoFields, Outcome, Utility, register


def _reset(provider, subscription, data, user, priority, process_immediately) -> Outcome:
    requests = list(batch.reset_subscription(subscription, provider=provider, priority=priority))
    if not requests:
        return Outcome(
            [], f"{subscription.number} is in step with {provider.name}: nothing to send."
        )
    return Outcome(
        requests,
        f"{len(requests)} request(s) will bring {subscription.number} in "
        f"step with {provider.name}.",
    )


RESET_SUBSCRIPTION = register(
    Utility(
        code="reset_subscription",
        name="Reset single subscription",
        description="Find what the provider holds differently from the subscription and send "
        "the requests that bring it in step.",
        form=NoFields,
        run=_reset,
        may_be_express=True,
    )
)
