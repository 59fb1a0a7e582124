"""Demo data for EXSET SMS: a provider writing into the simulator's TQUEUE table (an SQLite file
under var/), its CA IDs, a few subscribers made through the actions — one with a usage service,
which is never sent as ADD_SUBSCRIPTION — and the runs scheduled: processing, writing the
entries, reading the answers.

``ensure_demo(database_url)`` is idempotent: run again, it updates the provider's connection
and creates only what is missing; ``demo_runs(provider)`` are the run definitions it wants
(``load_demo`` creates them; ``DEMO`` is the adapter's demo hook). Start the simulator beside
it on the same database::

    python manage.py cas_simulator exset --database-url sqlite:///var/exset/tqueue.sqlite3
"""

from pathlib import Path

from django.conf import settings
from django.db import transaction

from catalogue.models import Product, ProductCAId, Provider
from providers import provider_settings
from providers.extensions import Demo, DemoResult, DemoRun
from subscriptions import actions
from subscriptions.actions import ItemSpec
from subscriptions.demo import ensure_catalog
from subscriptions.models import CustomerAccount, Subscription

PROVIDER = "EXSET SMS"
TYPE = "exset"
PREFIX = "ZX-EXS-"
REASON = "Demo data (EXSET SMS)"
TABLE = "TQUEUE"
# A usage service (pay per view): code, name, its CA ID at EXSET.
USAGE_PRODUCT = ("BOX_OFFICE", "Box Office (pay per view)", "PPV1")

# number, MAIN products, TWIN1 products, story after Become subscriber
SUBSCRIBERS = [
    (1, ("BUNDLE_A",), (), ""),
    (2, ("BUNDLE_B", "BOX_OFFICE"), (), ""),
    (3, ("AGRICULTURE",), ("BUNDLE_A",), ""),
    (4, ("BUNDLE_A", "AGRICULTURE"), (), "deactivated"),
    (5, ("BUNDLE_B",), (), "service_added"),
    (6, ("AGRICULTURE",), (), "rest"),
]
# name, run type, every N minutes
DEFINITIONS = [
    ("EXSET: Process Provisioning Requests", "process_provisioning_requests", 5),
    ("EXSET: Write TQUEUE entries", "exset_write_tqueue", 2),
    ("EXSET: Read TQUEUE answers", "exset_read_tqueue", 1),
]


def default_database_url() -> str:
    return f"sqlite:///{Path(settings.VAR_DIR).resolve() / 'exset' / 'tqueue.sqlite3'}"


def connection(database_url: str) -> dict:
    return {"database_url": database_url, "password_env": "", "table": TABLE}


def _items(n: int, distributor, point: int) -> list[ItemSpec]:
    tag = f"{n:04d}{point}"
    return [
        ItemSpec("smartcard", f"EXS-SC{tag}", f"EXS-CA-SC{tag}", distributor, "SC-EX", "Smartcard"),
        ItemSpec("stb", f"EXS-STB{tag}", f"EXS-CA-STB{tag}", distributor, "STB-EX", "Decoder"),
    ]


def _usage_product(catalog) -> Product:
    code, name, ca_id = USAGE_PRODUCT
    product, _ = Product.objects.get_or_create(
        code=code, defaults={"name": name, "service_type": Product.ServiceType.USAGE}
    )
    ProductCAId.objects.get_or_create(
        product=product, provider=catalog.provider, defaults={"ca_id": ca_id}
    )
    for distributor in catalog.distributors.values():
        distributor.allowed_products.add(product)
    catalog.products[code] = product
    return product


def _subscriber(catalog, n: int, main: tuple, twin: tuple, story: str) -> Subscription:
    number = f"{PREFIX}{n:04d}"
    found = Subscription.objects.filter(number=number).first()
    if found is not None:
        return found
    account, _ = CustomerAccount.objects.get_or_create(
        number=f"ZXA-EXS-{n:04d}", defaults={"name": f"EXSET demo subscriber {n}"}
    )
    points = [("MAIN", main)] + ([("TWIN1", twin)] if twin else [])
    services, items = [], []
    for index, (point, products) in enumerate(points):
        distributor = catalog.distributors[point]
        services += [(catalog.products[code], distributor) for code in products]
        items += _items(n, distributor, index)
    with transaction.atomic():
        sub = actions.become_subscriber(
            account, catalog.types["RES"], services, items, number=number, reason=REASON
        ).subscription
        if story == "deactivated":
            actions.deactivate(sub, reason=REASON)
        elif story == "rest":
            actions.rest(sub, reason=REASON)
        elif story == "service_added":
            actions.add_service(sub, catalog.products["AGRICULTURE"], catalog.main, reason=REASON)
    return sub


def ensure_demo(database_url: str) -> Provider:
    """The EXSET provider on the SMS database at ``database_url``, with its subscribers."""
    catalog = ensure_catalog(PROVIDER, TYPE)
    provider = catalog.provider
    provider_settings.connect(provider, connection(database_url))
    with transaction.atomic():
        _usage_product(catalog)
    for n, main, twin, story in SUBSCRIBERS:
        _subscriber(catalog, n, main, twin, story)
    return provider


def demo_runs(provider: Provider) -> tuple[DemoRun, ...]:
    return tuple(
        DemoRun(name, run_type, provider, every_minutes=minutes, submit=True)
        for name, run_type, minutes in DEFINITIONS
    )


def _add_arguments(parser) -> None:
    # The demo provider writes where the simulator that ./dev run starts reads.
    parser.add_argument(
        "--exset-database-url",
        default=default_database_url(),
        help="The EXSET SMS simulator's database (cas_simulator exset --database-url).",
    )


def _load(options: dict) -> DemoResult:
    url = options["exset_database_url"]
    provider = ensure_demo(url)
    return DemoResult(
        f"EXSET SMS (TQUEUE in {url}): {len(SUBSCRIBERS)} subscribers.", demo_runs(provider)
    )


DEMO = Demo(_add_arguments, _load)
