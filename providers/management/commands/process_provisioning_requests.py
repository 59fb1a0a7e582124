from django.core.management.base import BaseCommand

from providers import batch

from ._options import add_selection_arguments, report_problems, selection_from


class Command(BaseCommand):
    help = (
        "Process Provisioning Requests (batch providers): compare wanted state with provider "
        "state for every subscription and create the Pending requests for the transport."
    )

    def add_arguments(self, parser):
        add_selection_arguments(parser, filters=False)

    def handle(self, *args, **options):
        result = batch.reconcile(
            selection_from(options),
            trigger_name="process_provisioning_requests",
            chunk_size=options["chunk_size"],
        )
        report_problems(self.stderr, result.problems)
        self.stdout.write(
            f"Examined {result.examined} subscriptions; created {result.requests_created} "
            f"requests for {result.subscriptions_changed} subscriptions."
        )
