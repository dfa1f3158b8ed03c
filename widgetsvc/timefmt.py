"""Time in one place: the clock, the contract's date strings and durations.

Everything here takes and returns timezone-aware UTC datetimes; the clock is an object so tests
can fix "now".
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

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


_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def utc(moment: datetime) -> datetime:
    # The database sessions run with TimeZone=UTC, so this is usually already the case.
    return moment if moment.tzinfo is UTC else moment.astimezone(UTC)


# The formats below are spelled out instead of strftime: they sit on the hot path of every
# widget body (several per item of a page), are locale-independent this way, and cost a
# third as much. tests/test_units.py checks them against strftime.

def format_date(moment: datetime) -> str:
    """``11/25/26 02:52:24 PM UTC`` (``%m/%d/%y %I:%M:%S %p UTC``)."""
    m = utc(moment)
    hour12 = m.hour % 12 or 12
    half = "AM" if m.hour < 12 else "PM"
    return (f"{m.month:02d}/{m.day:02d}/{m.year % 100:02d} "
            f"{hour12:02d}:{m.minute:02d}:{m.second:02d} {half} UTC")


def format_iso8601(moment: datetime) -> str:
    """``2026-11-25T14:52:37``: UTC, whole seconds, no offset."""
    m = utc(moment)
    return (f"{m.year:04d}-{m.month:02d}-{m.day:02d}"
            f"T{m.hour:02d}:{m.minute:02d}:{m.second:02d}")


def format_rfc822(moment: datetime) -> str:
    """``Wed, 25 Nov 2026 14:52:37 -0000`` (fixed English names, whatever the locale)."""
    m = utc(moment)
    return (f"{_DAYS[m.weekday()]}, {m.day:02d} {_MONTHS[m.month - 1]} {m.year:04d} "
            f"{m.hour:02d}:{m.minute:02d}:{m.second:02d} -0000")


def format_short_date(day: date | datetime) -> str:
    """``Nov 28 2026``, as the deadline messages quote dates."""
    return day.strftime(SHORT_DATE_FORMAT)


def end_of_day(day: date) -> datetime:
    """A deadline is stored as its date at 23:59:59.999999 UTC."""
    return datetime.combine(day, time.max, tzinfo=UTC)


def _plural(count: int, unit: str) -> str:
    return f"{count} {unit}" if count == 1 else f"{count} {unit}s"


def format_time_remaining(remaining: timedelta) -> str:
    """``3 days 9 hours 7 minutes 22 seconds`` ... ``250 milliseconds``; ``No time remaining``.

    Read straight off the timedelta's normalised fields (days, seconds < 86,400, microseconds):
    every list item formats this, so it avoids timedelta arithmetic.
    """
    days, seconds_of_day = remaining.days, remaining.seconds
    millis = remaining.microseconds // 1000
    if days < 0 or (days == 0 and seconds_of_day == 0 and millis == 0):
        return "No time remaining"
    if days == 0 and seconds_of_day < 60:
        if seconds_of_day == 0:
            return _plural(millis, "millisecond")
        return f"{_plural(seconds_of_day, 'second')} {_plural(millis, 'millisecond')}"
    hours, rest = divmod(seconds_of_day, 3600)
    minutes, seconds = divmod(rest, 60)
    text = f"{_plural(minutes, 'minute')} {_plural(seconds, 'second')}"
    if days or hours:
        text = f"{_plural(hours, 'hour')} {text}"
    if days:
        text = f"{_plural(days, 'day')} {text}"
    return text


def format_expires_in(remaining: timedelta) -> str:
    """``00:14:59`` or ``1 day, 00:00:00`` (whole seconds, never negative)."""
    total = max(0, int(remaining.total_seconds()))
    days, rest = divmod(total, 86_400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    clock = f"{hours:02d}:{minutes:02d}:{seconds:02d}"
    return f"{_plural(days, 'day')}, {clock}" if days else clock
