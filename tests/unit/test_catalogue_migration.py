"""A database migrated before the catalogue app existed keeps its rows, its foreign keys and who
may do what: the move is in Django's state only, and the content types change app label."""

import pytest
from django.contrib.auth.models import Permission, User
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from catalogue.models import Provider
from subscriptions.models import SubscriptionService

# The apps' last migrations before the move.
BEFORE = [
    ("catalogue", None),
    ("subscriptions", "0004_removed_box_index"),
    ("providers", "0012_request_fewer_rows_and_indexes"),
    ("runs", "0005_process_run_counts"),
]


def migrate(targets) -> None:
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)


@pytest.mark.django_db(transaction=True)
def test_a_database_from_before_the_catalogue_keeps_rows_keys_and_permissions(subscribe):
    service = subscribe("AGRICULTURE").services.get()
    person = User.objects.create_user("clerk", is_staff=True)
    person.user_permissions.add(
        *Permission.objects.filter(
            content_type__app_label="catalogue", codename__in=["change_provider", "view_product"]
        )
    )
    leaves = MigrationExecutor(connection).loader.graph.leaf_nodes()
    migrate(BEFORE)
    try:
        nodes = [*BEFORE[1:], ("contenttypes", "0002_remove_content_type_name")]
        old = MigrationExecutor(connection).loader.project_state(nodes).apps
        ContentType = old.get_model("contenttypes", "ContentType")
        assert ContentType.objects.get(model="provider").app_label == "providers"
        assert ContentType.objects.get(model="product").app_label == "subscriptions"
        # Rows made by the old models, in the same tables.
        system = old.get_model("subscriptions", "ExternalSystem").objects.create(
            code="OLD", name="Old"
        )
        provider = old.get_model("providers", "Provider").objects.create(
            name="Made before", type="generic", external_system=system
        )
        product = old.get_model("subscriptions", "Product").objects.create(code="OLD1", name="Old")
        distributor = old.get_model("providers", "Distributor").objects.create(
            provider=provider, code="OLDVP"
        )
        distributor.allowed_products.add(product)
        old.get_model("providers", "ProductCAId").objects.create(
            product=product, provider=provider, ca_id="OLD-CA"
        )
    finally:
        migrate(leaves)

    made_before = Provider.objects.get(name="Made before")
    assert made_before.external_system.code == "OLD"
    assert made_before.ca_ids.get().product.code == "OLD1"
    assert list(made_before.distributors.get().allowed_products.values_list("code", flat=True)) == [
        "OLD1"
    ]
    again = SubscriptionService.objects.get(pk=service.pk)
    assert (again.product.code, again.distributor.code) == (
        service.product.code,
        service.distributor.code,
    )
    person = User.objects.get(pk=person.pk)
    assert person.has_perm("catalogue.change_provider")
    assert person.has_perm("catalogue.view_product")
