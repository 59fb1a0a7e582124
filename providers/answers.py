"""Answers from a platform: a request accepted or rejected, applied exactly once.

Accepted → ``Completed`` and the provider state updated (a service authorized, a device
initialized). Rejected → ``Rejected`` with the reason, and the change the request carried rolled
back through the action layer, so the rollback is itself recorded on the subscription. The same
answer twice is applied once and then reported as already done; a different answer to a request
already answered is a conflict.
"""

import json
import uuid
from collections import defaultdict, namedtuple
from collections.abc import Sequence
from dataclasses import dataclass

from django.db import connection, transaction
from django.db.models import BooleanField, ExpressionWrapper, Q
from django.utils import timezone

from catalogue.models import Provider
from core import rawsql
from subscriptions import actions
from subscriptions.models import InstalledItem, SubscriptionService

from . import engine, fast_path, reconciler, registry, sealed, wakeups
from .fast_path import accept
from .models import ProvisioningRequest
from .platform_record import AnsweredRequests, still_holding

State = ProvisioningRequest.State
Op = ProvisioningRequest.Operation

APPLIED = "applied"
ALREADY_DONE = "already_done"


class AnswerConflict(Exception):
    def __init__(self, uid: uuid.UUID, state: str, wanted: str):
        self.uid, self.state = uid, state
        super().__init__(
            f"Request {uid} is already {State(state).label}; "
            f"it cannot also be {State(wanted).label}."
        )


@dataclass(frozen=True)
class Outcome:
    request_id: int
    uid: uuid.UUID
    state: str  # the request's state now
    result: str  # APPLIED or ALREADY_DONE


class UnknownRequests(ProvisioningRequest.DoesNotExist):
    def __init__(self, keys: list):
        self.keys = keys
        super().__init__(f"No request {', '.join(map(str, keys))}.")


@dataclass(frozen=True)
class Answer:
    """One platform answer to one request: by its primary key, or by its uid."""

    request_id: int | uuid.UUID
    accepted: bool
    error_code: str = ""
    error_description: str = ""
    response: dict | None = None


FINISHED = (State.COMPLETED, State.REJECTED, State.ARCHIVED)
# What an answer needs to know of its request, read (and locked) for a thousand at a time
# without making a model instance of each.
Locked = namedtuple(
    "Locked",
    (
        "pk",
        "uid",
        "state",
        "operation",
        "service_id",
        "installed_item_id",
        "provider_id",
        "item_removed",  # the request's card has been taken away (removal is for good)
    ),
)


def record_answer(
    request: ProvisioningRequest,
    *,
    accepted: bool,
    error_code: str = "",
    error_description: str = "",
    response: dict | None = None,
) -> Outcome:
    """Apply one answer. Runs in the caller's transaction if there is one."""
    answer = Answer(request.pk, accepted, error_code, error_description, response)
    return record_answers([answer])[0]


