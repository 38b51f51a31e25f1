"""Cron expressions evaluated in an IANA time zone, with time as a parameter.

Five fields (minute hour day-of-month month day-of-week) as in crontab(5), or six with a leading
seconds field. Each field: `*`, a number, a range `a-b`, a list `a,b`, steps `*/n` or `a-b/n`; months
and weekdays also by name (jan, mon). Day of month and day of week combine as cron does: when both
are restricted, a day matching either fires.

Daylight saving time: a slot whose local time does not exist (the hour skipped in spring) fires at the
first instant after the gap, so it is never silently lost; a slot whose local time occurs twice (the
hour repeated in autumn) fires once, at its first occurrence."""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import cached_property
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

FIELDS = (
    ("second", 0, 59),
    ("minute", 0, 59),
    ("hour", 0, 23),
    ("day of month", 1, 31),
    ("month", 1, 12),
    ("day of week", 0, 7),
)
NAMES = {
    "month": {
        m: i + 1
        for i, m in enumerate(["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"])
    },
    "day of week": {d: i for i, d in enumerate(["sun", "mon", "tue", "wed", "thu", "fri", "sat"])},
}
# The furthest ahead a next slot is searched for: '0 0 29 2 *' needs up to eight years.
SEARCH_DAYS = 366 * 9
# No time zone's clocks have jumped by more than this at once.
DST_MARGIN = timedelta(hours=3)
DST_MARGIN_TIME = time(3)


class CronError(ValueError):
    """A cron expression or time zone that cannot be used; the message says which field and why."""


def _value(token: str, field: str, low: int, high: int) -> int:
    name = token.lower()
    if name in NAMES.get(field, {}):
        return NAMES[field][name]
    if not token.isdigit():
        raise CronError(f"the {field} field has {token!r}, which is not a number")
    number = int(token)
    if not low <= number <= high:
        raise CronError(f"the {field} field has {number}, outside {low}-{high}")
    return number


def _parse_field(text: str, field: str, low: int, high: int) -> frozenset[int]:
    values: set[int] = set()
    for part in text.split(","):
        if not part:
            raise CronError(f"the {field} field has an empty list item")
        span, _, step_text = part.partition("/")
        step = _value(step_text, field, 1, high) if step_text else 1
        if span == "*":
            start, stop = low, high
        elif "-" in span:
            a, _, b = span.partition("-")
            start, stop = _value(a, field, low, high), _value(b, field, low, high)
            if start > stop:
                raise CronError(f"the {field} field has the range {span!r}, whose start is after its end")
        else:
            start = _value(span, field, low, high)
            stop = high if step_text else start
        values.update(range(start, stop + 1, step))
    if field == "day of week" and 7 in values:
        values = (values - {7}) | {0}  # both 0 and 7 are Sunday
    return frozenset(values)


@dataclass(frozen=True)
class Cron:
    expression: str
    seconds: frozenset[int]
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]
    days_restricted: bool
    weekdays_restricted: bool

    @classmethod
    def parse(cls, expression: str) -> Cron:
        parts = expression.split()
        if len(parts) == 5:
            parts = ["0", *parts]
        elif len(parts) != 6:
            raise CronError(
                f"a cron expression has 5 fields (minute hour day-of-month month day-of-week), or 6 with a leading "
                f"seconds field; {expression!r} has {len(parts)}"
            )
        seconds, minutes, hours, days, months, weekdays = (
            _parse_field(text, name, low, high) for text, (name, low, high) in zip(parts, FIELDS, strict=True)
        )
        return cls(
            expression,
            seconds=seconds,
            minutes=minutes,
            hours=hours,
            days=days,
            months=months,
            weekdays=weekdays,
            days_restricted=parts[3] != "*",
            weekdays_restricted=parts[5] != "*",
        )

    def _day_matches(self, day: date) -> bool:
        if day.month not in self.months:
            return False
        in_month = day.day in self.days
        in_week = (day.isoweekday() % 7) in self.weekdays
        if self.days_restricted and self.weekdays_restricted:
            return in_month or in_week
        return in_month and in_week

    @cached_property
    def _times(self) -> list[time]:
        return [time(h, m, s) for h in sorted(self.hours) for m in sorted(self.minutes) for s in sorted(self.seconds)]

    def next_after(self, instant: datetime, zone: ZoneInfo) -> datetime:
        """The first slot strictly after `instant` (timezone-aware), as an aware UTC datetime."""
        if instant.tzinfo is None:
            raise ValueError("instant must be timezone-aware")
        instant = instant.astimezone(UTC)
        local = instant.astimezone(zone).replace(tzinfo=None)
        times = self._times
        for offset in range(SEARCH_DAYS):
            day = local.date() + timedelta(days=offset)
            if not self._day_matches(day):
                continue
            earliest = time()
            if offset == 0:
                # Start at the local time; on a day whose clocks change, a little before it, since the
                # shift moves wall times by up to a few hours.
                midnight = datetime.combine(day, time())
                shifts = zone.utcoffset(midnight) != zone.utcoffset(midnight + timedelta(days=1))
                earliest = local.time()
                if shifts:
                    earliest = (local - DST_MARGIN).time() if local.time() > DST_MARGIN_TIME else time()
            for wall in times[bisect_left(times, earliest) :]:
                slot = to_instant(datetime.combine(day, wall), zone)
                if slot > instant:
                    return slot
        raise CronError(f"{self.expression!r} never fires")


def to_instant(wall: datetime, zone: ZoneInfo) -> datetime:
    """A local wall time as a UTC instant: the first occurrence of a repeated time, and for a time in
    a gap, the instant the gap ends (when the clocks jump forward)."""
    first = wall.replace(tzinfo=zone, fold=0)
    if first.astimezone(UTC).astimezone(zone).replace(tzinfo=None) == wall:
        return first.astimezone(UTC)
    # In a gap the two readings of `wall` bracket the jump: with the offset after it (earlier instant)
    # and with the offset before it (later instant). Halve the bracket down to the second of the jump.
    after = wall.replace(tzinfo=zone, fold=1).utcoffset()
    low = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)
    high = first.astimezone(UTC)
    low, high = min(low, high), max(low, high)
    while high - low > timedelta(seconds=1):
        middle = low + (high - low) / 2
        if middle.astimezone(zone).utcoffset() == after:
            high = middle
        else:
            low = middle
    return high.replace(microsecond=0) + (timedelta(seconds=1) if high.microsecond else timedelta())


def timezone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise CronError(f"{name!r} is not a known IANA time zone, such as 'UTC' or 'Europe/Berlin'") from exc


def known_timezones() -> set[str]:
    return available_timezones()
