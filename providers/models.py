"""Provisioning requests, the files they travel in, their archive, connector tokens and
idempotency records (providers and distributors are in the catalogue)."""

import hashlib
import secrets
import uuid

from django.db import models
from django.db.models import Q

from catalogue.models import Distributor, Provider

from . import operations


class ProvisioningRequest(models.Model):
    """One command to one provider. Created by the system only; never edited by hand.

    ``uid`` is the stable unique id sent to the provider so that it can drop a duplicate.
    ``rollback`` records what must be undone if the provider rejects the request.
    """

    class State(models.TextChoices):
        PENDING = "pending", "Pending"
        COMPLETED = "completed", "Completed"
        REJECTED = "rejected", "Rejected"
        FAILED = "failed", "Failed"
        # A reset planned its subscription again after it failed (providers.superseded).
        SUPERSEDED = "superseded", "Superseded"
        ARCHIVED = "archived", "Archived"

    class Priority(models.IntegerChoices):
        # Lower sorts first: Express requests go ahead of Normal ones.
        EXPRESS = 1, "Express"
        NORMAL = 5, "Normal"

    Operation = operations.Operation

    class Trigger(models.TextChoices):
        ACTION = "action", "Subscription action"
        RUN = "run", "Run"
        UTILITY = "utility", "Utility"
        ROLLBACK = "rollback", "Rollback"

    uid = models.UUIDField("unique id", default=uuid.uuid4, unique=True, editable=False)
    command = models.CharField(max_length=60, help_text="The provider's own command name.")
    operation = models.CharField(max_length=20, choices=Operation.choices, default=Operation.OTHER)
    ca_id = models.CharField(
        "service CA ID", max_length=64, blank=True, help_text="The service (component) CA ID."
    )
    parameters = models.JSONField(default=dict)
    # provider, subscription and installed_item lead composite indexes (Meta), which serve
    # their look-ups too: a single-column index each would only slow every insert down.
    provider = models.ForeignKey(
        Provider, on_delete=models.PROTECT, related_name="requests", db_index=False
    )
    # No index of its own: nothing looks requests up by distributor, and each index costs
    # every insert of a run (hundreds of thousands). Deleting a distributor (PROTECT) scans.
    distributor = models.ForeignKey(
        Distributor,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="requests",
        db_index=False,
    )
    subscription = models.ForeignKey(
        "subscriptions.Subscription",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="provisioning_requests",
        db_index=False,
    )
    service = models.ForeignKey(
        "subscriptions.SubscriptionService",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="provisioning_requests",
    )
    installed_item = models.ForeignKey(
        "subscriptions.InstalledItem",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="provisioning_requests",
        help_text="The smartcard (or device) the request is addressed to.",
        db_index=False,
    )
    # Only a request that concerns several devices has rows here (a run makes hundreds of
    # thousands of requests to one card each; a row per request beside ``installed_item``
    # would double what it writes). ``device_ids`` reads both.
    items = models.ManyToManyField(
        "subscriptions.InstalledItem",
        blank=True,
        related_name="+",
        help_text="The devices of a request that concerns several (the members of a pairing); "
        "a request to one device names it in installed_item only.",
    )
    priority = models.PositiveSmallIntegerField(choices=Priority.choices, default=Priority.NORMAL)
    trigger = models.CharField(max_length=10, choices=Trigger.choices)
    trigger_name = models.CharField(
        max_length=60, blank=True, help_text="The action, run or utility that created it."
    )
    state = models.CharField(max_length=10, choices=State.choices, default=State.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    error_code = models.CharField(max_length=60, blank=True)
    response = models.JSONField(null=True, blank=True)
    rollback = models.JSONField(
        default=dict, blank=True, help_text="What must be undone if the provider rejects it."
    )
    process_run = models.ForeignKey(
        "runs.ProcessRun",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="requests",
        help_text="The run that created it, if a run did.",
    )
    # Indexed where set only (Meta): it is set once the answer comes, so a new request
    # skips that index.
    transfer_file = models.ForeignKey(
        "TransferFile",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="requests",
        help_text="File providers: the request file it was exported in.",
        db_index=False,
    )
    # No index: nothing looks requests up by person, and a run writes none (it is NULL there).
    created_by = models.ForeignKey(
        "auth.User",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_index=False,
        help_text="The person whose action or utility made it; empty for runs and rollbacks.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    answered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        permissions = [("retry_provisioningrequest", "Can retry Failed provisioning requests")]
        indexes = [
            # The engine's queue: pending work of one provider, Express first, then oldest.
            models.Index(
                fields=["provider", "priority", "id"],
                condition=Q(state="pending"),
                name="request_pending_queue",
            ),
            models.Index(fields=["subscription", "id"], name="request_by_subscription"),
            models.Index(fields=["installed_item", "id"], name="request_by_card"),
            # What is on its way for a service (the renewals' look-up) goes by the service's
            # own index (its foreign key's) and the reconciler's by subscription: a third
            # index on the service would cost every insert for nothing.
            models.Index(fields=["provider", "state", "created_at"], name="request_by_state"),
            models.Index(
                fields=["transfer_file"],
                condition=Q(transfer_file__isnull=False),
                name="request_by_transfer_file",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.command} #{self.pk}"

    @property
    def device_ids(self) -> list[int]:
        """Every device the request concerns: its items (a pairing's members), else the one
        it is addressed to. Prefetch ``items`` when reading many."""
        members = [item.pk for item in self.items.all()]
        if members or self.installed_item_id is None:
            return members
        return [self.installed_item_id]


class TransferFile(models.Model):
    """A file exchanged with a file-based provider: a request file we sent, or a response file
    we read. The ledger that makes both directions happen once.

    Outgoing: the row and its requests' ``transfer_file`` are committed together as *Prepared*
    before anything is uploaded; the upload then marks it *Uploaded*. A run that dies between
    the two finds the file Prepared and checks the provider's side before uploading again.
    Incoming: one row per response file processed, committed with the answers it carried.
    """

    class Direction(models.TextChoices):
        OUT = "out", "Request file (sent)"
        IN = "in", "Response file (received)"

    class State(models.TextChoices):
        PREPARED = "prepared", "Prepared"
        UPLOADED = "uploaded", "Uploaded"
        ANSWERED = "answered", "Answered"
        REJECTED = "rejected", "Rejected by the provider"
        PROCESSED = "processed", "Processed"
        MALFORMED = "malformed", "Malformed"

    provider = models.ForeignKey(Provider, on_delete=models.PROTECT, related_name="files")
    direction = models.CharField(max_length=3, choices=Direction.choices)
    name = models.CharField(max_length=200)
    state = models.CharField(max_length=10, choices=State.choices)
    records = models.PositiveIntegerField(default=0)
    checksum = models.CharField(max_length=64, blank=True)
    settings = models.JSONField(
        default=dict,
        blank=True,
        help_text="What the file's content was built with (e.g. end dates), so that a retry "
        "rebuilds exactly the same bytes.",
    )
    message = models.TextField(blank=True)
    process_run = models.ForeignKey(
        "runs.ProcessRun", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField()
    uploaded_at = models.DateTimeField(null=True, blank=True)
    processed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["provider", "direction", "name"], name="transfer_file_once"
            )
        ]
        indexes = [
            models.Index(fields=["provider", "direction", "state"], name="transfer_file_by_state")
        ]

    def __str__(self) -> str:
        return self.name


class ConnectorToken(models.Model):
    """A platform connector's key to the Web API, good for one provider's requests only.

    Only a hash of the key is stored; the key itself is shown once, when it is made.
    """

    # secrets.token_urlsafe(32): 32 random bytes in unpadded base64. Authentication looks a
    # key up only when it has this length, so a person's API token costs no query here.
    KEY_LENGTH = 43

    provider = models.ForeignKey(Provider, on_delete=models.CASCADE, related_name="tokens")
    name = models.CharField(max_length=100)
    prefix = models.CharField(
        max_length=8, help_text="The key's first characters, to tell keys apart."
    )
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["provider_id", "name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…) for {self.provider}"

    @staticmethod
    def hash(key: str) -> str:
        return hashlib.sha256(key.encode()).hexdigest()

    @classmethod
    def issue(cls, provider: Provider, name: str) -> tuple["ConnectorToken", str]:
        """Make a token; returns it and the key, which is not stored anywhere."""
        key = secrets.token_urlsafe(32)
        token = cls.objects.create(
            provider=provider, name=name, prefix=key[:8], key_hash=cls.hash(key)
        )
        return token, key


class ArchivedRequest(models.Model):
    """A finished request moved out of the working table; kept, read-only, for look-ups.

    References are kept as plain ids and codes so that archiving never holds up deleting old
    subscriptions or devices, and the working table stays small for the engine's queries.
    """

    original_id = models.BigIntegerField(unique=True)
    uid = models.UUIDField("unique id", unique=True)
    command = models.CharField(max_length=60)
    operation = models.CharField(max_length=20)
    ca_id = models.CharField("service CA ID", max_length=64, blank=True)
    parameters = models.JSONField(default=dict)
    provider = models.ForeignKey(Provider, on_delete=models.PROTECT, related_name="archive")
    distributor_code = models.CharField(max_length=32, blank=True)
    # Indexed with original_id (Meta): a subscription's latest first.
    subscription_id = models.BigIntegerField(null=True, blank=True)
    subscription_number = models.CharField(max_length=32, blank=True, db_index=True)
    service_id = models.BigIntegerField(null=True, blank=True)
    installed_item_id = models.BigIntegerField(null=True, blank=True)
    card_ca_id = models.CharField(max_length=64, blank=True, db_index=True)
    priority = models.PositiveSmallIntegerField(choices=ProvisioningRequest.Priority.choices)
    trigger = models.CharField(max_length=10, choices=ProvisioningRequest.Trigger.choices)
    trigger_name = models.CharField(max_length=60, blank=True)
    final_state = models.CharField(max_length=10, choices=ProvisioningRequest.State.choices)
    attempts = models.PositiveIntegerField(default=0)
    error_code = models.CharField(max_length=60, blank=True)
    last_error = models.TextField(blank=True)
    response = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField()
    answered_at = models.DateTimeField(null=True, blank=True)
    archived_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-original_id"]
        indexes = [
            models.Index(fields=["provider", "created_at"]),
            models.Index(
                fields=["subscription_id", "-original_id"], name="archived_by_subscription"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.command} #{self.original_id} (archived)"


class IdempotencyRecord(models.Model):
    """The first answer to a POST that carried an ``Idempotency-Key`` header.

    The row is inserted (claimed) in the same transaction as the work it guards, under a unique
    constraint on (principal, key): a repeat — even a concurrent one — finds it and gets the
    first answer back instead of doing the work twice.
    """

    principal = models.CharField(max_length=150, help_text="Who sent the key (user id).")
    key = models.CharField(max_length=255)
    method = models.CharField(max_length=10)
    path = models.CharField(max_length=500)
    fingerprint = models.CharField(max_length=64, help_text="SHA-256 of method, path and body.")
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    response = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["principal", "key"], name="idempotency_key_once")
        ]

    def __str__(self) -> str:
        return f"{self.key} ({self.principal})"