def record_answers(answers: Sequence[Answer], *, provider: Provider | None = None) -> list[Outcome]:
    """Apply many answers at once, in one transaction, with a handful of statements whatever
    their number (a connector answers a thousand requests per call). One outcome per answer,
    in order; the same request answered twice alike is applied once. A conflicting answer
    raises ``AnswerConflict``, and an answer to no such request ``UnknownRequests``, before
    anything is written.

    An answer names its request by primary key, or by uid (as a platform knows it) among the
    requests of ``provider``."""
    if not answers:
        return []
    ids = {a.request_id for a in answers if not isinstance(a.request_id, uuid.UUID)}
    uids = {a.request_id for a in answers if isinstance(a.request_id, uuid.UUID)}
    if uids and provider is None:
        raise ValueError("Answers by uid need the provider whose requests they are.")
    if fast_path.enabled() and not uids and all(a.accepted for a in answers):
        return _accept_at_once(answers)
    with transaction.atomic():
        locked = {}
        for row in _lock(ids, uids, provider):
            if row.pk in ids:
                locked[row.pk] = row
            if row.uid in uids and row.provider_id == provider.pk:
                locked[row.uid] = row
        unknown = [a.request_id for a in answers if a.request_id not in locked]
        if unknown:
            raise UnknownRequests(unknown)
        state = {row.pk: row.state for row in locked.values()}
        outcomes: list[Outcome] = []
        applied: dict[int, Answer] = {}
        rows: dict[int, tuple] = {}
        for answer in answers:
            row = locked[answer.request_id]
            pk, uid = row.pk, row.uid
            wanted = State.COMPLETED if answer.accepted else State.REJECTED
            if state[pk] in FINISHED:
                if state[pk] != wanted:
                    raise AnswerConflict(uid, state[pk], wanted)
                outcomes.append(Outcome(pk, uid, wanted, ALREADY_DONE))
                continue
            state[pk] = wanted
            applied[pk], rows[pk] = answer, row
            outcomes.append(Outcome(pk, uid, wanted, APPLIED))
        now = timezone.now()
        _save(applied, now)
        _apply_acceptances([rows[pk] for pk, a in applied.items() if a.accepted], now)
        rejected = [pk for pk, a in applied.items() if not a.accepted]
        if rejected:
            # Rare, and each goes through the action layer: model instances are fine here.
            requests = ProvisioningRequest.objects.in_bulk(rejected)
            for pk in rejected:
                _roll_back(requests[pk])
        return outcomes


def _accept_at_once(answers: Sequence[Answer]) -> list[Outcome]:
    """``record_answers`` for acceptances by id, by one statement (``fast_path.accept``),
    which writes nothing unless every request exists and none is finished otherwise, so that
    the same errors are raised before anything changed."""
    first: dict[int, Answer] = {}
    for answer in answers:
        first.setdefault(answer.request_id, answer)
    encoder = ProvisioningRequest._meta.get_field("response").encoder
    rows = [
        (
            pk,
            None if _plain(a) else a.error_code[:60],
            None if a.response is None else json.dumps(a.response, cls=encoder),
        )
        for pk, a in first.items()
    ]
    found = _execute(accept.statement(len(rows)), accept.params(rows, timezone.now()))
    before = {pk: (uid, state) for pk, uid, state in found}
    unknown = [a.request_id for a in answers if a.request_id not in before]
    if unknown:
        raise UnknownRequests(unknown)
    outcomes, seen = [], set()
    for answer in answers:
        pk = answer.request_id
        uid, state = before[pk]
        if state in FINISHED and state != State.COMPLETED:
            raise AnswerConflict(uid, state, State.COMPLETED)
        done = state == State.COMPLETED or pk in seen
        seen.add(pk)
        outcomes.append(Outcome(pk, uid, State.COMPLETED, ALREADY_DONE if done else APPLIED))
    return outcomes


# The statements of every answer are written by hand: a delivered request is answered alone or
# with one or two others, and compiling a QuerySet for each statement cost more CPU than running
# it. The tables' names come from the models; values go as parameters, prepared for the database
# as the ORM would (SQLite keeps datetimes as text).


def _moment(value):
    return connection.ops.adapt_datetimefield_value(value)


def _execute(sql: str, params: list) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall() if cursor.description else []


def _lock(ids: set, uids: set, provider: Provider | None) -> list[Locked]:
    """The answered requests, by primary key or by uid among ``provider``'s, locked in id order
    so that two callers answering overlapping sets cannot deadlock."""
    which, params = [], []
    if ids:
        which.append(f"id IN ({rawsql.marks(ids)})")
        params += ids
    if uids:
        uid = ProvisioningRequest._meta.get_field("uid")
        which.append(f"(provider_id = %s AND uid IN ({rawsql.marks(uids)}))")
        params += [provider.pk, *(uid.get_db_prep_value(u, connection) for u in uids)]
    lock = " FOR UPDATE" if connection.features.has_select_for_update else ""
    rows = _execute(
        "SELECT id, uid, state, operation, service_id, installed_item_id, provider_id, "  # noqa: S608 (names from the models)
        f"(SELECT i.removed_at IS NOT NULL FROM {rawsql.table(InstalledItem)} i "
        "WHERE i.id = installed_item_id) "
        f"FROM {rawsql.table(ProvisioningRequest)} WHERE {' OR '.join(which)} ORDER BY id{lock}",
        params,
    )
    # SQLite keeps a uuid as text.
    return [
        Locked(pk, u if isinstance(u, uuid.UUID) else uuid.UUID(u), *rest, bool(removed))
        for pk, u, *rest, removed in rows
    ]


