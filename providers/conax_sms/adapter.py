from providers import registry
from providers.models import ProvisioningRequest

from .forms import ConaxSMSParameters, FileTransferConnection

Op = ProvisioningRequest.Operation


class ConaxSMSAdapter(registry.Adapter):
    """Batch: the Process Provisioning Requests run creates Pending requests; the file export
    that delivers them is still to come."""

    code = "conax_sms"
    name = "Conax Contego SMS Services"
    model = registry.BATCH
    delivery = registry.FILE
    connection_form = FileTransferConnection
    parameters_form = ConaxSMSParameters
    commands = {
        Op.ACTIVATE: "ADD_SUBSCRIPTION",
        Op.DEACTIVATE: "CANCEL_SUBSCRIPTION",
        # Conax SMS knows one pairing command, for a new pairing and for additions alike.
        Op.CREATE_PAIRING: "CREATE_PAIRING",
        Op.ADD_TO_PAIRING: "CREATE_PAIRING",
    }
    run_types = ("process_provisioning_requests", "archive_requests")
