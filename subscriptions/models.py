"""The subscription domain: who subscribes to what, on which devices, through which viewing point.

State here is the *wanted* state. What the CA system actually holds is kept beside it in the
``authorized`` flag of a subscription service and the ``initialized`` flag of an installed item;
the provisioning engine compares the two. Nothing here is changed except through
``subscriptions.actions``.
"""

from django.contrib.postgres.indexes import GinIndex, OpClass
from django.db import models
from django.db.models import Q
from django.db.models.functions import Upper

from catalogue.models import Distributor, ExternalSystem, Product, SubscriptionType


def part_index(field: str, name: str) -> GinIndex:
    """A trigram index for matching any part of ``field`` whatever its case (``icontains``);
    PostgreSQL only (``subscriptions.search``; the migration skips it elsewhere)."""
    return GinIndex(OpClass(Upper(field), name="gin_trgm_ops"), name=name)


class CustomerAccount(models.Model):
    number = models.CharField(max_length=32, unique=True)
    name = models.CharField(max_length=200)
    email = models.EmailField(blank=True)
    # The database's default too: bulk loads that name no phone column still insert.
    phone = models.CharField(max_length=32, blank=True, default="", db_default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["number"]
        indexes = [
            part_index("name", "account_name_part"),
            part_index("email", "account_email_part"),
            part_index("phone", "account_phone_part"),
        ]

    def __str__(self) -> str:
        return f"{self.number} {self.name}"


class Subscription(models.Model):
    class State(models.TextChoices):
        EFFECTIVE = "effective", "Effective"
        NOT_EFFECTIVE = "not_effective", "Not Effective"
        SHORT_TERM_EFFECTIVE = "short_term_effective", "Short Term Effective"
        SHORT_TERM_NOT_EFFECTIVE = "short_term_not_effective", "Short Term Not Effective"
        IN_RESTING = "in_resting", "In Resting"
        TERMINATED = "terminated", "Terminated"

    number = models.CharField(max_length=32, unique=True)
    account = models.ForeignKey(
        CustomerAccount, on_delete=models.PROTECT, related_name="subscriptions"
    )
    subscription_type = models.ForeignKey(
        SubscriptionType, on_delete=models.PROTECT, related_name="subscriptions"
    )
    state = models.CharField(max_length=30, choices=State.choices, default=State.EFFECTIVE)
    created_at = models.DateTimeField(db_index=True)
    updated_at = models.DateTimeField(auto_now=True)
    terminated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["number"]
        permissions = [("perform_actions", "Can perform subscription actions")]
        indexes = [
            models.Index(fields=["subscription_type", "created_at"]),
            part_index("number", "subscription_number_part"),
        ]

    def __str__(self) -> str:
        return self.number


class SubscriptionService(models.Model):
    """One product on one subscription, distributed through one provisioning distributor.

    ``authorized`` / ``authorization_date`` are the provider's side: whether the CA system has
    this service active on the distributor's devices, and since when. Moving a service to
    another distributor ends this row (``Removed``) and starts a new one, so the flag is always
    per service and distributor.
    """

    class State(models.TextChoices):
        EFFECTIVE = "effective", "Effective"
        SHORT_TERM_EFFECTIVE = "short_term_effective", "Short Term Effective"
        NOT_EFFECTIVE = "not_effective", "Not Effective"
        REGRETTED = "regretted", "Regretted"
        SWAPPED = "swapped", "Swapped"
        REMOVED = "removed", "Removed"
        CANCELLED = "cancelled", "Cancelled"
        IN_RESTING = "in_resting", "In Resting"
        SHORT_TERM_NOT_EFFECTIVE = "short_term_not_effective", "Short Term Not Effective"

    ON_STATES = frozenset({State.EFFECTIVE, State.SHORT_TERM_EFFECTIVE})
    # Ended rows never come back on: a swapped-away, removed or cancelled service is history.
    FINAL_STATES = frozenset({State.REGRETTED, State.REMOVED, State.CANCELLED})

    subscription = models.ForeignKey(
        Subscription, on_delete=models.CASCADE, related_name="services"
    )
    product = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="+")
    distributor = models.ForeignKey(Distributor, on_delete=models.PROTECT, related_name="services")
    state = models.CharField(max_length=30, choices=State.choices, db_index=True)
    swapped_from = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="swapped_to",
        help_text="The service this one replaced in a swap (a regret restores it).",
    )
    authorized = models.BooleanField(
        default=False, help_text="Active at the provider on this distributor."
    )
    authorization_date = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["subscription_id", "id"]
        indexes = [
            models.Index(fields=["subscription", "state"]),
            models.Index(fields=["distributor", "state", "authorized"]),
        ]

    def __str__(self) -> str:
        return f"{self.product.code} on {self.distributor.code} ({self.get_state_display()})"

    @property
    def is_on(self) -> bool:
        return self.state in self.ON_STATES

    @property
    def service_type(self) -> str:
        return self.product.service_type


