"""``cas_simulator KIND …``: run a CA system simulator, a real network server of that system's
protocol, for the demo and for trying a provider without the real platform.

Each kind lives in its provider package as a ``simulator`` module with two functions:
``add_arguments(parser)`` and ``serve(options, stdout)``, which runs until interrupted.
"""

from importlib import import_module

from django.core.management.base import BaseCommand

SIMULATORS = {
    "conax-ws": ("providers.conax_ws.simulator", "Conax Contego Web Services (SOAP over HTTP)"),
    "conax-sms": ("providers.conax_sms.simulator", "Conax Contego SMS (files over SFTP / FTP)"),
}


class Command(BaseCommand):
    help = "Run a CA system simulator: " + ", ".join(
        f"{kind} ({what})" for kind, (_module, what) in SIMULATORS.items()
    )

    def add_arguments(self, parser):
        kinds = parser.add_subparsers(dest="kind", required=True, metavar="KIND")
        for kind, (module, what) in SIMULATORS.items():
            sub = kinds.add_parser(kind, help=what, description=what)
            import_module(module).add_arguments(sub)

    def handle(self, *args, **options):
        module, _what = SIMULATORS[options["kind"]]
        import_module(module).serve(options, self.stdout)
