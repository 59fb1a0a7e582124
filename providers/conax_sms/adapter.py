"""Conax Contego SMS Services (seed 000): batch, requests exchanged as files.

How a request travels:

1. The *Process Provisioning Requests* run reconciles whole subscriptions and creates Pending
   requests (SPEC's trigger logic): Add for an on service not authorized, Cancel for an off
   service authorized, Create Pairing for devices not initialized, and — this adapter's
   ``extra_commands`` — Renew for an on, authorized service whose authorization date plus the
   *Renewal Frequency* is today or earlier. Utilities and the message run add Send Message
   and pairing requests.
2. The *Export request files* run writes them into files through the shared pipeline
   (``providers.file_delivery``; this package's part in ``files.py``), Express first, at most
   *Maximum Number of Records in Each File* each, with end dates from the operation
   parameters, and uploads them (``transport.py``; layout in ``file_format.py``).
3. The *Error Handling* run reads the CAS's response files through the same pipeline and
   records each answer: Completed (authorized / initialized updated, a renewal moves the
   authorization date) or Rejected (the change rolled back).
"""

from dataclasses import replace
from datetime import datetime, time, timedelta

from dateutil.relativedelta import relativedelta
from django.db import connection
from django.utils import timezone

from catalogue.models import Distributor
from providers import provider_settings, registry
from providers.extensions import Health
from providers.models import ProvisioningRequest
from providers.parameters import standard_parameters
from providers.reconciler import Command, Span, Subscriptions
from subscriptions.models import InstalledItem, SubscriptionService

from .forms import ConaxSMSParameters, FileTransferConnection

Op = ProvisioningRequest.Operation
Req = ProvisioningRequest


def renewal_due(authorized_on, months: int, today) -> bool:
    """SPEC: the authorization date plus the renewal frequency is today or earlier."""
    return authorized_on + relativedelta(months=months) <= today


def last_due_day(months: int, today):
    """The latest authorization day whose renewal is due ``today``: adding months never moves
    a later day before an earlier one, so a renewal is due exactly for the days up to this one
    (several days may end on the same one: 29-31 January + 1 month = 28 February)."""
    day = today - relativedelta(months=months)
    while renewal_due(day + timedelta(days=1), months, today):
        day += timedelta(days=1)
    return day


# The services a chunk renews, with their cards, in one statement: on and authorized before
# the cut-off, and each initialized card in use on the service's viewing point.
_RENEWALS = """
    SELECT ss.id, ss.subscription_id, ss.product_id, ss.distributor_id, it.id
      FROM {service} ss
      JOIN {distributor} d ON d.id = ss.distributor_id
      JOIN {item} it ON it.subscription_id = ss.subscription_id
       AND it.distributor_id = ss.distributor_id
       AND it.kind = %s AND it.removed_at IS NULL AND it.initialized
     WHERE d.provider_id = %s
       AND {chosen}
       AND ss.state IN ({on}) AND ss.authorized AND ss.authorization_date < %s
     ORDER BY ss.id, it.id
"""
# What is on its way for those services: looked up by service id (its index), apart. Inside
# the statement above (NOT EXISTS) the planner is free to scan the whole index of Pending
# requests for each card, which it does when the request table's statistics are older than
# the run's own requests (PostgreSQL then believes the table nearly empty).
_WAITING = """
    SELECT service_id, installed_item_id FROM {request}
     WHERE {chosen} AND state = %s AND operation IN (%s, %s, %s)
"""
# Ids per statement (SQLite takes at most 32766 parameters).
RENEWAL_IDS = 10_000


def _tables() -> dict[str, str]:
    quote = connection.ops.quote_name
    return {
        "service": quote(SubscriptionService._meta.db_table),
        "distributor": quote(Distributor._meta.db_table),
        "item": quote(InstalledItem._meta.db_table),
        "request": quote(Req._meta.db_table),
        "on": ", ".join(["%s"] * len(SubscriptionService.ON_STATES)),
    }


def _any(column: str, ids: list[int]) -> tuple[str, list]:
    """``column`` among ``ids``: one array parameter on PostgreSQL, placeholders elsewhere."""
    if connection.vendor == "postgresql":
        return f"{column} = ANY(%s)", [ids]
    return f"{column} IN ({', '.join(['%s'] * len(ids))})", list(ids)


