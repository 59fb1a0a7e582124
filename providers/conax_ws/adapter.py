from providers import registry
from providers.models import ProvisioningRequest

from .forms import ConaxWSConnection, ConaxWSParameters

Op = ProvisioningRequest.Operation


class ConaxWSAdapter(registry.Adapter):
    """Declared with its settings and commands; the SOAP transport (zeep) is still to come, so
    a request pushed now fails at once with that reason rather than waiting unseen."""

    code = "conax_ws"
    name = "Conax Contego Web Services"
    model = registry.HYBRID
    delivery = registry.PUSH
    connection_form = ConaxWSConnection
    parameters_form = ConaxWSParameters
    commands = {
        Op.ACTIVATE: "ADD_SUBSCRIPTIONS",
        Op.DEACTIVATE: "CANCEL_SUBSCRIPTIONS",
        Op.CREATE_PAIRING: "CREATE_PAIRING",
        Op.ADD_TO_PAIRING: "ADD_TO_EXISTING_PAIRING",
    }
    run_types = ("reset_subscriptions", "archive_requests")
