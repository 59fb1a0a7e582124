"""The providers' parts of the demo: each installed adapter's ``demo()`` hook, its options on
``load_demo``'s command line, and the run definitions it asks for."""

from collections.abc import Iterable

from monitoring.models import AlertChannel
from providers import registry
from providers.extensions import Demo, DemoRun
from runs import services
from runs.models import RunDefinition


def _demos() -> list[Demo]:
    return [d for a in registry.adapter_classes().values() if (d := a.demo()) is not None]


def add_arguments(parser) -> None:
    for demo in _demos():
        demo.add_arguments(parser)


def load(options: dict) -> list[str]:
    """Load every provider's demo; what each says it made, a line each."""
    said = []
    for demo in _demos():
        result = demo.load(options)
        ensure_runs(result.runs)
        said.append(result.message)
    # Alerts to the console (the default EMAIL_BACKEND): take a simulator down and watch.
    AlertChannel.objects.get_or_create(
        name="Demo on-call", defaults={"kind": "email", "recipients": "oncall@localhost"}
    )
    said.append("Alerts: e-mail channel 'Demo on-call', printed in the worker's log.")
    return said


def ensure_runs(wanted: Iterable[DemoRun]) -> None:
    """The run definitions a demo asks for, each made (validated; a draft's schedule only when
    it is to be submitted) unless one of its name exists, and submitted when asked and still a
    draft."""
    for run in wanted:
        defaults = {
            "run_type": run.run_type,
            "provider": run.provider,
            "criteria": run.criteria,
            "input_settings": run.input_settings,
            "run_at": run.run_at,
        }
        if run.every_minutes:
            defaults.update(
                schedule=RunDefinition.Schedule.INTERVAL,
                every=run.every_minutes,
                unit=RunDefinition.Unit.MINUTES,
            )
        definition, created = RunDefinition.objects.get_or_create(name=run.name, defaults=defaults)
        if created:
            services.validate(definition, schedule=run.submit)
            definition.save()
        if run.submit and definition.state == RunDefinition.State.DRAFT:
            services.submit(definition)
