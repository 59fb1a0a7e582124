"""``cas_simulator KIND …``: run a CA system simulator, a real network server of that system's
protocol, for the demo and for trying a provider without the real platform.

The kinds are those the installed adapters bring (``Adapter.simulator()``); each declares its
options and serves until interrupted.
"""

from django.core.management.base import BaseCommand

from providers import registry


def _simulators() -> dict:
    found = {}
    for adapter in registry.adapter_classes().values():
        simulator = adapter.simulator()
        if simulator is not None:
            found[simulator.kind] = simulator
    return found


class Command(BaseCommand):
    @property
    def help(self) -> str:
        kinds = ", ".join(f"{s.kind} ({s.description})" for s in _simulators().values())
        return f"Run a CA system simulator: {kinds or 'none is installed'}"

    def add_arguments(self, parser):
        kinds = parser.add_subparsers(dest="kind", required=True, metavar="KIND")
        for kind, simulator in _simulators().items():
            sub = kinds.add_parser(
                kind, help=simulator.description, description=simulator.description
            )
            simulator.add_arguments(sub)

    def handle(self, *args, **options):
        _simulators()[options["kind"]].serve(options, self.stdout)
