"""Demo data for Irdeto: a provider pointing at the KMS simulator, a few subscribers made
through the actions (a card and a set-top box per viewing point; some with twin viewing points,
as the seed's "multiple distribution points" flow: MAIN, TWIN1, TWIN2, TWIN3, each its own box
and card pair with its own channels), messages waiting in the communication queue, and the run
definitions an operator wants (Reset Subscriptions, Mail), ready to run.

``ensure_demo(url, client_id, client_secret_env)`` is idempotent: run again, it updates the
provider's connection and creates only what is missing; ``demo_runs(provider)`` are the run
definitions it wants (``load_demo`` creates them; ``DEMO`` is the adapter's demo hook). Start
the simulator beside it:
``CRM_SECRET_IRDETO_CLIENT_SECRET=… python manage.py cas_simulator irdeto --port 8006
--client-id crm --client-secret-env CRM_SECRET_IRDETO_CLIENT_SECRET --state-file
var/irdeto-kms.json``.
"""

from datetime import timedelta

from django.utils import timezone

from catalogue.models import Provider
from providers import provider_settings
from providers.extensions import Demo, DemoResult, DemoRun
from subscriptions import actions
from subscriptions.actions import ItemSpec
from subscriptions.demo import VIEWING_POINTS, ensure_catalog, queue_messages
from subscriptions.models import CustomerAccount, Subscription

PROVIDER = "Irdeto"
PREFIX = "ZX-IRD-"
REASON = "Demo data (Irdeto)"
CLIENT_ID = "crm"
SECRET_ENV = "CRM_SECRET_IRDETO_CLIENT_SECRET"  # noqa: S105 (the variable's name)

# number, the products of each viewing point in use (MAIN, TWIN1, …), story after Become
# subscriber
SUBSCRIBERS = [
    (1, (("BUNDLE_A",),), ""),
    (2, (("AGRICULTURE",),), ""),
    (3, (("BUNDLE_B", "AGRICULTURE"), ("BUNDLE_A",)), ""),
    # Four rooms, each its own pair and its own channels.
    (4, (("BUNDLE_A",), ("AGRICULTURE",), ("BUNDLE_B",), ("AGRICULTURE",)), ""),
    (5, (("BUNDLE_A",),), "swap_to_bundle_b"),
    (6, (("BUNDLE_B",),), "deactivated"),
    (7, (("BUNDLE_A",), ("BUNDLE_B",)), "service_added"),
    (8, (("AGRICULTURE",), ("AGRICULTURE",)), ""),
]
# Communications for the Mail run: one request per viewing point, to its box.
MESSAGES = [
    (1, "Your bill for this month is ready in your account."),
    (3, "Thank you for choosing a second viewing point!"),
    (7, "Agriculture is now on in your living room."),
]


def card(n: int, point: int) -> str:
    """The CA ID (secure client id) of subscriber ``n``'s smartcard on viewing point
    ``point`` (0 = MAIN)."""
    return f"IRD-CA-SC{n:04d}{point}"


def box(n: int, point: int) -> str:
    """… and of its set-top box."""
    return f"IRD-CA-STB{n:04d}{point}"


def _items(n: int, distributor, point: int) -> list[ItemSpec]:
    tag = f"{n:04d}{point}"
    return [
        ItemSpec("smartcard", f"IRD-SC{tag}", card(n, point), distributor, "SC-IR", "Smartcard"),
        ItemSpec("stb", f"IRD-STB{tag}", box(n, point), distributor, "STB-IR", "Decoder"),
    ]


def _subscriber(catalog, n: int, points: tuple, story: str) -> Subscription:
    number = f"{PREFIX}{n:04d}"
    found = Subscription.objects.filter(number=number).first()
    if found is not None:
        return found
    account, _ = CustomerAccount.objects.get_or_create(
        number=f"ZXA-IRD-{n:04d}", defaults={"name": f"Irdeto demo subscriber {n}"}
    )
    services, items = [], []
    for index, products in enumerate(points):
        distributor = catalog.distributors[VIEWING_POINTS[index]]
        services += [(catalog.products[code], distributor) for code in products]
        items += _items(n, distributor, index)
    sub = actions.become_subscriber(
        account, catalog.types["RES"], services, items, number=number, reason=REASON
    ).subscription
    if story == "swap_to_bundle_b":
        bundle_a = sub.services.get(product__code="BUNDLE_A")
        actions.swap_service(bundle_a, catalog.products["BUNDLE_B"], reason=REASON)
    elif story == "deactivated":
        actions.deactivate(sub, reason=REASON)
    elif story == "service_added":
        actions.add_service(sub, catalog.products["AGRICULTURE"], catalog.main, reason=REASON)
    return sub


def _connection(url: str, client_id: str, client_secret_env: str) -> dict:
    return {
        "endpoint_url": url.rstrip("/"),
        "client_id": client_id,
        "client_secret_env": client_secret_env,
        "timeout_seconds": 5,
    }


def ensure_demo(url: str, client_id: str, client_secret_env: str) -> Provider:
    """The Irdeto provider at the KMS simulator on ``url``, with its demo subscribers."""
    catalog = ensure_catalog(PROVIDER, "irdeto")
    provider = catalog.provider
    provider_settings.connect(
        provider, _connection(url, client_id, client_secret_env), {"max_attempts": 8}
    )
    subscribers = {n: _subscriber(catalog, n, points, story) for n, points, story in SUBSCRIBERS}
    queue_messages(catalog, subscribers, MESSAGES, "IRD")
    return provider


def demo_runs(provider: Provider) -> tuple[DemoRun, ...]:
    """Draft definitions an operator can open and run at once."""
    later = timezone.now() + timedelta(days=1)
    return (
        DemoRun("Irdeto: Reset Subscriptions", "reset_subscriptions", provider, run_at=later),
        DemoRun(
            "Irdeto: Mail",
            "irdeto_mail",
            provider,
            input_settings={
                "external_system": "ZX-CAS",
                "message_type": "mail",
                "text_mode": "ANSI",
            },
            run_at=later,
        ),
    )


def _add_arguments(parser) -> None:
    # The demo provider points at the KMS simulator that ./dev run starts.
    parser.add_argument(
        "--irdeto-url",
        default="http://127.0.0.1:8006",
        help="The Irdeto KMS simulator (cas_simulator irdeto).",
    )


def _load(options: dict) -> DemoResult:
    url = options["irdeto_url"]
    provider = ensure_demo(url, CLIENT_ID, SECRET_ENV)
    return DemoResult(
        f"Irdeto (KMS simulator at {url}): {len(SUBSCRIBERS)} subscribers, some with twin "
        f"viewing points; {len(MESSAGES)} messages for the Mail run.",
        demo_runs(provider),
    )


DEMO = Demo(_add_arguments, _load)
