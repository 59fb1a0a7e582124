"""Shared fixtures: the Company ZX catalogue, subscriptions made through the actions, and one
user per role so that permission tests read as "an agent can…"."""

import itertools
import threading

import pytest
from django.contrib.auth.models import Group, User
from django.db import connection

from core import roles
from providers import provider_settings
from providers.generic.connector import Platform, connector_server
from subscriptions import actions
from subscriptions.actions import ItemSpec
from subscriptions.demo import ensure_catalog
from subscriptions.models import CustomerAccount

_serials = itertools.count(1)


@pytest.fixture
def catalog(db):
    return ensure_catalog()


@pytest.fixture
def account(db):
    return CustomerAccount.objects.create(number="ACC-1", name="Maria Georgiou")


def card_and_box(distributor, n=None):
    """A smartcard and a set-top box for one viewing point, with fresh serials and CA IDs."""
    n = n or next(_serials)
    return [
        ItemSpec("smartcard", f"SC{n:06d}", f"CA-SC-{n:06d}", distributor, "SC-01", "Smartcard"),
        ItemSpec("stb", f"STB{n:06d}", f"CA-STB-{n:06d}", distributor, "STB-01", "Decoder"),
    ]


@pytest.fixture
def subscribe(catalog, account):
    """Make a subscription through Become subscriber: product codes on MAIN, with card and box."""

    def make(*product_codes, distributor="MAIN", with_items=True):
        dist = catalog.distributors[distributor]
        change = actions.become_subscriber(
            account,
            catalog.types["RES"],
            [(catalog.products[code], dist) for code in product_codes],
            card_and_box(dist) if with_items else [],
        )
        return change.subscription

    return make


def _user(username: str, role: str) -> User:
    user = User.objects.create_user(username, password="pw-" + username, is_staff=True)
    user.groups.add(Group.objects.get(name=role))
    return user


@pytest.fixture
def agent(db):
    return _user("agent", roles.AGENT)


@pytest.fixture
def operator(db):
    return _user("operator", roles.OPERATOR)


@pytest.fixture
def administrator(db):
    return _user("administrator", roles.ADMINISTRATOR)


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    """Real hashing costs ~0.4 s a login; tests check permissions, not hashing strength."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


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


@pytest.fixture(params=["fast path", "portable"])
def fast_path(request, settings):
    """The real-time path's behaviours by either implementation (``core.fast_path``: service
    starts and stops, claims, acceptances, an action's answer): the behaviour tests that use
    this run on both on PostgreSQL (elsewhere only the portable one exists)."""
    if request.param == "fast path" and connection.vendor != "postgresql":
        pytest.skip("the fast path is PostgreSQL's")
    settings.PROVISIONING_FAST_PATH = request.param == "fast path"
    return request.param
