"""Fixtures for the Conax Contego web services tests: the SOAP CAS simulator on a free port of
this process, the Company ZX catalogue at a Conax WS provider pointing at it, and a throwaway
public key infrastructure for HTTPS with client certificates.

A test module takes the fixtures it uses by name (``conax = conax_ws_fixtures.conax``), which
keeps them out of ``conftest.py`` and visible where they are used.
"""

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from providers import delivery, provider_settings
from providers.conax_ws.simulator import Simulator
from providers.models import ProvisioningRequest
from subscriptions import actions
from subscriptions.demo import ensure_catalog

from .conftest import card_and_box

PASSWORD_ENV = "CRM_SECRET_CONAX_WS_TEST_PASSWORD"
PASSWORD = "cas-test-pass"


@pytest.fixture
def simulator(monkeypatch):
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)
    sim = Simulator("crm", PASSWORD).start()
    yield sim
    sim.stop()


def connection(sim: Simulator, **extra) -> dict:
    return {
        "wsdl_url": sim.wsdl_url,
        "username": "crm",
        "password_env": PASSWORD_ENV,
        "timeout_seconds": 2,
        **extra,
    }


@pytest.fixture
def conax(db, simulator, settings):
    """The catalogue at "Conax WS", connected to the simulator; three attempts, retried fast."""
    settings.PROVISIONING_RETRY_SECONDS = 0
    catalog = ensure_catalog("Conax WS", "conax_ws")
    provider = catalog.provider
    provider.connection = connection(simulator)
    provider.parameters = {"max_attempts": 3}
    provider_settings.full_clean(provider)
    provider.save()
    return catalog


@pytest.fixture
def conax_subscribe(conax, account):
    """Become subscriber at Conax WS: products on a viewing point, with a card and a box."""

    def make(*product_codes, distributor="MAIN", number=None):
        dist = conax.distributors[distributor]
        return actions.become_subscriber(
            account,
            conax.types["RES"],
            [(conax.products[code], dist) for code in product_codes],
            card_and_box(dist),
            number=number,
        ).subscription

    return make


def card_of(subscription) -> str:
    return subscription.installed_items.get(kind="smartcard", removed_at=None).ca_id


def deliver(catalog) -> int:
    """Everything due, delivered in this process (Refresh the provider: tests change it)."""
    catalog.provider.refresh_from_db()
    return delivery.drain(catalog.provider).answered


def requests_of(subscription) -> list[tuple[str, str, str]]:
    return [
        (r.command, r.ca_id, r.state)
        for r in ProvisioningRequest.objects.filter(subscription=subscription).order_by("pk")
    ]


# --- HTTPS: a certificate authority, the CAS's server certificate, our client certificates ---


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _certificate(subject, issuer, public_key, signing_key, extensions) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer))
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
    )
    for extension, critical in extensions:
        builder = builder.add_extension(extension, critical=critical)
    return builder.sign(signing_key, hashes.SHA256())


@dataclass
class Authority:
    name: str
    key: ec.EllipticCurvePrivateKey
    certificate: x509.Certificate
    path: Path  # its certificate, PEM: what the other side trusts

    def issue(
        self, directory: Path, name: str, *, server: bool = False, hosts=("localhost", "127.0.0.1")
    ) -> tuple[str, str]:
        """(certificate file, key file) of a new leaf certificate signed by this authority; a
        server's is for ``hosts`` (names or IP addresses)."""
        key = ec.generate_private_key(ec.SECP256R1())
        usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
        extensions = [
            (x509.BasicConstraints(ca=False, path_length=None), True),
            (x509.ExtendedKeyUsage([usage]), False),
        ]
        if server:
            extensions.append(
                (
                    x509.SubjectAlternativeName([_host(h) for h in hosts]),
                    False,
                )
            )
        certificate = _certificate(name, self.name, key.public_key(), self.key, extensions)
        return _write(directory, name, certificate, key)


def _host(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def _write(directory: Path, name: str, certificate, key=None) -> tuple[str, str]:
    certificate_path, key_path = directory / f"{name}.crt", directory / f"{name}.key"
    certificate_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    if key is not None:
        key_path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    return str(certificate_path), str(key_path)


def authority(directory: Path, name: str) -> Authority:
    key = ec.generate_private_key(ec.SECP256R1())
    certificate = _certificate(
        name,
        name,
        key.public_key(),
        key,
        [(x509.BasicConstraints(ca=True, path_length=None), True)],
    )
    path, _key = _write(directory, name.replace(" ", "-"), certificate)
    return Authority(name, key, certificate, Path(path))


@dataclass
class PKI:
    """The operator's authority (signs the CAS's server certificate and our client
    certificate), the CAS's certificate, ours, and a stranger's from another authority."""

    authority: Authority
    other_authority: Authority
    server: tuple[str, str]
    client: tuple[str, str]
    stranger: tuple[str, str]


@pytest.fixture
def pki(tmp_path) -> PKI:
    directory = tmp_path / "pki"
    directory.mkdir()
    ours, other = authority(directory, "Operator CA"), authority(directory, "Other CA")
    return PKI(
        authority=ours,
        other_authority=other,
        server=ours.issue(directory, "cas", server=True),
        client=ours.issue(directory, "crm"),
        stranger=other.issue(directory, "stranger"),
    )
