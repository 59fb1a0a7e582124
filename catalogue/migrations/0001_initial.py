# The catalogue's models move here from subscriptions and providers in the state only: their
# tables keep their names (db_table), so nothing in the database changes. The old apps' own
# migrations (subscriptions 0005/0006, providers 0013, runs 0006) repoint their foreign keys
# and forget the models.

import catalogue.models
import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ('subscriptions', '0004_removed_box_index'),
        ('providers', '0012_request_fewer_rows_and_indexes'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name='ExternalSystem',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('code', models.CharField(max_length=32, unique=True)),
                        ('name', models.CharField(max_length=100)),
                    ],
                    options={
                        'db_table': 'subscriptions_externalsystem',
                    },
                ),
                migrations.CreateModel(
                    name='SubscriptionType',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('code', models.CharField(max_length=32, unique=True)),
                        ('name', models.CharField(max_length=100)),
                    ],
                    options={
                        'db_table': 'subscriptions_subscriptiontype',
                        'ordering': ['code'],
                    },
                ),
                migrations.CreateModel(
                    name='Product',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('code', models.CharField(max_length=32, unique=True)),
                        ('name', models.CharField(max_length=200)),
                        ('kind', models.CharField(choices=[('flat', 'Flat'), ('flexible_bundle', 'Flexible bundle'), ('fixed_bundle', 'Fixed bundle')], default='flat', max_length=20)),
                        ('service_type', models.CharField(choices=[('termed', 'Termed'), ('usage', 'Usage')], default='termed', max_length=10)),
                        ('components', models.ManyToManyField(blank=True, help_text='Bundles only: the flat products this bundle is made of.', limit_choices_to={'kind': 'flat'}, related_name='bundles', to='catalogue.product')),
                    ],
                    options={
                        'db_table': 'subscriptions_product',
                        'ordering': ['code'],
                    },
                ),
                migrations.CreateModel(
                    name='Provider',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('name', models.CharField(max_length=100, unique=True)),
                        ('type', models.CharField(choices=catalogue.models.provider_types, max_length=20)),
                        ('enabled', models.BooleanField(default=True)),
                        ('connection', models.JSONField(blank=True, default=dict, help_text='Connection settings (secrets by variable name only).')),
                        ('parameters', models.JSONField(blank=True, default=dict, help_text='Operation parameters, validated per provider type.')),
                        ('created_at', models.DateTimeField(auto_now_add=True)),
                        ('updated_at', models.DateTimeField(auto_now=True)),
                        ('external_system', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='providers', to='catalogue.externalsystem')),
                    ],
                    options={
                        'db_table': 'providers_provider',
                        'ordering': ['name'],
                    },
                ),
                migrations.CreateModel(
                    name='ProductCAId',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('ca_id', models.CharField(max_length=64, verbose_name='CA ID')),
                        ('product', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='ca_ids', to='catalogue.product')),
                        ('provider', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='ca_ids', to='catalogue.provider')),
                    ],
                    options={
                        'verbose_name': 'product CA ID',
                        'db_table': 'providers_productcaid',
                        'constraints': [models.UniqueConstraint(fields=('product', 'provider'), name='one_ca_id_per_provider'), models.UniqueConstraint(fields=('provider', 'ca_id'), name='ca_id_unique_at_provider')],
                    },
                ),
                migrations.CreateModel(
                    name='Distributor',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('code', models.CharField(max_length=32)),
                        ('name', models.CharField(blank=True, max_length=100)),
                        ('required_distributor', models.ForeignKey(blank=True, help_text='A viewing point that must already be in use on the subscription.', null=True, on_delete=django.db.models.deletion.PROTECT, related_name='required_by', to='catalogue.distributor')),
                        ('allowed_products', models.ManyToManyField(blank=True, help_text='The services this viewing point may carry.', related_name='distributors', to='catalogue.product')),
                        ('provider', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='distributors', to='catalogue.provider')),
                    ],
                    options={
                        'db_table': 'providers_distributor',
                        'ordering': ['provider_id', 'code'],
                        'constraints': [models.UniqueConstraint(fields=('provider', 'code'), name='distributor_code_unique')],
                    },
                ),
            ],
        ),
    ]
