"""The watch: check every provider, open an incident when something goes wrong and resolve it
when it recovers, and tell each alert channel once per opening and once per recovery.

Run by beat every ``WATCH_SECONDS`` (``monitoring.tasks.watch``). Two watches at once are
harmless: an incident is opened under a unique constraint, and each notice is claimed by a
conditional update before it is sent. An incident that clears before ``ALERT_AFTER_SECONDS``
is kept (the incidents list shows it) but told to nobody. Requests that became Failed while a
provider was unreachable, an outage already told, are that outage's: they do not make it
"failing" again once it answers (its Failed requests still wait for a retry, as the dashboard
shows).
"""

import logging
from datetime import timedelta

import requests
from django.conf import settings
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from catalogue.models import Provider
from providers import delivery, env_secrets, registry
from runs.models import ProcessRun

from . import status
from .models import AlertChannel, Incident, ProviderHealth

log = logging.getLogger(__name__)
Kind = Incident.Kind

# Kinds that last until their condition clears, and one-off events (told once, no recovery).
LASTING = (Kind.UNREACHABLE, Kind.FAILING, Kind.FAILED_REQUESTS)
ONE_OFF = (Kind.RUN_FAILED,)
# Failed runs older than this when first seen are history, not news.
RUN_NEWS = timedelta(hours=1)
WEBHOOK_TIMEOUT_S = 5
# A request whose last attempt was under way as the platform came back fails a little after
# the outage ended; it is still the outage's.
OUTAGE_TAIL = timedelta(minutes=1)


def check_providers() -> None:
    """Each enabled provider's adapter health check, kept for the pages and the watch."""
    for provider in Provider.objects.filter(enabled=True).order_by("name"):
        check_provider(provider)


def check_provider(provider) -> registry.Health:
    """The provider's adapter health check, kept as its newest ``ProviderHealth``."""
    try:
        health = registry.adapter_for(provider).check()
    except Exception as error:
        log.exception("Health check of %s failed", provider.name)
        health = registry.Health(False, f"The health check itself failed: {error}")
    was = ProviderHealth.objects.filter(provider=provider).values_list("reachable", flat=True)
    if health.ok and was.first() is False:
        # Back: what waits out a retry delay goes now, not up to an hour later (and keeps
        # the provider "failing" meanwhile).
        delivery.due_again(provider)
    ProviderHealth.objects.update_or_create(
        provider=provider,
        defaults={
            "checked_at": timezone.now(),
            "reachable": health.ok,
            "message": health.message,
        },
    )
    return health


def _lost_to_a_told_outage(st: status.ProviderStatus, subject: str) -> bool:
    """Failing only by requests that became Failed during an outage that was told (an
    Unreachable incident), or just as it ended: its recovery notice says so."""
    if st.retrying or st.recent_failure_at is None:
        return False
    outage = list(
        Incident.objects.filter(
            kind=Kind.UNREACHABLE, subject=subject, notified_open_at__isnull=False
        )
        .order_by("-id")
        .values_list("resolved_at", flat=True)[:1]
    )
    if not outage:
        return False
    # Still open: the provider answers again, so this watch resolves it.
    ended = outage[0] or timezone.now()
    return st.recent_failure_at <= ended + OUTAGE_TAIL


def _conditions() -> dict[tuple[str, str], tuple[str, str]]:
    """What is wrong now: (kind, subject) → (title, detail)."""
    wrong = {}
    for st in status.providers():
        name, subject = st.provider.name, f"provider:{st.provider.pk}"
        if st.level == status.UNREACHABLE:
            wrong[Kind.UNREACHABLE, subject] = (f"{name} is unreachable", st.why)
        elif st.level == status.FAILING and not _lost_to_a_told_outage(st, subject):
            wrong[Kind.FAILING, subject] = (f"{name} is failing", st.why)
        if st.provider.enabled and st.failed >= settings.ALERT_FAILED_REQUESTS:
            wrong[Kind.FAILED_REQUESTS, subject] = (
                f"{name} has {st.failed} Failed requests",
                f"The threshold is {settings.ALERT_FAILED_REQUESTS} "
                "(ALERT_FAILED_REQUESTS); retry them once the platform is back.",
            )
    return wrong


