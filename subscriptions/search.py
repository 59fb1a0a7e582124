"""Finding subscriptions by what an agent knows of them: the one search behind every search box
(the back office's lists, the customer accounts, Utilities and the Web API's ``?search=``).

A term of ``MIN_PART`` characters or more matches, whatever its case, any part of the
subscription number and of the customer's name, e-mail or phone. Every term also matches
exactly a subscription number, an account number, and a device's serial number or CA ID (as
typed, in capitals or in small letters): devices are looked up whole, by their own indexes.
A shorter term is matched exactly only: one or two characters have no trigram to look up and
would match most of the base anyway.

Each lookup is its own query on its own index (an OR across the joined tables would read
every subscription) and stops after ``LIMIT`` rows, so a common term costs what a rare one
does; ``Found.truncated`` says that more would have matched. None is ordered: an ORDER BY
with a LIMIT would let the planner walk a whole index in order instead. Parts are found on
PostgreSQL by the trigram indexes of ``models.part_index``, elsewhere by a plain ``LIKE``.
"""

from dataclasses import dataclass

from django.db.models import Q

from core.db import plans_per_call

from .models import CustomerAccount, InstalledItem, Subscription

# The shortest term matched as a part (pg_trgm's trigrams need three characters).
MIN_PART = 3
# The most subscriptions one search returns.
LIMIT = 200

HELP = (
    f"Any part ({MIN_PART} characters or more) of a subscription number or of the customer's "
    "name, e-mail or phone; or a whole account number, or a card's or box's serial number or "
    "CA ID. Capitals or not."
)


@dataclass(frozen=True)
class Found:
    term: str
    subscription_ids: list[int]
    # The customer accounts the term names itself (by name, e-mail, phone or number).
    account_ids: list[int]
    # More subscriptions match than were returned.
    truncated: bool
    limit: int

    @property
    def exact_only(self) -> bool:
        return len(self.term) < MIN_PART

    @property
    def notice(self) -> str:
        """What the person searching should know about the result, or nothing."""
        if self.truncated:
            return (
                f"More than {self.limit} match “{self.term}”: only {self.limit} are shown. "
                "Type more of it to narrow the search."
            )
        if self.exact_only:
            return (
                f"“{self.term}” is matched whole only: type {MIN_PART} characters or more to "
                "find part of a number, a name, an e-mail or a phone."
            )
        return ""


def _spellings(term: str) -> list[str]:
    """The term as typed, in capitals and in small letters: an exact match on a plain index."""
    return list(dict.fromkeys([term, term.upper(), term.lower()]))


def find(term: str, limit: int = LIMIT) -> Found | None:
    """The subscriptions ``term`` names (at most ``limit``), or None for an empty term."""
    term = term.strip()
    if not term:
        return None
    # Planned for the term itself: a prepared statement's generic plan, made for any
    # pattern, reads every customer instead of the trigram indexes.
    with plans_per_call():
        return _find(term, limit)


def _find(term: str, limit: int) -> Found:
    parts = len(term) >= MIN_PART
    spellings = _spellings(term)
    over = limit + 1

    numbers = Q(number__icontains=term) if parts else Q(number__in=spellings)
    by_number = Subscription.objects.filter(numbers).order_by().values_list("pk", flat=True)[:over]

    accounts = Q(number__in=spellings)
    if parts:
        accounts |= Q(name__icontains=term) | Q(email__icontains=term) | Q(phone__icontains=term)
    account_ids = list(
        CustomerAccount.objects.filter(accounts).order_by().values_list("pk", flat=True)[:over]
    )
    by_account = []
    if account_ids:
        by_account = (
            Subscription.objects.filter(account_id__in=account_ids)
            .order_by()
            .values_list("pk", flat=True)[:over]
        )

    # Removed devices too: a card taken away still names the subscription it was on.
    devices = (
        InstalledItem.objects.filter(Q(serial_number__in=spellings) | Q(ca_id__in=spellings))
        .order_by()
        .values_list("subscription_id", flat=True)[:over]
    )

    lookups = [list(by_number), list(devices), list(by_account)]
    ids = list(dict.fromkeys(pk for found in lookups for pk in found))
    truncated = len(account_ids) > limit or len(ids) > limit
    return Found(term, ids[:limit], account_ids[:limit], truncated, limit)


def accounts(found: Found) -> set[int]:
    """The customer accounts a search names: itself, or by one of their subscriptions."""
    of_subscriptions = (
        Subscription.objects.filter(pk__in=found.subscription_ids)
        .order_by()
        .values_list("account_id", flat=True)
    )
    return {*found.account_ids, *of_subscriptions}