def _save(applied: dict[int, Answer], now) -> None:
    # The common answer (accepted, nothing more to keep) is one UPDATE for the lot.
    plain = [pk for pk, a in applied.items() if _plain(a)]
    if plain:
        _execute(
            f"UPDATE {rawsql.table(ProvisioningRequest)} SET state = %s, answered_at = %s, "  # noqa: S608 (names from the model)
            f"updated_at = %s, parameters = {_without_secret()} "
            f"WHERE id IN ({rawsql.marks(plain)})",
            [State.COMPLETED.value, _moment(now), _moment(now), *plain],
        )
    rest = [(pk, a) for pk, a in applied.items() if not _plain(a)]
    if rest:
        _save_each(rest, now)


def _without_secret() -> str:
    """The answered request's parameters without its sealed PIN: the platform has it now, and a
    request answered (Completed or Rejected) is never sent again. A Failed one keeps it, since
    it may be retried."""
    return sealed.without_pin_sql("parameters", connection.vendor)


def _plain(answer: Answer) -> bool:
    return answer.accepted and not answer.error_code and answer.response is None


def _save_each(answers: list[tuple[int, Answer]], now) -> None:
    """Answers that keep more than their state — an error code, the reason of a rejection, the
    platform's response — one UPDATE each, sent together. A rejection's description becomes
    the request's last error; an acceptance leaves that as it was, and an answer without a
    response leaves the request's response as it was."""
    response = ProvisioningRequest._meta.get_field("response")
    rows = [
        (
            State.COMPLETED.value if a.accepted else State.REJECTED.value,
            _moment(now),
            _moment(now),
            a.error_code[:60],
            None if a.accepted else a.error_description,
            None if a.response is None else response.get_db_prep_save(a.response, connection),
            pk,
        )
        for pk, a in answers
    ]
    with connection.cursor() as cursor:
        cursor.executemany(
            f"UPDATE {rawsql.table(ProvisioningRequest)} SET state = %s, answered_at = %s, "  # noqa: S608 (the name from the model)
            "updated_at = %s, error_code = %s, last_error = COALESCE(%s, last_error), "
            f"response = COALESCE(%s, response), parameters = {_without_secret()} WHERE id = %s",
            rows,
        )


def _apply_acceptances(rows: list[Locked], now) -> None:
    """The provider holds what the accepted requests asked for: set-based, by operation.
    Activations before deactivations, the order in which a provider received them."""
    by_op: dict[str, list[Locked]] = defaultdict(list)
    for row in rows:
        by_op[row.operation].append(row)
    services, items = rawsql.table(SubscriptionService), rawsql.table(InstalledItem)
    activated = {row.service_id for row in by_op[Op.ACTIVATE] if row.service_id}
    if activated:
        _execute(
            f"UPDATE {services} SET authorized = %s, authorization_date = %s "  # noqa: S608 (names from the models)
            f"WHERE id IN ({rawsql.marks(activated)})",
            [True, _moment(now), *activated],
        )
    deactivated = by_op[Op.DEACTIVATE]
    # Read with the request: most deactivations are of a service on a card still in use, and a
    # statement that finds nothing to update is a round trip for nothing.
    removed = {row.installed_item_id for row in deactivated if row.item_removed}
    if removed:
        # A device taken away: once its services are cancelled the provider may forget it,
        # unless a cancellation of it was refused (it still holds that).
        _execute(
            f"UPDATE {items} AS i SET initialized = %s "  # noqa: S608 (names from the models)
            f"WHERE id IN ({rawsql.marks(removed)}) AND removed_at IS NOT NULL "
            f"AND NOT {still_holding('i')}",
            [False, *removed],
        )
    cancelled = {row.service_id for row in deactivated if row.service_id}
    if cancelled:
        on = sorted(state.value for state in SubscriptionService.ON_STATES)
        _execute(
            f"UPDATE {services} SET authorized = %s, authorization_date = %s, updated_at = %s "  # noqa: S608 (names from the models)
            f"WHERE id IN ({rawsql.marks(cancelled)}) AND NOT (state IN ({rawsql.marks(on)}))",
            [False, _moment(now), _moment(now), *cancelled, *on],
        )
    paired = [row.pk for row in by_op[Op.CREATE_PAIRING] + by_op[Op.ADD_TO_PAIRING]]
    if paired:
        Through = ProvisioningRequest.items.through
        # Its devices in use are registered; the removed boxes it left out are forgotten.
        InstalledItem.objects.filter(
            pk__in=Through.objects.filter(provisioningrequest_id__in=paired).values(
                "installeditem_id"
            )
        ).update(
            initialized=ExpressionWrapper(Q(removed_at__isnull=True), output_field=BooleanField())
        )


