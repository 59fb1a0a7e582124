"""Archive: finished requests older than N days leave the working table for the archive.

Each chunk is copied and deleted in one transaction, so a request is always in exactly one of
the two tables; a run stopped half-way simply leaves the rest for the next one.
"""

from collections.abc import Callable
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from .models import ArchivedRequest, ProvisioningRequest

Req = ProvisioningRequest
FINISHED = (Req.State.COMPLETED, Req.State.REJECTED, Req.State.SUPERSEDED)
# The archived requests a subscription's page shows, newest first.
LATEST = 50


def archivable(older_than_days: int, provider=None):
    cutoff = timezone.now() - timedelta(days=older_than_days)
    rows = Req.objects.filter(state__in=FINISHED, created_at__lt=cutoff)
    return rows.filter(provider=provider) if provider else rows


def archive(
    older_than_days: int,
    *,
    provider=None,
    chunk_size: int = 5000,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Archive what is old enough; returns how many requests were moved. ``progress(moved so
    far)`` after each chunk, in its transaction."""
    moved = 0
    while True:
        with transaction.atomic():
            chunk = list(
                archivable(older_than_days, provider)
                .select_related("subscription", "distributor", "installed_item")
                .select_for_update(of=("self",))
                .order_by("pk")[:chunk_size]
            )
            if not chunk:
                return moved
            ArchivedRequest.objects.bulk_create(
                [
                    ArchivedRequest(
                        original_id=r.pk,
                        uid=r.uid,
                        command=r.command,
                        operation=r.operation,
                        ca_id=r.ca_id,
                        parameters=r.parameters,
                        provider_id=r.provider_id,
                        distributor_code=r.distributor.code if r.distributor else "",
                        subscription_id=r.subscription_id,
                        subscription_number=r.subscription.number if r.subscription else "",
                        service_id=r.service_id,
                        installed_item_id=r.installed_item_id,
                        card_ca_id=r.installed_item.ca_id if r.installed_item else "",
                        priority=r.priority,
                        trigger=r.trigger,
                        trigger_name=r.trigger_name,
                        final_state=r.state,
                        attempts=r.attempts,
                        error_code=r.error_code,
                        last_error=r.last_error,
                        response=r.response,
                        created_at=r.created_at,
                        answered_at=r.answered_at,
                    )
                    for r in chunk
                ]
            )
            ids = [r.pk for r in chunk]
            Req.items.through.objects.filter(provisioningrequest_id__in=ids).delete()
            Req.objects.filter(pk__in=ids).delete()
            moved += len(ids)
            if progress:
                progress(moved)


def of_subscription(subscription_id: int, limit: int = LATEST) -> list[ArchivedRequest]:
    """The subscription's archived requests, newest first, at most ``limit``: read from the
    archive by its ``archived_by_subscription`` index, whatever the archive holds."""
    return list(
        ArchivedRequest.objects.filter(subscription_id=subscription_id)
        .select_related("provider")
        .order_by("-original_id")[:limit]
    )
