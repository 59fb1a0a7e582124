"""Demo data for Company ZX, the seeds' business example.

Builds the catalogue (``ensure_catalog``), one demo user per role, and a few hundred customer
accounts with subscriptions. Every subscription is made by ``actions.become_subscriber`` with a
smartcard and a set-top box per viewing point, and some are then moved through the actions
(deactivate, rest, short-term (de)activation, terminate, swap / add / stop a service; a few
had their requests fail while the connector was offline), so every subscription state is on
show and the provisioning engine sees exactly what an agent would do.

The data is a pure function of the subscription's position (a seeded ``random.Random`` draws
the whole plan up front), so numbers, serials and CA IDs are the same on every machine. Running
the command again creates nothing new: subscriptions whose number exists are skipped, and the
demo users get their role and password back. Then each installed provider adds its own part
(its adapter's ``demo()``, through ``crm_provisioning/demo.py``), with its options on this
command's line.
"""

import random
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.contrib.auth.models import Group, User
from django.core.management.base import BaseCommand
from django.db import transaction

from core import roles
from crm_provisioning import demo
from providers import delivery
from providers.models import ProvisioningRequest
from subscriptions import actions
from subscriptions.actions import ItemSpec
from subscriptions.demo import OFFERS, VIEWING_POINTS, Catalog, ensure_catalog
from subscriptions.models import (
    CustomerAccount,
    InstalledItem,
    Subscription,
    SubscriptionService,
)

SEED = 20240108
DEFAULT_COUNT = 300
FIRST_DAY = datetime(2024, 1, 8, 9, 0, tzinfo=UTC)
REASON = "Demo data (load_demo)"
OFFLINE = (
    "No answer: the connector was offline (demo data). A Reset Subscriptions run repairs this "
    "subscription."
)

# username, role (group), password. Demo only: printed at the end of every run.
DEMO_USERS = (
    ("agent", roles.AGENT, "agent-demo-pass"),
    ("operator", roles.OPERATOR, "operator-demo-pass"),
    ("admin", roles.ADMINISTRATOR, "admin-demo-pass"),
)

FIRST_NAMES = [
    "Maria", "Andreas", "Eleni", "Giorgos", "Sofia", "Nikos", "Katerina", "Costas",
    "Anna", "Yiannis", "Christina", "Michalis", "Despina", "Petros", "Irene", "Stavros",
]  # fmt: skip
LAST_NAMES = [
    "Georgiou", "Christodoulou", "Ioannou", "Constantinou", "Demetriou", "Charalambous",
    "Nicolaou", "Panayiotou", "Savva", "Antoniou", "Michael", "Kyriacou", "Petrou", "Loizou",
]  # fmt: skip

# How many TWIN viewing points, with weights.
TWINS = [(0, 62), (1, 20), (2, 11), (3, 7)]

# What happens to a subscription after Become subscriber, with weights. Some stories need a
# particular offer (the seed's swap is Bundle A -> Bundle B, for instance).
STORIES = [
    ("effective", 60),
    ("deactivated", 8),
    ("resting", 5),
    ("short_term_deactivated", 4),
    ("short_term_activated", 4),
    ("terminated", 6),
    ("swapped", 5),
    ("service_added", 5),
    ("service_stopped", 3),
    # The connector was offline and its requests went unanswered: Failed, out of step with the
    # platform, waiting for a Reset Subscriptions run to repair them.
    ("connector_offline", 4),
]
STORY_OFFER = {
    "swapped": ("BUNDLE_A",),
    "service_added": ("BUNDLE_B",),
    "service_stopped": ("BUNDLE_A", "AGRICULTURE"),
}


