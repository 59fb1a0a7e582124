"""Provider adapters and their registry.

An adapter is everything that differs between CA / OTT platforms. The rest of the product —
actions, reconciler, outbox, runs, utilities, Web API — is shared and asks the adapter.

The contract (MUST / SHOULD / MAY):

- MUST set ``code`` (stored in ``Provider.type``), ``name`` and ``model`` (real-time, batch or
  hybrid) and ``delivery``: ``push`` (a worker sends each request now), ``file`` (requests are
  written into files by a run) or ``pull`` (the platform's connector takes them over the Web
  API).
- MUST declare ``connection_form`` and ``parameters_form``: Django forms whose fields are the
  provider's settings; they validate what operators type and give the defaults.
- MUST map the reconciler's operations to its own commands in ``commands`` and build each
  request's parameters in ``parameters_for`` (plain JSON: what the platform needs to act).
- MUST, when ``delivery == "push"``, implement ``send(request) -> Answer`` and raise
  ``TransportError`` for anything that may succeed on retry (timeouts, connection refused).
- SHOULD send ``request.uid`` to the platform wherever its protocol allows, so that the platform
  can drop a duplicate.
- MAY offer run types in ``run_types()``: its own ``extensions.RunType``s, and by code the
  shared ones of ``runs/types.py`` (``"reset_subscriptions"``, ``"archive_requests"``, …), in
  the order operators see them. Codes MUST be unique across the installed adapters.
- MAY offer utilities in ``utilities()``: its own ``extensions.Utility``s, and by code the
  shared ones of ``utilities/builtin.py`` (``"reset_subscription"``), in order. Each becomes an
  agent screen in the back office and an endpoint of the Web API.
- MAY serve its own Web API in ``api_urls()``: Django URL patterns, mounted under
  ``/api/v1/<code>/`` (a pull provider's *Get Pending* / *Send Response*). They SHOULD be DRF
  views with a role on each, like the rest of the API, so the OpenAPI schema lists them.
- MAY bring a CA simulator in ``simulator()`` (``extensions.SimulatorCommand``): ``manage.py
  cas_simulator <kind>`` runs it, for the demo and for trying the provider without the
  platform.
- MAY bring demo data in ``demo()`` (``extensions.Demo``): ``load_demo`` takes its options and
  calls it after the shared catalogue exists; it MUST be idempotent and declares the run
  definitions it wants as ``extensions.DemoRun`` data (``load_demo`` creates them).
- SHOULD tell whether the platform answers as configured in ``check()`` (``extensions.Health``:
  ok or not, and a sentence a person can read), cheaply and without changing anything there.
- MUST NOT import ``runs`` or ``utilities`` (they sit above the providers); what it contributes
  is declared with ``providers/extensions.py``. The hooks above are class methods (``check``
  excepted), so they are asked without a provider, and import their modules when asked.
- MAY tell what the platform holds (``platform_state``: per device, registered or not and the
  entitlements' CA IDs), asking it now; a reset then judges against that instead of our own
  flags (Reset single subscription always, a reset run with *Compare with the platform*).
- MAY act after each chunk of a run that reconciles subscriptions (Process Provisioning
  Requests, reset runs) made requests, once the chunk committed, in ``after_chunk(run id)``
  (e.g. a batch provider writes what waits, so that the run delivers as it goes); it returns
  problems for the run's log. Not defining it costs those runs nothing.
- MAY add commands beyond the reconciler's wanted-vs-held model in ``extra_commands`` (e.g.
  renewals of entitlements that carry an end date); runs reconciling whole subscriptions ask
  for them per chunk, and they MUST count their own Pending requests as already sent.
- MAY set ``provisions_usage_services = False`` when the platform takes no usage services
  (EXSET): the reconciler leaves them out in its SQL (never activated, one held is
  deactivated); the statement of every other provider stays as it was.
- MAY rewrite a chunk's commands in ``rewrite_commands`` (e.g. EXSET's CHANGE_DEVICE instead
  of a new card's pairing, the old card's cancellations and the new card's activations):
  runs reconciling whole subscriptions call it per chunk, only if the adapter defines it. It
  MUST keep what the requests record true to the model (a rewritten command keeps an
  ``operation`` whose acceptance and rollback the shared answers apply, naming its own
  ``command``), and MUST count its own Pending requests as already applied.

Adding a provider is one new package with an ``Adapter`` subclass and one line in
``settings.PROVISIONING_ADAPTERS``; nothing else changes.
"""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from functools import cache

from django import forms
from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.utils.module_loading import import_string

from . import types
from .errors import TransportError
from .extensions import Demo, Health, RunType, SimulatorCommand, Utility

REAL_TIME = "real_time"
BATCH = "batch"
HYBRID = "hybrid"

PUSH = "push"
FILE = "file"
PULL = "pull"


class PlatformQueryError(Exception):
    """The platform could not tell what it holds (it did not answer, or refused the query);
    the message says why."""


