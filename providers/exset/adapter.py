from providers import registry
from providers.models import ProvisioningRequest

from .forms import ExsetConnection, ExsetParameters

Op = ProvisioningRequest.Operation


class ExsetAdapter(registry.Adapter):
    """Batch: the Process Provisioning Requests run creates Pending requests; writing them as
    TQUEUE entries is still to come."""

    code = "exset"
    name = "EXSET SMS"
    model = registry.BATCH
    delivery = registry.FILE
    connection_form = ExsetConnection
    parameters_form = ExsetParameters
    commands = {
        Op.ACTIVATE: "ADD_SUBSCRIPTION",
        Op.DEACTIVATE: "REMOVE_SUBSCRIPTION",
        Op.CREATE_PAIRING: "PAIR_UNPAIR_DEVICE_RECEIVER",
        Op.ADD_TO_PAIRING: "PAIR_UNPAIR_DEVICE_RECEIVER",
    }

    @classmethod
    def run_types(cls):
        return ("process_provisioning_requests", "archive_requests")

    @classmethod
    def simulator(cls):
        from . import simulator

        return simulator.SIMULATOR

    @classmethod
    def demo(cls):
        from . import demo

        return demo.DEMO
