"""Conax Contego SMS Services (seed 000): batch, requests exchanged as files.

How a request travels:

1. The *Process Provisioning Requests* run reconciles whole subscriptions and creates Pending
   requests (SPEC's trigger logic): Add for an on service not authorized, Cancel for an off
   service authorized, Create Pairing for devices not initialized, and — this adapter's
   ``extra_commands`` — Renew for an on, authorized service whose authorization date plus the
   *Renewal Frequency* is today or earlier. Utilities and the message run add Send Message
   and pairing requests.
2. The *Export request files* run (``export.py``) writes them into files, Express first, at most
   *Maximum Number of Records in Each File* each, with end dates from the operation
   parameters, and uploads them (``transport.py``; layout in ``file_format.py``).
3. The *Error Handling* run (``responses.py``) reads the CAS's response files and records each
   answer: Completed (authorized / initialized updated, a renewal moves the authorization
   date) or Rejected (the change rolled back).
"""

from dataclasses import replace
from datetime import datetime, time, timedelta

from dateutil.relativedelta import relativedelta
from django.utils import timezone

from providers import registry
from providers.models import ProvisioningRequest
from providers.parameters import standard_parameters
from providers.reconciler import Command
from subscriptions.models import InstalledItem, SubscriptionService

from .forms import ConaxSMSParameters, FileTransferConnection

Op = ProvisioningRequest.Operation
Req = ProvisioningRequest


def renewal_due(authorized_on, months: int, today) -> bool:
    """SPEC: the authorization date plus the renewal frequency is today or earlier."""
    return authorized_on + relativedelta(months=months) <= today


def renewals(provider, subscription_ids: list[int], today, ca_ids) -> list[Command]:
    """Renew commands for these subscriptions: per on, authorized service and each initialized
    card in use on its viewing point, one per component CA ID, unless an entitlement request
    for that service and card is still Pending (a Renew waiting for its answer counts)."""
    months = int(provider.parameter("renewal_frequency_months"))
    # Every date d with d + months <= today is on or before today - 28 * months days.
    latest = timezone.make_aware(datetime.combine(today - timedelta(days=28 * months - 1), time()))
    services = [
        row
        for row in SubscriptionService.objects.filter(
            subscription_id__in=subscription_ids,
            distributor__provider=provider,
            state__in=SubscriptionService.ON_STATES,
            authorized=True,
            authorization_date__lt=latest,
        )
        .order_by("pk")
        .values_list("pk", "subscription_id", "product_id", "distributor_id", "authorization_date")
        if renewal_due(timezone.localdate(row[4]), months, today)
    ]
    if not services:
        return []
    cards: dict[tuple[int, int], list[int]] = {}
    for pk, sub_id, dist_id in (
        InstalledItem.objects.filter(
            subscription_id__in={s[1] for s in services},
            kind=InstalledItem.Kind.SMARTCARD,
            removed_at__isnull=True,
            initialized=True,
        )
        .order_by("pk")
        .values_list("pk", "subscription_id", "distributor_id")
    ):
        cards.setdefault((sub_id, dist_id), []).append(pk)
    waiting = set(
        Req.objects.filter(
            state=Req.State.PENDING,
            service_id__in=[s[0] for s in services],
            operation__in=(Op.ACTIVATE, Op.DEACTIVATE, Op.RENEW),
        ).values_list("service_id", "installed_item_id")
    )
    return [
        Command(Op.RENEW, sub_id, dist_id, card, service_id=service_id, ca_id=ca_id)
        for service_id, sub_id, product_id, dist_id, _date in services
        for card in cards.get((sub_id, dist_id), [])
        if (service_id, card) not in waiting
        for ca_id in ca_ids[product_id]
    ]


class ConaxSMSAdapter(registry.Adapter):
    code = "conax_sms"
    name = "Conax Contego SMS Services"
    model = registry.BATCH
    delivery = registry.FILE
    connection_form = FileTransferConnection
    parameters_form = ConaxSMSParameters
    commands = {
        Op.ACTIVATE: "ADD_SUBSCRIPTION",
        Op.DEACTIVATE: "CANCEL_SUBSCRIPTION",
        Op.RENEW: "RENEW_SUBSCRIPTION",
        # Conax SMS knows one pairing command, for a new pairing and for additions alike.
        Op.CREATE_PAIRING: "CREATE_PAIRING",
        Op.ADD_TO_PAIRING: "CREATE_PAIRING",
    }
    run_types = (
        "process_provisioning_requests",
        "conax_sms_export_files",
        "conax_sms_error_handling",
        "conax_sms_messages",
        "archive_requests",
    )
    utilities = ("conax_sms_pair_devices", "conax_sms_send_message", "reset_subscription")

    def extra_commands(self, subscription_ids, today, ca_ids):
        return renewals(self.provider, subscription_ids, today, ca_ids)

    def parameters_for(self, command, context) -> dict:
        if command.operation == Op.RENEW:
            # The same parameters as the Add it extends.
            return standard_parameters(replace(command, operation=Op.ACTIVATE), context)
        return standard_parameters(command, context)
