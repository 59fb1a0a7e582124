"""Request parameters: what the platform needs to act, built in bulk for a chunk of commands."""

from dataclasses import dataclass

from subscriptions.models import InstalledItem, Subscription, SubscriptionService

from . import reconciler
from .models import Distributor, ProvisioningRequest

Op = ProvisioningRequest.Operation


@dataclass
class Context:
    """What parameters are built from, fetched once per chunk of commands."""

    subscriptions: dict[int, str]
    distributors: dict[int, str]
    items: dict[int, dict]
    products: dict[int, str]


def context_for(commands: list[reconciler.Command]) -> Context:
    item_ids = {c.item_id for c in commands} | {m for c in commands for m in c.member_ids}
    service_ids = {c.service_id for c in commands if c.service_id}
    return Context(
        subscriptions=dict(
            Subscription.objects.filter(pk__in={c.subscription_id for c in commands}).values_list(
                "pk", "number"
            )
        ),
        distributors=dict(
            Distributor.objects.filter(pk__in={c.distributor_id for c in commands}).values_list(
                "pk", "code"
            )
        ),
        items={
            row["pk"]: row
            for row in InstalledItem.objects.filter(pk__in=item_ids).values(
                "pk", "kind", "serial_number", "ca_id", "product_code", "removed_at"
            )
        },
        products=dict(
            SubscriptionService.objects.filter(pk__in=service_ids).values_list(
                "pk", "product__code"
            )
        ),
    )


def standard_parameters(command: reconciler.Command, ctx: Context) -> dict:
    """The parameters SPEC lists for each command, as plain JSON."""
    card = ctx.items[command.item_id]
    params = {
        "subscription": ctx.subscriptions[command.subscription_id],
        "distributor": ctx.distributors[command.distributor_id],
    }
    if command.operation in (Op.ACTIVATE, Op.DEACTIVATE):
        params.update(
            service_ca_id=command.ca_id,
            product_code=ctx.products.get(command.service_id, ""),
            card_ca_id=card["ca_id"],
            card_serial_number=card["serial_number"],
        )
    else:
        devices = [
            {
                "kind": ctx.items[m]["kind"],
                "ca_id": ctx.items[m]["ca_id"],
                "serial_number": ctx.items[m]["serial_number"],
                "product_code": ctx.items[m]["product_code"],
            }
            for m in command.member_ids
        ]
        params["devices"] = devices
        if command.operation == Op.ADD_TO_PAIRING:
            params["paired_card_ca_id"] = card["ca_id"]
    return params
