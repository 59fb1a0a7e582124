"""Failed requests a reset has taken over: marked *Superseded*, they leave the Failed view.

A reset (Reset single subscription, a reset or processing run) plans a subscription at a
provider from scratch, and a Failed request counts there as never sent: whatever it was to do
is either asked again by the reset's own new requests, or no longer wanted (the service was
cancelled since, the card removed). Retrying it after that would send it twice, or send what
nobody wants any more. So, in the transaction that commits the reset's plan, the subscription's
Failed requests of the kinds the reset plans (entitlements and pairings) become Superseded.
Messages, fingerprints and other one-off commands are not planned by a reset: they stay Failed
until retried.
"""

from django.db.models import QuerySet
from django.utils import timezone

from catalogue.models import Provider

from .models import ProvisioningRequest

Req = ProvisioningRequest
Op = Req.Operation
# What a reset plans (the reconciler's operations); anything else a reset does not replace.
PLANNED = (Op.ACTIVATE, Op.DEACTIVATE, Op.CREATE_PAIRING, Op.ADD_TO_PAIRING, Op.RENEW)


def failed(provider: Provider) -> QuerySet:
    """The provider's Failed requests a reset replaces (read through its state index)."""
    return Req.objects.filter(provider=provider, state=Req.State.FAILED, operation__in=PLANNED)


def supersede(requests: QuerySet) -> int:
    """Mark ``requests`` (``failed(provider)`` narrowed to the subscriptions a reset planned)
    Superseded, keeping their last error; returns how many. Call inside the reset's
    transaction."""
    return requests.update(
        state=Req.State.SUPERSEDED, next_attempt_at=None, updated_at=timezone.now()
    )
