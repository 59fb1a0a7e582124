# Providers, distributors and product CA IDs moved to the catalogue app (state only, same
# tables): the foreign keys point there, and this app forgets the models once every other
# app's keys do (subscriptions 0005, runs 0006).

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('catalogue', '0001_initial'),
        ('providers', '0012_request_fewer_rows_and_indexes'),
        ('runs', '0006_catalogue'),
        ('subscriptions', '0005_catalogue'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name='provisioningrequest',
                    name='provider',
                    field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.PROTECT, related_name='requests', to='catalogue.provider'),
                ),
                migrations.AlterField(
                    model_name='provisioningrequest',
                    name='distributor',
                    field=models.ForeignKey(blank=True, db_index=False, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='requests', to='catalogue.distributor'),
                ),
                migrations.AlterField(
                    model_name='transferfile',
                    name='provider',
                    field=models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='files', to='catalogue.provider'),
                ),
                migrations.AlterField(
                    model_name='connectortoken',
                    name='provider',
                    field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='tokens', to='catalogue.provider'),
                ),
                migrations.AlterField(
                    model_name='archivedrequest',
                    name='provider',
                    field=models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='archive', to='catalogue.provider'),
                ),
                migrations.DeleteModel(name='ProductCAId'),
                migrations.DeleteModel(name='Distributor'),
                migrations.DeleteModel(name='Provider'),
            ],
        ),
    ]
