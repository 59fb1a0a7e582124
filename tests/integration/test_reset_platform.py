"""Reset judged against what the platform holds: Reset single subscription and reset runs with
*Compare with the platform* ask the Conax WS CAS simulator (a real SOAP server) what it holds
for each device, correct our flags to its answers and repair every difference both ways.
Providers that cannot be asked (Generic) keep judging by our flags."""

import urllib.parse
import urllib.request
from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.urls import reverse
from django.utils import timezone

from providers.answers import record_answer
from providers.extensions import UtilityError
from providers.models import ProvisioningRequest
from runs import services as runs
from runs.models import ProcessRun, RunDefinition
from subscriptions import actions
from subscriptions.models import InstalledItem, SubscriptionEvent, SubscriptionService
from tests import workers
from tests.fixtures import card_of, deliver
from tests.integration.test_device_changes import Platform, _spec, assert_in_step, in_use, start
from utilities import services

pytestmark = pytest.mark.django_db

Req = ProvisioningRequest
QUERIES = ("GET_PAIRING_STATUS_FOR_CARD", "GET_ACTIVE_SUBSCRIPTIONS")


@pytest.fixture
def sub(conax, subscribe):
    """A Bundle A subscriber (GFA1 + EFA2) whose card and box the CAS has paired and entitled."""
    made = subscribe("BUNDLE_A", catalog=conax)
    deliver(conax)
    return made


def held(simulator, card: str) -> list[str]:
    """The CA IDs active on the card, as the CAS itself reports them."""
    with simulator.state.lock:
        return [s["product_id"] for s in simulator.state.active_subscriptions(card)]


def lose_entitlements(simulator, card: str) -> None:
    with simulator.state.lock:
        simulator.state.cards[card]["entitlements"].clear()


def grant(simulator, card: str, *ca_ids: str) -> None:
    """The CAS gets entitlements nobody asked it for (an old request, a manual change)."""
    with simulator.state.lock:
        simulator.state.add_subscriptions([card], list(ca_ids), None, None)


def reset(conax, sub):
    return services.run("reset_subscription", subscription=sub, provider=conax.provider)


def sent(outcome) -> list[tuple[str, str]]:
    return [(r.command, r.ca_id) for r in outcome.requests]


def flags(sub) -> tuple[list[bool], list[bool]]:
    return (
        list(sub.services.order_by("pk").values_list("authorized", flat=True)),
        list(sub.installed_items.order_by("pk").values_list("initialized", flat=True)),
    )


def test_entitlements_the_cas_lost_are_sent_again(conax, sub, conax_ws_simulator):
    card = card_of(sub)
    lose_entitlements(conax_ws_simulator, card)
    assert flags(sub) == ([True], [True, True])  # our flags still say in step

    outcome = reset(conax, sub)

    assert sent(outcome) == [("ADD_SUBSCRIPTIONS", "GFA1"), ("ADD_SUBSCRIPTIONS", "EFA2")]
    assert outcome.message == (
        f"2 request(s) will bring {sub.number} in step with Conax WS (as Conax WS itself "
        f"says). Corrected to what Conax WS holds: Conax WS does not hold BUNDLE_A on MAIN."
    )
    assert flags(sub) == ([False], [True, True])
    # The utility's own event (the latest), after the correction it made.
    used, correction = SubscriptionEvent.objects.filter(subscription=sub)[:2]
    assert (correction.action, correction.reason) == (
        "provider_state_corrected",
        "Reset: Conax WS does not hold BUNDLE_A on MAIN.",
    )
    assert (used.action, used.reason) == ("utility", outcome.message)
    # The CAS was asked, and what it said is on record with the subscription's requests.
    asked = Req.objects.filter(
        subscription=sub, command__in=QUERIES, trigger_name="reset_subscription"
    )
    assert sorted(asked.values_list("command", "state")) == [
        ("GET_ACTIVE_SUBSCRIPTIONS", "completed"),
        ("GET_PAIRING_STATUS_FOR_CARD", "completed"),
    ]

    deliver(conax)
    assert held(conax_ws_simulator, card) == ["EFA2", "GFA1"]
    assert flags(sub) == ([True], [True, True])
    again = reset(conax, sub)
    assert (again.requests, again.message) == (
        [],
        f"{sub.number} is in step with Conax WS (as Conax WS itself says): nothing to send.",
    )


