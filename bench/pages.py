"""The back-office pages figure: how long an agent waits for the pages of a call, through
gunicorn over HTTP, signed in with a session cookie as a person of the agent role.

``pages(report, workdir)`` measures, on the load (``bench.load``) already in the database:

- the subscription page of a load subscription with services and devices on several viewing
  points (the one with the most services among the first few thousand, preferring one with
  requests);
- the subscription list searched (``?q=``) by a part of its customer's name, a part of its
  number, and its smartcard's serial;
- the request list filtered by state (Completed: the bulk of the table once the platform has
  answered);
- the home page;
- the operators' home page, the operations dashboard (signed in as an operator), its hourly
  counts kept first as the watch keeps them.

What runs: ``collectstatic`` into a folder of the bench's own (the server runs with DEBUG off,
as deployed, and serves the stylesheets from its manifest), then gunicorn
(``processes.web_server``). One client signs in through the login form, then loads the pages
in turn, ``WARM_UP`` rounds first (every worker process has loaded its code, opened its
connection and filled its caches), then ``samples`` rounds, one page at a time, so that each
page's loads are spread over the measurement alike. Each load is timed from sending the request
to the last byte of the answer.

Figures per page: the median (target ``TARGET_MEDIAN_MS``) and the p95 (no target). No floor:
a page is the product's own work end to end, and a bare page would say nothing about it. The
counts say whether each search showed the subscription (``found``): a search that finds nothing
is cheap, so a figure for a search is only worth its ``found``.
"""

import re
import secrets
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlsplit

import requests
from django.contrib.auth.models import Group, User
from django.db.models import Count
from django.urls import reverse

from core import roles
from monitoring import activity
from providers.models import ProvisioningRequest
from subscriptions.models import CustomerAccount, InstalledItem, Subscription, SubscriptionService

from . import conax_sms, load, processes
from .report import Figure, Report

BENCH_USER = "bench-pages"
TARGET_MEDIAN_MS = 300
SAMPLES = 30
WARM_UP = 3
# Where the subscription is chosen: the first load subscriptions, however many there are.
CANDIDATES = 2000
STATE = ProvisioningRequest.State.COMPLETED


@dataclass(frozen=True)
class Page:
    name: str
    path: str
    # A text the answer shows when it is the page asked for; for a search, the subscription found.
    shows: str
    search: bool = False
    role: str = roles.AGENT


@dataclass
class Measured:
    page: Page
    times_ms: list[float]
    found: bool
    size: int


def subscription() -> Subscription:
    """A load subscription with services and devices on two or more viewing points: the one with
    the most services among the first ``CANDIDATES``, one with requests if any has."""
    first = list(
        Subscription.objects.filter(
            number__startswith=load.PREFIX, state=Subscription.State.EFFECTIVE
        )
        .order_by("number")
        .values_list("pk", flat=True)[:CANDIDATES]
    )
    ranked = list(
        SubscriptionService.objects.filter(subscription_id__in=first)
        .values("subscription_id")
        .annotate(services=Count("id"), points=Count("distributor", distinct=True))
        .filter(points__gte=2)
        .order_by("-services", "subscription_id")
        .values_list("subscription_id", flat=True)[:50]
    )
    if not ranked:
        raise RuntimeError("No load subscription on two viewing points: generate the load first.")
    asked = set(
        ProvisioningRequest.objects.filter(subscription_id__in=ranked).values_list(
            "subscription_id", flat=True
        )
    )
    chosen = next((pk for pk in ranked if pk in asked), ranked[0])
    return Subscription.objects.select_related("account").get(pk=chosen)


def pages_of(sub: Subscription) -> list[Page]:
    """The pages measured, for this subscription."""
    card = sub.installed_items.filter(
        kind=InstalledItem.Kind.SMARTCARD, removed_at__isnull=True
    ).first()
    listing = reverse("admin:subscriptions_subscription_changelist")
    name = sub.account.name
    # A part from inside each: neither the start nor the end ("oad customer 00012").
    name_part = name[1:-2]
    number_part = sub.number[len(load.PREFIX) : -1]
    requests_path = reverse("admin:providers_provisioningrequest_changelist")
    return [
        Page(
            "subscription page",
            reverse("admin:subscriptions_subscription_change", args=[sub.pk]),
            sub.number,
        ),
        Page("search by name part", f"{listing}?q={quote(name_part)}", sub.number, True),
        Page("search by number part", f"{listing}?q={quote(number_part)}", sub.number, True),
        Page("search by card serial", f"{listing}?q={quote(card.serial_number)}", sub.number, True),
        Page(
            "requests by state",
            f"{requests_path}?state__exact={STATE}",
            f'<td class="field-state">{ProvisioningRequest.State(STATE).label}</td>',
        ),
        Page("home page", reverse("admin:index"), 'id="utilities-entry"'),
        Page("dashboard", reverse("admin:index"), 'id="dashboard-providers"', role=roles.OPERATOR),
    ]


