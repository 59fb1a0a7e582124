"""When a definition runs: the crontab beat is given for it, and its next moments.

Daily, weekly and cron definitions are all a crontab on beat (django-celery-beat), in the
operator's time zone (``settings.TIME_ZONE``): "daily at 02:00" is ``0 2 * * *`` and runs at
02:00 on the wall clock whatever the season. The next moments are worked out here from the
crontab beat holds, day by day on that wall clock, so that what the page announces is what beat
will do (a day must match both the day of month and the day of week, as in celery).
"""

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from celery.schedules import crontab
from django.utils import timezone

from .models import RunDefinition

Schedule = RunDefinition.Schedule
CRONTAB_FIELDS = ["minute", "hour", "day_of_month", "month_of_year", "day_of_week"]
# How far ahead a crontab is searched: long enough for a 29 February.
SEARCH_DAYS = 8 * 366


def crontab_fields(definition: RunDefinition) -> dict[str, str]:
    """The crontab fields of a daily, weekly or cron definition; ValueError says what is wrong."""
    if definition.schedule == Schedule.DAILY:
        return _at_fields(definition, "*")
    if definition.schedule == Schedule.WEEKLY:
        days = [d for d in (definition.weekdays or "").split(",") if d]
        if not days:
            raise ValueError("Choose at least one day of the week.")
        return _at_fields(definition, ",".join(days))
    parts = (definition.cron or "").split()
    if len(parts) != 5:
        raise ValueError(
            "A cron expression has five fields: minute hour day-of-month month day-of-week."
        )
    fields = dict(zip(CRONTAB_FIELDS, parts, strict=True))
    try:
        crontab(**fields)  # celery parses every field; a bad one raises ValueError
    except ValueError as exc:
        raise ValueError(f"Not a valid cron expression: {exc}") from None
    return fields


def _at_fields(definition: RunDefinition, day_of_week: str) -> dict[str, str]:
    if definition.at is None:
        raise ValueError("Give the time of day (HH:MM).")
    return {
        "minute": str(definition.at.minute),
        "hour": str(definition.at.hour),
        "day_of_month": "*",
        "month_of_year": "*",
        "day_of_week": day_of_week,
    }


def weekday_names(weekdays: str) -> str:
    chosen = set((weekdays or "").split(","))
    return ", ".join(name for number, name in RunDefinition.WEEKDAYS if number in chosen)


def crontab_times(fields: dict[str, str], zone: str, after: datetime, count: int) -> list[datetime]:
    """The next ``count`` moments (aware, UTC) strictly after ``after`` at which a crontab in
    ``zone`` fires. A wall-clock time the clocks skip is read with the offset before the change
    (zoneinfo's rule), a repeated one at its first occurrence."""
    parsed = crontab(**fields)
    tz = ZoneInfo(zone)
    after = after.astimezone(UTC)
    day: date = after.astimezone(tz).date()
    found: list[datetime] = []
    for _ in range(SEARCH_DAYS):
        if (
            day.month in parsed.month_of_year
            and day.day in parsed.day_of_month
            and day.isoweekday() % 7 in parsed.day_of_week
        ):
            for hour in sorted(parsed.hour):
                for minute in sorted(parsed.minute):
                    # Compared in UTC: aware datetimes of one zone compare by wall clock.
                    when = datetime.combine(day, time(hour, minute), tzinfo=tz).astimezone(UTC)
                    if when > after and (not found or when > found[-1]):
                        found.append(when)
                        if len(found) == count:
                            return found
        day += timedelta(days=1)
    return found


def next_times(definition: RunDefinition, count: int = 5, now: datetime | None = None):
    """The next ``count`` moments beat will run a submitted definition (empty if it will not)."""
    task = definition.periodic_task
    if definition.state != RunDefinition.State.SUBMITTED or task is None or not task.enabled:
        return []
    now = now or timezone.now()
    if task.clocked_id:
        return [task.clocked.clocked_time]
    if task.crontab_id:
        cron = task.crontab
        fields = {name: getattr(cron, name) for name in CRONTAB_FIELDS}
        return crontab_times(fields, str(cron.timezone), now, count)
    period = timedelta(**{task.interval.period: task.interval.every})
    last = task.last_run_at or task.start_time or task.date_changed
    # An overdue interval runs at beat's next tick, then every period from there.
    first = max(last + period, now)
    return [first + period * n for n in range(count)]
