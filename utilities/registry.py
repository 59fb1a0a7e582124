"""Utilities: single-subscription (or single-device) operations that agents run.

A utility is declared once (``providers.extensions.Utility``) — its form (fields and
validation), what it does, whether it may be processed immediately and whether it may take
Express priority — and a provider offers it from its adapter's ``utilities()``: its own, and by
code the shared ones of ``utilities/builtin.py``. From the declaration alone it becomes an
agent screen in the back office and an endpoint of the Web API; no utility has view code of its
own.
"""

from functools import cache

from catalogue.models import Provider
from providers import registry as adapters
from providers.extensions import Utility

from . import builtin


@cache
def _gathered(adapter_classes: tuple) -> dict[str, Utility]:
    found = {u.code: u for u in builtin.SHARED}
    for adapter in adapter_classes:
        for utility in adapter.utilities():
            if isinstance(utility, str):
                continue  # a shared one, by code
            if found.get(utility.code, utility) is not utility:
                raise ValueError(f"Two utilities claim the code {utility.code!r}")
            found[utility.code] = utility
    return found


def _all() -> dict[str, Utility]:
    return _gathered(tuple(adapters.adapter_classes().values()))


def get(code: str) -> Utility | None:
    return _all().get(code)


def every() -> list[Utility]:
    """Every utility the installed adapters offer, the shared ones first."""
    return list(_all().values())


def for_provider(provider: Provider) -> list[Utility]:
    """The utilities this provider's adapter offers, in its order."""
    known = _all()
    return [
        known[item] if isinstance(item, str) else item
        for item in adapters.adapter_class(provider.type).utilities()
        if not isinstance(item, str) or item in known
    ]


def for_subscription(subscription) -> list[tuple[Provider, Utility]]:
    """(provider, utility) for every enabled provider the subscription is distributed to."""
    return [(p, u) for p in Provider.objects.of_subscription(subscription) for u in for_provider(p)]