@dataclass(frozen=True)
class Held:
    """What a platform holds for one device: registered (paired) or not, and the CA IDs of the
    entitlements active on it."""

    registered: bool
    entitlements: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Answer:
    """What the platform said about one request."""

    accepted: bool
    error_code: str = ""
    error_description: str = ""
    response: dict | None = None


class Adapter:
    code: str = ""
    name: str = ""
    model: str = REAL_TIME
    delivery: str = PUSH
    connection_form: type[forms.Form] = types.NoSettings
    parameters_form: type[forms.Form] = types.NoSettings
    # Reconciler operation -> this provider's command name.
    commands: dict[str, str] = {}
    # False: usage services are never sent (the reconciler leaves them out in SQL).
    provisions_usage_services: bool = True

    def __init__(self, provider):
        self.provider = provider

    @property
    def acts_on_actions(self) -> bool:
        """Real-time and hybrid providers get requests the moment an action commits; batch
        providers wait for the processing run."""
        return self.model in (REAL_TIME, HYBRID)

    def command_for(self, operation: str) -> str:
        return self.commands[operation]

    def parameters_for(self, command, context) -> dict:
        """The request's parameters; the standard set serves most platforms."""
        from .parameters import standard_parameters

        return standard_parameters(command, context)

    def extra_commands(self, subscriptions, today: date, ca_ids) -> Iterable:
        """Reconciler ``Command``s this provider needs for these subscriptions (a list of ids,
        or a run's chunk as a ``reconciler.Span``) besides bringing wanted and held state in
        step (``ca_ids``: the reconciler's ``CAIds`` of the provider). None by default."""
        return ()

    def rewrite_commands(self, planned: dict) -> dict:
        """A chunk's commands (``reconciler.Command``s by subscription id, not yet in sending
        order; the reconciler sorts them by operation afterwards), as this provider needs
        them. Not called unless an adapter defines it."""
        return planned

    def after_chunk(self, process_run_id: int) -> list[tuple[int | None, str]]:
        """After a run's chunk that made requests committed: (subscription id, message)
        problems for the run's log. Nothing by default (``acts_after_chunk`` is then False)."""
        return []

    @property
    def acts_after_chunk(self) -> bool:
        return type(self).after_chunk is not Adapter.after_chunk

    @property
    def tells_state(self) -> bool:
        """Whether this platform can be asked what it holds (``platform_state``)."""
        return type(self).platform_state is not Adapter.platform_state

    def platform_state(
        self, subscription, devices, *, trigger: str, trigger_name: str, process_run_id=None
    ) -> dict[int, Held] | None:
        """What the platform holds now for these devices (``InstalledItem``s of
        ``subscription`` at this provider), by device id; ``trigger``/``trigger_name``/
        ``process_run_id`` name what asks, for the record of each query. Raises
        ``PlatformQueryError`` when the platform cannot tell. None: this platform cannot be
        asked (the default), and a reset judges by our own flags."""
        return None

    def send(self, request) -> Answer:
        raise TransportError(f"No transport is installed for {self.name} yet.", permanent=True)

    @classmethod
    def run_types(cls) -> Sequence[RunType | str]:
        """Its own run types, and the codes of shared ones it offers, in order."""
        return ()

    @classmethod
    def utilities(cls) -> Sequence[Utility | str]:
        """Its own utilities, and the codes of shared ones it offers, in order."""
        return ()

    @classmethod
    def api_urls(cls) -> list:
        """URL patterns of its own Web API, mounted under /api/v1/<code>/."""
        return []

    @classmethod
    def simulator(cls) -> SimulatorCommand | None:
        return None

    @classmethod
    def demo(cls) -> Demo | None:
        return None

    def check(self) -> Health:
        """Whether the platform answers as configured; by default it cannot be checked."""
        return Health(None, f"No check is available for {self.name}.")


@cache
def _adapters() -> dict[str, type[Adapter]]:
    loaded = {}
    for path in settings.PROVISIONING_ADAPTERS:
        cls = import_string(path)
        if cls.code in loaded:
            raise ValueError(f"Two adapters claim provider type {cls.code!r}")
        loaded[cls.code] = cls
    return loaded


def adapter_classes() -> dict[str, type[Adapter]]:
    return _adapters()


@receiver(setting_changed)
def _forget_adapters(setting, **kwargs) -> None:
    # Tests install an adapter with override_settings; what is read from the list is read anew.
    if setting == "PROVISIONING_ADAPTERS":
        _adapters.cache_clear()


def adapter_class(code: str) -> type[Adapter]:
    try:
        return _adapters()[code]
    except KeyError:
        raise LookupError(f"No adapter is installed for provider type {code!r}") from None


def adapter_for(provider) -> Adapter:
    return adapter_class(provider.type)(provider)


def model_label(model: str) -> str:
    return {
        REAL_TIME: "Real-time",
        BATCH: "Batch",
        HYBRID: "Hybrid (real-time + reset runs)",
    }.get(model, model)
