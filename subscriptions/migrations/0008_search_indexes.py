# The trigram indexes behind subscriptions.search: PostgreSQL only (SQLite matches by scanning),
# built without locking the tables against writes, so not in one transaction.

from django.contrib.postgres.indexes import GinIndex, OpClass
from django.contrib.postgres.operations import AddIndexConcurrently, TrigramExtension
from django.db import migrations
from django.db.models.functions import Upper


class AddIndexOnPostgreSQL(AddIndexConcurrently):
    """AddIndexConcurrently on PostgreSQL; elsewhere the state only."""

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor == "postgresql":
            super().database_forwards(app_label, schema_editor, from_state, to_state)

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor == "postgresql":
            super().database_backwards(app_label, schema_editor, from_state, to_state)


class TrigramExtensionOnPostgreSQL(TrigramExtension):
    """CreateExtension checks the database going forwards only."""

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor == "postgresql":
            super().database_backwards(app_label, schema_editor, from_state, to_state)


def part_index(field, name):
    return GinIndex(OpClass(Upper(field), name='gin_trgm_ops'), name=name)


class Migration(migrations.Migration):

    atomic = False

    dependencies = [
        ('subscriptions', '0007_customer_phone'),
    ]

    operations = [
        TrigramExtensionOnPostgreSQL(),
        AddIndexOnPostgreSQL('customeraccount', part_index('name', 'account_name_part')),
        AddIndexOnPostgreSQL('customeraccount', part_index('email', 'account_email_part')),
        AddIndexOnPostgreSQL('customeraccount', part_index('phone', 'account_phone_part')),
        AddIndexOnPostgreSQL('subscription', part_index('number', 'subscription_number_part')),
    ]
