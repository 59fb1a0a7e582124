"""A database from before Conax WS sealed its PINs: on migrate, a PIN kept in clear is sealed
where its request may still be sent (Pending, Failed) and dropped where it was answered or
archived."""

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from providers import sealed
from providers.models import ArchivedRequest, ProvisioningRequest

Req = ProvisioningRequest
BEFORE = [("providers", "0014_request_created_by")]


def migrate(targets) -> None:
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)


@pytest.mark.django_db(transaction=True)
def test_pins_kept_in_clear_are_sealed_or_dropped(subscribe, catalog):
    sub = subscribe("AGRICULTURE")
    leaves = MigrationExecutor(connection).loader.graph.leaf_nodes()
    migrate(BEFORE)
    try:
        made = {}
        for state in ("pending", "failed", "completed"):
            made[state] = Req.objects.create(
                command="UPDATE_CA_PIN_TO_GIVEN_VALUE",
                parameters={"card_ca_id": "C1", "pin": "0042"},
                provider=catalog.provider,
                subscription=sub,
                trigger="utility",
                state=state,
            )
        old = ArchivedRequest.objects.create(
            original_id=10**9,
            uid=made["completed"].uid.hex[::-1],
            command="UPDATE_CA_PIN_TO_GIVEN_VALUE",
            operation="other",
            parameters={"card_ca_id": "C1", "pin": "0042"},
            provider=catalog.provider,
            priority=5,
            trigger="utility",
            final_state="completed",
            created_at=timezone.now(),
        )
    finally:
        migrate(leaves)
    for state in ("pending", "failed"):
        kept = Req.objects.get(pk=made[state].pk).parameters
        assert "pin" not in kept and sealed.unseal(kept[sealed.PIN]) == "0042"
    assert Req.objects.get(pk=made["completed"].pk).parameters == {"card_ca_id": "C1"}
    assert ArchivedRequest.objects.get(pk=old.pk).parameters == {"card_ca_id": "C1"}
