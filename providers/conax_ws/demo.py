"""Demo data for Conax Contego web services: a provider pointing at the CAS simulator, a dozen
subscribers made through the actions, messages waiting in the communication queue, segments
for fingerprinting, and draft run definitions ready to run.

``ensure_demo(url, username, password_env)`` is idempotent: run again, it updates the
provider's connection and creates only what is missing; ``demo_runs(provider)`` are the run
definitions it wants (``load_demo`` creates them; ``DEMO`` is the adapter's demo hook). Start
the simulator beside it:
``CRM_SECRET_CONAX_WS_PASSWORD=… python manage.py cas_simulator conax-ws --port 8090 --username crm
--password-env CRM_SECRET_CONAX_WS_PASSWORD --state-file var/conax-ws-cas.json``.
"""

from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from catalogue.models import Provider
from providers import provider_settings
from providers.extensions import Demo, DemoResult, DemoRun
from subscriptions import actions
from subscriptions.actions import ItemSpec
from subscriptions.demo import ensure_catalog, queue_messages
from subscriptions.models import (
    CustomerAccount,
    Segment,
    Subscription,
)

PROVIDER = "Conax WS"
PREFIX = "ZX-CWS-"
REASON = "Demo data (Conax WS)"

# number, MAIN products, TWIN1 products, story after Become subscriber
SUBSCRIBERS = [
    (1, ("BUNDLE_A",), (), ""),
    (2, ("BUNDLE_B",), (), ""),
    (3, ("AGRICULTURE",), (), ""),
    (4, ("BUNDLE_A", "AGRICULTURE"), ("BUNDLE_B",), ""),
    (5, ("BUNDLE_A",), (), "swap_to_agriculture"),
    (6, ("BUNDLE_A",), (), "swap_to_bundle_b"),
    (7, ("BUNDLE_B", "AGRICULTURE"), (), ""),
    (8, ("BUNDLE_A",), ("AGRICULTURE",), ""),
    (9, ("BUNDLE_B",), (), "deactivated"),
    (10, ("AGRICULTURE",), (), ""),
    (11, ("BUNDLE_A", "BUNDLE_B"), (), ""),
    (12, ("BUNDLE_B",), (), "service_added"),
]
MESSAGES = [
    (1, "Your bill for this month is ready in your account."),
    (2, "New on Religion: the Sunday service live at 10:00."),
    (4, "Thank you for choosing a second viewing point!"),
    (7, "Free preview of Bundle A this weekend."),
]
FINGERPRINT_SEGMENT = ("CWS-FINGERPRINT", "Conax WS: fingerprint check")
TRIAL_SEGMENT = ("CWS-TRIAL", "Conax WS: trial subscribers")


def _items(n: int, distributor, point: int) -> list[ItemSpec]:
    tag = f"{n:04d}{point}"
    return [
        ItemSpec("smartcard", f"CWS-SC{tag}", f"CWS-CA-SC{tag}", distributor, "SC-CX", "Smartcard"),
        ItemSpec("stb", f"CWS-STB{tag}", f"CWS-CA-STB{tag}", distributor, "STB-CX", "Decoder"),
    ]


def _subscriber(catalog, n: int, main: tuple, twin: tuple, story: str) -> Subscription:
    number = f"{PREFIX}{n:04d}"
    found = Subscription.objects.filter(number=number).first()
    if found is not None:
        return found
    account, _ = CustomerAccount.objects.get_or_create(
        number=f"ZXA-CWS-{n:04d}", defaults={"name": f"Conax WS demo subscriber {n}"}
    )
    points = [("MAIN", main)] + ([("TWIN1", twin)] if twin else [])
    services, items = [], []
    for index, (point, products) in enumerate(points):
        distributor = catalog.distributors[point]
        services += [(catalog.products[code], distributor) for code in products]
        items += _items(n, distributor, index)
    sub = actions.become_subscriber(
        account, catalog.types["RES"], services, items, number=number, reason=REASON
    ).subscription
    bundle_a = sub.services.filter(product__code="BUNDLE_A").first()
    if story == "swap_to_agriculture":
        actions.swap_service(bundle_a, catalog.products["AGRICULTURE"], reason=REASON)
    elif story == "swap_to_bundle_b":
        actions.swap_service(bundle_a, catalog.products["BUNDLE_B"], reason=REASON)
    elif story == "deactivated":
        actions.deactivate(sub, reason=REASON)
    elif story == "service_added":
        actions.add_service(sub, catalog.products["AGRICULTURE"], catalog.main, reason=REASON)
    return sub


def _connection(url: str, username: str, password_env: str) -> dict:
    url = url.rstrip("/")
    return {
        "wsdl_url": f"{url}/ca-server/webservices/subscription-management?wsdl",
        "endpoint_url": url,
        "username": username,
        "password_env": password_env,
        "timeout_seconds": 5,
    }


def ensure_demo(url: str, username: str, password_env: str) -> Provider:
    """The Conax WS provider at the simulator on ``url``, with its demo subscribers."""
    catalog = ensure_catalog(PROVIDER, "conax_ws")
    provider = catalog.provider
    # A changed connection: workers make a new SOAP client.
    provider_settings.connect(
        provider, _connection(url, username, password_env), {"max_attempts": 8}
    )
    subscribers = {
        n: _subscriber(catalog, n, main, twin, story) for n, main, twin, story in SUBSCRIBERS
    }
    queue_messages(catalog, subscribers, MESSAGES, "CWS")
    with transaction.atomic():
        fingerprint, _ = Segment.objects.get_or_create(
            code=FINGERPRINT_SEGMENT[0], defaults={"name": FINGERPRINT_SEGMENT[1]}
        )
        fingerprint.subscriptions.add(*(subscribers[n] for n in range(1, 9)))
        trial, _ = Segment.objects.get_or_create(
            code=TRIAL_SEGMENT[0], defaults={"name": TRIAL_SEGMENT[1]}
        )
        trial.subscriptions.add(subscribers[7], subscribers[8])
    return provider


def demo_runs(provider: Provider) -> tuple[DemoRun, ...]:
    """Draft definitions an operator can open and run at once."""
    later = timezone.now() + timedelta(days=1)
    return (
        DemoRun("Conax WS: Reset Subscriptions", "reset_subscriptions", provider, run_at=later),
        DemoRun(
            "Conax WS: Mail & Bark Messages",
            "conax_ws_mail_bark_messages",
            provider,
            input_settings={"message_type": "mail", "external_system": "ZX-CAS"},
            run_at=later,
        ),
        DemoRun(
            "Conax WS: Fingerprinting",
            "conax_ws_fingerprinting",
            provider,
            criteria={
                "included_segments": [FINGERPRINT_SEGMENT[0]],
                "excluded_segments": [TRIAL_SEGMENT[0]],
            },
            input_settings={"duration_seconds": 10, "height": 12, "slot": "A"},
            run_at=later,
        ),
    )


def _add_arguments(parser) -> None:
    # The demo provider points at the CAS simulator that ./dev run starts.
    parser.add_argument(
        "--conax-ws-url",
        default="http://127.0.0.1:8002",
        help="The Conax WS simulator (cas_simulator conax-ws).",
    )


def _load(options: dict) -> DemoResult:
    url = options["conax_ws_url"]
    provider = ensure_demo(url, "crm", "CRM_SECRET_CONAX_WS_PASSWORD")
    return DemoResult(
        f"Conax WS (SOAP simulator at {url}): a dozen subscribers.", demo_runs(provider)
    )


DEMO = Demo(_add_arguments, _load)