class InstalledItem(models.Model):
    """A physical good installed on a subscription: a smartcard or a set-top box.

    ``initialized`` is the provider's side: whether the CA system has registered (paired) it.
    A removed item keeps its row for history; only items without ``removed_at`` are in use.
    """

    class Kind(models.TextChoices):
        SMARTCARD = "smartcard", "Smartcard"
        STB = "stb", "Set-top box"

    subscription = models.ForeignKey(
        Subscription, on_delete=models.CASCADE, related_name="installed_items"
    )
    kind = models.CharField(max_length=10, choices=Kind.choices)
    serial_number = models.CharField(max_length=64)
    ca_id = models.CharField("CA ID", max_length=64)
    product_code = models.CharField(max_length=32, blank=True)
    description = models.CharField(max_length=200, blank=True)
    distributor = models.ForeignKey(
        Distributor, on_delete=models.PROTECT, related_name="installed_items"
    )
    initialized = models.BooleanField(default=False, help_text="Registered at the provider.")
    installed_at = models.DateTimeField(auto_now_add=True)
    removed_at = models.DateTimeField(null=True, blank=True)
    replaced_by = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="replaces"
    )

    class Meta:
        ordering = ["subscription_id", "id"]
        constraints = [
            # A device is in use on at most one subscription at a time.
            models.UniqueConstraint(
                fields=["kind", "serial_number"],
                condition=Q(removed_at__isnull=True),
                name="installed_item_serial_in_use_once",
                violation_error_message="This device is already installed on a subscription.",
            ),
            models.UniqueConstraint(
                fields=["kind", "ca_id"],
                condition=Q(removed_at__isnull=True),
                name="installed_item_ca_id_in_use_once",
                violation_error_message="This CA ID is already in use on a subscription.",
            ),
        ]
        indexes = [
            models.Index(fields=["ca_id"]),
            models.Index(fields=["serial_number"]),
            # The reconciler's lookup: the cards on one viewing point of one subscription.
            models.Index(
                fields=["subscription", "distributor", "kind"], name="item_by_viewing_point"
            ),
            # The devices still to register with their provider: few, whatever the base.
            models.Index(
                fields=["subscription", "distributor"],
                condition=Q(initialized=False, removed_at__isnull=True),
                name="item_not_registered",
            ),
            # Boxes taken away that their provider still pairs (a rejected re-pairing): fewer.
            models.Index(
                fields=["subscription", "distributor"],
                condition=Q(kind="stb", initialized=True, removed_at__isnull=False),
                name="item_removed_still_paired",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.serial_number}"

    @property
    def in_use(self) -> bool:
        return self.removed_at is None


class Pairing(models.Model):
    """Smartcards and set-top boxes paired at the CA system, on one viewing point."""

    subscription = models.ForeignKey(
        Subscription, on_delete=models.CASCADE, related_name="pairings"
    )
    distributor = models.ForeignKey(Distributor, on_delete=models.PROTECT, related_name="pairings")
    items = models.ManyToManyField(InstalledItem, related_name="pairings")
    created_at = models.DateTimeField(auto_now_add=True)
    cancelled_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["subscription_id", "id"]

    def __str__(self) -> str:
        return f"Pairing {self.pk} on {self.distributor.code}"


class CommunicationQueueEntry(models.Model):
    """An outgoing communication waiting to be sent to a subscriber's device by a message run."""

    class State(models.TextChoices):
        PENDING = "pending", "Pending"
        COMPLETED = "completed", "Completed"
        FAILED = "failed", "Failed"

    class Direction(models.TextChoices):
        OUTGOING = "outgoing", "Outgoing"
        INCOMING = "incoming", "Incoming"

    number = models.CharField(max_length=32, unique=True)
    external_system = models.ForeignKey(
        ExternalSystem, on_delete=models.PROTECT, related_name="communications"
    )
    subscription = models.ForeignKey(
        Subscription,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="communications",
    )
    direction = models.CharField(
        max_length=10, choices=Direction.choices, default=Direction.OUTGOING
    )
    subject = models.CharField(max_length=200, blank=True)
    text = models.TextField()
    state = models.CharField(max_length=10, choices=State.choices, default=State.PENDING)
    failure_reason = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    processed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at", "id"]
        verbose_name_plural = "communication queue entries"
        indexes = [models.Index(fields=["external_system", "state", "direction"])]

    def __str__(self) -> str:
        return self.number


class Segment(models.Model):
    """A named set of subscriptions (fingerprinting runs include and exclude segments)."""

    code = models.CharField(max_length=32, unique=True)
    name = models.CharField(max_length=100)
    subscriptions = models.ManyToManyField(Subscription, related_name="segments", blank=True)

    class Meta:
        ordering = ["code"]

    def __str__(self) -> str:
        return self.name


class SubscriptionEvent(models.Model):
    """The audit trail: every action performed on a subscription (and every utility used on
    it), with what it changed and who did it. ``subscriptions.history`` says it in words."""

    class Source(models.TextChoices):
        PERSON = "person", "Person"
        RUN = "run", "Run"
        CONNECTOR = "connector", "Connector"
        ANSWER = "answer", "CA's answer"
        SYSTEM = "system", "System"

    subscription = models.ForeignKey(Subscription, on_delete=models.CASCADE, related_name="events")
    action = models.CharField(max_length=50)
    performed_by = models.ForeignKey(
        "auth.User", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Who did it when no person did (or beside the person: the run that one started); empty
    # on events written before it was kept, which the history tells from the action.
    source = models.CharField(max_length=10, choices=Source.choices, blank=True)
    source_name = models.CharField(
        max_length=120, blank=True, help_text="The run, connector or request that did it."
    )
    performed_at = models.DateTimeField(auto_now_add=True)
    reason = models.CharField(max_length=300, blank=True)
    changes = models.JSONField(default=dict)

    class Meta:
        # Newest first; ids grow with time and are indexed, unlike a sort on performed_at.
        ordering = ["-id"]
        indexes = [models.Index(fields=["subscription", "-id"], name="event_by_subscription")]

    def __str__(self) -> str:
        return f"{self.action} on {self.subscription_id}"
