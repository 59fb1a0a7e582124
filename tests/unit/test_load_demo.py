"""`manage.py load_demo`: the Company ZX demo, built through the actions, and safe to run twice."""

from io import StringIO

from django.contrib.auth.models import User
from django.core.management import call_command

from catalogue.models import Product
from core import roles
from crm_provisioning.management.commands.load_demo import DEFAULT_COUNT, DEMO_USERS
from subscriptions.models import (
    CustomerAccount,
    InstalledItem,
    Pairing,
    Subscription,
    SubscriptionEvent,
    SubscriptionService,
)

SubState = Subscription.State
SvcState = SubscriptionService.State


def load_demo() -> str:
    out = StringIO()
    call_command("load_demo", stdout=out)
    return out.getvalue()


def counts() -> dict[str, int]:
    return {
        "accounts": CustomerAccount.objects.count(),
        "subscriptions": Subscription.objects.count(),
        "services": SubscriptionService.objects.count(),
        "items": InstalledItem.objects.count(),
        "pairings": Pairing.objects.count(),
        "events": SubscriptionEvent.objects.count(),
        "users": User.objects.count(),
        "products": Product.objects.count(),
    }


def check_second_run_creates_nothing(demo):
    first = counts()
    # Someone played with the demo users in between; the second run puts them back.
    agent = User.objects.get(username="agent")
    agent.set_password("forgotten")
    agent.save()
    User.objects.get(username="admin").groups.clear()

    second_output = load_demo()

    assert counts() == first
    # The Company ZX subscriptions on the Generic provider, a dozen on each Conax one, and a
    # few on EXSET and on Irdeto.
    assert first["accounts"] == first["subscriptions"] == DEFAULT_COUNT + 12 + 12 + 6 + 8
    assert Subscription.objects.filter(number__startswith="ZX-CWS-").count() == 12
    assert Subscription.objects.filter(number__startswith="ZX-CSMS-").count() == 12
    assert Subscription.objects.filter(number__startswith="ZX-EXS-").count() == 6
    assert Subscription.objects.filter(number__startswith="ZX-IRD-").count() == 8
    assert "EXSET SMS (TQUEUE in sqlite:///" in demo
    assert "Irdeto (KMS simulator at http://127.0.0.1:8006)" in demo
    assert f"{DEFAULT_COUNT} subscriptions created, 0 already there." in demo
    assert f"0 subscriptions created, {DEFAULT_COUNT} already there." in second_output


def check_every_subscription_state_is_shown():
    states = set(Subscription.objects.values_list("state", flat=True))
    assert states == set(SubState.values)
    service_states = set(SubscriptionService.objects.values_list("state", flat=True))
    assert {
        SvcState.EFFECTIVE,
        SvcState.SHORT_TERM_EFFECTIVE,
        SvcState.NOT_EFFECTIVE,
        SvcState.SHORT_TERM_NOT_EFFECTIVE,
        SvcState.IN_RESTING,
        SvcState.CANCELLED,
        SvcState.SWAPPED,
    } <= service_states


def check_subscriptions_are_made_through_become_subscriber():
    # Every subscription has its Become subscriber event, done by the demo agent.
    everyone = SubscriptionEvent.objects.filter(action="become_subscriber")
    assert everyone.count() == Subscription.objects.count()
    become = (
        everyone.exclude(subscription__number__startswith="ZX-C")
        .exclude(subscription__number__startswith="ZX-EXS-")
        .exclude(subscription__number__startswith="ZX-IRD-")
    )
    assert become.count() == DEFAULT_COUNT
    assert set(become.values_list("performed_by__username", flat=True)) == {"agent"}
    # Later stories went through their own actions too.
    actions_seen = set(SubscriptionEvent.objects.values_list("action", flat=True))
    assert {
        "deactivate",
        "rest",
        "short_term_deactivation",
        "short_term_activation",
        "terminate",
        "swap_service",
        "add_service",
        "stop_service",
    } <= actions_seen


def check_the_seed_catalogue():
    bundle_a = Product.objects.get(code="BUNDLE_A")
    assert bundle_a.name == "Flexible Bundle A"
    assert [
        (p.name, p.ca_ids.get(provider__name="Generic").ca_id)
        for p in bundle_a.provisioned_products()
    ] == [
        ("Entertain", "EFA2"),
        ("Geological", "GFA1"),
    ]
    bundle_b = Product.objects.get(code="BUNDLE_B")
    assert sorted(
        p.ca_ids.get(provider__name="Generic").ca_id for p in bundle_b.provisioned_products()
    ) == [
        "BFB2",
        "RFB1",
    ]
    assert (
        Product.objects.get(code="AGRICULTURE").ca_ids.get(provider__name="Generic").ca_id == "AF1"
    )