@dataclass(frozen=True)
class PlannedSubscription:
    index: int
    type_code: str
    first_name: str
    last_name: str
    created_at: datetime
    products: tuple[str, ...]
    twins: tuple[tuple[str, str], ...]  # (viewing point, product code)
    story: str

    @property
    def number(self) -> str:
        return f"ZX-{self.index:06d}"

    @property
    def account_number(self) -> str:
        return f"ZXA-{self.index:06d}"

    @property
    def account_name(self) -> str:
        return f"{self.first_name} {self.last_name}"

    @property
    def email(self) -> str:
        return f"{self.first_name}.{self.last_name}.{self.index}@example.com".lower()


def _pick(rng: random.Random, weighted):
    values, weights = zip(*weighted, strict=True)
    return rng.choices(values, weights=weights)[0]


def plan(count: int = DEFAULT_COUNT, seed: int = SEED) -> list[PlannedSubscription]:
    """The whole demo, decided before anything is written. The first subscriptions show one
    story each (ZX-000001 also uses all four viewing points); the rest are drawn at random."""
    rng = random.Random(seed)  # noqa: S311 - repeatable demo data, not a secret
    planned = []
    for index in range(1, count + 1):
        story = STORIES[index - 1][0] if index <= len(STORIES) else _pick(rng, STORIES)
        products = STORY_OFFER.get(story) or _pick(rng, OFFERS)
        twin_count = 3 if index == 1 else _pick(rng, TWINS)
        twins = tuple((vp, rng.choice(products)) for vp in VIEWING_POINTS[1 : 1 + twin_count])
        planned.append(
            PlannedSubscription(
                index=index,
                type_code="BUS" if rng.random() < 0.15 else "RES",
                first_name=rng.choice(FIRST_NAMES),
                last_name=rng.choice(LAST_NAMES),
                created_at=FIRST_DAY + timedelta(days=2 * index, minutes=rng.randint(0, 600)),
                products=products,
                twins=twins,
                story=story,
            )
        )
    return planned


def devices(index: int, viewing_point: str, catalog: Catalog) -> list[ItemSpec]:
    """A smartcard and a set-top box for one viewing point; serials and CA IDs derive from the
    subscription's position and the viewing point, so they are unique and stable."""
    k = VIEWING_POINTS.index(viewing_point)
    distributor = catalog.distributors[viewing_point]
    return [
        ItemSpec(
            "smartcard",
            f"ZXSC{index:06d}{k}",
            f"01{index:06d}{k}",
            distributor,
            "SC-CX",
            "Conax smartcard",
        ),
        ItemSpec(
            "stb",
            f"ZXSTB{index:06d}{k}",
            f"02{index:06d}{k}",
            distributor,
            "STB-HD",
            "HD set-top box",
        ),
    ]


def subscribe(p: PlannedSubscription, catalog: Catalog, by: User) -> Subscription:
    account, _ = CustomerAccount.objects.get_or_create(
        number=p.account_number, defaults={"name": p.account_name, "email": p.email}
    )
    main = catalog.main
    services = [(catalog.products[code], main) for code in p.products]
    services += [(catalog.products[code], catalog.distributors[vp]) for vp, code in p.twins]
    items = devices(p.index, "MAIN", catalog)
    for vp, _code in p.twins:
        items += devices(p.index, vp, catalog)
    change = actions.become_subscriber(
        account,
        catalog.types[p.type_code],
        services,
        items,
        number=p.number,
        created_at=p.created_at,
        by=by,
        reason=REASON,
    )
    return change.subscription


