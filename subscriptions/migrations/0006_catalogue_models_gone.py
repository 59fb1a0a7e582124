# Forget the models the catalogue app holds now (state only: the tables are the catalogue's),
# once providers' product CA IDs and providers no longer point at them (providers 0013).

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('providers', '0013_catalogue'),
        ('subscriptions', '0005_catalogue'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.DeleteModel(name='Product'),
                migrations.DeleteModel(name='SubscriptionType'),
                migrations.DeleteModel(name='ExternalSystem'),
            ],
        ),
    ]
