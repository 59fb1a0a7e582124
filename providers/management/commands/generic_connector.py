import os

from django.core.management.base import BaseCommand, CommandError

from providers.generic.connector import GenericConnector, Platform, serve


class Command(BaseCommand):
    help = (
        "The reference Generic connector, an in-memory platform. Pull mode (--url): takes "
        "Pending requests over the Web API and answers. Push mode (--port): takes requests "
        "POSTed to /requests. --port also serves GET /state and POST /offline, /online, "
        "/reject, /slow."
    )

    def add_arguments(self, parser):
        parser.add_argument("--url", help="Pull from this base URL, e.g. http://127.0.0.1:8000")
        parser.add_argument(
            "--token",
            default=os.environ.get("GENERIC_CONNECTOR_TOKEN", ""),
            help="Connector token for pull mode (default: $GENERIC_CONNECTOR_TOKEN).",
        )
        parser.add_argument("--interval", type=float, default=2.0, help="Seconds between polls.")
        parser.add_argument("--port", type=int, help="Serve push and control on this port.")
        parser.add_argument("--once", action="store_true", help="Poll once and exit.")

    def handle(self, *args, **options):
        if not options["url"] and not options["port"]:
            raise CommandError("Give --url (pull), --port (push and control), or both.")
        if options["url"] and not options["token"]:
            raise CommandError("Pull mode needs --token or GENERIC_CONNECTOR_TOKEN.")
        if options["once"]:
            connector = GenericConnector(options["url"], options["token"], Platform())
            self.stdout.write(f"Took and answered {connector.poll_once()} requests.")
            return
        if options["url"]:
            self.stdout.write(f"Polling {options['url']} every {options['interval']} s.")
        if options["port"]:
            self.stdout.write(f"Serving push and control on 127.0.0.1:{options['port']}.")
        self.stdout.flush()
        serve(
            options["url"],
            options["token"],
            interval=options["interval"],
            port=options["port"],
        )