def person(role: str) -> tuple[str, str]:
    """A person of ``role``, staff (the back office's door), with a fresh password."""
    user, _ = User.objects.get_or_create(username=f"{BENCH_USER}-{role}")
    password = secrets.token_urlsafe(16)
    user.set_password(password)
    user.is_staff = user.is_active = True
    user.save()
    user.groups.set([Group.objects.get(name=role)])
    return user.username, password


def log_in(url: str, username: str, password: str) -> dict[str, str]:
    """Sign in through the login form; the headers of a signed-in browser behind the TLS proxy
    (the server runs as deployed: secure cookies, requests marked HTTPS by the proxy)."""
    proxy = {"X-Forwarded-Proto": "https"}
    login = f"{url}{reverse('admin:login')}"
    form = requests.get(login, headers=proxy, timeout=60)
    form.raise_for_status()
    csrf = form.cookies["csrftoken"]
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.text).group(1)
    answer = requests.post(
        login,
        data={
            "username": username,
            "password": password,
            "csrfmiddlewaretoken": token,
            "next": reverse("admin:index"),
        },
        headers={
            **proxy,
            "Referer": f"https://{urlsplit(url).netloc}{reverse('admin:login')}",
            "Cookie": f"csrftoken={csrf}",
        },
        allow_redirects=False,
        timeout=60,
    )
    if answer.status_code != 302 or "sessionid" not in answer.cookies:
        raise RuntimeError(f"The bench's {username} could not sign in ({answer.status_code})")
    return {**proxy, "Cookie": f"sessionid={answer.cookies['sessionid']}; csrftoken={csrf}"}


def _load(url: str, page: Page, headers: dict[str, str]) -> tuple[float, str]:
    started = time.perf_counter()
    answer = requests.get(url + page.path, headers=headers, timeout=60, allow_redirects=False)
    content = answer.text
    took = (time.perf_counter() - started) * 1000
    if answer.status_code != 200:
        raise RuntimeError(f"{page.name}: {page.path} answered {answer.status_code}")
    return took, content


def measure(
    url: str, pages: list[Page], headers: dict[str, dict[str, str]], samples: int
) -> list[Measured]:
    """Each page ``WARM_UP`` times, then ``samples`` times, the pages in turn; ``headers`` of
    a signed-in browser per role."""
    for _ in range(WARM_UP):
        for page in pages:
            _load(url, page, headers[page.role])
    results = [Measured(page, [], False, 0) for page in pages]
    for _ in range(samples):
        for result in results:
            took, content = _load(url, result.page, headers[result.page.role])
            result.times_ms.append(took)
            result.found = result.page.shows in content
            result.size = len(content.encode())
    for result in results:
        if not result.page.search and not result.found:
            raise RuntimeError(f"{result.page.name} did not show {result.page.shows!r}")
    return results


def pages(report: Report, workdir: Path, *, samples: int = SAMPLES) -> list[Measured]:
    """Measure the pages (see the module) and add two figures per page to ``report``."""
    # Fresh planner statistics, as autovacuum keeps them in production: the figures before
    # this one changed the requests' states, and on stale ones PostgreSQL joined every
    # Completed request to sort them instead of reading the newest hundred; without any on
    # the freshly loaded customers, a search read them all instead of its trigram indexes.
    conax_sms.vacuum(
        ProvisioningRequest,
        ProvisioningRequest.items.through,
        Subscription,
        CustomerAccount,
        InstalledItem,
        SubscriptionService,
    )
    sub = subscription()
    chosen = pages_of(sub)
    people = {role: person(role) for role in {page.role for page in chosen}}
    activity.keep_counts()
    static_root = workdir / "bench-static"
    processes.collect_static(static_root, workdir / "bench-collectstatic.log")
    services = sub.services.count()
    devices = sub.installed_items.count()
    with processes.web_server(
        workdir / "bench-web-pages.log", env={"STATIC_ROOT": str(static_root)}
    ) as url:
        headers = {role: log_in(url, *person) for role, person in people.items()}
        measured = measure(url, chosen, headers, samples)
    for result in measured:
        page = result.page
        median = statistics.median(result.times_ms)
        p95 = statistics.quantiles(result.times_ms, n=20, method="inclusive")[18]
        about = f"{page.path} ({sub.number}: {services} services, {devices} devices)"
        if page.search:
            about += "; shows the subscription" if result.found else "; finds nothing"
        detail = (
            f"{len(result.times_ms)} loads through gunicorn over HTTP, signed in as an "
            f"{page.role}, each from sending to the last byte; {about}"
        )
        counts = {
            "samples": len(result.times_ms),
            "median_ms": median,
            "p95_ms": p95,
            "max_ms": max(result.times_ms),
            "bytes": result.size,
            "found": result.found,
            "path": page.path,
        }
        report.add(
            Figure(
                f"Back-office page median, {page.name}",
                median,
                "ms",
                target=TARGET_MEDIAN_MS,
                detail=detail,
                counts=counts,
            )
        )
        report.add(
            Figure(f"Back-office page p95, {page.name}", p95, "ms", detail=detail, counts=counts)
        )
    return measured
