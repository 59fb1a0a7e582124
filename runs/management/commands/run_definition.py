import sys
import time

from django.core.management.base import BaseCommand, CommandError

from runs import services
from runs.models import ProcessRun, RunDefinition

BAR = 30


class Command(BaseCommand):
    help = "Execute a run definition now, in this process, with a progress bar."

    def add_arguments(self, parser):
        parser.add_argument("name", help="The definition's name or alternative code.")

    def handle(self, *args, **options):
        definition = (
            RunDefinition.objects.filter(name=options["name"]).first()
            or RunDefinition.objects.filter(alternative_code=options["name"]).first()
        )
        if definition is None:
            raise CommandError(f"No run definition named {options['name']!r}.")
        started = time.monotonic()
        tty = sys.stderr.isatty()

        def show(run: ProcessRun) -> None:
            total = run.total or 0
            share = min(run.examined / total, 1) if total else 1
            elapsed = time.monotonic() - started
            eta = f", {elapsed / share - elapsed:.0f} s left" if 0 < share < 1 else ""
            filled = int(BAR * share)
            line = (
                f"[{'#' * filled}{'.' * (BAR - filled)}] {run.examined}/{total} examined, "
                f"{run.created} requests created, {run.errors} errors{eta}"
            )
            self.stderr.write(("\r" + line) if tty else line, ending="" if tty else "\n")

        run = services.execute(definition.pk, ProcessRun.Trigger.COMMAND, on_progress=show)
        if tty:
            self.stderr.write("")
        if run is None:
            latest = definition.process_runs.first()
            raise CommandError(latest.message if latest else "Skipped.")
        self.stdout.write(f"Process run #{run.pk}: {run.get_status_display()}. {run.message}")
        if run.status == ProcessRun.Status.FAILED:
            raise CommandError("The run failed; see its log in the back office.")
