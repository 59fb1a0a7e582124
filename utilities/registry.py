"""Utilities: single-subscription (or single-device) operations that agents run.

A utility is declared once — its form (fields and validation), what it does, whether it may be
processed immediately and whether it may take Express priority — and a provider offers it by
listing its code in its adapter's ``utilities``. From the declaration alone it becomes an agent
screen in the back office and an endpoint of the Web API; no utility has view code of its own.
A provider package adds its own with ``register`` in a ``utilities`` module beside its adapter,
found on first use.
"""

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from importlib import import_module
from importlib.util import find_spec

from django import forms

from providers import registry as adapters
from providers.models import Provider, ProvisioningRequest


class UtilityForm(forms.Form):
    """A utility's form. It is made for one subscription at one provider, so that its fields
    can offer that subscription's own devices (e.g. a choice of its smartcards)."""

    def __init__(self, *args, subscription=None, provider: Provider | None = None, **kwargs):
        self.subscription = subscription
        self.provider = provider
        super().__init__(*args, **kwargs)


class NoFields(UtilityForm):
    pass


@dataclass(frozen=True)
class Outcome:
    """What running a utility gave: the requests it made, and for an information query the
    answer as a table (column names, rows)."""

    requests: list[ProvisioningRequest]
    message: str = ""
    columns: tuple[str, ...] = ()
    rows: tuple[tuple, ...] = ()


@dataclass(frozen=True)
class Utility:
    code: str
    name: str
    description: str
    form: type[UtilityForm]
    # (provider, subscription, cleaned data, user, priority, process_immediately) -> Outcome
    run: Callable[..., Outcome]
    may_process_immediately: bool = True
    may_be_express: bool = False


UTILITIES: dict[str, Utility] = {}


def register(utility: Utility) -> Utility:
    if utility.code in UTILITIES:
        raise ValueError(f"Two utilities claim the code {utility.code!r}")
    UTILITIES[utility.code] = utility
    return utility


@cache
def _discover() -> None:
    """Import the utilities every provider may offer, then each provider package's own."""
    import_module("utilities.builtin")
    for adapter in adapters.adapter_classes().values():
        package = adapter.__module__.rpartition(".")[0]
        if package and find_spec(f"{package}.utilities") is not None:
            import_module(f"{package}.utilities")


def get(code: str) -> Utility | None:
    _discover()
    return UTILITIES.get(code)


def for_provider(provider: Provider) -> list[Utility]:
    """The utilities this provider's adapter offers, in its order."""
    _discover()
    offered = adapters.adapter_for(provider).utilities
    return [UTILITIES[code] for code in offered if code in UTILITIES]


def for_subscription(subscription) -> list[tuple[Provider, Utility]]:
    """(provider, utility) for every enabled provider the subscription is distributed to."""
    return [(p, u) for p in Provider.objects.of_subscription(subscription) for u in for_provider(p)]
