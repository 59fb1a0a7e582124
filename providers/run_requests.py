"""Writing a run's own requests to one device each (a message or fingerprint run's), the
requests no reconciler plans: many at once, in the run's transaction, and the push worker woken
once it commits."""

from django.db import transaction

from . import delivery
from .models import ProvisioningRequest

Req = ProvisioningRequest


def write(provider, rows: list[tuple], *, trigger_name: str, run_id: int) -> int:
    """Bulk-write (command, subscription, device, parameters) rows as Pending requests of this
    run, and wake the worker once the caller's transaction commits; returns how many."""
    requests = [
        Req(
            command=command,
            parameters=parameters,
            provider=provider,
            distributor=device.distributor,
            subscription=subscription,
            installed_item=device,
            trigger=Req.Trigger.RUN,
            trigger_name=trigger_name,
            process_run_id=run_id,
        )
        for command, subscription, device, parameters in rows
    ]
    Req.objects.bulk_create(requests)
    Through = Req.items.through
    Through.objects.bulk_create(
        Through(provisioningrequest_id=r.pk, installeditem_id=r.installed_item_id) for r in requests
    )
    if requests:
        transaction.on_commit(lambda: delivery.wake([provider.pk]))
    return len(requests)
