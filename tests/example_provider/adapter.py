from django.urls import path

from providers import registry
from providers.extensions import Health
from providers.models import ProvisioningRequest

from . import api, contributions

Op = ProvisioningRequest.Operation
PATH = "tests.example_provider.adapter.ExampleAdapter"
NO_TRANSPORT_PATH = "tests.example_provider.adapter.NoTransportAdapter"


class ExampleAdapter(registry.Adapter):
    """A pull platform: its connector would take the Pending requests; it brings one of
    everything an adapter may bring."""

    code = "example"
    name = "Example platform"
    model = registry.HYBRID
    delivery = registry.PULL
    commands = {
        Op.ACTIVATE: "SWITCH_ON",
        Op.DEACTIVATE: "SWITCH_OFF",
        Op.CREATE_PAIRING: "PAIR",
        Op.ADD_TO_PAIRING: "PAIR",
    }

    @classmethod
    def run_types(cls):
        return (contributions.COUNT_SUBSCRIBERS, "archive_requests")

    @classmethod
    def utilities(cls):
        return (contributions.NOTE, "reset_subscription")

    @classmethod
    def api_urls(cls) -> list:
        return [path("waiting/", api.WaitingView.as_view(), name="example-waiting")]

    @classmethod
    def simulator(cls):
        return contributions.SIMULATOR

    @classmethod
    def demo(cls):
        return contributions.DEMO

    def check(self) -> Health:
        return Health(True, f"{self.provider.name} is always there.")


class NoTransportAdapter(registry.Adapter):
    """A push platform whose transport is not written (no ``send``): what the registry's
    default does with its requests."""

    code = "example_push"
    name = "Example push platform"
    model = registry.REAL_TIME
    delivery = registry.PUSH
    commands = ExampleAdapter.commands
