from providers import registry
from providers.models import ProvisioningRequest

from . import commands as exset_commands
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
    commands = exset_commands.COMMANDS
    # SPEC: usage services are never sent as ADD_SUBSCRIPTION (nor renewed).
    provisions_usage_services = False

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

    def extra_commands(self, subscriptions, today, ca_ids):
        return exset_commands.renewal_commands(self.provider, subscriptions, today, ca_ids)

    def rewrite_commands(self, planned):
        return exset_commands.rewrite(self.provider, planned)

    def parameters_for(self, command, context) -> dict:
        return exset_commands.parameters(command, context)

    @classmethod
    def simulator(cls):
        from . import simulator

        return simulator.SIMULATOR

    @classmethod
    def demo(cls):
        from . import demo

        return demo.DEMO
