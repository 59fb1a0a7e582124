"""What an adapter contributes to the rest of the product, as plain declarations.

An adapter (``providers/registry.py``) hands these to the layers above it: run types to
``runs``, utilities to ``utilities``, a simulator to ``cas_simulator``, demo data to
``load_demo``, a health check to whoever asks. They are declared here, below those layers, so
that a provider package never imports ``runs`` or ``utilities``.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from django import forms

# --- Runs -------------------------------------------------------------------------------------


@dataclass
class Progress:
    """What an executing run reports after each chunk: running totals of the part, and the
    problems since its last report."""

    examined: int = 0
    created: int = 0
    problems: list[tuple[int | None, str]] = field(default_factory=list)
    # The run type's own counts (its ``RunType.counts`` keys), running totals too.
    counts: dict[str, int] = field(default_factory=dict)


def counted(n: int, word: str, plural: str = "") -> str:
    """``counted(1, "file")`` -> "1 file", ``counted(7, "record")`` -> "7 records"."""
    return f"{n} {word if n == 1 else plural or word + 's'}"


@dataclass(frozen=True)
class PreviewRow:
    subscription_id: int | None
    subscription: str
    what: list[dict]  # {"command": ..., "reason": "Activate SPORT: …", "parameters": {...}}


@dataclass(frozen=True)
class RunType:
    code: str
    name: str
    criteria_form: type[forms.Form]
    input_form: type[forms.Form]
    # (definition, process run id, report(Progress)) -> None; raises on a failure of the run
    execute: Callable
    # (definition) -> how many subscriptions (or rows) the run will look at
    total: Callable
    # (definition) -> the rows a preview shows, in order; None when the type has no preview
    preview: Callable | None = None
    # (definition, size) -> [(low, high)] subscription id ranges that can run as independent
    # parts on several workers; None: the run is one piece. With parts, ``execute`` takes
    # (definition, process run id, report, id_range).
    parts: Callable | None = None
    # (definition) -> {field: [messages]}: what its settings forms cannot judge alone
    checks: Callable | None = None
    # What the run counts in its own terms, ((key, label), ...), reported in
    # ``Progress.counts`` (the keys "total", "examined" and "created" are the run's own), and
    # (counts) -> the sentence that sums them up, e.g. "Exported 7 records in 1 file".
    # Without: "Examined N; created M requests".
    counts: tuple[tuple[str, str], ...] = ()
    summary: Callable[[Mapping[str, int]], str] | None = None
    # What ``total`` counts, as the run's page labels it.
    total_label: str = "Subscriptions to examine"


# --- Utilities --------------------------------------------------------------------------------


class UtilityForm(forms.Form):
    """A utility's form. It is made for one subscription at one provider, so that its fields
    can offer that subscription's own devices (e.g. a choice of its smartcards)."""

    def __init__(self, *args, subscription=None, provider=None, **kwargs):
        self.subscription = subscription
        self.provider = provider
        super().__init__(*args, **kwargs)


class NoFields(UtilityForm):
    pass


class UtilityError(Exception):
    """The utility cannot run as asked; the message says why."""


@dataclass(frozen=True)
class Table:
    """One headed table of an answer (a section of what a platform holds)."""

    heading: str
    columns: tuple[str, ...]
    rows: tuple[tuple, ...]


@dataclass(frozen=True)
class Outcome:
    """What running a utility gave: the requests it made (``ProvisioningRequest``s), and for
    an information query the answer as a table (column names, rows), or as several headed
    ``tables`` when it has sections."""

    requests: list
    message: str = ""
    columns: tuple[str, ...] = ()
    rows: tuple[tuple, ...] = ()
    tables: tuple[Table, ...] = ()


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


# --- Simulator, demo, health ------------------------------------------------------------------


@dataclass(frozen=True)
class SimulatorCommand:
    """A CA system simulator: a real server of the platform's protocol, run by ``manage.py
    cas_simulator KIND`` until interrupted."""

    kind: str  # the command's sub-command, e.g. "conax-ws"
    description: str
    # (argparse parser) -> None: the simulator's own options
    add_arguments: Callable
    # (options dict, stdout) -> None: serve until interrupted
    serve: Callable


@dataclass(frozen=True)
class DemoRun:
    """A run definition the demo wants, created (validated) by ``load_demo`` unless one of
    that name exists: once at ``run_at``, or every ``every_minutes``; ``submit``: submitted
    (scheduled), else left a draft for an operator to run."""

    name: str
    run_type: str
    provider: object  # the ``Provider``
    criteria: dict = field(default_factory=dict)
    input_settings: dict = field(default_factory=dict)
    run_at: datetime | None = None
    every_minutes: int | None = None
    submit: bool = False


@dataclass(frozen=True)
class DemoResult:
    """What a provider's demo made: a line for the person who ran ``load_demo``, and the run
    definitions it wants."""

    message: str
    runs: tuple[DemoRun, ...] = ()


@dataclass(frozen=True)
class Demo:
    """A provider's part of ``load_demo``."""

    # (argparse parser) -> None: the demo's own options (e.g. the simulator's address)
    add_arguments: Callable
    # (options dict) -> DemoResult; idempotent: run again, it creates only what is missing
    load: Callable[[dict], DemoResult]


@dataclass(frozen=True)
class Health:
    """A provider's health check: whether the platform answers as configured, said in a
    sentence a person can read. ``ok`` None: this provider cannot be checked."""

    ok: bool | None
    message: str