def check_twin_viewing_points_follow_the_chain():
    first = Subscription.objects.get(number="ZX-000001")
    codes = {s.distributor.code for s in first.services.select_related("distributor")}
    assert codes == {"MAIN", "TWIN1", "TWIN2", "TWIN3"}
    chain = {s.distributor.code: s.distributor.required_distributor for s in first.services.all()}
    assert chain["MAIN"] is None
    assert chain["TWIN1"].code == "MAIN"
    assert chain["TWIN2"].code == "TWIN1"
    assert chain["TWIN3"].code == "TWIN2"

    # Wherever TWINn is used, the viewing point it requires is used too.
    for sub in Subscription.objects.exclude(state=SubState.TERMINATED).prefetch_related(
        "services__distributor__required_distributor"
    ):
        used = {s.distributor.code for s in sub.services.all()}
        for service in sub.services.all():
            required = service.distributor.required_distributor
            assert required is None or required.code in used, sub.number
    with_twin3 = Subscription.objects.filter(services__distributor__code="TWIN3").distinct()
    assert with_twin3.count() >= 2


def check_a_card_and_a_box_per_viewing_point():
    first = Subscription.objects.get(number="ZX-000001")
    items = first.installed_items.filter(removed_at__isnull=True).order_by("distributor__code")
    assert [(i.distributor.code, i.kind, i.serial_number, i.ca_id) for i in items] == [
        ("MAIN", "smartcard", "ZXSC0000010", "010000010"),
        ("MAIN", "stb", "ZXSTB0000010", "020000010"),
        ("TWIN1", "smartcard", "ZXSC0000011", "010000011"),
        ("TWIN1", "stb", "ZXSTB0000011", "020000011"),
        ("TWIN2", "smartcard", "ZXSC0000012", "010000012"),
        ("TWIN2", "stb", "ZXSTB0000012", "020000012"),
        ("TWIN3", "smartcard", "ZXSC0000013", "010000013"),
        ("TWIN3", "stb", "ZXSTB0000013", "020000013"),
    ]
    # Each viewing point's card and box are paired together.
    for pairing in first.pairings.all():
        assert sorted(pairing.items.values_list("kind", flat=True)) == ["smartcard", "stb"]
    # A terminated subscription has given its devices back.
    terminated = Subscription.objects.filter(state=SubState.TERMINATED).first()
    assert not terminated.installed_items.filter(removed_at__isnull=True).exists()
    assert not terminated.services.exclude(state=SvcState.CANCELLED).exists()


def check_the_mix_of_products():
    main_products = set(
        SubscriptionService.objects.filter(
            distributor__code="MAIN", distributor__provider__name="Generic"
        ).values_list("product__code", flat=True)
    )
    assert main_products == {"BUNDLE_A", "BUNDLE_B", "AGRICULTURE"}
    # EXSET's demo has a usage service too (pay per view), never sent as an Add.
    usage = SubscriptionService.objects.filter(product__service_type=Product.ServiceType.USAGE)
    assert list(usage.values_list("subscription__number", "product__code")) == [
        ("ZX-EXS-0002", "BOX_OFFICE")
    ]
    swapped = SubscriptionService.objects.filter(state=SvcState.SWAPPED).first()
    assert swapped.product.code == "BUNDLE_A"
    assert swapped.swapped_to.get().product.code == "BUNDLE_B"


def check_demo_users_can_log_in(demo, client):
    groups = {
        "agent": roles.AGENT,
        "operator": roles.OPERATOR,
        "admin": roles.ADMINISTRATOR,
    }
    for username, _role, password in DEMO_USERS:
        assert f"{username:<9} password {password}" in demo
        user = User.objects.get(username=username)
        assert list(user.groups.values_list("name", flat=True)) == [groups[username]]
        assert user.is_staff and not user.is_superuser
        assert client.login(username=username, password=password)
        assert client.get("/admin/").status_code == 200
        client.logout()
    assert not client.login(username="admin", password="wrong")


# Loading 300 subscriptions takes seconds, so each test loads once and checks several things.


def test_load_twice_same_data_every_state_and_working_logins(db, client):
    output = load_demo()
    check_second_run_creates_nothing(output)  # runs load_demo a second time
    check_every_subscription_state_is_shown()
    check_subscriptions_are_made_through_become_subscriber()
    check_demo_users_can_log_in(output, client)


def test_demo_content(db):
    load_demo()
    check_the_seed_catalogue()
    check_twin_viewing_points_follow_the_chain()
    check_a_card_and_a_box_per_viewing_point()
    check_the_mix_of_products()
