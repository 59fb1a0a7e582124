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
        from . import message_runs

        return (
            "process_provisioning_requests",
            message_runs.INFOCAS_MESSAGES,
            message_runs.FINGERPRINTING,
            "archive_requests",
        )

    @classmethod
    def utilities(cls):
        from . import utilities

        return (
            utilities.SEND_INFOCAS_MESSAGE,
            utilities.DISPLAY_FINGERPRINT,
            utilities.RECALL_SUBSCRIPTION,
            "reset_subscription",
        )
