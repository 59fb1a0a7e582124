"""Run types: what a run definition can do, with the criteria and input settings it takes.

The run types every provider may offer are declared here (``SHARED``); a provider's adapter
offers them by code and brings its own (messages, fingerprints, error-handling files) as
``RunType`` objects, both from its ``run_types()`` (see ``providers/registry.py``).
"""

from collections.abc import Callable, Iterator
from functools import cache

from django import forms
from django.conf import settings
from django.db import transaction

from catalogue.models import Provider, SubscriptionType
from providers import archive, batch, registry
from providers.extensions import PreviewRow, Progress, RunType, counted
from providers.models import ProvisioningRequest
from providers.types import NoSettings


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
        adapter = registry.adapter_for(definition.provider)
        made = 0

        def after_chunk(examined: int, created: int) -> None:
            problems = adapter.after_chunk(run_id)
            if problems:
                report(Progress(examined, created, problems))

        def progress(result: batch.Result) -> None:
            nonlocal made
            # By operation, to say what the requests do; none yet: nothing to add up.
            counts = {str(op): n for op, n in result.operations.items()}
            if result.superseded:
                counts["superseded"] = result.superseded
            report(
                Progress(result.examined, result.requests_created, list(result.problems), counts)
            )
            if adapter.acts_after_chunk and result.requests_created > made:
                made = result.requests_created
                # Called inside the chunk's transaction: the adapter acts once it committed.
                counts = (result.examined, result.requests_created)
                transaction.on_commit(lambda: after_chunk(*counts))

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


Op = ProvisioningRequest.Operation
# What a reconciling run counts: the subscriptions and requests of every run, and its requests
# by operation (``batch.Result.operations``), as the run's page labels them.
RECONCILE_COUNTS = (
    ("examined", "Subscriptions examined"),
    ("created", "Requests created"),
    (Op.CREATE_PAIRING.value, "New pairings"),
    (Op.ADD_TO_PAIRING.value, "Added to a pairing"),
    (Op.DEACTIVATE.value, "Deactivations"),
    (Op.ACTIVATE.value, "Activations"),
    (Op.RENEW.value, "Renewals"),
    ("superseded", "Failed requests superseded"),
)
# How the summary names each operation's requests (singular, plural), in sending order.
_OPERATION_NOUNS = {
    Op.CREATE_PAIRING: ("new pairing", "new pairings"),
    Op.ADD_TO_PAIRING: ("addition to a pairing", "additions to pairings"),
    Op.DEACTIVATE: ("deactivation", "deactivations"),
    Op.ACTIVATE: ("activation", "activations"),
    Op.RENEW: ("renewal", "renewals"),
    Op.OTHER: ("other request", "other requests"),
}


def _reconcile_summary(c) -> str:
    """E.g. "Examined 3 subscriptions; created 5 requests: 1 deactivation, 3 activations, 1
    renewal" (a run recorded before the operations were counted: without what follows ":");
    "Examined 4 of 10 subscriptions; …" while it runs."""
    examined = counted(c["examined"], "subscription")
    if c["total"] and c["total"] != c["examined"]:
        examined = f"{c['examined']} of {counted(c['total'], 'subscription')}"
    text = f"Examined {examined}; created {counted(c['created'], 'request')}"
    made = [counted(c[op], *nouns) for op, nouns in _OPERATION_NOUNS.items() if c[op]]
    replaced = (
        f"; superseded {counted(c['superseded'], 'Failed request')}" if c["superseded"] else ""
    )
    return text + (f": {', '.join(made)}" if made else "") + replaced


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


SHARED: list[RunType] = [
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
        counts=RECONCILE_COUNTS,
        summary=_reconcile_summary,
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
        counts=RECONCILE_COUNTS,
        summary=_reconcile_summary,
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
def _gathered(adapters: tuple) -> dict[str, RunType]:
    found = {t.code: t for t in SHARED}
    for adapter in adapters:
        for run_type in adapter.run_types():
            if isinstance(run_type, str):
                continue  # a shared one, by code
            if found.get(run_type.code, run_type) is not run_type:
                raise ValueError(f"Two run types claim the code {run_type.code!r}")
            found[run_type.code] = run_type
    return found


def all_types() -> dict[str, RunType]:
    """Every run type: the shared ones, then those each installed adapter brings."""
    return _gathered(tuple(registry.adapter_classes().values()))


def get(code: str) -> RunType | None:
    return all_types().get(code)


def for_provider(provider: Provider) -> list[RunType]:
    """The run types this provider's adapter offers, in its order."""
    known = all_types()
    return [
        known[item] if isinstance(item, str) else item
        for item in registry.adapter_class(provider.type).run_types()
        if not isinstance(item, str) or item in known
    ]


def label(code: str) -> str:
    """A run type's name, with the adapters offering it when another type has that name too
    (Conax SMS and Conax WS each bring their own "Mail & Bark Messages")."""
    known = all_types()
    run_type = known[code]
    if sum(1 for t in known.values() if t.name == run_type.name) == 1:
        return run_type.name
    offered = [
        adapter.name
        for adapter in registry.adapter_classes().values()
        if any(
            (item if isinstance(item, str) else item.code) == code for item in adapter.run_types()
        )
    ]
    return f"{run_type.name} ({', '.join(offered)})" if offered else run_type.name


def choices() -> list[tuple[str, str]]:
    """Each run type once, by a name that tells it apart."""
    return [(code, label(code)) for code in all_types()]
