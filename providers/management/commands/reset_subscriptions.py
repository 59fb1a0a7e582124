import json

from django.core.management.base import BaseCommand

from providers import batch

from ._options import add_selection_arguments, report_problems, selection_from


class Command(BaseCommand):
    help = (
        "Reset Subscriptions: find subscriptions out of step with a provider and create the "
        "requests that repair them. --preview lists them and writes nothing."
    )

    def add_arguments(self, parser):
        add_selection_arguments(parser)
        parser.add_argument("--preview", action="store_true", help="List, write nothing.")

    def handle(self, *args, **options):
        selection = selection_from(options)
        if options["preview"]:
            subscriptions = requests = 0
            for row in batch.preview(selection, chunk_size=options["chunk_size"]):
                subscriptions += 1
                requests += len(row.requests)
                self.stdout.write(row.subscription)
                for request in row.requests:
                    parameters = json.dumps(request["parameters"], sort_keys=True)
                    self.stdout.write(f"  {request['command']} {parameters}")
            self.stdout.write(
                f"Preview: {subscriptions} subscriptions out of step; "
                f"{requests} requests would be created. Nothing was written."
            )
            return
        result = batch.reconcile(
            selection, trigger_name="reset_subscriptions", chunk_size=options["chunk_size"]
        )
        report_problems(self.stderr, result.problems)
        self.stdout.write(
            f"Examined {result.examined} subscriptions; created {result.requests_created} "
            f"requests for {result.subscriptions_changed} subscriptions."
            + (f" Superseded {result.superseded} Failed requests." if result.superseded else "")
        )
