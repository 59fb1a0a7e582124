from providers import registry
from providers.models import ProvisioningRequest

from .forms import IrdetoConnection, IrdetoParameters

Op = ProvisioningRequest.Operation


class IrdetoAdapter(registry.Adapter):
    """Declared with its settings; the transport is still to come, so a request pushed now
    fails at once with that reason rather than waiting unseen."""

    code = "irdeto"
    name = "Irdeto"
    model = registry.HYBRID
    delivery = registry.PUSH
    connection_form = IrdetoConnection
    parameters_form = IrdetoParameters
    commands = {
        Op.ACTIVATE: "ADD_ENTITLEMENT",
        Op.DEACTIVATE: "REMOVE_ENTITLEMENT",
        Op.CREATE_PAIRING: "PAIR_SECURE_CLIENT",
        Op.ADD_TO_PAIRING: "PAIR_SECURE_CLIENT",
    }

    @classmethod
    def run_types(cls):
        return ("reset_subscriptions", "archive_requests")

    @classmethod
    def demo(cls):
        from . import demo

        return demo.DEMO
