from providers import registry
from providers.models import ProvisioningRequest

Op = ProvisioningRequest.Operation


class GenericAdapter(registry.Adapter):
    """Real-time with reset runs; the platform's connector pulls Pending requests over the Web
    API (*Get Pending*) and posts each answer (*Send Response*)."""

    code = "generic"
    name = "Generic (Web API)"
    model = registry.HYBRID
    delivery = registry.PULL
    commands = {
        Op.ACTIVATE: "ACTIVATE_SERVICE",
        Op.DEACTIVATE: "DEACTIVATE_SERVICE",
        Op.CREATE_PAIRING: "CREATE_PAIRING",
        Op.ADD_TO_PAIRING: "ADD_TO_EXISTING_PAIRING",
    }
    run_types = ("reset_subscriptions", "archive_requests")
    utilities = ("reset_subscription",)
