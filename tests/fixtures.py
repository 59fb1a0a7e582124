"""The suite's shared fixtures and fixture helpers, loaded once by ``tests/conftest.py``.

A test names the fixtures it uses; helpers (``card_of``, ``deliver``, the connection settings…)
are imported from here by name. ``subscribe`` makes subscriptions at the test's catalogue, the
``catalog`` fixture: a module about another provider says once which catalogue it works on by
overriding ``catalog`` (e.g. ``def catalog(conax): return conax``), or passes ``catalog=``.
"""

import datetime
import ipaddress
import itertools
import os
import threading
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from django.contrib.auth.models import Group, User
from django.db import connection as db_connection

from catalogue.models import Product, ProductCAId, Provider
from core import roles
from providers import delivery, provider_settings
from providers.conax_sms import file_format as ff
from providers.conax_sms.simulator import RESPONSE_DIR, UPLOAD_DIR
from providers.conax_sms.simulator import Simulator as ConaxSmsSimulator
from providers.conax_ws.simulator import Simulator as ConaxWsSimulator
from providers.exset import tqueue
from providers.exset.simulator import Simulator as ExsetSimulator
from providers.generic.connector import Platform, connector_server
from providers.irdeto.simulator import Simulator as IrdetoSimulator
from providers.models import ProvisioningRequest, TransferFile
from subscriptions import actions
from subscriptions.actions import ItemSpec
from subscriptions.demo import ensure_catalog
from subscriptions.models import CustomerAccount

# --- Catalogue & subscriptions ----------------------------------------------------------------

_serials = itertools.count(1)
_SHORT = {"smartcard": "SC", "stb": "STB"}
_MODEL = {"smartcard": ("SC-01", "Smartcard"), "stb": ("STB-01", "Decoder")}
# Conax SMS tests know their cards by "CX-SC-…" CA IDs; every other provider's are "CA-SC-…".
_CA_PREFIX = {"conax_sms": "CX"}


@pytest.fixture
def catalog(db):
    """The Company ZX catalogue at the Generic provider (a module may override it)."""
    return ensure_catalog()


@pytest.fixture
def account(db):
    return CustomerAccount.objects.create(number="ACC-1", name="Maria Georgiou")


def device(kind: str, distributor, n: int | None = None, prefix: str = "CA") -> ItemSpec:
    """A smartcard or a set-top box with a fresh serial and CA ID (``n`` shared by a pair)."""
    n = n or next(_serials)
    short = _SHORT[kind]
    return ItemSpec(
        kind, f"{short}{n:06d}", f"{prefix}-{short}-{n:06d}", distributor, *_MODEL[kind]
    )


def card_and_box(distributor, n: int | None = None, prefix: str = "CA") -> list[ItemSpec]:
    """A smartcard and a set-top box for one viewing point, with fresh serials and CA IDs."""
    n = n or next(_serials)
    return [device("smartcard", distributor, n, prefix), device("stb", distributor, n, prefix)]


@pytest.fixture
def subscribe(request, account):
    """Make a subscription through Become subscriber at the test's catalogue.

    ``subscribe("BUNDLE_A", ("AGRICULTURE", "TWIN1"))``: each service a product code on
    ``distributor`` or a (product code, distributor code) pair; a card and a box at each viewing
    point the services name, unless ``devices`` lists the kinds wanted on ``distributor``
    (``["stb"]``, ``["smartcard", "smartcard", "stb"]``; ``[]`` for none).
    """

    def make(
        *services,
        distributor="MAIN",
        number=None,
        devices=None,
        catalog=None,
    ):
        catalog = catalog or request.getfixturevalue("catalog")
        prefix = _CA_PREFIX.get(catalog.provider.type, "CA")
        pairs = [(s, distributor) if isinstance(s, str) else s for s in services]
        points = [catalog.distributors[code] for code in dict.fromkeys(d for _p, d in pairs)]
        if devices is not None:
            items = [device(k, catalog.distributors[distributor], prefix=prefix) for k in devices]
        else:
            items = [i for point in points for i in card_and_box(point, prefix=prefix)]
        change = actions.become_subscriber(
            account,
            catalog.types["RES"],
            [(catalog.products[p], catalog.distributors[d]) for p, d in pairs],
            items,
            number=number,
        )
        return change.subscription

    return make


