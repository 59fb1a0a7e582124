"""*Get Pending*'s pages: a provider's Pending requests in sending order, one page at a time.

The order: a subscription's Pending requests travel together, as a group, in creation order. A
group goes where its *leader* goes — its most urgent request, the oldest of them if there are
several — so Express groups come first, then the group whose leader has waited longest.

A page is found by seeking, never by sorting everything that is Pending: the leaders of one
priority are, by id, a range of the ``request_pending_queue`` index (provider, priority, id),
so a page reads about as many rows as it returns however many are Pending. The cursor is the
last row given: (its group's priority, its group's leader, its id). A group cut by the end of
a page goes on at the start of the next; a group whose leader is behind the cursor was given
already. Reading changes nothing: whatever stays Pending comes again on the next pass, and a
request that joins a group already given (a new Express one, a retried one) waits for it.
"""

import base64
import binascii
from collections import defaultdict
from datetime import datetime

from django.db.models import F
from django.utils import timezone
from rest_framework import serializers

from catalogue.models import Provider
from providers.models import ProvisioningRequest

Req = ProvisioningRequest
Cursor = tuple[int, int, int]  # (group priority, group leader id, last request id)

FIELDS = {
    "subscription_number": F("subscription__number"),
    "distributor_code": F("distributor__code"),
    "card_ca_id": F("installed_item__ca_id"),
}
COLUMNS = ("uid", "id", "command", "priority", "created_at", "parameters")


def encode_cursor(position: Cursor) -> str:
    return base64.urlsafe_b64encode(":".join(map(str, position)).encode()).decode()


def decode_cursor(value: str) -> Cursor:
    try:
        parts = base64.urlsafe_b64decode(value.encode()).decode().split(":")
        group_priority, group_leader, request_id = (int(p) for p in parts)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise serializers.ValidationError("Invalid cursor.") from None
    return group_priority, group_leader, request_id


def pending_page(
    provider: Provider, *, command: str | None = None, page_size: int = 100, cursor=None
) -> tuple[list[dict], str | None]:
    """One page: (the requests as Get Pending gives them, the next cursor or None)."""
    queue = Queue(provider, command)
    wanted = page_size + 1  # one more than the page tells whether there is a next one
    # The order is worked out on narrow rows (id, subscription, priority); only the page's
    # own rows are then read in full, with their parameters and joins.
    page: list[tuple[int, int, int]] = []  # (group priority, group leader, request id)
    if cursor:
        priority, after, last = cursor
        cut = _group_of(after)
        if cut is not None:
            rest = queue.members({cut}, above=last).get(cut, [])
            page += [(priority, after, pk) for _, pk in rest[:wanted]]
    else:
        priority, after, cut = queue.next_priority(None), 0, None
    while priority is not None and len(page) < wanted:
        page += queue.groups(priority, after, cut, wanted - len(page))
        if len(page) < wanted:
            priority, after = queue.next_priority(priority), 0
    more = len(page) > page_size
    page = page[:page_size]
    rows = Req.objects.filter(pk__in=[pk for _, _, pk in page]).values(*COLUMNS, **FIELDS)
    by_id = {row["id"]: row for row in rows}
    zone = timezone.get_current_timezone()
    # A request archived since its id was read is left out; the cursor stands all the same.
    results = [_out(by_id[pk], zone) for _, _, pk in page if pk in by_id]
    if not more:
        return results, None
    return results, encode_cursor(page[-1])


def _group_of(request_id: int) -> int | None:
    """The subscription of the request a page's last group is led by, if any."""
    return Req.objects.filter(pk=request_id).values_list("subscription_id", flat=True).first()


class Queue:
    """A provider's Pending requests (of one command, if given), as the pages read them."""

    def __init__(self, provider: Provider, command: str | None):
        self.provider, self.command = provider, command
        self.pending = Req.objects.filter(provider=provider, state=Req.State.PENDING)
        if command:
            self.pending = self.pending.filter(command=command)

    def next_priority(self, above: int | None) -> int | None:
        """The most urgent priority Pending after ``above``: one step down the queue index."""
        pending = self.pending if above is None else self.pending.filter(priority__gt=above)
        return pending.order_by("priority").values_list("priority", flat=True).first()

    def groups(self, priority: int, after: int, cut: int | None, wanted: int):
        """At least ``wanted`` requests if there are as many (the last group may overrun),
        in whole groups led by requests of this priority with an id above ``after``, in their
        leaders' order; ``cut`` is the subscription of a group already begun, which goes on
        only where it was cut."""
        found: list[tuple[int, int, int]] = []
        while len(found) < wanted:
            window = list(
                self.pending.filter(priority=priority, id__gt=after)
                .order_by("priority", "id")
                .values_list("id", "subscription_id")[: wanted - len(found)]
            )
            if not window:
                break
            members = self.members({s for _, s in window if s is not None and s != cut})
            for pk, subscription in window:
                if subscription is None:
                    found.append((priority, pk, pk))  # no subscription: a group of its own
                    continue
                group = members.pop(subscription, None)
                if not group:
                    continue  # given with its group already, or goes on from a cut
                if min(group) != (priority, pk):
                    # Led by a more urgent or older request: that group was on an earlier page.
                    continue
                found += [(priority, pk, member) for _, member in group]
            after = window[-1][0]
        return found

    def members(self, subscriptions: set[int], above: int = 0) -> dict[int, list[tuple]]:
        """The Pending requests of these subscriptions (with an id above ``above``), as
        (priority, id) in id order, by subscription.

        Looked up by subscription alone, and sifted here: given "Pending" as well, a planner
        whose statistics are stale (just after a run made a hundred thousand requests, the
        partial queue index looks empty) would read every Pending request for each page."""
        rows = Req.objects.filter(subscription_id__in=subscriptions)
        if above:
            rows = rows.filter(id__gt=above)
        members: dict[int, list[tuple]] = defaultdict(list)
        for pk, subscription, priority, state, provider, command in rows.values_list(
            "id", "subscription_id", "priority", "state", "provider_id", "command"
        ):
            if (
                state == Req.State.PENDING
                and provider == self.provider.pk
                and (not self.command or command == self.command)
            ):
                members[subscription].append((priority, pk))
        for group in members.values():
            group.sort(key=lambda member: member[1])
        return members


def _timestamp(value: datetime, zone) -> str:
    """As DRF's DateTimeField gives it (ISO 8601, "Z" for UTC), without its per-value cost."""
    text = value.astimezone(zone).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def _out(row: dict, zone) -> dict:
    return {
        "uid": str(row["uid"]),
        "id": row["id"],
        "command": row["command"],
        "priority": "EXPRESS" if row["priority"] == Req.Priority.EXPRESS else "NORMAL",
        "created_at": _timestamp(row["created_at"], zone),
        "subscription": row["subscription_number"],
        "distributor": row["distributor_code"],
        "card_ca_id": row["card_ca_id"],
        "parameters": row["parameters"],
    }