def _renewal_rows(provider_id: int, subscriptions: Subscriptions, cutoff) -> list[tuple]:
    """(service, subscription, product, distributor, card) to renew, by service and card."""
    tables = _tables()
    if isinstance(subscriptions, Span):
        # A run's chunk: its id range, as the reconciler reads it (no list of its ids).
        parts: list[Subscriptions] = [subscriptions]
    else:
        ids = sorted(subscriptions)
        parts = [ids[start : start + RENEWAL_IDS] for start in range(0, len(ids), RENEWAL_IDS)]
    rows: list[tuple] = []
    for part in parts:
        chosen_params: list = []
        if isinstance(part, Span):
            # On both tables: PostgreSQL does not carry a range across the join's equality.
            chosen = part.sql("ss.subscription_id", chosen_params)
            chosen += " AND " + part.sql("it.subscription_id", chosen_params, joined=True)
        else:
            chosen, chosen_params = _any("ss.subscription_id", part)
            if connection.vendor == "postgresql":
                # The bounds on both tables let it scan their index ranges.
                chosen += (
                    " AND ss.subscription_id BETWEEN %s AND %s"
                    " AND it.subscription_id BETWEEN %s AND %s"
                )
                chosen_params += [part[0], part[-1], part[0], part[-1]]
        params = [
            InstalledItem.Kind.SMARTCARD,
            provider_id,
            *chosen_params,
            *SubscriptionService.ON_STATES,
            cutoff,
        ]
        with connection.cursor() as cursor:
            cursor.execute(_RENEWALS.format(chosen=chosen, **tables), params)
            rows += cursor.fetchall()
    return rows


def _waiting(service_ids: list[int]) -> set[tuple[int, int]]:
    """(service, card) of the entitlement requests still Pending for these services."""
    tables = _tables()
    found: set[tuple[int, int]] = set()
    for start in range(0, len(service_ids), RENEWAL_IDS):
        chosen, params = _any("service_id", service_ids[start : start + RENEWAL_IDS])
        params += [Req.State.PENDING, Op.ACTIVATE, Op.DEACTIVATE, Op.RENEW]
        with connection.cursor() as cursor:
            cursor.execute(_WAITING.format(chosen=chosen, **tables), params)
            found.update(cursor.fetchall())
    return found


def renewals(provider, subscriptions: Subscriptions, today, ca_ids) -> list[Command]:
    """Renew commands for these subscriptions (ids, or a run's ``Span``): per on, authorized
    service and each initialized
    card in use on its viewing point, one per component CA ID, unless an entitlement request
    for that service and card is still Pending (a Renew waiting for its answer counts).

    Due is decided in the query: authorized before the day after ``last_due_day`` began (in
    the local time zone, as ``timezone.localdate`` reads the authorization date)."""
    if not isinstance(subscriptions, Span) and not subscriptions:
        return []
    months = int(provider_settings.parameter(provider, "renewal_frequency_months"))
    cutoff = connection.ops.adapt_datetimefield_value(
        timezone.make_aware(
            datetime.combine(last_due_day(months, today) + timedelta(days=1), time())
        )
    )
    rows = _renewal_rows(provider.pk, subscriptions, cutoff)
    if not rows:
        return []
    waiting = _waiting(sorted({row[0] for row in rows}))
    return [
        Command(Op.RENEW, sub_id, dist_id, card, service_id=service_id, ca_id=ca_id)
        for service_id, sub_id, product_id, dist_id, card in rows
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

    @classmethod
    def run_types(cls):
        from . import runs

        return (
            "process_provisioning_requests",
            runs.EXPORT,
            runs.ERROR_HANDLING,
            runs.MESSAGES,
            "archive_requests",
        )

    @classmethod
    def utilities(cls):
        from . import utilities

        return (utilities.PAIR_DEVICES, utilities.SEND_MESSAGE, "reset_subscription")

    @classmethod
    def simulator(cls):
        from . import simulator

        return simulator.SIMULATOR

    @classmethod
    def demo(cls):
        from . import demo

        return demo.DEMO

    def check(self) -> Health:
        """Connect, log in and list the upload directory, as an export run would."""
        from . import transport

        try:
            with transport.connect(self.provider) as channel:
                directory = channel.upload_dir
                names = channel.server.listdir(directory)
        except registry.TransportError as error:
            return Health(False, f"{self.provider.name} cannot be reached: {error}")
        protocol = self.provider.connection.get("protocol", "sftp").upper()
        host = self.provider.connection.get("host")
        return Health(
            True,
            f"Logged in over {protocol} at {host} and listed {directory} "
            f"({len(names)} file{'' if len(names) == 1 else 's'}).",
        )

    def extra_commands(self, subscriptions, today, ca_ids):
        return renewals(self.provider, subscriptions, today, ca_ids)

    def parameters_for(self, command, context) -> dict:
        if command.operation == Op.RENEW:
            # The same parameters as the Add it extends.
            return standard_parameters(replace(command, operation=Op.ACTIVATE), context)
        return standard_parameters(command, context)