def card_of(subscription) -> str:
    """The CA ID of the subscription's smartcard in use (it has one)."""
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


# --- EXSET SMS: its catalogue, with a usage service (never sent as ADD_SUBSCRIPTION) ---------


@pytest.fixture
def exset_catalog(db):
    """The Company ZX catalogue at "EXSET SMS", plus Pay Per View (PPV, CA ID PPV1): a usage
    service, sold on every viewing point."""
    catalog = ensure_catalog("EXSET SMS", "exset")
    usage, _ = Product.objects.get_or_create(
        code="PPV", defaults={"name": "Pay Per View", "service_type": Product.ServiceType.USAGE}
    )
    ProductCAId.objects.get_or_create(
        product=usage, provider=catalog.provider, defaults={"ca_id": "PPV1"}
    )
    for distributor in catalog.distributors.values():
        distributor.allowed_products.add(usage)
    catalog.products["PPV"] = usage
    return catalog


# --- Users, one per role (permission tests read as "an agent can…") ---------------------------


def staff_user(username: str, role: str) -> User:
    user = User.objects.create_user(username, password="pw-" + username, is_staff=True)
    user.groups.add(Group.objects.get(name=role))
    return user


@pytest.fixture
def agent(db):
    return staff_user("agent", roles.AGENT)


@pytest.fixture
def operator(db):
    return staff_user("operator", roles.OPERATOR)


@pytest.fixture
def administrator(db):
    return staff_user("administrator", roles.ADMINISTRATOR)


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    """Real hashing costs ~0.4 s a login; tests check permissions, not hashing strength."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


# --- Workers and claims -----------------------------------------------------------------------


@pytest.fixture(autouse=True)
def empty_broker(request):
    """A test that starts a real worker starts with empty queues, as it starts with an empty
    database: wake-ups an earlier test left behind name rows that are gone, and on the
    filesystem broker (one message per poll) they would hold up this test's own."""
    if request.node.get_closest_marker("worker"):
        from crm_provisioning.celery import app
        from providers import wakeups

        app.control.purge()
        wakeups.forget_all()  # the flags of the purged wake-ups


@pytest.fixture(params=["fast path", "portable"])
def fast_path(request, settings):
    """The real-time path's behaviours by either implementation (``core.fast_path``: service
    starts and stops, claims, acceptances, an action's answer): the behaviour tests that use
    this run on both on PostgreSQL (elsewhere only the portable one exists)."""
    if request.param == "fast path" and db_connection.vendor != "postgresql":
        pytest.skip("the fast path is PostgreSQL's")
    settings.PROVISIONING_FAST_PATH = request.param == "fast path"
    return request.param


# --- The Generic provider's reference connector -----------------------------------------------


