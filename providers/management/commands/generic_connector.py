import os

from django.core.management.base import BaseCommand, CommandError

from providers.generic.connector import GenericConnector, Platform, serve


class Command(BaseCommand):
    help = (
        "The reference Generic connector: pulls Pending requests over the Web API, applies them "
        "to an in-memory platform and answers. Control it on --control-port "
        "(GET /state, POST /offline, /online, /reject)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--url", required=True, help="Base URL, e.g. http://127.0.0.1:8000")
        parser.add_argument(
            "--token",
            default=os.environ.get("GENERIC_CONNECTOR_TOKEN", ""),
            help="Connector token (default: $GENERIC_CONNECTOR_TOKEN).",
        )
        parser.add_argument("--interval", type=float, default=2.0, help="Seconds between polls.")
        parser.add_argument("--control-port", type=int, help="Port for the control endpoint.")
        parser.add_argument("--once", action="store_true", help="Poll once and exit.")

    def handle(self, *args, **options):
        if not options["token"]:
            raise CommandError("Give --token or set GENERIC_CONNECTOR_TOKEN.")
        if options["once"]:
            connector = GenericConnector(options["url"], options["token"], Platform())
            taken = connector.poll_once()
            self.stdout.write(f"Took and answered {taken} requests.")
            return
        self.stdout.write(f"Polling {options['url']} every {options['interval']} s.")
        serve(
            options["url"],
            options["token"],
            interval=options["interval"],
            control_port=options["control_port"],
        )
