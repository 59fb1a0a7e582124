"""Demo data for Conax Contego SMS: a provider on the SFTP simulator, a dozen subscribers made
through the actions, and the batch runs scheduled (processing, export, error handling) plus a
draft Mail & Bark run with messages waiting in the communication queue.

``ensure_demo(host, sftp_port, host_key, username, password_env)`` is idempotent: run again,
it updates the provider's connection (e.g. a new host key) and creates only what is missing.
Start the simulator beside it, with the same password in the variable::

    CRM_SECRET_CONAX_SMS_PASSWORD=… python manage.py cas_simulator conax-sms --root var/conax-sms \\
        --sftp-port 2222 --ftp-port 2121 --username crm --password-env CRM_SECRET_CONAX_SMS_PASSWORD

It prints the host key to pass as ``host_key``; the key is kept in ``--root``, so it stays the
same, and ``simulator_host_key(root)`` reads (or makes) it before the simulator first starts.
``demo_runs(provider)`` are the run definitions it wants (``load_demo`` creates them; ``DEMO``
is the adapter's demo hook).
"""

from pathlib import Path

from django.conf import settings
from django.db import transaction

from catalogue.models import Provider
from providers import provider_settings
from providers.extensions import Demo, DemoResult, DemoRun
from subscriptions import actions
from subscriptions.actions import ItemSpec
from subscriptions.demo import ensure_catalog, queue_messages
from subscriptions.models import CustomerAccount, Subscription

from .simulator import RESPONSE_DIR, UPLOAD_DIR, load_host_key, public_line

PROVIDER = "Conax SMS"
PREFIX = "ZX-CSMS-"
REASON = "Demo data (Conax SMS)"

# number, MAIN products, TWIN1 products, story after Become subscriber
SUBSCRIBERS = [
    (1, ("BUNDLE_A",), (), ""),
    (2, ("BUNDLE_B",), (), ""),
    (3, ("AGRICULTURE",), (), ""),
    (4, ("BUNDLE_A", "AGRICULTURE"), ("BUNDLE_B",), ""),
    (5, ("BUNDLE_A",), (), "swap_to_agriculture"),
    (6, ("BUNDLE_B",), (), "rest"),
    (7, ("BUNDLE_B", "AGRICULTURE"), (), ""),
    (8, ("BUNDLE_A",), ("AGRICULTURE",), ""),
    (9, ("BUNDLE_B",), (), "deactivated"),
    (10, ("AGRICULTURE",), (), "short_term_deactivation"),
    (11, ("BUNDLE_A", "BUNDLE_B"), (), ""),
    (12, ("BUNDLE_B",), (), "service_added"),
]
MESSAGES = [
    (1, "Your bill for this month is ready in your account."),
    (3, "Agriculture: the harvest report tonight at 20:00."),
    (7, "Free preview of Bundle A this weekend."),
]
# name, run type, every N minutes (None: a draft to run by hand), input settings
DEFINITIONS = [
    ("Conax SMS: Process Provisioning Requests", "process_provisioning_requests", 5, {}),
    ("Conax SMS: Export request files", "conax_sms_export_files", 5, {}),
    ("Conax SMS: Error Handling", "conax_sms_error_handling", 2, {}),
    (
        "Conax SMS: Mail & Bark Messages",
        "conax_sms_messages",
        None,
        {"message_type": "MAIL", "external_system": "ZX-CAS", "process_immediately": False},
    ),
]


def _items(n: int, distributor, point: int) -> list[ItemSpec]:
    tag = f"{n:04d}{point}"
    return [
        ItemSpec(
            "smartcard", f"CSMS-SC{tag}", f"CSMS-CA-SC{tag}", distributor, "SC-CX", "Smartcard"
        ),
        ItemSpec("stb", f"CSMS-STB{tag}", f"CSMS-CA-STB{tag}", distributor, "STB-CX", "Decoder"),
    ]


