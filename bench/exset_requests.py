"""Pending EXSET SMS requests in bulk, for the TQUEUE writing benchmark.

``pending_requests(provider, n)`` adds ``n`` Pending requests not yet written, shaped as the
processing run, the utilities and the message runs leave them (the same commands and
parameters): Add, Remove and Renew subscription, pairings, device changes and individual
infocas messages, one in a hundred Express. Like ``conax_sms_requests`` (whose writing it
shares) they belong to no subscription: the export reads only the request rows.

    from bench import exset_requests
    from providers.exset.queue import PIPELINE
    from providers.file_delivery import export
    exset_requests.pending_requests(provider, 1_000_000)
    export.export(PIPELINE, provider).records   # -> 1_000_000
"""

import uuid
from datetime import datetime

from catalogue.models import Provider
from providers.exset import commands as ec
from providers.exset import messages
from providers.models import ProvisioningRequest

from . import conax_sms_requests

Req = ProvisioningRequest
Op = Req.Operation
# The Conax SMS mix's services and Express share, with EXSET's commands.
SERVICES, EXPRESS_EVERY = conax_sms_requests.SERVICES, conax_sms_requests.EXPRESS_EVERY
# (share in a hundred, operation, command)
MIX = [
    (70, Op.ACTIVATE, ec.ADD),
    (12, Op.DEACTIVATE, ec.REMOVE),
    (12, Op.RENEW, ec.RENEW),
    (4, Op.CREATE_PAIRING, ec.PAIR_UNPAIR),
    (1, Op.CREATE_PAIRING, ec.CHANGE_DEVICE),
    (1, Op.OTHER, messages.INDIVIDUAL_INFOCAS),
]
_SLOTS = [(operation, command) for share, operation, command in MIX for _ in range(share)]


def _parameters(n: int, command: str) -> dict:
    subscriber = n // 3  # a few requests per subscriber, as a processing run makes them
    card = f"LCA{subscriber:08d}0"
    base = {"subscription": f"LD-{subscriber:07d}", "distributor": "MAIN"}
    if command in (ec.ADD, ec.REMOVE, ec.RENEW):
        ca_id, product = SERVICES[n % len(SERVICES)]
        return {
            **base,
            "service_ca_id": ca_id,
            "product_code": product,
            "card_ca_id": card,
            "card_serial_number": f"LSC{subscriber:08d}0",
        }
    if command == ec.PAIR_UNPAIR:
        return {**base, "action": ec.PAIR, "card_ca_id": card, "decoder_ca_id": f"LBX{n:08d}0"}
    if command == ec.CHANGE_DEVICE:
        return {**base, "replaced_ca_id": card, "new_ca_id": f"LCA{subscriber:08d}9"}
    return {
        **base,
        "card_ca_id": card,
        "message": f"Your bill {n} is ready | 100% paid?",
        "duration_minutes": 60,
        "interval_minutes": 30,
    }


def row(provider_id: int, n: int, now: datetime) -> dict:
    """The ``n``-th request of the mix (``conax_sms_requests.pending_requests``'s ``row``)."""
    operation, command = _SLOTS[(n * 37) % len(_SLOTS)]  # spread, not in runs of one kind
    parameters = _parameters(n, command)
    return {
        "uid": uuid.uuid4(),
        "command": command,
        "operation": operation,
        "ca_id": parameters.get("service_ca_id", ""),
        "parameters": parameters,
        "provider_id": provider_id,
        "priority": Req.Priority.EXPRESS if n % EXPRESS_EVERY == 7 else Req.Priority.NORMAL,
        "trigger": Req.Trigger.RUN,
        "trigger_name": "process_provisioning_requests",
        "state": Req.State.PENDING,
        "attempts": 0,
        "last_error": "",
        "error_code": "",
        "rollback": {},
        "created_at": now,
        "updated_at": now,
    }


def pending_requests(provider: Provider, count: int) -> int:
    """Add ``count`` Pending EXSET requests for ``provider``; returns count."""
    return conax_sms_requests.pending_requests(provider, count, row=row)