def _open(kind: str, subject: str, title: str, detail: str, now, resolved=False) -> None:
    try:
        with transaction.atomic():
            Incident.objects.create(
                kind=kind,
                subject=subject,
                title=title,
                detail=detail,
                opened_at=now,
                resolved_at=now if resolved else None,
                # A one-off event has no recovery to announce.
                notified_resolved_at=now if resolved else None,
            )
    except IntegrityError:
        pass  # another watch opened it first


def _failed_runs(now) -> None:
    recent = ProcessRun.objects.filter(
        status=ProcessRun.Status.FAILED, finished_at__gte=now - RUN_NEWS
    ).select_related("definition")
    for run in recent.order_by("-id")[:50]:
        subject = f"run:{run.pk}"
        if not Incident.objects.filter(kind=Kind.RUN_FAILED, subject=subject).exists():
            title = f"Run {run.definition.name} #{run.pk} failed"
            _open(Kind.RUN_FAILED, subject, title, run.message, now, resolved=True)


def watch() -> None:
    check_providers()
    now = timezone.now()
    wrong = _conditions()
    open_now = {
        (i.kind, i.subject): i
        for i in Incident.objects.filter(resolved_at__isnull=True, kind__in=LASTING)
    }
    for (kind, subject), (title, detail) in wrong.items():
        if (kind, subject) not in open_now:
            _open(kind, subject, title, detail, now)
    for key, incident in open_now.items():
        if key not in wrong:
            Incident.objects.filter(pk=incident.pk, resolved_at__isnull=True).update(
                resolved_at=now
            )
    _failed_runs(now)
    notify()


def notify() -> None:
    """Send what has not been sent: each opening once it has lasted ``ALERT_AFTER_SECONDS``
    (a blip while a platform restarts tells nobody), then each recovery of what was told."""
    channels = list(AlertChannel.objects.filter(enabled=True))
    lasted = timezone.now() - timedelta(seconds=settings.ALERT_AFTER_SECONDS)
    due = Incident.objects.filter(notified_open_at__isnull=True).filter(
        Q(resolved_at__isnull=True, opened_at__lte=lasted) | Q(kind__in=ONE_OFF)
    )
    for incident in due.order_by("id"):
        if Incident.objects.filter(pk=incident.pk, notified_open_at__isnull=True).update(
            notified_open_at=timezone.now()
        ):
            _send(channels, f"ALERT: {incident.title}", incident.detail)
    recovered = Incident.objects.filter(
        resolved_at__isnull=False, notified_resolved_at__isnull=True, notified_open_at__isnull=False
    )
    for incident in recovered.order_by("id"):
        if Incident.objects.filter(pk=incident.pk, notified_resolved_at__isnull=True).update(
            notified_resolved_at=timezone.now()
        ):
            lasted = incident.resolved_at - incident.opened_at
            _send(
                channels,
                f"RECOVERED: {incident.title}",
                f"Resolved at {timezone.localtime(incident.resolved_at):%Y-%m-%d %H:%M %Z} "
                f"after {_minutes(lasted)}.",
            )


def _minutes(lasted: timedelta) -> str:
    minutes = round(lasted.total_seconds() / 60)
    return "less than a minute" if minutes < 1 else f"{minutes} min"


def _send(channels: list[AlertChannel], subject: str, detail: str) -> None:
    text = f"{subject}\n{detail}".strip()
    for channel in channels:
        try:
            if channel.kind == AlertChannel.Kind.EMAIL:
                send_mail(subject, detail or subject, None, channel.addresses())
            else:
                url = env_secrets.read(channel.url_env, f"webhook of {channel.name}")
                answer = requests.post(url, json={"text": text}, timeout=WEBHOOK_TIMEOUT_S)
                answer.raise_for_status()
        except Exception as error:
            # The error's kind only: a webhook's URL (a secret) may be in its text.
            reason = f"{type(error).__name__} at {timezone.now():%Y-%m-%d %H:%M:%S %Z}"
            log.warning("Alert channel %s could not send %r: %s", channel.name, subject, reason)
            AlertChannel.objects.filter(pk=channel.pk).update(last_error=reason)
        else:
            AlertChannel.objects.filter(pk=channel.pk).update(
                last_sent_at=timezone.now(), last_error=""
            )
