"""Send Message and Create Pairing requests made outside the reconciler (utilities, runs)."""

from catalogue.models import Provider
from providers.engine import create_request
from providers.models import ProvisioningRequest
from subscriptions.models import InstalledItem

from . import file_format as ff

Req = ProvisioningRequest
MAIL, BARK = "MAIL", "BARK"
MESSAGE_TYPES = [(MAIL, "Mail message"), (BARK, "Bark message")]
# The seed gives these limits for the same CAS's web services; its SMS files carry the same.
MAX_LENGTH = {MAIL: 141, BARK: 129}
DEFAULT_SEQUENCE = 255
DEFAULT_BARK_SECONDS = 20


def smartcards(subscription, provider: Provider):
    return InstalledItem.objects.filter(
        subscription=subscription,
        kind=InstalledItem.Kind.SMARTCARD,
        removed_at__isnull=True,
        distributor__provider=provider,
    ).order_by("pk")


def send_message(
    provider: Provider,
    card: InstalledItem,
    *,
    message_type: str,
    text: str,
    sequence: int = DEFAULT_SEQUENCE,
    duration_seconds: int = DEFAULT_BARK_SECONDS,
    trigger: str,
    trigger_name: str,
    priority: int = Req.Priority.NORMAL,
    process_run_id: int | None = None,
    communication: str = "",
) -> Req:
    """One Send Message request to one smartcard, waiting for the next export."""
    parameters = {
        "subscription": card.subscription.number,
        "distributor": card.distributor.code,
        "card_ca_id": card.ca_id,
        "card_serial_number": card.serial_number,
        "message_type": message_type,
        "text": text,
        "sequence": sequence,
        "duration_seconds": duration_seconds if message_type == BARK else 0,
    }
    if communication:
        parameters["communication"] = communication
    return create_request(
        provider,
        ff.MESSAGE,
        parameters,
        trigger=trigger,
        trigger_name=trigger_name,
        subscription=card.subscription,
        installed_item=card,
        distributor=card.distributor,
        priority=priority,
        process_run_id=process_run_id,
        deliver_now=False,
    )


def pair(provider: Provider, card: InstalledItem, box: InstalledItem, *, trigger_name: str) -> Req:
    """Create Pairing for a smartcard and a set-top box, Express (the seed: so that Conax
    handles it first). Accepted, both devices become initialized."""
    devices = [
        {
            "kind": item.kind,
            "ca_id": item.ca_id,
            "serial_number": item.serial_number,
            "product_code": item.product_code,
        }
        for item in (card, box)
    ]
    return create_request(
        provider,
        ff.PAIR,
        {
            "subscription": card.subscription.number,
            "distributor": card.distributor.code,
            "devices": devices,
        },
        trigger=Req.Trigger.UTILITY,
        trigger_name=trigger_name,
        subscription=card.subscription,
        installed_item=card,
        items=[card, box],
        distributor=card.distributor,
        priority=Req.Priority.EXPRESS,
        operation=Req.Operation.CREATE_PAIRING,
        rollback={"leave_uninitialized": [card.pk, box.pk]},
        deliver_now=False,
    )
