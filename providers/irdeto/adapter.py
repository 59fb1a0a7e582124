"""Irdeto (seed 001): real-time over the KMS's HTTPS API, with reset runs.

Every request is one call of ``protocol.py`` carrying the request's uid as ``requestId``, so
the KMS applies a repeat once; the shared push delivery sends them (per device in order,
Express first) and retries what did not get through. The transport (one session and access
token per provider and process) is ``client.py``.
"""

import uuid

from providers import failure_kinds, registry, sealed
from providers.extensions import Health
from providers.models import ProvisioningRequest

from . import client, protocol
from .forms import IrdetoConnection, IrdetoParameters

Op = ProvisioningRequest.Operation
CHECK_DEVICE = "CONNECTION-CHECK"


def call_of(request) -> protocol.Call:
    """The KMS call that carries ``request``; a sealed PIN is opened here, in memory only."""
    parameters = sealed.opened(request.parameters)
    if request.command not in protocol.PATHS:
        raise registry.TransportError(
            f"{request.command} is not an Irdeto KMS command.", permanent=True
        )
    try:
        return protocol.call_for(request.command, str(request.uid), parameters, request.created_at)
    except KeyError as exc:
        raise registry.TransportError(
            f"The request's parameters lack {exc.args[0]}.", permanent=True
        ) from None
    except (TypeError, ValueError, AttributeError) as exc:
        raise registry.TransportError(
            f"The request's parameters are unusable: {exc}.", permanent=True
        ) from None


class IrdetoAdapter(registry.Adapter):
    code = "irdeto"
    name = "Irdeto"
    model = registry.HYBRID
    delivery = registry.PUSH
    connection_form = IrdetoConnection
    parameters_form = IrdetoParameters
    commands = {
        Op.ACTIVATE: protocol.ADD_ENTITLEMENT,
        Op.DEACTIVATE: protocol.REMOVE_ENTITLEMENT,
        Op.CREATE_PAIRING: protocol.PAIR_SECURE_CLIENTS,
        Op.ADD_TO_PAIRING: protocol.ADD_TO_PAIRING,
    }

    @classmethod
    def run_types(cls):
        from . import runs

        return ("reset_subscriptions", runs.MAIL, "archive_requests")

    @classmethod
    def utilities(cls):
        from . import utilities

        return (
            "reset_subscription",
            utilities.SEND_MESSAGE,
            utilities.SET_PARENTAL_PIN,
            utilities.QUERY_SECURE_CLIENT,
            utilities.REAUTHORIZE_SECTOR,
        )

    @classmethod
    def simulator(cls):
        from . import simulator

        return simulator.SIMULATOR

    @classmethod
    def demo(cls):
        from . import demo

        return demo.DEMO

    def check(self) -> Health:
        """A token, then a query about a device no KMS knows: its refusal shows that the KMS
        is reached and takes our credentials; nothing is changed there."""
        call = protocol.call_for(
            protocol.QUERY_SECURE_CLIENT,
            f"check-{uuid.uuid4()}",
            {"device_ca_id": CHECK_DEVICE},
            None,
        )
        try:
            kms = client.client_for(self.provider)
            kms.call(call)
        except registry.TransportError as error:
            return failure_kinds.failed(self.provider.name, error, otherwise=failure_kinds.PROTOCOL)
        except client.KmsRefusal:
            pass  # the expected answer about an unknown device
        return Health(True, f"The KMS at {kms.address} answered a query.")

    def platform_state(self, subscription, devices, **asking) -> dict[int, registry.Held]:
        # By Query secure client, as the agents' utility asks.
        from . import utilities

        return utilities.platform_state(self.provider, subscription, devices, **asking)

    def send(self, request) -> registry.Answer:
        call = call_of(request)
        try:
            body = client.client_for(self.provider).call(call)
        except client.KmsRefusal as refusal:
            return registry.Answer(
                accepted=False, error_code=refusal.code, error_description=refusal.message
            )
        return registry.Answer(accepted=True, response=body)