def tell_story(sub: Subscription, p: PlannedSubscription, catalog: Catalog, by: User) -> None:
    kw = {"by": by, "reason": REASON}
    main_services = sub.services.filter(distributor=catalog.main).order_by("id")
    if p.story == "deactivated":
        actions.deactivate(sub, **kw)
    elif p.story == "resting":
        actions.rest(sub, **kw)
    elif p.story == "short_term_deactivated":
        actions.short_term_deactivation(sub, **kw)
    elif p.story == "short_term_activated":
        actions.deactivate(sub, **kw)
        actions.short_term_activation(sub, **kw)
    elif p.story == "terminated":
        actions.terminate(sub, **kw)
    elif p.story == "swapped":
        # The seed's example: Flexible Bundle A swapped for Flexible Bundle B.
        actions.swap_service(
            main_services.get(product__code="BUNDLE_A"), catalog.products["BUNDLE_B"], **kw
        )
    elif p.story == "service_added":
        actions.add_service(sub, catalog.products["AGRICULTURE"], catalog.main, **kw)
    elif p.story == "service_stopped":
        actions.stop_service(main_services.get(product__code="AGRICULTURE"), **kw)
    elif p.story == "connector_offline":
        for request in sub.provisioning_requests.filter(state=ProvisioningRequest.State.PENDING):
            delivery.fail(request, OFFLINE)


def ensure_users() -> dict[str, User]:
    """One staff user per role (never a superuser), with the demo password."""
    if Group.objects.filter(name__in=roles.ROLES).count() < len(roles.ROLES):
        roles.ensure_roles()
    users = {}
    for username, role, password in DEMO_USERS:
        user, created = User.objects.get_or_create(username=username)
        user.is_staff = True
        user.is_superuser = False
        user.is_active = True
        # Only re-hash when needed: a new hash would log the demo users out on every run.
        if created or not user.check_password(password):
            user.set_password(password)
        user.save()
        user.groups.set([Group.objects.get(name=role)])
        users[username] = user
    return users


class Command(BaseCommand):
    help = (
        "Load the Company ZX demo: catalogue, one user per role and customer accounts with "
        "subscriptions in every state. Safe to run again: existing subscriptions are kept."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--count",
            type=int,
            default=DEFAULT_COUNT,
            help=f"How many demo subscriptions (default {DEFAULT_COUNT}).",
        )
        # Each provider's own options (e.g. where its CAS simulator listens).
        demo.add_arguments(parser)

    def handle(self, *args, count: int, **options):
        catalog = ensure_catalog()
        users = ensure_users()
        planned = plan(count)
        existing = set(
            Subscription.objects.filter(number__in=[p.number for p in planned]).values_list(
                "number", flat=True
            )
        )
        created = 0
        for p in planned:
            if p.number in existing:
                continue
            # One subscription and its story commit together, so an interrupted run resumes
            # cleanly: a number either exists with its whole story or not at all.
            with transaction.atomic():
                sub = subscribe(p, catalog, users["agent"])
                tell_story(sub, p, catalog, users["agent"])
            created += 1
        self.summary(created, len(existing))
        for line in demo.load(options):
            self.stdout.write(line)

    def summary(self, created: int, kept: int) -> None:
        out = self.stdout.write
        out(
            self.style.SUCCESS(
                f"Company ZX demo: {created} subscriptions created, {kept} already there."
            )
        )
        labels = dict(Subscription.State.choices)
        states = Counter(Subscription.objects.values_list("state", flat=True))
        by_state = ", ".join(f"{labels[s]} {states[s]}" for s in labels if states[s])
        # Viewing points in use: distinct (subscription, distributor) among current services.
        points = Counter(
            code
            for _sub, code in SubscriptionService.objects.filter(
                state__in=actions.LIVE_SERVICE_STATES
            )
            .order_by()
            .values_list("subscription_id", "distributor__code")
            .distinct()
        )
        out(f"  Customer accounts  {CustomerAccount.objects.count()}")
        out(f"  Subscriptions      {sum(states.values())} ({by_state})")
        out(f"  Services           {SubscriptionService.objects.count()}")
        out(
            f"  Installed items    {InstalledItem.objects.count()} "
            f"({InstalledItem.objects.filter(removed_at__isnull=True).count()} in use)"
        )
        out("  Viewing points     " + ", ".join(f"{vp} {points[vp]}" for vp in VIEWING_POINTS))
        out("Demo logins (staff users, not superusers):")
        for username, role, password in DEMO_USERS:
            out(f"  {username:<9} password {password:<20} role {role}")