@pytest.fixture
def platform():
    """The reference connector's platform, serving pushed requests on a port of its own."""
    platform = Platform()
    server = connector_server(platform, 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    platform.url = f"http://127.0.0.1:{server.server_address[1]}/requests"
    yield platform
    server.shutdown()
    server.server_close()


@pytest.fixture
def push_provider(catalog, platform):
    """The demo's Generic provider, switched to push mode towards ``platform``."""
    provider = catalog.provider
    provider.connection = {"mode": "push", "push_url": platform.url, "timeout_seconds": 2}
    provider.parameters = {"max_attempts": 3}
    provider_settings.full_clean(provider)
    provider.save()
    return provider


# --- Conax WS: the SOAP CAS simulator on a free port, and a provider pointing at it ------------

CONAX_WS_PASSWORD_ENV = "CRM_SECRET_CONAX_WS_TEST_PASSWORD"
CONAX_WS_PASSWORD = "cas-test-pass"


@pytest.fixture
def conax_ws_simulator(monkeypatch):
    monkeypatch.setenv(CONAX_WS_PASSWORD_ENV, CONAX_WS_PASSWORD)
    sim = ConaxWsSimulator("crm", CONAX_WS_PASSWORD).start()
    yield sim
    sim.stop()


def conax_ws_connection(sim: ConaxWsSimulator, **extra) -> dict:
    return {
        "wsdl_url": sim.wsdl_url,
        "username": "crm",
        "password_env": CONAX_WS_PASSWORD_ENV,
        "timeout_seconds": 2,
        **extra,
    }


@pytest.fixture
def conax(db, conax_ws_simulator, settings):
    """The catalogue at "Conax WS", connected to the simulator; three attempts, retried fast."""
    settings.PROVISIONING_RETRY_SECONDS = 0
    catalog = ensure_catalog("Conax WS", "conax_ws")
    provider = catalog.provider
    provider.connection = conax_ws_connection(conax_ws_simulator)
    provider.parameters = {"max_attempts": 3}
    provider_settings.full_clean(provider)
    provider.save()
    return catalog


# --- Irdeto: the KMS simulator on a free port, and a provider pointing at it -----------------

IRDETO_SECRET_ENV = "CRM_SECRET_IRDETO_TEST_CLIENT_SECRET"
IRDETO_SECRET = "kms-test-secret"


@pytest.fixture
def irdeto_simulator(monkeypatch):
    monkeypatch.setenv(IRDETO_SECRET_ENV, IRDETO_SECRET)
    sim = IrdetoSimulator("crm", IRDETO_SECRET).start()
    yield sim
    sim.stop()


def irdeto_connection(sim: IrdetoSimulator, **extra) -> dict:
    return {
        "endpoint_url": sim.url,
        "client_id": "crm",
        "client_secret_env": IRDETO_SECRET_ENV,
        "timeout_seconds": 2,
        **extra,
    }


@pytest.fixture
def irdeto(db, irdeto_simulator, settings):
    """The catalogue at "Irdeto", connected to the simulator; three attempts, retried fast."""
    settings.PROVISIONING_RETRY_SECONDS = 0
    catalog = ensure_catalog("Irdeto", "irdeto")
    provider = catalog.provider
    provider.connection = irdeto_connection(irdeto_simulator)
    provider.parameters = {"max_attempts": 3}
    provider_settings.full_clean(provider)
    provider.save()
    return catalog


# --- Conax WS over HTTPS: an authority, the CAS's server certificate, our client certificates --


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


# --- EXSET SMS: messages, fingerprints and recalls ------------------------------------------


@pytest.fixture
def exset_msg_catalog(db):
    """The catalogue at "EXSET SMS". Its messages, fingerprints and recalls wait for the TQUEUE
    writing, so their tests need no SMS database."""
    return ensure_catalog("EXSET SMS", "exset")


# --- Conax SMS: the file servers and the CAS on loopback, and a provider pointing at them -----

CONAX_SMS_PASSWORD_ENV = "CRM_SECRET_CONAX_SMS_TEST_PASSWORD"
CONAX_SMS_PASSWORD = "conax-test-secret"


@pytest.fixture
def conax_sms_simulator(tmp_path):
    """SFTP and FTP servers and the CAS. The CAS thread is off: a test says when the CAS
    reads its files (``conax_sms_simulator.cas.run_once()``), so what it checks is
    deterministic."""
    sim = ConaxSmsSimulator(tmp_path / "cas", password=CONAX_SMS_PASSWORD, poll_interval=None)
    sim.start()
    yield sim
    sim.stop()


def conax_sms_connection(sim: ConaxSmsSimulator, protocol: str = "sftp") -> dict:
    port = {"sftp": "sftp_port", "ftp": "ftp_port", "ftps": "ftps_port"}[protocol]
    return {
        "protocol": protocol,
        "host": sim.host,
        "port": getattr(sim, port),
        "username": "conax",
        "password_env": CONAX_SMS_PASSWORD_ENV,
        "host_key": sim.host_key,
        "tls_ca_certificate": sim.tls_ca_certificate,
        "upload_directory": f"/{UPLOAD_DIR}",
        "response_directory": f"/{RESPONSE_DIR}",
    }


@pytest.fixture
def sms_catalog(db, conax_sms_simulator, monkeypatch):
    """The catalogue at "Conax SMS", connected to the simulator over SFTP."""
    monkeypatch.setenv(CONAX_SMS_PASSWORD_ENV, CONAX_SMS_PASSWORD)
    catalog = ensure_catalog("Conax SMS", "conax_sms")
    provider = catalog.provider
    provider.connection = conax_sms_connection(conax_sms_simulator)
    provider.parameters = {}
    provider_settings.full_clean(provider)
    provider.save()
    return catalog


@pytest.fixture
def sms(sms_catalog) -> Provider:
    return sms_catalog.provider


def request_files(sim: ConaxSmsSimulator) -> dict[str, list[ff.RequestRecord]]:
    """What is in the CAS's upload directory, parsed."""
    folder = Path(sim.root) / UPLOAD_DIR
    return {
        p.name: ff.parse_request(p.read_bytes())[1]
        for p in sorted(folder.iterdir())
        if ff.is_request_file(p.name)
    }


def out_files(provider: Provider):
    return TransferFile.objects.filter(provider=provider, direction="out").order_by("pk")


@pytest.fixture
def exset_simulator(tqueue_url):
    """The EXSET SMS simulator on the test's SMS database (``tqueue_url``), polling every
    50 ms."""
    sim = ExsetSimulator(tqueue_url).start()
    yield sim
    sim.stop()


# --- EXSET SMS: a fresh SMS database for TQUEUE, and a provider writing to it -----------------

# The database servers the EXSET tests make their SMS databases on (each test its own database,
# dropped after it): PostgreSQL always, MariaDB where one answers.
TQUEUE_SERVERS = {
    "postgresql": os.environ.get(
        "EXSET_TEST_POSTGRESQL_URL", "postgresql://postgres@127.0.0.1:5432"
    ),
    "mariadb": os.environ.get("EXSET_TEST_MARIADB_URL", "mysql://root@127.0.0.1:3306"),
}


def _server_admin(kind: str):
    """An autocommit connection to a test database server, or a skip saying why not."""
    server = tqueue.parse_url(TQUEUE_SERVERS[kind] + "/postgres")
    try:
        if kind == "postgresql":
            import psycopg

            return psycopg.connect(
                host=server.host,
                port=server.port,
                user=server.user or None,
                dbname="postgres",
                autocommit=True,
                connect_timeout=3,
            )
        import pymysql

        return pymysql.connect(
            host=server.host,
            port=server.port,
            user=server.user or None,
            autocommit=True,
            connect_timeout=3,
        )
    except Exception as exc:  # whatever the driver says, the test cannot run
        env = f"EXSET_TEST_{kind.upper()}_URL"
        pytest.skip(f"No {kind} server for TQUEUE at {TQUEUE_SERVERS[kind]} ({env}): {exc}")


@pytest.fixture(params=["sqlite", "postgresql", "mariadb"])
def tqueue_url(request, tmp_path) -> str:
    """The URL of a new, empty SMS database: an SQLite file, or a database of its own on the
    PostgreSQL / MariaDB test server (``TQUEUE_SERVERS``), dropped after the test."""
    kind = request.param
    if kind == "sqlite":
        yield f"sqlite:///{tmp_path / 'sms' / 'tqueue.sqlite3'}"
        return
    name = f"exset_tqueue_test_{os.getpid()}"
    admin = _server_admin(kind)
    quote = '"' if kind == "postgresql" else "`"
    drop = f"DROP DATABASE IF EXISTS {quote}{name}{quote}"
    with admin.cursor() as cursor:
        cursor.execute(drop + (" WITH (FORCE)" if kind == "postgresql" else ""))
        cursor.execute(f"CREATE DATABASE {quote}{name}{quote}")
    yield f"{TQUEUE_SERVERS[kind]}/{name}"
    with admin.cursor() as cursor:
        cursor.execute(drop + (" WITH (FORCE)" if kind == "postgresql" else ""))
    admin.close()


@pytest.fixture
def tqueue_sms(tqueue_url):
    """The SMS's side of TQUEUE: its table made, and a connection the test plays the SMS with
    (plain SQL on ``tqueue_sms.conn``)."""
    database = tqueue.open_database(tqueue_url, "TQUEUE", create=True)
    tqueue.create_table(database, "TQUEUE")
    yield database
    database.close()


@pytest.fixture
def exset(db, tqueue_sms, tqueue_url):
    """The catalogue at "EXSET SMS", writing to ``tqueue_sms``'s table."""
    catalog = ensure_catalog("EXSET SMS", "exset")
    provider = catalog.provider
    provider.connection = {"database_url": tqueue_url, "table": "TQUEUE"}
    provider.parameters = {}
    provider_settings.full_clean(provider)
    provider.save()
    return catalog