def test_a_card_the_cas_forgot_is_paired_and_entitled_again(conax, sub, conax_ws_simulator):
    # After a failed swap the CAS held nothing for the customer, while our flags said in step.
    card = sub.installed_items.get(kind="smartcard")
    box = sub.installed_items.get(kind="stb")
    with conax_ws_simulator.state.lock:
        del conax_ws_simulator.state.cards[card.ca_id]
        conax_ws_simulator.state.pairings.clear()

    outcome = reset(conax, sub)

    assert sent(outcome) == [
        ("CREATE_PAIRING", ""),
        ("ADD_SUBSCRIPTIONS", "GFA1"),
        ("ADD_SUBSCRIPTIONS", "EFA2"),
    ]
    assert flags(sub) == ([False], [False, False])
    corrected = SubscriptionEvent.objects.filter(
        subscription=sub, action="provider_state_corrected"
    )
    assert corrected.first().reason == (
        f"Reset: Conax WS does not register smartcard {card.ca_id}; Conax WS does not register "
        f"set-top box {box.ca_id}; Conax WS does not hold BUNDLE_A on MAIN."
    )
    deliver(conax)
    assert held(conax_ws_simulator, card.ca_id) == ["EFA2", "GFA1"]
    with conax_ws_simulator.state.lock:
        assert conax_ws_simulator.state.pairing_for_card(card.ca_id)["modules"] == [box.ca_id]
    assert flags(sub) == ([True], [True, True])


def test_what_the_cas_holds_and_the_subscription_does_not_want_is_cancelled(
    conax, sub, conax_ws_simulator
):
    card = card_of(sub)
    # Agriculture is in the catalogue but not on this subscription; ZZ9 is in no catalogue.
    grant(conax_ws_simulator, card, "AF1", "ZZ9")

    outcome = reset(conax, sub)

    assert sent(outcome) == [("CANCEL_SUBSCRIPTIONS", "AF1"), ("CANCEL_SUBSCRIPTIONS", "ZZ9")]
    assert outcome.message == (
        f"2 request(s) will bring {sub.number} in step with Conax WS (as Conax WS itself says)."
    )
    deliver(conax)
    assert held(conax_ws_simulator, card) == ["EFA2", "GFA1"]
    assert list(reset(conax, sub).requests) == []


def test_a_service_switched_off_that_the_cas_still_holds_is_cancelled(
    conax, sub, conax_ws_simulator
):
    service = sub.services.get()
    actions.stop_service(service)
    deliver(conax)
    assert held(conax_ws_simulator, card_of(sub)) == []
    grant(conax_ws_simulator, card_of(sub), "GFA1")  # a cancel the CAS lost

    outcome = reset(conax, sub)

    assert sent(outcome) == [("CANCEL_SUBSCRIPTIONS", "GFA1")]
    assert outcome.requests[0].service_id == service.pk
    assert "Corrected to what Conax WS holds: Conax WS holds BUNDLE_A on MAIN." in outcome.message
    deliver(conax)
    assert held(conax_ws_simulator, card_of(sub)) == []
    assert flags(sub)[0] == [False]


def test_a_card_taken_away_that_the_cas_still_entitles_is_cancelled(conax, sub, conax_ws_simulator):
    card = sub.installed_items.get(kind="smartcard")
    actions.remove_installed_item(card)
    deliver(conax)
    assert held(conax_ws_simulator, card.ca_id) == []
    # The cancels were lost, while our flags still count the card registered.
    grant(conax_ws_simulator, card.ca_id, "GFA1", "EFA2")
    InstalledItem.objects.filter(pk=card.pk).update(initialized=True)

    outcome = reset(conax, sub)

    assert sorted((r.command, r.ca_id, r.installed_item_id) for r in outcome.requests) == [
        ("CANCEL_SUBSCRIPTIONS", "EFA2", card.pk),
        ("CANCEL_SUBSCRIPTIONS", "GFA1", card.pk),
    ]
    deliver(conax)
    assert held(conax_ws_simulator, card.ca_id) == []
    assert list(reset(conax, sub).requests) == []


def test_flags_that_say_less_than_the_cas_holds_are_corrected_and_nothing_is_sent(
    conax, sub, conax_ws_simulator
):
    SubscriptionService.objects.filter(subscription=sub).update(authorized=False)
    InstalledItem.objects.filter(subscription=sub).update(initialized=False)

    outcome = reset(conax, sub)

    assert outcome.requests == []
    assert outcome.message.startswith(
        f"{sub.number} is in step with Conax WS (as Conax WS itself says): nothing to send. "
        "Corrected to what Conax WS holds: Conax WS registers smartcard"
    )
    assert flags(sub) == ([True], [True, True])
    assert not Req.objects.filter(subscription=sub, state="pending").exists()


