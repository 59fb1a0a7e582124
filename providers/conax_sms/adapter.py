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

from dateutil.relativedelta import relativedelta

from providers import failure_kinds, provider_settings, registry, renewals
from providers.extensions import Health
from providers.models import ProvisioningRequest
from providers.parameters import standard_parameters

from .forms import ConaxSMSParameters, FileTransferConnection

Op = ProvisioningRequest.Operation


def renewal_due(authorized_on, months: int, today) -> bool:
    """SPEC: the authorization date plus the renewal frequency (months) is today or earlier."""
    return renewals.renewal_due(authorized_on, relativedelta(months=months), today)


def last_due_day(months: int, today):
    """The latest authorization day whose renewal is due ``today`` (``renewals.last_due_day``)."""
    return renewals.last_due_day(relativedelta(months=months), today)


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
            return failure_kinds.failed(self.provider.name, error)
        protocol = self.provider.connection.get("protocol", "sftp").upper()
        host = self.provider.connection.get("host")
        return Health(
            True,
            f"Logged in over {protocol} at {host} and listed {directory} "
            f"({len(names)} file{'' if len(names) == 1 else 's'}).",
        )

    def extra_commands(self, subscriptions, today, ca_ids):
        months = int(provider_settings.parameter(self.provider, "renewal_frequency_months"))
        return renewals.renewals(
            self.provider, subscriptions, today, ca_ids, relativedelta(months=months)
        )

    def parameters_for(self, command, context) -> dict:
        if command.operation == Op.RENEW:
            # The same parameters as the Add it extends.
            return standard_parameters(replace(command, operation=Op.ACTIVATE), context)
        return standard_parameters(command, context)
