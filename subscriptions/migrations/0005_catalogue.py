# Products, subscription types and external systems moved to the catalogue app (state only,
# same tables): the foreign keys to them, and to distributors, point there now.

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('catalogue', '0001_initial'),
        ('subscriptions', '0004_removed_box_index'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name='subscription',
                    name='subscription_type',
                    field=models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='subscriptions', to='catalogue.subscriptiontype'),
                ),
                migrations.AlterField(
                    model_name='subscriptionservice',
                    name='product',
                    field=models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='+', to='catalogue.product'),
                ),
                migrations.AlterField(
                    model_name='subscriptionservice',
                    name='distributor',
                    field=models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='services', to='catalogue.distributor'),
                ),
                migrations.AlterField(
                    model_name='installeditem',
                    name='distributor',
                    field=models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='installed_items', to='catalogue.distributor'),
                ),
                migrations.AlterField(
                    model_name='pairing',
                    name='distributor',
                    field=models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='pairings', to='catalogue.distributor'),
                ),
                migrations.AlterField(
                    model_name='communicationqueueentry',
                    name='external_system',
                    field=models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='communications', to='catalogue.externalsystem'),
                ),
            ],
        ),
    ]
