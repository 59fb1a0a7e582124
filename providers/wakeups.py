"""Waking delivery up: at most one ``deliver`` task waiting per provider.

Every action that makes requests for a push provider wakes its delivery after commit. One task
per action would make a worker receive, set up and finish a task for each request; instead a
wake-up is a flag in Redis (``SET NX`` with a short expiry), and only the one that sets it sends
a task. The task clears the flag *before* it claims what is due, so a request committed after
the clearing sends a new task and one committed before it is claimed by this task: none is
left waiting. A lost task costs at most the flag's expiry (the next wake-up after it sends
again) and the sweeper wakes delivery wherever work is due anyway.

Without Redis (the embedded filesystem broker) every wake-up sends its task, as before.
"""

import logging
from functools import cache

from django.conf import settings

log = logging.getLogger(__name__)

PREFIX = "crm:deliver-woken:"
# Long enough to cover a task's time in the queue on a busy worker; a flag that outlives its
# task only delays the next wake-up by this much (and the sweeper by its period at most).
EXPIRY_SECONDS = 5


@cache
def _redis():
    url = settings.CELERY_BROKER_URL
    if not url.startswith(("redis://", "rediss://")):
        return None
    import redis

    return redis.Redis.from_url(url, socket_timeout=5)


def _key(provider_id: int) -> str:
    return f"{PREFIX}{provider_id}"


def wake(provider_id: int) -> None:
    """Make sure a ``deliver`` task for the provider is on its way."""
    from .tasks import deliver

    client = _redis()
    if client is not None:
        try:
            if not client.set(_key(provider_id), b"1", nx=True, ex=EXPIRY_SECONDS):
                return  # a task is already waiting, and will claim this request too
        except redis_errors() as error:
            log.warning("Could not set the wake-up flag (%s); sending the task anyway", error)
    deliver.delay(provider_id)


def taken(provider_id: int) -> None:
    """A ``deliver`` task has started: the next wake-up must send a new one."""
    client = _redis()
    if client is not None:
        try:
            client.delete(_key(provider_id))
        except redis_errors() as error:
            log.warning("Could not clear the wake-up flag (%s); it expires by itself", error)


def forget_all() -> None:
    """Clear every flag (the tests, after purging the queues the flags stood for)."""
    client = _redis()
    if client is not None:
        keys = list(client.scan_iter(match=f"{PREFIX}*"))
        if keys:
            client.delete(*keys)


def redis_errors() -> tuple[type[Exception], ...]:
    import redis

    return (redis.RedisError, OSError)
