"""What the example provider brings: a run type, a utility, a simulator and demo data."""

import socket

from django import forms
from django.db import transaction

from providers import engine
from providers.extensions import (
    Demo,
    DemoResult,
    DemoRun,
    Outcome,
    Progress,
    RunType,
    SimulatorCommand,
    Utility,
    UtilityForm,
    counted,
)
from providers.models import ProvisioningRequest
from providers.types import NoSettings
from subscriptions.demo import ensure_catalog
from subscriptions.models import Subscription

# --- A run type: count the provider's subscribers ---------------------------------------------


def _subscribers(definition):
    return Subscription.objects.filter(
        services__distributor__provider=definition.provider
    ).distinct()


def _count(definition, run_id: int, report) -> None:
    n = _subscribers(definition).count()
    report(Progress(examined=n, counts={"subscribers": n}))


COUNT_SUBSCRIBERS = RunType(
    "example_count_subscribers",
    "Count subscribers",
    NoSettings,
    NoSettings,
    _count,
    total=lambda d: _subscribers(d).count(),
    counts=(("subscribers", "Subscribers"),),
    summary=lambda c: f"Counted {counted(c['subscribers'], 'subscriber')}",
)

# --- A utility: a note to the platform about one subscription ---------------------------------


class NoteForm(UtilityForm):
    text = forms.CharField(max_length=40)


def _note(provider, subscription, data, user, priority, process_immediately) -> Outcome:
    with transaction.atomic():
        request = engine.create_request(
            provider,
            "NOTE",
            {"subscription": subscription.number, "text": data["text"]},
            trigger=ProvisioningRequest.Trigger.UTILITY,
            trigger_name="example_note",
            subscription=subscription,
            priority=priority,
        )
    return Outcome([request], f"A note for {subscription.number} waits for the connector.")


NOTE = Utility(
    code="example_note",
    name="Send a note",
    description="A line of text to the platform about this subscription.",
    form=NoteForm,
    run=_note,
    may_be_express=True,
)

# --- A simulator: a TCP server that answers every line with "ok" ------------------------------


def _simulator_arguments(parser) -> None:
    parser.add_argument("--port", type=int, default=0, help="0: any free port.")
    parser.add_argument("--once", action="store_true", help="Answer one connection, then stop.")


def _serve(options: dict, stdout) -> None:
    with socket.create_server(("127.0.0.1", options["port"])) as server:
        stdout.write(f"Example simulator on 127.0.0.1:{server.getsockname()[1]}")
        stdout.flush()
        while True:
            connection, _ = server.accept()
            with connection, connection.makefile("rwb") as stream:
                for _line in stream:
                    stream.write(b"ok\n")
                    stream.flush()
            if options["once"]:
                return


SIMULATOR = SimulatorCommand(
    "example", "Example platform (answers every line with ok)", _simulator_arguments, _serve
)

# --- Demo data: the provider, and a draft run --------------------------------------------------


def _demo_arguments(parser) -> None:
    parser.add_argument("--example-name", default="Example", help="The demo provider's name.")


def _load(options: dict) -> DemoResult:
    provider = ensure_catalog(options["example_name"], "example").provider
    draft = DemoRun("Example: count subscribers", COUNT_SUBSCRIBERS.code, provider)
    return DemoResult(f"{provider.name}: a provider with its viewing points.", (draft,))


DEMO = Demo(_demo_arguments, _load)