ROLLBACK = "provisioning_rollback"  # the action name of a rollback, and its requests' trigger


def _roll_back(request: ProvisioningRequest) -> None:
    """Undo what the rejected request carried, through the actions (docs/architecture.md)."""
    reason = f"Request {request.uid} ({request.command}) rejected"
    if request.error_code or request.last_error:
        reason += f": {request.error_code} {request.last_error}".rstrip()
    service = (
        SubscriptionService.objects.filter(pk=request.service_id).first()
        if request.service_id
        else None
    )
    if request.operation == Op.ACTIVATE and service is not None:
        actions.switch_off_rejected_service(service, reason=reason, record=AnsweredRequests())
    elif request.operation == Op.DEACTIVATE and service is not None:
        by_rollback = request.trigger_name == ROLLBACK
        actions.restore_rejected_deactivation(
            service,
            request.installed_item,
            reason=reason,
            record=AnsweredRequests(),
            by_rollback=by_rollback,
            ca_id=request.ca_id,
        )
        if not by_rollback:
            _give_back_cancelled_components(request, service)
    elif request.operation in (Op.CREATE_PAIRING, Op.ADD_TO_PAIRING) and request.subscription_id:
        # Its devices stay not initialized: the acceptance that would register them never came.
        actions.record_rejected_pairing(request.subscription, reason=reason)


def _give_back_cancelled_components(request: ProvisioningRequest, service) -> None:
    """A cancellation rejected for one component of a service that stays off: the platform
    still holds that, and ``authorized`` says it holds the service. The components whose
    cancellation it accepted (or is about to receive) are activated again, on every card in
    use, so that it holds the whole service as before the change, as the flag says: a reset
    then cancels it whole, and the service switched on again needs nothing more. (A service
    back on is re-activated by the reconciler itself.)"""
    service.refresh_from_db(fields=["state"])
    item = request.installed_item
    if service.is_on or item is None or not item.in_use or not item.initialized:
        return
    last: dict[tuple[int, str], str] = {}
    for item_id, ca_id, operation in (
        ProvisioningRequest.objects.filter(
            service=service,
            provider_id=request.provider_id,
            installed_item__removed_at__isnull=True,
            installed_item__initialized=True,
            operation__in=(Op.ACTIVATE, Op.DEACTIVATE),
            state__in=(State.PENDING, State.COMPLETED),  # a rejected one changed nothing
        )
        .order_by("pk")
        .values_list("installed_item_id", "ca_id", "operation")
    ):
        last[(item_id, ca_id)] = operation
    commands = [
        reconciler.Command(
            Op.ACTIVATE,
            service.subscription_id,
            service.distributor_id,
            item_id,
            service_id=service.pk,
            ca_id=ca_id,
        )
        for (item_id, ca_id), operation in last.items()
        if operation == Op.DEACTIVATE
    ]
    if not commands:
        return
    provider = request.provider
    engine.create_requests(
        provider, commands, trigger=ProvisioningRequest.Trigger.ACTION, trigger_name=ROLLBACK
    )
    if registry.adapter_for(provider).delivery == registry.PUSH:
        wakeups.wake_after_commit(provider.pk, realtime=True)
