"""RFC 3339 timestamps in UTC, and ISO 8601 calendar dates, parsed strictly."""

from __future__ import annotations

import re
from datetime import date, datetime, timezone

__all__ = ["TIMESTAMP_PATTERN", "DATE_PATTERN", "format_time", "parse_time", "parse_date",
           "utc"]

# RFC 3339 §5.6 with the offset fixed to "Z": the protocol speaks only UTC.
_TIMESTAMP = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]{1,9}))?Z"
)
_DATE = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})")
#: The same shapes for JSON Schema (the values are then checked as real dates and times).
TIMESTAMP_PATTERN = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?Z$"
DATE_PATTERN = "^[0-9]{4}-[0-9]{2}-[0-9]{2}$"


def utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError("a naive datetime has no time zone; use an aware UTC datetime")
    return moment.astimezone(timezone.utc)


def format_time(moment: datetime) -> str:
    """The shortest RFC 3339 UTC form: no fraction when whole seconds, else up to six
    digits without trailing zeros (PROTOCOL.md §3.3)."""
    moment = utc(moment)
    # isoformat is several times faster than strftime, and pads the year to four
    # digits (glibc's %Y does not): YYYY-MM-DDTHH:MM:SS[.ffffff]+00:00, the
    # fraction only when non-zero.
    text = moment.isoformat()
    if moment.microsecond:
        return text[:26].rstrip("0") + "Z"
    return text[:19] + "Z"


def parse_time(text: object) -> datetime:
    if not isinstance(text, str):
        raise ValueError("a timestamp is a string")
    match = _TIMESTAMP.fullmatch(text)
    if match is None:
        raise ValueError("a timestamp is RFC 3339 in UTC, like 2026-06-01T12:00:00Z")
    year, month, day, hour, minute, second, fraction = match.groups()
    micro = int((fraction or "0")[:6].ljust(6, "0"))
    return datetime(int(year), int(month), int(day), int(hour), int(minute), int(second),
                    micro, tzinfo=timezone.utc)


def parse_date(text: object) -> date:
    if not isinstance(text, str):
        raise ValueError("a date is a string")
    match = _DATE.fullmatch(text)
    if match is None:
        raise ValueError("a date is YYYY-MM-DD")
    return date(*map(int, match.groups()))
