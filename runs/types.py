"""Run types: what a run definition can do, with the criteria and input settings it takes.

A run type is offered for a provider when the provider's adapter lists its code in
``run_types`` (see ``providers/registry.py``). The run types every provider may offer are
declared here; a provider package declares its own (messages, fingerprints, error-handling
files) in a ``runs`` module beside its adapter, as a list ``RUN_TYPES``, found on first use.
"""

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib import import_module
from importlib.util import find_spec

from django import forms
from django.conf import settings

from providers import archive, batch, registry
from providers.models import Provider
from subscriptions.models import SubscriptionType


class NoSettings(forms.Form):
    pass


class ResetCriteria(forms.Form):
    created_from = forms.DateField(
        required=False, help_text="Only subscriptions created on or after this day."
    )
    created_to = forms.DateField(
        required=False, help_text="Only subscriptions created on or before this day."
    )
    subscription_types = forms.MultipleChoiceField(
        required=False,
        choices=lambda: SubscriptionType.objects.values_list("code", "name"),
        help_text="Subscription type codes; none means all.",
    )

    def clean(self):
        data = super().clean()
        start, end = data.get("created_from"), data.get("created_to")
        if start and end and start > end:
            self.add_error("created_to", "The period ends before it starts.")
        return data


class ResetInput(forms.Form):
    compare_with_platform = forms.BooleanField(
        label="Compare with the platform",
        required=False,
        help_text="Ask the platform what it holds for every device of every subscription "
        "selected (a call or two per device), correct our records to its answers and repair "
        "any difference, as Reset single subscription does. Only for providers that can be "
        "asked (Conax WS).",
    )


def _reset_checks(definition) -> dict[str, list[str]]:
    """A comparison only with a provider that can be asked what it holds."""
    compare = (definition.input_settings or {}).get("compare_with_platform")
    if compare and not registry.adapter_for(definition.provider).tells_state:
        return {
            "input_settings": [
                f"compare_with_platform: {definition.provider.name} cannot be asked what it "
                "holds; leave it off."
            ]
        }
    return {}


class ArchiveInput(forms.Form):
    older_than_days = forms.IntegerField(
        min_value=1, max_value=3650, initial=90, help_text="Finished requests older than this."
    )


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
    what: list[dict]  # {"command": ..., "parameters": {...}}


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
    # ``Progress.counts``, and (counts) -> the sentence that sums them up, e.g. "Exported 7
    # records in 1 file". Without: "Examined N; created M requests".
    counts: tuple[tuple[str, str], ...] = ()
    summary: Callable[[Mapping[str, int]], str] | None = None


def _selection(definition) -> batch.Selection:
    criteria = definition.criteria or {}
    type_ids = tuple(
        SubscriptionType.objects.filter(
            code__in=criteria.get("subscription_types") or []
        ).values_list("pk", flat=True)
    )
    parse = forms.DateField().to_python
    return batch.Selection(
        definition.provider,
        created_from=parse(criteria.get("created_from")),
        created_to=parse(criteria.get("created_to")),
        subscription_type_ids=type_ids,
    )


def _reconcile(trigger_name: str):
    def execute(definition, run_id: int, report: Callable[[Progress], None], id_range) -> None:
        compare = bool((definition.input_settings or {}).get("compare_with_platform"))

        def progress(result: batch.Result) -> None:
            report(Progress(result.examined, result.requests_created, list(result.problems)))

        batch.reconcile(
            _selection(definition),
            trigger_name=trigger_name,
            process_run_id=run_id,
            progress=progress,
            chunk_size=settings.RUN_CHUNK_SIZE,
            id_range=id_range,
            compare=compare,
        )

    return execute


def _reconcile_parts(definition, size: int) -> list[tuple[int, int]]:
    return batch.id_ranges(size)


def _reconcile_preview(definition) -> Iterator[PreviewRow]:
    for row in batch.preview(_selection(definition)):
        yield PreviewRow(row.subscription_id, row.subscription, row.requests)


def _archive(definition, run_id: int, report: Callable[[Progress], None]) -> None:
    def progress(moved: int) -> None:
        report(Progress(examined=moved, counts={"archived": moved}))

    archive.archive(
        definition.input_settings["older_than_days"],
        provider=definition.provider,
        progress=progress,
    )


BUILTIN: list[RunType] = [
    RunType(
        "reset_subscriptions",
        "Reset Subscriptions",
        ResetCriteria,
        ResetInput,
        _reconcile("reset_subscriptions"),
        total=lambda d: _selection(d).subscriptions().count(),
        preview=_reconcile_preview,
        parts=_reconcile_parts,
        checks=_reset_checks,
    ),
    RunType(
        "process_provisioning_requests",
        "Process Provisioning Requests",
        NoSettings,
        NoSettings,
        _reconcile("process_provisioning_requests"),
        total=lambda d: _selection(d).subscriptions().count(),
        preview=_reconcile_preview,
        parts=_reconcile_parts,
    ),
    RunType(
        "archive_requests",
        "Archive requests",
        NoSettings,
        ArchiveInput,
        _archive,
        total=lambda d: archive.archivable(d.input_settings["older_than_days"], d.provider).count(),
        counts=(("archived", "Requests archived"),),
        summary=lambda c: f"Archived {counted(c['archived'], 'request')}",
    ),
]


@cache
def all_types() -> dict[str, RunType]:
    """Every run type: the built-in ones, then each installed provider package's ``runs``."""
    found = {t.code: t for t in BUILTIN}
    for adapter in registry.adapter_classes().values():
        package = adapter.__module__.rpartition(".")[0]
        if not package or find_spec(f"{package}.runs") is None:
            continue
        for run_type in import_module(f"{package}.runs").RUN_TYPES:
            if run_type.code in found:
                raise ValueError(f"Two run types claim the code {run_type.code!r}")
            found[run_type.code] = run_type
    return found


def get(code: str) -> RunType | None:
    return all_types().get(code)


def for_provider(provider: Provider) -> list[RunType]:
    """The run types this provider's adapter offers."""
    offered = registry.adapter_for(provider).run_types
    return [all_types()[code] for code in offered if code in all_types()]


def choices() -> list[tuple[str, str]]:
    return [(t.code, t.name) for t in all_types().values()]