def _subscriber(catalog, n: int, main: tuple, twin: tuple, story: str) -> Subscription:
    number = f"{PREFIX}{n:04d}"
    found = Subscription.objects.filter(number=number).first()
    if found is not None:
        return found
    account, _ = CustomerAccount.objects.get_or_create(
        number=f"ZXA-CSMS-{n:04d}", defaults={"name": f"Conax SMS demo subscriber {n}"}
    )
    points = [("MAIN", main)] + ([("TWIN1", twin)] if twin else [])
    services_, items = [], []
    for index, (point, products) in enumerate(points):
        distributor = catalog.distributors[point]
        services_ += [(catalog.products[code], distributor) for code in products]
        items += _items(n, distributor, index)
    with transaction.atomic():
        sub = actions.become_subscriber(
            account, catalog.types["RES"], services_, items, number=number, reason=REASON
        ).subscription
        if story == "swap_to_agriculture":
            bundle = sub.services.get(product__code="BUNDLE_A")
            actions.swap_service(bundle, catalog.products["AGRICULTURE"], reason=REASON)
        elif story == "rest":
            actions.rest(sub, reason=REASON)
        elif story == "deactivated":
            actions.deactivate(sub, reason=REASON)
        elif story == "short_term_deactivation":
            actions.short_term_deactivation(sub, reason=REASON)
        elif story == "service_added":
            actions.add_service(sub, catalog.products["AGRICULTURE"], catalog.main, reason=REASON)
    return sub


def simulator_host_key(root: str | Path) -> str:
    """The public host key of the simulator started with ``--root root`` (made if missing)."""
    return public_line(load_host_key(Path(root)))


def connection(host: str, sftp_port: int, host_key: str, username: str, password_env: str):
    return {
        "protocol": "sftp",
        "host": host,
        "port": sftp_port,
        "username": username,
        "password_env": password_env,
        "private_key_env": "",
        "host_key": host_key,
        "upload_directory": f"/{UPLOAD_DIR}",
        "response_directory": f"/{RESPONSE_DIR}",
    }


def ensure_demo(
    host: str, sftp_port: int, host_key: str, username: str, password_env: str
) -> Provider:
    """The Conax SMS provider on the SFTP simulator at ``host:sftp_port``, with its demo."""
    catalog = ensure_catalog(PROVIDER, "conax_sms")
    provider = catalog.provider
    wanted = connection(host, sftp_port, host_key, username, password_env)
    if provider.connection != wanted:
        provider.connection = wanted
        provider_settings.full_clean(provider)
        provider.save()
    subscribers = {
        n: _subscriber(catalog, n, main, twin, story) for n, main, twin, story in SUBSCRIBERS
    }
    queue_messages(catalog, subscribers, MESSAGES, "CSMS")
    return provider


def demo_runs(provider: Provider) -> tuple[DemoRun, ...]:
    return tuple(
        DemoRun(
            name,
            run_type,
            provider,
            input_settings=input_settings,
            every_minutes=minutes or 60,
            submit=bool(minutes),
        )
        for name, run_type, minutes, input_settings in DEFINITIONS
    )


def _add_arguments(parser) -> None:
    # The demo provider points at the CAS simulator that ./dev run starts.
    parser.add_argument(
        "--conax-sms-port", type=int, default=8003, help="The Conax SMS simulator's SFTP port."
    )
    parser.add_argument(
        "--conax-sms-root",
        default=str(settings.VAR_DIR / "conax-sms"),
        help="The Conax SMS simulator's --root (its host key is read from there).",
    )


def _load(options: dict) -> DemoResult:
    port = options["conax_sms_port"]
    host_key = simulator_host_key(options["conax_sms_root"])
    provider = ensure_demo("127.0.0.1", port, host_key, "crm", "CRM_SECRET_CONAX_SMS_PASSWORD")
    return DemoResult(
        f"Conax SMS (SFTP simulator on port {port}): a dozen subscribers.", demo_runs(provider)
    )


DEMO = Demo(_add_arguments, _load)
