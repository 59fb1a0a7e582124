"""Request parameters: what the platform needs to act, built from the names of a chunk's rows
(``Context``, read once per chunk by ``engine.context_for``)."""

from dataclasses import dataclass

from .operations import Operation as Op


@dataclass
class Context:
    """What parameters are built from, fetched once per chunk of commands."""

    subscriptions: dict[int, str]
    distributors: dict[int, str]
    items: dict[int, dict]
    products: dict[int, str]

    @classmethod
    def of(cls, subscriptions: dict, distributors: dict, products: dict, devices) -> "Context":
        """From names read already; ``devices``: (id, kind, serial number, CA ID, product
        code) rows (a real-time action's come with its plan, ``reconciler.plan_action``)."""
        items = {
            pk: {
                "pk": pk,
                "kind": kind,
                "serial_number": serial,
                "ca_id": ca_id,
                "product_code": product_code,
            }
            for pk, kind, serial, ca_id, product_code in devices
        }
        return cls(subscriptions, distributors, items, products)


def standard_parameters(command, ctx: Context) -> dict:
    """The parameters SPEC lists for each command (a ``reconciler.Command``), as plain JSON."""
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
            params["paired_card_ca_id"] = ctx.items[command.anchor_id or command.item_id]["ca_id"]
    return params
