"""Batch work gives way to real-time work.

On one machine a run and the real-time path share the cores and the database server. Separate
queues keep a run's tasks from holding an activation up in a queue, not from taking the CPU
the activation needs: a reset run over a million subscriptions took a third of the real-time
rate. So, while actions are flowing (``wakeups.realtime_busy``: an action woke delivery within
the last second), a run waits between two chunks (each its own committed transaction, no locks
held) so that it works ``RUN_SHARE_UNDER_REALTIME`` percent of the time: after a chunk of *t*
seconds, up to *t* * (100 - share) / share seconds. It goes on at once when the actions stop,
so a run at night loses nothing; one during the day takes longer, and the agents do not wait.
Without Redis nothing marks actions, and runs never wait."""

from django.conf import settings
from django.db import connection

from core.clock import SYSTEM, Clock

from . import wakeups

# However long a chunk took: a run goes on after this, actions or not.
MAX_WAIT_SECONDS = 60.0
# How often a waiting run looks whether the actions have stopped.
LOOK_EVERY_SECONDS = 0.1


def after_chunk(worked_seconds: float, *, clock: Clock = SYSTEM) -> float:
    """Called by a batch loop after a chunk that took ``worked_seconds``; returns how long it
    waited (by ``clock``)."""
    share = settings.RUN_SHARE_UNDER_REALTIME
    # Inside a caller's transaction its locks would wait with it, and an action with them.
    if share >= 100 or connection.in_atomic_block or not wakeups.realtime_busy():
        return 0.0
    budget = min(worked_seconds * (100 - share) / share, MAX_WAIT_SECONDS)
    began = clock.monotonic()
    while True:
        left = budget - (clock.monotonic() - began)
        if left <= 0:
            break
        clock.sleep(min(LOOK_EVERY_SECONDS, left))
        if not wakeups.realtime_busy():
            break
    return clock.monotonic() - began
