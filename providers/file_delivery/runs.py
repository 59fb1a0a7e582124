"""The runs a file-delivery provider offers its operators, made from its ``Pipeline``: the
export run and the error-handling (answers) run, with their counts and summaries.

    EXPORT = runs.export_run_type(PIPELINE, code="conax_sms_export_files", name="...")
    ANSWERS = runs.answers_run_type(PIPELINE, code="conax_sms_error_handling", name="...")

The adapter lists them in its ``run_types()``. The summaries name batches and answers by the
pipeline's nouns ("Exported 7 records in 1 file").
"""

from collections.abc import Callable

from providers.errors import TransportError
from providers.extensions import Progress, RunType, counted
from providers.types import NoSettings

from . import deadline, export, responses
from .pipeline import Pipeline


def _export_counts(result: export.Result) -> dict[str, int]:
    files = len(result.uploaded) + len(result.found_delivered)
    return {"records": result.records, "files": files, "failed": result.failed}


def export_run_type(pipeline: Pipeline, *, code: str, name: str) -> RunType:
    """Every waiting request delivered in batches (``export.export``); counts records, batches
    and what could not be written."""

    def execute(definition, run_id: int, report: Callable[[Progress], None]) -> None:
        def progress(result: export.Result) -> None:
            # Problems are reported once: the list holds only those since the last batch.
            report(
                Progress(result.records, problems=result.problems, counts=_export_counts(result))
            )
            result.problems = []

        result = export.export(
            pipeline, definition.provider, process_run_id=run_id, progress=progress
        )
        report(Progress(result.records, problems=result.problems, counts=_export_counts(result)))

    def summary(c) -> str:
        text = (
            f"Exported {counted(c['records'], 'record')} in {counted(c['files'], *pipeline.noun)}"
        )
        if c["failed"]:
            text += f"; {c['failed']} could not be written"
        return text

    return RunType(
        code,
        name,
        NoSettings,
        NoSettings,
        execute,
        total=lambda d: export.waiting(d.provider),
        counts=(
            ("records", "Records exported"),
            ("files", f"{pipeline.noun[1].capitalize()} exported"),
            ("failed", "Could not be written"),
        ),
        summary=summary,
    )


def answers_run_type(pipeline: Pipeline, *, code: str, name: str, waiting: bool = False) -> RunType:
    """The platform's answers applied (``responses.process_responses``), then what waited past
    the answer deadline failed; counts answers by outcome and the answers read or refused.
    ``waiting``: it also counts, at its end, the requests still waiting for an answer."""

    def counts_of(result: responses.Result) -> dict[str, int]:
        return {
            "answered": result.completed + result.rejected,
            "accepted": result.completed,
            "rejected": result.rejected,
            "files": result.files,
            "refused": result.refused,
            "resent": result.resent,
            "expired": result.expired,
        }

    def execute(definition, run_id: int, report: Callable[[Progress], None]) -> None:
        def progress(result: responses.Result) -> None:
            counts = counts_of(result)
            report(Progress(examined=counts["answered"], problems=result.problems, counts=counts))

        result = responses.process_responses(
            pipeline, definition.provider, process_run_id=run_id, progress=progress
        )
        if waiting:
            counts = {**counts_of(result), "waiting": deadline.unanswered(definition.provider)}
            report(Progress(examined=counts["answered"], counts=counts))

    def summary(c) -> str:
        text = (
            f"Answered {c['answered']} (accepted {c['accepted']}, rejected {c['rejected']}) "
            f"from {counted(c['files'], *pipeline.answer_noun)}"
        )
        if c["resent"]:
            text += f", {c['resent']} of them sent again under the same name"
        if c["refused"]:
            text += f"; {counted(c['refused'], *pipeline.noun)} refused"
        if waiting:
            text += f"; {c.get('waiting', 0)} still waiting"
        if c["expired"]:
            text += f"; {c['expired']} unanswered past the deadline, now Failed"
        return text

    answers = pipeline.answer_noun[1].capitalize()
    return RunType(
        code,
        name,
        NoSettings,
        NoSettings,
        execute,
        total=lambda d: None,
        counts=(
            ("answered", "Requests answered"),
            ("accepted", "Accepted"),
            ("rejected", "Rejected"),
            ("files", f"{answers} read"),
            ("refused", f"{answers} refused"),
            ("resent", "Sent again under the same name"),
            *((("waiting", "Still waiting"),) if waiting else ()),
            ("expired", "Failed: no answer by the deadline"),
        ),
        summary=summary,
    )


def export_at_end(
    pipeline: Pipeline, provider, run_id: int, *, after: dict[int, int] | None = None
) -> list[tuple[None, str]]:
    """*Process immediately* at the end of a run that made requests (e.g. a message run): they
    are exported now, under the run. A platform that cannot be reached leaves them for the
    export run: the problem returned says so, for the run's log. (A run commits as it goes, so
    unlike ``export.export_now`` it has no transaction to wait for.) ``after``: as
    ``export.export`` takes it, for a run that exports after each chunk."""
    try:
        export.export(pipeline, provider, process_run_id=run_id, after=after)
    except TransportError as exc:
        return [(None, f"Could not export now ({exc}); the next export run sends them.")]
    return []
