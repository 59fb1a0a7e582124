from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('subscriptions', '0006_catalogue_models_gone'),
    ]

    operations = [
        migrations.AddField(
            model_name='customeraccount',
            name='phone',
            field=models.CharField(blank=True, db_default='', default='', max_length=32),
        ),
    ]