def test_pending_requests_count_as_on_their_way(conax, sub, conax_ws_simulator):
    card = card_of(sub)
    lose_entitlements(conax_ws_simulator, card)
    first = reset(conax, sub)
    assert len(first.requests) == 2
    # Not delivered yet: asking again finds the CAS still without them, and sends nothing twice.
    assert list(reset(conax, sub).requests) == []


def test_a_cas_that_does_not_answer_changes_nothing(conax, sub, conax_ws_simulator):
    lose_entitlements(conax_ws_simulator, card_of(sub))
    conax_ws_simulator.state.controls.down = True

    with pytest.raises(UtilityError) as err:
        reset(conax, sub)

    assert str(err.value) == (
        "Conax WS did not answer: HTTP 503 from the CAS for GetPairingStatusForCard. Nothing "
        "was changed; try again later."
    )
    assert flags(sub) == ([True], [True, True])
    assert not Req.objects.filter(subscription=sub, state="pending").exists()
    failed = Req.objects.get(subscription=sub, command="GET_PAIRING_STATUS_FOR_CARD")
    assert (failed.state, failed.attempts) == ("failed", 1)


def test_the_reset_subscription_command_asks_the_cas_too(conax, sub, conax_ws_simulator, capsys):
    lose_entitlements(conax_ws_simulator, card_of(sub))
    conax_ws_simulator.state.controls.down = True
    with pytest.raises(CommandError) as err:
        call_command("reset_subscription", sub.number)
    assert str(err.value) == (
        "Conax WS did not answer: HTTP 503 from the CAS for GetPairingStatusForCard. Nothing "
        "was changed."
    )
    conax_ws_simulator.state.controls.down = False
    call_command("reset_subscription", sub.number)
    assert capsys.readouterr().out.strip().endswith(f"Created 2 requests for {sub.number}.")


# --- Reset runs ---------------------------------------------------------------------------------


def definition(conax, name="Reset", **input_settings) -> RunDefinition:
    return RunDefinition.objects.create(
        name=name,
        run_type="reset_subscriptions",
        provider=conax.provider,
        run_at=timezone.now() + timedelta(hours=1),
        input_settings=input_settings,
    )


def execute(d: RunDefinition) -> ProcessRun:
    runs.validate(d, schedule=False)
    d.save()
    return runs.execute(d.pk, ProcessRun.Trigger.RUN_NOW)


@pytest.fixture
def three(conax, subscribe, conax_ws_simulator):
    """Three subscribers in step; then the CAS loses the first's entitlements and grants the
    second one it does not want; the third stays in step."""
    subs = [
        subscribe("BUNDLE_A", catalog=conax),
        subscribe("AGRICULTURE", catalog=conax),
        subscribe("BUNDLE_B", catalog=conax),
    ]
    deliver(conax)
    lose_entitlements(conax_ws_simulator, card_of(subs[0]))
    grant(conax_ws_simulator, card_of(subs[1]), "RFB1")
    return subs


def test_a_reset_run_without_the_option_judges_by_our_flags(conax, three, conax_ws_simulator):
    run = execute(definition(conax))

    assert (run.status, run.examined, run.created) == ("completed", 3, 0)
    assert not Req.objects.filter(command__in=QUERIES).exists()
    assert held(conax_ws_simulator, card_of(three[0])) == []


def test_a_reset_run_that_compares_with_the_platform_repairs_every_subscription(
    conax, three, conax_ws_simulator
):
    run = execute(definition(conax, compare_with_platform=True))

    assert (run.status, run.examined, run.created) == ("completed", 3, 3)
    made = Req.objects.filter(
        process_run_id=run.pk, command__in=("ADD_SUBSCRIPTIONS", "CANCEL_SUBSCRIPTIONS")
    )
    assert sorted((r.subscription.number, r.command, r.ca_id) for r in made) == sorted(
        [
            (three[0].number, "ADD_SUBSCRIPTIONS", "GFA1"),
            (three[0].number, "ADD_SUBSCRIPTIONS", "EFA2"),
            (three[1].number, "CANCEL_SUBSCRIPTIONS", "RFB1"),
        ]
    )
    # Two queries per card, on record with the run.
    assert Req.objects.filter(process_run_id=run.pk, command__in=QUERIES).count() == 6
    deliver(conax)
    assert [held(conax_ws_simulator, card_of(s)) for s in three] == [
        ["EFA2", "GFA1"],
        ["AF1"],
        ["BFB2", "RFB1"],
    ]
    again = execute(definition(conax, "Reset again", compare_with_platform=True))
    assert (again.status, again.created) == ("completed", 0)


