"""The catalogue: what is sold (products, subscription types), the platforms it is provisioned
on (providers), their viewing points (distributors) and each product's CA ID at a provider.

The lowest app of the stack: it imports no other app. The tables keep the names they had in
``subscriptions`` and ``providers`` (``db_table``). A provider's connection settings and
operation parameters are checked against its type's forms by ``providers.provider_settings``,
which sits above.
"""

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.utils.module_loading import import_string


def provider_types() -> list[tuple[str, str]]:
    """(code, name) of each installed adapter: the choices of ``Provider.type``. Read from
    settings by name, since the adapters live in ``providers``, above the catalogue."""
    adapters = map(import_string, settings.PROVISIONING_ADAPTERS)
    return [(adapter.code, adapter.name) for adapter in adapters]


class SubscriptionType(models.Model):
    code = models.CharField(max_length=32, unique=True)
    name = models.CharField(max_length=100)

    class Meta:
        db_table = "subscriptions_subscriptiontype"
        ordering = ["code"]

    def __str__(self) -> str:
        return self.name


class Product(models.Model):
    """A sellable service. A flat product is provisioned by its own CA ID; a bundle by the CA IDs
    of its components (one request per component)."""

    class Kind(models.TextChoices):
        FLAT = "flat", "Flat"
        FLEXIBLE_BUNDLE = "flexible_bundle", "Flexible bundle"
        FIXED_BUNDLE = "fixed_bundle", "Fixed bundle"

    class ServiceType(models.TextChoices):
        TERMED = "termed", "Termed"
        USAGE = "usage", "Usage"

    code = models.CharField(max_length=32, unique=True)
    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=20, choices=Kind.choices, default=Kind.FLAT)
    service_type = models.CharField(
        max_length=10, choices=ServiceType.choices, default=ServiceType.TERMED
    )
    components = models.ManyToManyField(
        "self",
        symmetrical=False,
        blank=True,
        related_name="bundles",
        limit_choices_to={"kind": Kind.FLAT},
        help_text="Bundles only: the flat products this bundle is made of.",
    )

    class Meta:
        db_table = "subscriptions_product"
        ordering = ["code"]

    def __str__(self) -> str:
        return f"{self.name} ({self.code})"

    @property
    def is_bundle(self) -> bool:
        return self.kind != self.Kind.FLAT

    def provisioned_products(self) -> list["Product"]:
        """The flat products whose CA IDs provision this product."""
        return list(self.components.order_by("code")) if self.is_bundle else [self]


class ExternalSystem(models.Model):
    """A system outside the product that communications are addressed to (e.g. a CA platform)."""

    code = models.CharField(max_length=32, unique=True)
    name = models.CharField(max_length=100)

    class Meta:
        db_table = "subscriptions_externalsystem"

    def __str__(self) -> str:
        return self.name


class ProviderQuerySet(models.QuerySet):
    def of_subscription(self, subscription) -> "ProviderQuerySet":
        """The enabled providers the subscription is distributed to (by a service or a
        device): two subqueries on its own rows, since an OR across joins to services and
        items would join every service of a distributor with every one of its devices."""
        services = subscription.services.values("distributor__provider_id")
        items = subscription.installed_items.values("distributor__provider_id")
        return self.filter(Q(pk__in=services) | Q(pk__in=items), enabled=True)


class Provider(models.Model):
    name = models.CharField(max_length=100, unique=True)
    type = models.CharField(max_length=20, choices=provider_types)
    enabled = models.BooleanField(default=True)
    connection = models.JSONField(
        default=dict, blank=True, help_text="Connection settings (secrets by variable name only)."
    )
    parameters = models.JSONField(
        default=dict, blank=True, help_text="Operation parameters, validated per provider type."
    )
    external_system = models.ForeignKey(
        ExternalSystem,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="providers",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = ProviderQuerySet.as_manager()

    class Meta:
        db_table = "providers_provider"
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class ProductCAId(models.Model):
    """The CA ID (provisioning ID) that identifies a flat product at one provider."""

    product = models.ForeignKey(Product, on_delete=models.CASCADE, related_name="ca_ids")
    provider = models.ForeignKey(Provider, on_delete=models.CASCADE, related_name="ca_ids")
    ca_id = models.CharField("CA ID", max_length=64)

    class Meta:
        db_table = "providers_productcaid"
        verbose_name = "product CA ID"
        constraints = [
            models.UniqueConstraint(fields=["product", "provider"], name="one_ca_id_per_provider"),
            models.UniqueConstraint(fields=["provider", "ca_id"], name="ca_id_unique_at_provider"),
        ]

    def __str__(self) -> str:
        return f"{self.ca_id} @ {self.provider}"

    def clean(self) -> None:
        if self.product_id and self.product.is_bundle:
            raise ValidationError(
                {"product": "A bundle has no CA ID of its own; give its components CA IDs."}
            )


class Distributor(models.Model):
    """A provisioning distributor: one viewing point (box and card) of a provider."""

    provider = models.ForeignKey(Provider, on_delete=models.CASCADE, related_name="distributors")
    code = models.CharField(max_length=32)
    name = models.CharField(max_length=100, blank=True)
    allowed_products = models.ManyToManyField(
        Product,
        blank=True,
        related_name="distributors",
        help_text="The services this viewing point may carry.",
    )
    required_distributor = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="required_by",
        help_text="A viewing point that must already be in use on the subscription.",
    )

    class Meta:
        db_table = "providers_distributor"
        ordering = ["provider_id", "code"]
        constraints = [
            models.UniqueConstraint(fields=["provider", "code"], name="distributor_code_unique")
        ]

    def __str__(self) -> str:
        return f"{self.code} ({self.provider})"

    def clean(self) -> None:
        required = self.required_distributor
        if required is None:
            return
        if self.pk and required.pk == self.pk:
            raise ValidationError({"required_distributor": "A distributor cannot require itself."})
        if required.provider_id != self.provider_id:
            raise ValidationError(
                {"required_distributor": "The required distributor must be of the same provider."}
            )
        seen = {self.pk}
        while required is not None:
            if required.pk in seen:
                raise ValidationError(
                    {"required_distributor": "Required distributors would form a cycle."}
                )
            seen.add(required.pk)
            required = required.required_distributor
