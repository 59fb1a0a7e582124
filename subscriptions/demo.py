"""Company ZX, the seeds' business example, as data: one catalogue for the demo and the tests.

Flexible Bundle A = Geological (CA ID GFA1) + Entertain (EFA2); Flexible Bundle B = Religion
(RFB1) + Baby Channel (BFB2); flat Agriculture (AF1). Viewing points MAIN, TWIN1, TWIN2, TWIN3,
each TWIN requiring the one before it. Every function here is idempotent.
"""

from dataclasses import dataclass

from django.db import transaction

from catalogue.models import (
    Distributor,
    ExternalSystem,
    Product,
    ProductCAId,
    Provider,
    SubscriptionType,
)

from .models import CommunicationQueueEntry

FLAT_PRODUCTS = [
    # code, name, CA ID
    ("GEOLOGICAL", "Geological", "GFA1"),
    ("ENTERTAIN", "Entertain", "EFA2"),
    ("RELIGION", "Religion", "RFB1"),
    ("BABY", "Baby Channel", "BFB2"),
    ("AGRICULTURE", "Agriculture", "AF1"),
]
BUNDLES = [
    ("BUNDLE_A", "Flexible Bundle A", ["GEOLOGICAL", "ENTERTAIN"]),
    ("BUNDLE_B", "Flexible Bundle B", ["RELIGION", "BABY"]),
]
VIEWING_POINTS = ["MAIN", "TWIN1", "TWIN2", "TWIN3"]
# What Company ZX sells on a viewing point, with weights (the demo and the load generator).
OFFERS = [
    (("BUNDLE_A",), 30),
    (("BUNDLE_B",), 20),
    (("AGRICULTURE",), 15),
    (("BUNDLE_A", "AGRICULTURE"), 15),
    (("BUNDLE_B", "AGRICULTURE"), 10),
    (("BUNDLE_A", "BUNDLE_B"), 10),
]


@dataclass
class Catalog:
    provider: Provider
    distributors: dict[str, Distributor]
    products: dict[str, Product]
    types: dict[str, SubscriptionType]
    external_system: ExternalSystem

    @property
    def main(self) -> Distributor:
        return self.distributors["MAIN"]


@transaction.atomic
def ensure_catalog(provider_name: str = "Generic", provider_type: str = "generic") -> Catalog:
    external, _ = ExternalSystem.objects.get_or_create(
        code="ZX-CAS", defaults={"name": "Company ZX CA platform"}
    )
    provider, _ = Provider.objects.get_or_create(
        name=provider_name, defaults={"type": provider_type, "external_system": external}
    )
    products: dict[str, Product] = {}
    for code, name, ca_id in FLAT_PRODUCTS:
        products[code], _ = Product.objects.get_or_create(
            code=code, defaults={"name": name, "kind": Product.Kind.FLAT}
        )
        ProductCAId.objects.get_or_create(
            product=products[code], provider=provider, defaults={"ca_id": ca_id}
        )
    for code, name, components in BUNDLES:
        products[code], _ = Product.objects.get_or_create(
            code=code, defaults={"name": name, "kind": Product.Kind.FLEXIBLE_BUNDLE}
        )
        # One at a time: the through rows' order is the components' order (GFA1 before EFA2).
        for component in components:
            products[code].components.add(products[component])

    distributors: dict[str, Distributor] = {}
    previous = None
    for code in VIEWING_POINTS:
        distributors[code], _ = Distributor.objects.get_or_create(
            provider=provider,
            code=code,
            defaults={"name": f"Viewing point {code}", "required_distributor": previous},
        )
        distributors[code].allowed_products.set(products.values())
        previous = distributors[code]

    types = {}
    for code, name in (("RES", "Residential"), ("BUS", "Business")):
        types[code], _ = SubscriptionType.objects.get_or_create(code=code, defaults={"name": name})
    return Catalog(provider, distributors, products, types, external)


def queue_messages(catalog: Catalog, subscribers: dict, messages, prefix: str) -> None:
    """Pending communications of the catalogue's external system for a demo's message runs:
    (subscriber number, text) pairs, numbered ``<prefix>-CQ-0001``…"""
    with transaction.atomic():
        for n, text in messages:
            CommunicationQueueEntry.objects.get_or_create(
                number=f"{prefix}-CQ-{n:04d}",
                defaults={
                    "external_system": catalog.external_system,
                    "subscription": subscribers[n],
                    "subject": "Demo message",
                    "text": text,
                },
            )
