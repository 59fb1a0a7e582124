"""Waking delivery up: at most one ``deliver`` task per provider, queued or running.

Every action that makes requests for a push provider wakes its delivery after commit. One task
per action would make a worker receive, set up and finish a task for each request, and the web
server send one. Instead, two Redis keys per provider:

- the *flag* (``SET NX`` with a short expiry) stands while a task is queued or running; only
  the wake-up that sets it sends a task;
- the *bell* (a list) is rung by every wake-up, flag or not.

A running task clears the bell, then drains what is due; afterwards it waits a moment for the
bell (``LINGER_SECONDS``: rung, it lets a few more requests gather, ``tasks.GATHER_SECONDS``,
and drains again), then drops the flag and looks at the bell.
Silent: every request committed so far was claimed by the drain, and a later one finds no
flag and sends a task. Rung: a request committed during the drain, whose wake-up saw the flag
and sent nothing, so the task takes the flag back and drains again (or, when that wake-up's
task is already on its way, stops). Under a steady stream of actions one task goes on
draining, with no Celery message per action. A lost task holds wake-ups back only until the
flag expires, and the sweeper wakes delivery wherever work is due anyway.

A wake-up by an action (``realtime=True``) also marks real-time work as flowing for
``BUSY_SECONDS``, in the same round trip: batch loops give way to it (``providers.give_way``).

Without Redis (the embedded filesystem broker) every wake-up sends its task, as before.

A wake-up never fails its caller: the action that made the request has committed, and when Redis
is down or frozen (each call gives up after ``REDIS_TIMEOUT_SECONDS``) the sweeper wakes delivery
once it is back.
"""

import logging
from functools import cache

from celery import current_app
from django.conf import settings
from django.db import transaction

log = logging.getLogger(__name__)

# Sent by name: the task (``providers.tasks``) runs delivery, which wakes delivery.
DELIVER_TASK = "providers.tasks.deliver"
PREFIX = "crm:deliver-woken:"
BELL_PREFIX = "crm:deliver-bell:"
# Long enough to cover a task's time in the queue on a busy worker; a flag that outlives its
# task only delays the next wake-up by this much (and the sweeper by its period at most). A
# running task renews it on every pass.
EXPIRY_SECONDS = 5
# After a pass that found nothing more, a task waits this long for the bell before it stops,
# flag held: under a steady stream of actions one task goes on draining, and the worker gets
# no Celery message for every lull of a few milliseconds (receiving, starting and
# acknowledging one cost the real-time worker more than delivering a request). A ring ends
# the wait at once. Well under the flag's expiry; a provider's idle task holds its pool
# process this long at most.
LINGER_SECONDS = 0.5
# Set by every action's wake-up: while it stands, real-time work is flowing. Long enough to
# span the gaps of a steady stream of actions; short, so that a batch loop goes on soon after
# the last one.
BUSY_KEY = "crm:realtime-busy"
BUSY_SECONDS = 1.0


@cache
def _redis():
    url = settings.CELERY_BROKER_URL
    if not url.startswith(("redis://", "rediss://")):
        return None
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    # Every call fails after the timeout, without redis-py's default retries (ten of them):
    # a web request waits on a frozen Redis that long at most.
    timeout = settings.REDIS_TIMEOUT_SECONDS
    return redis.Redis.from_url(
        url, socket_timeout=timeout, socket_connect_timeout=timeout, retry=Retry(NoBackoff(), 0)
    )


def _key(provider_id: int) -> str:
    return f"{PREFIX}{provider_id}"


def _bell(provider_id: int) -> str:
    return f"{BELL_PREFIX}{provider_id}"


