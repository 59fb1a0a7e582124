import time

from django.core.management.base import BaseCommand, CommandError

from bench import load
from providers import registry


class Command(BaseCommand):
    help = (
        "Add load subscriptions (LD-0000001 …) for benchmarks: flat products and bundles on 1 to "
        "4 viewing points, every service state, a share left out of step with the provider. "
        "Fast (COPY on PostgreSQL); running it again adds only the missing ones."
    )

    def add_arguments(self, parser):
        parser.add_argument("--subscriptions", type=int, required=True, metavar="N")
        parser.add_argument(
            "--drift",
            type=float,
            default=0.05,
            help="Share of subscriptions out of step with the provider (default 0.05).",
        )
        parser.add_argument("--provider", default="Generic", help="Provider name.")
        parser.add_argument(
            "--type",
            default="generic",
            choices=list(registry.adapter_classes()),
            help="Provider type, when the provider is new.",
        )
        parser.add_argument("--seed", type=int, default=load.SEED)

    def handle(self, *args, **options):
        if options["subscriptions"] < 0:
            raise CommandError("--subscriptions must be 0 or more.")
        if not 0 <= options["drift"] <= 1:
            raise CommandError("--drift is a share between 0 and 1.")
        started = time.monotonic()

        def progress(done: load.Generated) -> None:
            rate = done.subscriptions / max(time.monotonic() - started, 1e-9)
            self.stdout.write(f"  {done.subscriptions:,} subscriptions ({rate:,.0f}/s)")

        result = load.generate(
            options["subscriptions"],
            provider_name=options["provider"],
            provider_type=options["type"],
            drift=options["drift"],
            seed=options["seed"],
            progress=progress,
        )
        self.stdout.write(
            self.style.SUCCESS(
                f"Added {result.subscriptions:,} subscriptions, {result.services:,} services, "
                f"{result.items:,} devices; {result.drifted:,} left out of step "
                f"({time.monotonic() - started:.1f} s)."
            )
        )
