"""Request parameters: what the platform needs to act, built in bulk for a chunk of commands."""

from dataclasses import dataclass

from django.db import connection

from catalogue.models import Distributor, Product
from subscriptions.models import InstalledItem, Subscription, SubscriptionService

from . import reconciler
from .models import ProvisioningRequest

Op = ProvisioningRequest.Operation


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


def context_for(commands: list[reconciler.Command]) -> Context:
    """One statement per chunk, written as SQL: a real-time action makes a chunk of one or
    two commands, and the ORM's four queries (or even two statements) cost it more than the
    database's work."""
    item_ids = {c.item_id for c in commands} | {m for c in commands for m in c.member_ids}
    item_ids |= {c.anchor_id for c in commands if c.anchor_id}
    service_ids = {c.service_id for c in commands if c.service_id}
    subscription_ids = {c.subscription_id for c in commands}
    distributor_ids = {c.distributor_id for c in commands}
    # Arrays on PostgreSQL: a run's chunk of thousands of commands made statements of
    # thousands of placeholders, which the driver spent longer binding than they took to run.
    any_ = reconciler._any
    params: list = []
    # Every branch: (what, id, name, kind, serial number, CA ID, product code).
    sql = f"""
        SELECT 's', id, number, NULL, NULL, NULL, NULL FROM {Subscription._meta.db_table}
         WHERE {any_("id", subscription_ids, params)}
        UNION ALL
        SELECT 'd', id, code, NULL, NULL, NULL, NULL FROM {Distributor._meta.db_table}
         WHERE {any_("id", distributor_ids, params)}"""
    if service_ids:
        sql += f"""
        UNION ALL
        SELECT 'p', ss.id, p.code, NULL, NULL, NULL, NULL
          FROM {SubscriptionService._meta.db_table} ss
          JOIN {Product._meta.db_table} p ON p.id = ss.product_id
         WHERE {any_("ss.id", service_ids, params)}"""
    if item_ids:
        sql += f"""
        UNION ALL
        SELECT 'i', id, NULL, kind, serial_number, ca_id, product_code
          FROM {InstalledItem._meta.db_table} WHERE {any_("id", item_ids, params)}"""
    found: dict[str, dict[int, str]] = {"s": {}, "d": {}, "p": {}}
    devices = []
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        for what, pk, name, *device in cursor.fetchall():
            if what == "i":
                devices.append((pk, *device))
            else:
                found[what][pk] = name
    return Context.of(found["s"], found["d"], found["p"], devices)


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
            params["paired_card_ca_id"] = ctx.items[command.anchor_id or command.item_id]["ca_id"]
    return params
