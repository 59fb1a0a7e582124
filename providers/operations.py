"""What a provisioning request does (``ProvisioningRequest.Operation``): a module of its own, so
that building a request's parameters (``parameters``, the adapters' default) needs no model."""

from django.db import models


class Operation(models.TextChoices):
    """What the request does, whatever the provider calls its command."""

    ACTIVATE = "activate", "Activate service"
    DEACTIVATE = "deactivate", "Deactivate service"
    CREATE_PAIRING = "create_pairing", "Create pairing"
    ADD_TO_PAIRING = "add_to_pairing", "Add to existing pairing"
    # Batch providers whose entitlements carry an end date (Conax SMS) extend them.
    RENEW = "renew", "Renew service"
    OTHER = "other", "Other"