def test_a_run_notes_a_subscription_the_cas_would_not_tell_about(conax, three, conax_ws_simulator):
    conax_ws_simulator.state.controls.reject_cards = frozenset({card_of(three[1])})

    run = execute(definition(conax, compare_with_platform=True))

    assert (run.status, run.created) == ("completed_with_errors", 2)
    (error,) = run.error_log.all()
    assert (error.subscription_id, error.message) == (
        three[1].pk,
        f"Conax WS refused to say what it holds for {card_of(three[1])}: CA_CLIENT_BLOCKED CA "
        f"client {card_of(three[1])} is blocked.",
    )


# --- Providers that cannot be asked -------------------------------------------------------------


def test_generic_keeps_judging_by_our_flags(catalog, subscribe):
    sub = subscribe("BUNDLE_A")
    for r in Req.objects.filter(subscription=sub, state="pending"):
        record_answer(r, accepted=True)

    outcome = services.run("reset_subscription", subscription=sub, provider=catalog.provider)
    assert (outcome.requests, outcome.message) == (
        [],
        f"{sub.number} is in step with Generic: nothing to send.",
    )
    SubscriptionService.objects.filter(subscription=sub).update(authorized=False)
    outcome = services.run("reset_subscription", subscription=sub, provider=catalog.provider)
    assert [r.ca_id for r in outcome.requests] == ["GFA1", "EFA2"]
    assert not SubscriptionEvent.objects.filter(action="provider_state_corrected").exists()


def test_the_option_is_refused_for_a_provider_that_cannot_be_asked(catalog):
    d = RunDefinition(
        name="Compare at Generic",
        run_type="reset_subscriptions",
        provider=catalog.provider,
        input_settings={"compare_with_platform": True},
    )
    with pytest.raises(ValidationError) as err:
        runs.validate(d, schedule=False)
    assert err.value.message_dict == {
        "input_settings": [
            "compare_with_platform: Generic cannot be asked what it holds; leave it off."
        ]
    }


def test_the_definition_form_offers_the_option_and_refuses_it_where_it_cannot_work(
    operator, conax, catalog
):
    from tests.unit.test_backoffice import login
    from tests.unit.test_runs_backoffice import form_data

    client = login(operator)
    add = reverse("admin:runs_rundefinition_add")
    assert (
        'name="input-reset_subscriptions-compare_with_platform"' in client.get(add).content.decode()
    )
    option = {"input-reset_subscriptions-compare_with_platform": "on"}

    response = client.post(add, form_data(catalog, **option))
    assert response.status_code == 200
    assert response.context["adminform"].form.errors == {
        "input-reset_subscriptions-compare_with_platform": [
            "Generic cannot be asked what it holds; leave it off."
        ]
    }
    response = client.post(add, form_data(conax, **option))
    assert response.status_code == 302
    assert RunDefinition.objects.get().input_settings == {"compare_with_platform": True}


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_worker_runs_the_comparison_and_the_cas_holds_what_it_lost(
    conax, three, conax_ws_simulator, tmp_path
):
    d = definition(conax, compare_with_platform=True)
    runs.validate(d, schedule=False)
    d.save()
    # With beat: a run's requests are sent when the sweeper wakes delivery, as for any run.
    worker = workers.start(tmp_path, beat=True, SWEEP_SECONDS="1")
    logs = [tmp_path / "worker.log"]
    try:
        workers.wait_until(
            lambda: logs[0].exists() and " ready." in logs[0].read_text(),
            seconds=60,
            what="the worker ready",
            logs=logs,
        )
        runs.run_now(d)
        workers.wait_until(
            lambda: (
                d.process_runs.filter(status="completed").exists()
                and not Req.objects.filter(state="pending").exists()
            ),
            seconds=60,
            what="the run and its requests delivered",
            logs=logs,
        )
    finally:
        workers.stop(worker)
    run = d.process_runs.get()
    assert (run.examined, run.created, run.errors) == (3, 3, 0)
    assert [held(conax_ws_simulator, card_of(s)) for s in three] == [
        ["EFA2", "GFA1"],
        ["AF1"],
        ["BFB2", "RFB1"],
    ]