def wake(provider_id: int, *, realtime: bool = False) -> None:
    """Make sure a ``deliver`` task for the provider will claim what has committed so far.
    ``realtime``: woken by an action (an agent's, or the Web API's), which batch work gives
    way to."""
    client = _redis()
    if client is not None:
        try:
            pipe = client.pipeline(transaction=False)
            if realtime:
                pipe.set(BUSY_KEY, b"1", px=int(BUSY_SECONDS * 1000))
            pipe.rpush(_bell(provider_id), b"1")
            pipe.expire(_bell(provider_id), EXPIRY_SECONDS)
            pipe.set(_key(provider_id), b"1", nx=True, ex=EXPIRY_SECONDS)
            if not pipe.execute()[-1]:
                return  # a task is queued or running, and will claim this request too
        except redis_errors() as error:
            # The broker is this Redis: a task would not get through either.
            log.warning("Could not ring for delivery (%s); the sweeper will wake it", error)
            return
    try:
        # No retries: the caller (a web request) waits for one attempt at most, and a
        # wake-up that is lost delays delivery only until the sweeper's next pass.
        current_app.send_task(DELIVER_TASK, (provider_id,), retry=False)
    except broker_errors() as error:
        log.warning("Could not send a delivery task (%s); the sweeper will wake it", error)
        release(provider_id, take_back=False)  # the flag would hold the next wake-ups back


def wake_after_commit(provider_id: int, *, realtime: bool) -> None:
    # Robust: the change has committed by then, and a wake-up that cannot be sent must not
    # turn it into an error; the sweeper wakes delivery for what is due. A lambda, not a
    # functools.partial: Django logs a failed robust hook by its __qualname__, which a
    # partial lacks (the logging itself raised, and the action answered 500).
    transaction.on_commit(lambda: wake(provider_id, realtime=realtime), robust=True)


def draining(provider_id: int) -> None:
    """A ``deliver`` task starts a pass: what rang so far, the pass claims; the flag stays."""
    client = _redis()
    if client is not None:
        try:
            pipe = client.pipeline(transaction=False)
            pipe.delete(_bell(provider_id))
            pipe.expire(_key(provider_id), EXPIRY_SECONDS)
            pipe.execute()
        except redis_errors() as error:
            log.warning("Could not clear the bell (%s); the next pass may find nothing", error)


def wait_for_ring(provider_id: int, seconds: float = LINGER_SECONDS) -> bool:
    """While the task holds the flag: True as soon as the bell rings, False after
    ``seconds`` of silence (at once without Redis)."""
    client = _redis()
    if client is None:
        return False
    try:
        return client.blpop([_bell(provider_id)], timeout=seconds) is not None
    except redis_errors() as error:
        log.warning("Could not wait for the bell (%s); the task stops", error)
        return False


def release(provider_id: int, *, take_back: bool = True) -> bool:
    """After a pass: True when the task may stop (nothing rang during it, or the wake-up that
    did has sent its own task); False when it has taken the flag back to drain again.
    ``take_back=False``: only drop the flag (a task that is handing over or failing)."""
    client = _redis()
    if client is None:
        return True
    try:
        if not take_back:
            client.delete(_key(provider_id))
            return True
        pipe = client.pipeline(transaction=False)
        pipe.delete(_key(provider_id))
        pipe.llen(_bell(provider_id))
        if not pipe.execute()[-1]:
            return True
        return not client.set(_key(provider_id), b"1", nx=True, ex=EXPIRY_SECONDS)
    except redis_errors() as error:
        log.warning("Could not release the wake-up flag (%s); it expires by itself", error)
        return True


def realtime_busy() -> bool:
    """Whether an action has woken delivery within the last ``BUSY_SECONDS`` (never, without
    Redis). A Redis failure reads as not busy: batch work goes on."""
    client = _redis()
    if client is None:
        return False
    try:
        return bool(client.exists(BUSY_KEY))
    except redis_errors() as error:
        log.warning("Could not read whether real-time work is flowing (%s)", error)
        return False


def forget_all() -> None:
    """Clear every flag and bell (the tests, after purging the queues they stood for)."""
    client = _redis()
    if client is not None:
        keys = [
            *client.scan_iter(match=f"{PREFIX}*"),
            *client.scan_iter(match=f"{BELL_PREFIX}*"),
            BUSY_KEY,
        ]
        if keys:
            client.delete(*keys)


def redis_errors() -> tuple[type[Exception], ...]:
    import redis

    return (redis.RedisError, OSError)


def broker_errors() -> tuple[type[Exception], ...]:
    """What sending a task raises when the broker cannot take it (kombu's, wrapped or not)."""
    from kombu.exceptions import OperationalError

    return (OperationalError, *redis_errors())
