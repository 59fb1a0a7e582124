"""Time in the tests: a clock that moves only when told (``FakeClock``, passed where the product
takes ``clock=``), and Redis's own clock, read and run out (``ttl_ms``, ``run_out``)."""

import heapq
import itertools
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import cache

from django.conf import settings

from core.clock import Clock

NS = 1_000_000_000


class FakeClock(Clock):
    """Its sleep returns at once, its time having moved on by as much; ``after`` runs a callback
    when its time comes, during the sleep or ``advance`` that reaches that moment (as something
    would happen in the world meanwhile). Kept in whole nanoseconds, so that ten sleeps of 0.1 s
    make exactly one second."""

    def __init__(self, start: datetime = datetime(2030, 1, 1, 9, tzinfo=UTC)):
        self.start = start
        self._ns = 0
        self._due: list[tuple[int, int, Callable[[], object]]] = []
        self._order = itertools.count()  # callbacks due at one moment run in their order

    def now(self) -> datetime:
        return self.start + timedelta(microseconds=self._ns // 1000)

    def monotonic(self) -> float:
        return self._ns / NS

    def sleep(self, seconds: float) -> None:
        self.advance(seconds)

    def advance(self, seconds: float) -> None:
        end = self._ns + max(round(seconds * NS), 0)
        while self._due and self._due[0][0] <= end:
            moment, _, callback = heapq.heappop(self._due)
            self._ns = max(self._ns, moment)
            callback()
        self._ns = end

    def after(self, seconds: float, callback: Callable[[], object]) -> None:
        heapq.heappush(self._due, (self._ns + round(seconds * NS), next(self._order), callback))


@cache
def _redis():
    import redis

    return redis.Redis.from_url(settings.CELERY_BROKER_URL)


def ttl_ms(key: str) -> int:
    """Milliseconds before Redis drops the key (-1: never; -2: no such key)."""
    return _redis().pttl(key)


def run_out(key: str) -> None:
    """Make the key's time run out now, as Redis's clock would at the end of its TTL."""
    client = _redis()
    assert client.pexpire(key, 1), f"{key} is not set"
    deadline = time.monotonic() + 5
    while client.exists(key):  # gone within a millisecond
        assert time.monotonic() < deadline, f"{key} did not expire"
