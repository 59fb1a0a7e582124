import time
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import connection

from bench import conax_sms, exset, figures, load, pages, realtime, realtime_cas
from bench.report import Report
from catalogue.models import Provider
from providers.models import ProvisioningRequest
from subscriptions.models import InstalledItem, Subscription, SubscriptionService

PROVIDER = "Generic"


class Command(BaseCommand):
    help = (
        "The benchmark: load subscriptions (generate_load), put a share out of step, and measure "
        "each figure with its floor (the same work by hand-written SQL). Prints one table and "
        "writes it as JSON. Meant for PostgreSQL + Redis; elsewhere the floors are left out."
    )

    def add_arguments(self, parser):
        parser.add_argument("--subscriptions", type=int, default=1_000_000, metavar="N")
        parser.add_argument("--drift", type=float, default=0.05)
        parser.add_argument(
            "--actions",
            type=int,
            default=10_000,
            metavar="N",
            help="Real-time actions through the Web API, idle and again under a reset run, "
            "delivered to the Conax WS simulator, then as many to the Irdeto one.",
        )
        parser.add_argument(
            "--records",
            type=int,
            default=None,
            metavar="N",
            help="Conax SMS requests to export into files, and EXSET SMS requests to write as "
            "TQUEUE entries (default: as many as subscriptions).",
        )
        parser.add_argument(
            "--sms-postgresql",
            default=exset.Servers.postgresql,
            metavar="URL",
            help="The PostgreSQL server the EXSET SMS database is made on (default %(default)s).",
        )
        parser.add_argument(
            "--sms-mariadb",
            default=exset.Servers.mariadb,
            metavar="URL",
            help="The MariaDB server the EXSET SMS database is made on (default %(default)s); "
            "its figure is left out when none answers there.",
        )
        parser.add_argument(
            "--sms-database",
            default="",
            metavar="NAME",
            help="The EXSET SMS databases' name, made and dropped on each server (default: "
            "after this database's, crm_bench → exset_bench).",
        )
        parser.add_argument(
            "--json",
            type=Path,
            default=None,
            help="Where to write the figures (default var/bench-N.json).",
        )

    def handle(self, *args, **options):
        n = options["subscriptions"]
        workdir = Path(settings.VAR_DIR)
        workdir.mkdir(parents=True, exist_ok=True)
        out = options["json"] or workdir / f"bench-{n}.json"
        if Subscription.objects.exclude(number__startswith=load.PREFIX).exists():
            raise CommandError(
                "bench rewrites the provider side of its data and deletes its requests: run it "
                "on a database of its own (DATABASE_URL=postgres://…/crm_bench), not this one."
            )
        sms = exset.Servers(
            options["sms_postgresql"], options["sms_mariadb"], options["sms_database"]
        )
        try:
            sms.check()
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        if connection.vendor != "postgresql":
            self.stderr.write("Not on PostgreSQL: figures are measured, floors left out.")
        started = time.monotonic()
        self.stdout.write(f"Loading {n:,} subscriptions on '{PROVIDER}' …")
        load.generate(n, provider_name=PROVIDER, drift=0)
        provider = Provider.objects.get(name=PROVIDER)
        # A clean slate on every run: no requests left from the last one, the same share out
        # of step.
        conax_sms.delete_requests(ProvisioningRequest.objects.filter(provider=provider))
        drifted = load.redrift(PROVIDER, options["drift"])
        # As autovacuum would; the bench's server may run none.
        requests = ProvisioningRequest
        conax_sms.vacuum(requests, requests.items.through, SubscriptionService, InstalledItem)
        self.stdout.write(
            f"{drifted:,} subscriptions out of step ({time.monotonic() - started:.0f} s)."
        )
        report = Report(subscriptions=n)
        self.stdout.write("Reset preview …")
        figures.reset_preview(report, provider)
        self.stdout.write("Reset run on one worker process …")
        first = figures.reset_run(report, provider, workdir)
        # The same run again from the same state, on two worker processes sharing its parts.
        conax_sms.delete_requests(ProvisioningRequest.objects.filter(process_run=first))
        self.stdout.write("Reset run on two worker processes …")
        figures.reset_run(report, provider, workdir, worker_processes=2)
        self.stdout.write("Generic round trip …")
        figures.generic_round_trip(report, provider, workdir)
        self.stdout.write("Back-office pages, signed in as an agent …")
        pages.pages(report, workdir)
        actions = options["actions"]
        say = self.stdout.write
        for cas in (realtime_cas.CONAX_WS, realtime_cas.IRDETO):
            say(f"Real-time: {actions:,} actions to the {cas.label} simulator, idle …")
            realtime.realtime(report, workdir, cas=cas, actions=actions, say=say)
            say(f"Real-time: {actions:,} actions to the {cas.label} simulator, under reset runs …")
            realtime.realtime(
                report,
                workdir,
                cas=cas,
                actions=actions,
                under_load=lambda: realtime.reset_run_load(
                    provider, workdir, drift=options["drift"]
                ),
                say=say,
            )
        self.stdout.write(f"Conax SMS: Process Provisioning Requests over {n:,} subscriptions …")
        conax_sms.processing_run(report, workdir, subscriptions=n, drift=options["drift"])
        records = options["records"] or n
        self.stdout.write(f"Conax SMS: export of {records:,} requests over SFTP …")
        conax_sms.export(report, workdir, records=records)
        self.stdout.write(f"EXSET SMS: Process Provisioning Requests over {n:,} subscriptions …")
        exset.processing_run(report, workdir, subscriptions=n, drift=options["drift"], servers=sms)
        self.stdout.write(f"EXSET SMS: {records:,} requests written as TQUEUE entries …")
        exset.tqueue_writing(report, records=records, servers=sms, say=say)
        self.stdout.write("")
        self.stdout.write(report.table())
        report.write(out)
        self.stdout.write(f"\nWritten to {out}")
