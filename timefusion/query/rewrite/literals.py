"""Typed literals both ways: Python values → DataFusion SQL literals, SQL literals → Python values.

Timestamps are microseconds in UTC everywhere in TimeFusion (the session's TimeZone is UTC), so text
without a zone means UTC, as PostgreSQL reads it with `TimeZone=UTC`. A timestamp value is written as
`arrow_cast('…Z', 'Timestamp(Microsecond, Some("UTC"))')`: exactly our column type, so comparisons
need no coercion and `date_bin`/arithmetic work on it (DataFusion's `CAST(… AS TIMESTAMPTZ)` gives
nanoseconds and depends on the session time zone).
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta, timezone

from sqlglot import exp

ARROW_TS_UTC = 'Timestamp(Microsecond, Some("UTC"))'
ARROW_TS_NAIVE = "Timestamp(Microsecond, None)"

_TS = re.compile(
    r"""\s*(?P<y>\d{4})-(?P<mo>\d{1,2})-(?P<d>\d{1,2})
        (?:[T\s]+(?P<h>\d{1,2}):(?P<mi>\d{2})(?::(?P<s>\d{2})(?:\.(?P<f>\d+))?)?)?
        \s*(?P<tz>z|utc|gmt|[+-]\d{1,2}(?::?\d{2})?)?\s*$""",
    re.IGNORECASE | re.VERBOSE,
)


def parse_timestamp(text: str) -> datetime | None:
    """Read timestamp(tz) input text as an aware UTC datetime (no zone = UTC); None if not understood.

    Digits past microseconds are cut off (floor), which the callers use only for conservative bounds.
    """
    m = _TS.match(text)
    if m is None:
        return None
    try:
        frac = (m.group("f") or "")[:6].ljust(6, "0")
        value = datetime(
            int(m.group("y")),
            int(m.group("mo")),
            int(m.group("d")),
            int(m.group("h") or 0),
            int(m.group("mi") or 0),
            int(m.group("s") or 0),
            int(frac),
            tzinfo=UTC,
        )
    except ValueError:
        return None
    tz = (m.group("tz") or "").lower()
    if tz and tz not in ("z", "utc", "gmt"):
        sign = -1 if tz[0] == "-" else 1
        digits = tz[1:].replace(":", "")
        hours = int(digits[:-2]) if len(digits) > 2 else int(digits)
        minutes = int(digits[-2:]) if len(digits) > 2 else 0
        offset = timedelta(hours=hours, minutes=minutes)
        value = value.replace(tzinfo=timezone(sign * offset)).astimezone(UTC)
    return value


def parse_date(text: str) -> date | None:
    """Read date input ('2025-01-17', also with a time part, which PostgreSQL ignores)."""
    m = _TS.match(text)
    if m is None:
        return None
    try:
        return date(int(m.group("y")), int(m.group("mo")), int(m.group("d")))
    except ValueError:
        return None


def to_utc(value: datetime) -> datetime:
    """Aware → UTC; naive → read as UTC (the session time zone)."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def timestamp_text(value: datetime) -> str:
    value = to_utc(value)
    text = value.strftime("%Y-%m-%dT%H:%M:%S")
    if value.microsecond:
        text += f".{value.microsecond:06d}"
    return text + "Z"


def timestamp_expression(value: datetime) -> exp.Expression:
    """A literal of our column type, Timestamp(µs, UTC). Naive datetimes are `timestamp without time
    zone` (as drivers send them) and stay naive."""
    if value.tzinfo is None:
        text = value.strftime("%Y-%m-%dT%H:%M:%S") + (
            f".{value.microsecond:06d}" if value.microsecond else ""
        )
        return arrow_cast(exp.Literal.string(text), ARROW_TS_NAIVE)
    return arrow_cast(exp.Literal.string(timestamp_text(value)), ARROW_TS_UTC)


def date_expression(value: date) -> exp.Expression:
    return exp.Cast(this=exp.Literal.string(value.isoformat()), to=exp.DataType.build("DATE"))


def arrow_cast(value: exp.Expression, arrow_type: str) -> exp.Expression:
    return exp.Anonymous(this="arrow_cast", expressions=[value, exp.Literal.string(arrow_type)])


def is_arrow_cast(node: exp.Expression) -> bool:
    return (
        isinstance(node, exp.Anonymous) and node.name.lower() == "arrow_cast" and len(node.expressions) == 2
    )
