"""Starting and stopping a service, on both paths on PostgreSQL (``core.fast_path``: two
hand-written statements, or the ORM's four): what the other action tests do not show, the
locks they take and what a refused one leaves. Their behaviour (states, events, signals,
refusals, the Web API's 404) is in test_actions and test_api, on both paths too."""

import threading
import time

import pytest
from django.db import connection, transaction

from providers.models import ProvisioningRequest
from subscriptions import actions
from subscriptions.models import Subscription, SubscriptionService

pytestmark = pytest.mark.usefixtures("fast_path")

Svc = SubscriptionService.State


def _stop_in_another_connection(service_id: int, outcome: dict) -> threading.Thread:
    """A thread stopping the service by a connection of its own, started once its backend's pid
    is in ``outcome``; then its ``refused`` code, or ``stopped``."""
    started = threading.Event()

    def run():
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_backend_pid()")
                outcome["pid"] = cursor.fetchone()[0]
            started.set()
            actions.stop_service(service_id)
            outcome["stopped"] = True
        except actions.ActionError as error:
            outcome["refused"] = error.code
        finally:
            started.set()
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    assert started.wait(10)
    return thread


def _until_blocked(thread: threading.Thread, pid: int) -> None:
    """Wait until the backend ``pid`` waits for a lock (or its thread is done)."""
    deadline = time.monotonic() + 10
    with connection.cursor() as cursor:
        while thread.is_alive() and time.monotonic() < deadline:
            cursor.execute("SELECT cardinality(pg_blocking_pids(%s)) > 0", [pid])
            if cursor.fetchone()[0]:
                return
            time.sleep(0.01)


@pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks are PostgreSQL's")
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("written", "change", "refusal"),
    [
        (Subscription, {"state": Subscription.State.TERMINATED}, "terminated"),
        (SubscriptionService, {"state": Svc.NOT_EFFECTIVE}, "illegal_transition"),
    ],
    ids=["subscription", "service"],
)
def test_a_switch_decides_on_its_rows_as_another_transaction_leaves_them(
    subscribe, written, change, refusal
):
    sub = subscribe("AGRICULTURE")
    service = sub.services.get()
    pk = sub.pk if written is Subscription else service.pk
    outcome = {}

    # An UPDATE's row lock, weaker than an action's own (FOR UPDATE): the event's and the
    # requests' foreign keys would not wait for it, only the switch's lock of its rows does.
    with transaction.atomic():
        written.objects.filter(pk=pk).update(**change)
        thread = _stop_in_another_connection(service.pk, outcome)
        _until_blocked(thread, outcome["pid"])
    thread.join(10)

    assert outcome.get("refused") == refusal, outcome
    assert not sub.events.filter(action="stop_service").exists()


def test_a_refused_switch_writes_nothing(subscribe):
    sub = subscribe("AGRICULTURE")
    service = sub.services.get()

    def written():
        service.refresh_from_db()
        return (
            service.state,
            service.updated_at,
            sub.events.count(),
            ProvisioningRequest.objects.count(),
        )

    before = written()
    with pytest.raises(actions.ActionError):
        actions.start_service(service.pk)  # on already
    assert written() == before

    actions.terminate(sub)
    before = written()
    with pytest.raises(actions.ActionError):
        actions.stop_service(service.pk)
    assert written() == before


def test_a_switch_of_no_such_service_is_refused_as_missing(db):
    with pytest.raises(SubscriptionService.DoesNotExist):
        actions.start_service(999_999)
    with pytest.raises(SubscriptionService.DoesNotExist):
        actions.stop_service(999_999)
