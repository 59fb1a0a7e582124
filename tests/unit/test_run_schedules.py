"""When a definition will run, as the operator reads it: daily, weekly and cron schedules on
beat's crontab, the next runs on the clock of TIME_ZONE with the zone named, across DST."""

from datetime import UTC, datetime, time

import pytest
from django.urls import reverse
from django.utils import timezone

from runs import schedules, services
from runs.models import RunDefinition
from tests.unit.test_backoffice import login
from tests.unit.test_runs_backoffice import form_data


def submitted(catalog, **fields) -> RunDefinition:
    values = {"name": "Nightly reset", "run_type": "reset_subscriptions"}
    values.update(fields)
    definition = RunDefinition.objects.create(provider=catalog.provider, **values)
    return services.submit(definition)


def on_the_clock(moments) -> list[str]:
    return [f"{timezone.localtime(m):%a %Y-%m-%d %H:%M %Z}" for m in moments]


def test_a_two_oclock_cron_announces_two_oclock(operator, catalog, settings):
    settings.TIME_ZONE = "Europe/Athens"
    d = submitted(catalog, schedule="cron", cron="0 2 * * *")

    first = timezone.localtime(services.next_run_time(d))
    assert (first.hour, first.minute, first.second, first.microsecond) == (2, 0, 0, 0)
    body = login(operator).get(reverse("admin:runs_rundefinition_change", args=[d.pk])).content
    body = body.decode()
    assert "(time zone Europe/Athens)" in body
    assert f"{first:%Y-%m-%d} 02:00:00 {first:%Z}" in body
    assert "01:59:59" not in body


@pytest.mark.parametrize(
    ("zone", "now", "expected"),
    [
        (  # Summer time ends on 25 October 2026 at 04:00.
            "Europe/Athens",
            datetime(2026, 10, 23, 12, tzinfo=UTC),
            [
                "Sat 2026-10-24 02:00 EEST",
                "Sun 2026-10-25 02:00 EEST",
                "Mon 2026-10-26 02:00 EET",
            ],
        ),
        (  # Summer time starts on 29 March 2026 at 03:00.
            "Europe/Athens",
            datetime(2026, 3, 27, 12, tzinfo=UTC),
            [
                "Sat 2026-03-28 02:00 EET",
                "Sun 2026-03-29 02:00 EET",
                "Mon 2026-03-30 02:00 EEST",
            ],
        ),
        (  # Summer time ends on 1 November 2026 at 02:00.
            "America/New_York",
            datetime(2026, 10, 30, 12, tzinfo=UTC),
            [
                "Sat 2026-10-31 02:00 EDT",
                "Sun 2026-11-01 02:00 EST",
                "Mon 2026-11-02 02:00 EST",
            ],
        ),
    ],
)
def test_daily_at_two_stays_at_two_on_the_clock_across_dst(catalog, settings, zone, now, expected):
    settings.TIME_ZONE = zone
    d = submitted(catalog, schedule="daily", at=time(2, 0))

    cron = d.periodic_task.crontab
    assert (cron.minute, cron.hour, cron.day_of_week, str(cron.timezone)) == ("0", "2", "*", zone)
    times = schedules.next_times(d, 3, now=now)
    assert on_the_clock(times) == expected
    # The same clock time is an hour apart in UTC on either side of the change.
    assert len({t.astimezone(UTC).hour for t in times}) == 2


def test_weekly_runs_on_its_days_only(catalog, settings):
    settings.TIME_ZONE = "America/New_York"
    d = submitted(catalog, schedule="weekly", at=time(7, 15), weekdays="1,3")

    assert d.periodic_task.crontab.day_of_week == "1,3"
    times = schedules.next_times(d, 4, now=datetime(2026, 3, 5, 12, tzinfo=UTC))
    assert on_the_clock(times) == [
        "Mon 2026-03-09 07:15 EDT",
        "Wed 2026-03-11 07:15 EDT",
        "Mon 2026-03-16 07:15 EDT",
        "Wed 2026-03-18 07:15 EDT",
    ]


def test_an_interval_announces_one_period_after_its_last_run(catalog):
    d = submitted(catalog, schedule="interval", every=2, unit="hours")
    task = d.periodic_task
    task.last_run_at = datetime(2026, 3, 5, 10, tzinfo=UTC)
    task.save()

    times = schedules.next_times(d, 2, now=datetime(2026, 3, 5, 11, tzinfo=UTC))
    assert times == [datetime(2026, 3, 5, 12, tzinfo=UTC), datetime(2026, 3, 5, 14, tzinfo=UTC)]


def test_operator_sets_a_weekly_schedule_in_the_form(operator, catalog, settings):
    settings.TIME_ZONE = "Europe/Athens"
    client = login(operator)
    data = form_data(catalog, schedule="weekly", at="02:30", weekdays=["1", "5"])
    response = client.post(reverse("admin:runs_rundefinition_add"), data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    d = RunDefinition.objects.get()
    assert (d.schedule, d.at, d.weekdays) == ("weekly", time(2, 30), "1,5")

    response = client.post(
        reverse("admin:runs_rundefinition_operate", args=[d.pk, "submit"]), follow=True
    )
    body = response.content.decode()
    assert "Weekly on Monday, Friday at 02:30" in body
    assert ":30:00 EE" in body  # the next run, on the clock of Athens

    # A weekly schedule without a day is refused on its field.
    data = form_data(catalog, name="Other", alternative_code="", schedule="weekly", at="02:30")
    response = client.post(reverse("admin:runs_rundefinition_add"), data)
    assert response.context["adminform"].form.errors["weekdays"] == [
        "Choose at least one day of the week."
    ]
