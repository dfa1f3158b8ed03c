"""Time in one place: the clock, the contract's date strings and durations.

Everything here takes and returns timezone-aware UTC datetimes; the clock is an object so tests
can fix "now".
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

DATE_FORMAT = "%m/%d/%y %I:%M:%S %p UTC"
SHORT_DATE_FORMAT = "%b %d %Y"


class Clock:
    """The real clock; tests pass a ``FixedClock`` instead."""

    def now(self) -> datetime:
        return datetime.now(UTC)


class FixedClock(Clock):
    def __init__(self, at: datetime):
        self.at = at

    def now(self) -> datetime:
        return self.at

    def advance(self, **delta: float) -> None:
        self.at += timedelta(**delta)


def utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC)


def format_date(moment: datetime) -> str:
    """``11/25/26 02:52:24 PM UTC``."""
    return utc(moment).strftime(DATE_FORMAT)


def format_iso8601(moment: datetime) -> str:
    """``2026-11-25T14:52:37``: UTC, whole seconds, no offset."""
    return utc(moment).replace(microsecond=0, tzinfo=None).isoformat()


def format_rfc822(moment: datetime) -> str:
    """``Wed, 25 Nov 2026 14:52:37 -0000`` (fixed English names, whatever the locale)."""
    m = utc(moment)
    day = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")[m.weekday()]
    month = ("Jan", "Feb", "Mar", "Apr", "May", "Jun",
             "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")[m.month - 1]
    return f"{day}, {m.day:02d} {month} {m.year:04d} {m:%H:%M:%S} -0000"


def format_short_date(day: date | datetime) -> str:
    """``Nov 28 2026``, as the deadline messages quote dates."""
    return day.strftime(SHORT_DATE_FORMAT)


def end_of_day(day: date) -> datetime:
    """A deadline is stored as its date at 23:59:59.999999 UTC."""
    return datetime.combine(day, time.max, tzinfo=UTC)


def _plural(count: int, unit: str) -> str:
    return f"{count} {unit}" if count == 1 else f"{count} {unit}s"


def format_time_remaining(remaining: timedelta) -> str:
    """``3 days 9 hours 7 minutes 22 seconds`` ... ``250 milliseconds``; ``No time remaining``."""
    if remaining <= timedelta(0):
        return "No time remaining"
    total_ms = remaining // timedelta(milliseconds=1)
    if total_ms == 0:
        return "No time remaining"
    days, rest_ms = divmod(total_ms, 86_400_000)
    hours, rest_ms = divmod(rest_ms, 3_600_000)
    minutes, rest_ms = divmod(rest_ms, 60_000)
    seconds, millis = divmod(rest_ms, 1000)
    if total_ms < 1000:
        return _plural(millis, "millisecond")
    if total_ms < 60_000:
        return f"{_plural(seconds, 'second')} {_plural(millis, 'millisecond')}"
    units = [(days, "day"), (hours, "hour"), (minutes, "minute"), (seconds, "second")]
    while units[0][0] == 0:
        units.pop(0)
    return " ".join(_plural(count, unit) for count, unit in units)


def format_expires_in(remaining: timedelta) -> str:
    """``00:14:59`` or ``1 day, 00:00:00`` (whole seconds, never negative)."""
    total = max(0, int(remaining.total_seconds()))
    days, rest = divmod(total, 86_400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    clock = f"{hours:02d}:{minutes:02d}:{seconds:02d}"
    return f"{_plural(days, 'day')}, {clock}" if days else clock
