"""Fixtures for the Conax SMS tests: the CAS simulator on loopback and a provider pointing at it.

Test modules load them with ``pytest_plugins = ["tests.conax_sms_fixtures"]``.
"""

import itertools
from pathlib import Path

import pytest

from catalogue.models import Provider
from providers import provider_settings
from providers.conax_sms import file_format as ff
from providers.conax_sms.simulator import RESPONSE_DIR, UPLOAD_DIR, Simulator
from providers.models import TransferFile
from subscriptions import actions
from subscriptions.actions import ItemSpec
from subscriptions.demo import ensure_catalog

PASSWORD_ENV = "CRM_SECRET_CONAX_SMS_TEST_PASSWORD"
PASSWORD = "conax-test-secret"
_serials = itertools.count(1)


@pytest.fixture
def simulator(tmp_path):
    """SFTP and FTP servers and the CAS. The CAS thread is off: a test says when the CAS
    reads its files (``simulator.cas.run_once()``), so what it checks is deterministic."""
    sim = Simulator(tmp_path / "cas", password=PASSWORD, poll_interval=None)
    sim.start()
    yield sim
    sim.stop()


def connection(sim: Simulator, protocol: str = "sftp") -> dict:
    port = {"sftp": "sftp_port", "ftp": "ftp_port", "ftps": "ftps_port"}[protocol]
    return {
        "protocol": protocol,
        "host": sim.host,
        "port": getattr(sim, port),
        "username": "conax",
        "password_env": PASSWORD_ENV,
        "host_key": sim.host_key,
        "tls_ca_certificate": sim.tls_ca_certificate,
        "upload_directory": f"/{UPLOAD_DIR}",
        "response_directory": f"/{RESPONSE_DIR}",
    }


@pytest.fixture
def sms_catalog(db, simulator, monkeypatch):
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)
    catalog = ensure_catalog("Conax SMS", "conax_sms")
    provider = catalog.provider
    provider.connection = connection(simulator)
    provider.parameters = {}
    provider_settings.full_clean(provider)
    provider.save()
    return catalog


@pytest.fixture
def sms(sms_catalog) -> Provider:
    return sms_catalog.provider


@pytest.fixture
def sms_account(db):
    from subscriptions.models import CustomerAccount

    return CustomerAccount.objects.get_or_create(number="ACC-SMS", name="Andreas Pavlou")[0]


def card_and_box(distributor, n=None):
    n = n or next(_serials)
    return [
        ItemSpec("smartcard", f"SMSC{n:06d}", f"CX-SC-{n:06d}", distributor, "SC-01", "Smartcard"),
        ItemSpec("stb", f"SMSTB{n:06d}", f"CX-STB-{n:06d}", distributor, "STB-01", "Decoder"),
    ]


@pytest.fixture
def sms_subscribe(sms_catalog, sms_account):
    """A subscription on the Conax SMS provider, made through Become subscriber."""

    def make(*product_codes, distributor="MAIN", number=None):
        dist = sms_catalog.distributors[distributor]
        return actions.become_subscriber(
            sms_account,
            sms_catalog.types["RES"],
            [(sms_catalog.products[code], dist) for code in product_codes],
            card_and_box(dist),
            number=number,
        ).subscription

    return make


def request_files(sim: Simulator) -> dict[str, list[ff.RequestRecord]]:
    """What is in the CAS's upload directory, parsed."""
    folder = Path(sim.root) / UPLOAD_DIR
    return {
        p.name: ff.parse_request(p.read_bytes())[1]
        for p in sorted(folder.iterdir())
        if ff.is_request_file(p.name)
    }


def out_files(provider: Provider):
    return TransferFile.objects.filter(provider=provider, direction="out").order_by("pk")
