"""Asia/Shanghai: the calendar day Article 16 counts in, and how a time is shown to a person.

Times are stored in UTC with their offset; whatever a person reads is in Asia/Shanghai.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

SHANGHAI = ZoneInfo("Asia/Shanghai")
NONE_SHOWN = "—"


def shanghai_day(moment: datetime) -> date:
    """The Asia/Shanghai calendar day of an aware moment."""
    return moment.astimezone(SHANGHAI).date()


def end_of_day(day: date) -> datetime:
    """The first instant after ``day`` in Asia/Shanghai."""
    return datetime.combine(day + timedelta(days=1), time(0), tzinfo=SHANGHAI)


def now_local() -> datetime:
    """The current time with the +08:00 offset (what a person writes into an event)."""
    return datetime.now(UTC).astimezone(SHANGHAI)


def local_iso(moment: datetime) -> str:
    """RFC 3339 with the +08:00 offset; a moment Asia/Shanghai cannot express keeps its own."""
    try:
        return moment.astimezone(SHANGHAI).isoformat()
    except OverflowError:  # 9999-12-31T23:59:59Z is a day beyond the calendar in +08:00
        return moment.isoformat()


def local_text(moment: datetime | None, pattern: str = "%Y-%m-%d %H:%M:%S") -> str:
    """A moment as a person reads it, in Asia/Shanghai; ``—`` when there is none."""
    return NONE_SHOWN if moment is None else moment.astimezone(SHANGHAI).strftime(pattern)


def clock_text(moment: datetime | None = None) -> str:
    """``[HH:MM:SS]`` in Asia/Shanghai, for lines printed as things happen."""
    return local_text(moment or datetime.now(UTC), "[%H:%M:%S]")
