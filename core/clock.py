"""The time, for code that measures a window of it (waits so long, goes on after so long).

Such a function takes ``clock=`` (or ``now=``, when the date and time is all it reads), the
system's by default: callers pass nothing, and a test passes a clock whose time it moves
itself, so that it asserts how long something waited without waiting for it.
"""

import time
from datetime import datetime

from django.utils import timezone


class Clock:
    """The system's clock."""

    def now(self) -> datetime:
        """The date and time, aware (as ``django.utils.timezone.now``)."""
        return timezone.now()

    def monotonic(self) -> float:
        """Seconds from an arbitrary moment, for measuring how long something took."""
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


SYSTEM = Clock()
