"""Cron slots computed with time as a parameter: month ends, leap days, daylight saving changes in
both directions, weekday rules, and every kind of bad expression."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from scheduler.cron import Cron, CronError, timezone

NEW_YORK = timezone("America/New_York")
BERLIN = timezone("Europe/Berlin")


def slots(expression: str, start: datetime, count: int, zone: str = "UTC") -> list[datetime]:
    cron, tz, out, t = Cron.parse(expression), timezone(zone), [], start
    for _ in range(count):
        t = cron.next_after(t, tz)
        out.append(t)
    return out


def local(instants: list[datetime], zone: str) -> list[str]:
    return [t.astimezone(timezone(zone)).strftime("%Y-%m-%d %H:%M %Z") for t in instants]


def test_every_minute_is_each_minute_boundary() -> None:
    start = datetime(2026, 1, 31, 23, 58, 30, tzinfo=UTC)
    assert slots("* * * * *", start, 3) == [
        datetime(2026, 1, 31, 23, 59, tzinfo=UTC),
        datetime(2026, 2, 1, 0, 0, tzinfo=UTC),
        datetime(2026, 2, 1, 0, 1, tzinfo=UTC),
    ]


def test_month_ends_skip_months_without_the_day() -> None:
    assert [t.date().isoformat() for t in slots("0 0 31 * *", datetime(2026, 1, 1, tzinfo=UTC), 4)] == [
        "2026-01-31",
        "2026-03-31",
        "2026-05-31",
        "2026-07-31",
    ]
    assert [t.date().isoformat() for t in slots("0 12 29 2 *", datetime(2026, 1, 1, tzinfo=UTC), 2)] == [
        "2028-02-29",
        "2032-02-29",
    ]
    # The 30th of every month and the last day of February are different slots.
    assert [t.date().isoformat() for t in slots("0 0 28-31 2 *", datetime(2028, 2, 1, tzinfo=UTC), 3)] == [
        "2028-02-28",
        "2028-02-29",
        "2029-02-28",
    ]


def test_a_slot_in_the_spring_gap_fires_when_the_gap_ends() -> None:
    # 2026-03-08: New York's clocks jump from 02:00 EST to 03:00 EDT; 02:30 does not exist.
    daily = slots("30 2 * * *", datetime(2026, 3, 7, 12, tzinfo=UTC), 3, "America/New_York")
    assert local(daily, "America/New_York") == ["2026-03-08 03:00 EDT", "2026-03-09 02:30 EDT", "2026-03-10 02:30 EDT"]
    quarter = slots("*/15 * * * *", datetime(2026, 3, 8, 6, 40, tzinfo=UTC), 4, "America/New_York")
    # The four slots of the missing hour fire once, together, at 03:00; nothing fires twice.
    assert local(quarter, "America/New_York") == [
        "2026-03-08 01:45 EST",
        "2026-03-08 03:00 EDT",
        "2026-03-08 03:15 EDT",
        "2026-03-08 03:30 EDT",
    ]


def test_a_repeated_autumn_hour_fires_once() -> None:
    # 2026-11-01: New York's 01:00-02:00 happens twice (EDT, then EST); each wall-clock slot fires once.
    quarter = slots("*/30 * * * *", datetime(2026, 11, 1, 4, 50, tzinfo=UTC), 5, "America/New_York")
    assert local(quarter, "America/New_York") == [
        "2026-11-01 01:00 EDT",
        "2026-11-01 01:30 EDT",
        "2026-11-01 02:00 EST",
        "2026-11-01 02:30 EST",
        "2026-11-01 03:00 EST",
    ]
    daily = slots("30 1 * * *", datetime(2026, 10, 31, 12, tzinfo=UTC), 2, "America/New_York")
    assert local(daily, "America/New_York") == ["2026-11-01 01:30 EDT", "2026-11-02 01:30 EST"]
    assert daily[1] - daily[0] == timedelta(hours=25)


def test_berlin_changes_on_other_days() -> None:
    spring = slots("30 2 * * *", datetime(2026, 3, 28, 12, tzinfo=UTC), 2, "Europe/Berlin")
    assert local(spring, "Europe/Berlin") == ["2026-03-29 03:00 CEST", "2026-03-30 02:30 CEST"]


def test_weekdays_names_steps_and_the_day_or_weekday_rule() -> None:
    mondays = slots("0 9 * * mon", datetime(2026, 11, 25, tzinfo=UTC), 2)
    assert [t.date().isoformat() for t in mondays] == ["2026-11-30", "2026-12-07"]
    assert slots("0 9 * * 7", datetime(2026, 11, 25, tzinfo=UTC), 1) == slots(
        "0 9 * * 0", datetime(2026, 11, 25, tzinfo=UTC), 1
    )
    # Both restricted: the 1st of the month OR a Friday, as cron does.
    either = slots("0 0 1 * fri", datetime(2026, 11, 25, tzinfo=UTC), 3)
    assert [t.date().isoformat() for t in either] == ["2026-11-27", "2026-12-01", "2026-12-04"]
    assert [t.minute for t in slots("10-40/15 * * * *", datetime(2026, 1, 1, tzinfo=UTC), 3)] == [10, 25, 40]
    assert [t.month for t in slots("0 0 1 jan,jul *", datetime(2026, 2, 1, tzinfo=UTC), 2)] == [7, 1]


def test_six_fields_add_seconds() -> None:
    every_two = slots("*/2 * * * * *", datetime(2026, 1, 1, 0, 0, 0, 500000, tzinfo=UTC), 3)
    assert [t.second for t in every_two] == [2, 4, 6]


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("* * *", "has 3"),
        ("61 * * * *", "the minute field has 61, outside 0-59"),
        ("* 24 * * *", "the hour field has 24, outside 0-23"),
        ("* * 0 * *", "the day of month field has 0, outside 1-31"),
        ("* * * 13 *", "the month field has 13, outside 1-12"),
        ("* * * * 8", "the day of week field has 8, outside 0-7"),
        ("x * * * *", "the minute field has 'x', which is not a number"),
        ("5-2 * * * *", "whose start is after its end"),
        ("*/0 * * * *", "outside 1-59"),
        ("1,,2 * * * *", "empty list item"),
        ("0 0 30 2 *", "never fires"),
    ],
)
def test_bad_expressions_name_the_field(expression: str, message: str) -> None:
    with pytest.raises(CronError, match=message):
        Cron.parse(expression).next_after(datetime(2026, 1, 1, tzinfo=UTC), timezone("UTC"))


def test_unknown_time_zone() -> None:
    with pytest.raises(CronError, match="'Mars/Olympus' is not a known IANA time zone"):
        timezone("Mars/Olympus")