# --- Finding 1, end to end ----------------------------------------------------------------------


def control(simulator, what: str, **query) -> None:
    """The simulator's own control endpoint, as an operator drives it."""
    url = f"{simulator.url}/control/{what}?{urllib.parse.urlencode(query)}"
    with urllib.request.urlopen(urllib.request.Request(url, method="POST"), timeout=5):  # noqa: S310 (the test's own server)
        pass


def test_a_refused_swap_is_rolled_back_and_a_reset_then_brings_the_cas_in_step(
    conax, conax_ws_simulator, subscribe
):
    """A card and a box paired, two services; the new card of a swap refused by the CAS. The
    rollback leaves flags that say what the CAS holds; once the CAS accepts again, a reset
    judged against it sends what is wanted, and the services started again end on the new
    card, paired with the box."""
    target = Platform(conax, simulator=conax_ws_simulator)
    sub = start(target, subscribe, "card+box", ("BUNDLE_A", "AGRICULTURE"))
    old, box = in_use(sub, "smartcard")[0], in_use(sub, "stb")[0]
    spec = _spec("smartcard", old.distributor)
    control(conax_ws_simulator, "reject", cards=spec.ca_id)

    actions.swap_installed_item(old, spec.serial_number, spec.ca_id)
    target.deliver()

    new = in_use(sub, "smartcard")[0]
    assert new.ca_id == spec.ca_id
    assert target.entitled(old.ca_id) == set() and target.entitled(new.ca_id) == set()
    # Flags say what the CAS holds: nothing on either card, the new card not registered.
    assert [(s.is_on, s.authorized) for s in sub.services.order_by("pk")] == [(False, False)] * 2
    assert not new.initialized
    assert sub.events.filter(action="provisioning_rollback").exists()

    control(conax_ws_simulator, "reject", cards="")
    outcome = reset(conax, sub)
    # Nothing is wanted any more (the rollback switched the services off), and the CAS holds
    # nothing on the cards in use: that is in step, and the CAS itself says so.
    assert outcome.message.startswith(
        f"{sub.number} is in step with Conax WS (as Conax WS itself says): nothing to send."
    )
    assert target.entitled(new.ca_id) == set()

    for service in sub.services.order_by("pk"):
        actions.start_service(service)
    target.deliver()

    assert target.paired_with(new.ca_id) == {new.ca_id, box.ca_id}
    assert target.entitled(new.ca_id) == {"GFA1", "EFA2", "AF1"}
    assert target.entitled(old.ca_id) == set()
    assert_in_step(target, sub)
    again = reset(conax, sub)
    assert (again.requests, again.message) == (
        [],
        f"{sub.number} is in step with Conax WS (as Conax WS itself says): nothing to send.",
    )


def test_a_reset_sends_what_a_service_still_wants_after_a_refused_swap(
    conax, conax_ws_simulator, subscribe
):
    """The swap refused; the service started again while the CAS is down (its requests end
    Failed); then the CAS is back and accepts the card: a reset judged against the CAS pairs
    the new card and entitles it, and never says "in step" while the CAS holds nothing for a
    service on."""
    target = Platform(conax, simulator=conax_ws_simulator)
    sub = start(target, subscribe, "card+box", ("BUNDLE_A",))
    old, box = in_use(sub, "smartcard")[0], in_use(sub, "stb")[0]
    spec = _spec("smartcard", old.distributor)
    control(conax_ws_simulator, "reject", cards=spec.ca_id)
    actions.swap_installed_item(old, spec.serial_number, spec.ca_id)
    target.deliver()
    new = in_use(sub, "smartcard")[0]
    control(conax_ws_simulator, "down")
    actions.start_service(sub.services.get())
    for _ in range(10):
        deliver(conax)
    assert ProvisioningRequest.objects.filter(subscription=sub, state="failed").count() == 3
    control(conax_ws_simulator, "up")
    control(conax_ws_simulator, "reject", cards="")

    outcome = reset(conax, sub)

    assert sent(outcome)[0] == ("CREATE_PAIRING", "")
    assert sorted(sent(outcome)[1:]) == [
        ("ADD_SUBSCRIPTIONS", "EFA2"),
        ("ADD_SUBSCRIPTIONS", "GFA1"),
    ]
    target.deliver()
    assert target.paired_with(new.ca_id) == {new.ca_id, box.ca_id}
    assert target.entitled(new.ca_id) == {"GFA1", "EFA2"}
    assert_in_step(target, sub)
