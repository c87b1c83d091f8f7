"""PostgreSQL interval text ('5 minutes', '1h', '1 hour 30 minutes', '01:30:00', '2 days ago') as numbers.

Shared by `time_bucket` (bucket widths) and `prune` (`now() - INTERVAL '1 hour'`). Only the forms
PostgreSQL's interval input accepts are understood; anything else returns None so the caller can leave
the expression alone (or refuse it) instead of guessing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlglot import exp

US_PER_SECOND = 1_000_000
US_PER_DAY = 86_400 * US_PER_SECOND

# unit spelling → (months, days, microseconds) per one unit, after PostgreSQL's deltatktbl.
_UNITS: dict[str, tuple[int, int, int]] = {}
for _names, _value in (
    (("microsecond", "microseconds", "us", "usec", "usecs", "microsecon"), (0, 0, 1)),
    (("millisecond", "milliseconds", "ms", "msec", "msecs", "millisecon"), (0, 0, 1000)),
    (("second", "seconds", "s", "sec", "secs"), (0, 0, US_PER_SECOND)),
    (("minute", "minutes", "m", "min", "mins"), (0, 0, 60 * US_PER_SECOND)),
    (("hour", "hours", "h", "hr", "hrs"), (0, 0, 3600 * US_PER_SECOND)),
    (("day", "days", "d"), (0, 1, 0)),
    (("week", "weeks", "w"), (0, 7, 0)),
    (("month", "months", "mon", "mons"), (1, 0, 0)),
    (("year", "years", "y", "yr", "yrs"), (12, 0, 0)),
    (("decade", "decades", "dec", "decs"), (120, 0, 0)),
    (("century", "centuries", "c", "cent"), (1200, 0, 0)),
    (("millennium", "millennia", "mil", "mils"), (12000, 0, 0)),
):
    for _n in _names:
        _UNITS[_n] = _value

_TOKEN = re.compile(
    r"\s*(?:"
    r"(?P<clock>[+-]?\d+:\d{1,2}(?::\d{1,2}(?:\.\d+)?)?)"  # hh:mm[:ss[.frac]]
    r"|(?P<num>[+-]?(?:\d+(?:\.\d*)?|\.\d+))\s*(?P<unit>[a-z]+)"  # 5 minutes, 1h, 1.5 hours
    r")",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Interval:
    """An interval in PostgreSQL's three fields: months, days and microseconds."""

    months: int = 0
    days: int = 0
    micros: int = 0

    @property
    def is_fixed(self) -> bool:
        """No month part: a fixed length of time (days are 24 h, our timestamps are UTC)."""
        return self.months == 0

    @property
    def total_micros(self) -> int:
        """Length when there is no month part (days are 24 h in UTC)."""
        return self.days * US_PER_DAY + self.micros

    def __neg__(self) -> Interval:
        return Interval(-self.months, -self.days, -self.micros)

    def add_to(self, ts: datetime) -> datetime:
        """`ts + self` with PostgreSQL's calendar rules (months first, the day clamped to month end)."""
        if self.months:
            total = ts.year * 12 + (ts.month - 1) + self.months
            year, month = divmod(total, 12)
            month += 1
            day = min(ts.day, _days_in_month(year, month))
            ts = ts.replace(year=year, month=month, day=day)
        return ts + timedelta(days=self.days, microseconds=self.micros)

    def text(self) -> str:
        """Canonical text that both PostgreSQL and DataFusion read back as the same interval."""
        parts = []
        if self.months:
            parts.append(_plural(self.months, "month"))
        if self.days:
            parts.append(_plural(self.days, "day"))
        if self.micros or not parts:
            us = self.micros
            for size, name in (
                (3600 * US_PER_SECOND, "hour"),
                (60 * US_PER_SECOND, "minute"),
                (US_PER_SECOND, "second"),
                (1000, "millisecond"),
                (1, "microsecond"),
            ):
                if us % size == 0:
                    parts.append(_plural(us // size, name))
                    break
        return " ".join(parts)

    def to_expression(self) -> exp.Interval:
        return exp.Interval(this=exp.Literal.string(self.text()))


def _plural(n: int, unit: str) -> str:
    return f"{n} {unit}" if abs(n) == 1 else f"{n} {unit}s"


def _days_in_month(year: int, month: int) -> int:
    if month == 12:
        return 31
    return (datetime(year, month + 1, 1) - datetime(year, month, 1)).days


def parse_interval(text: str) -> Interval | None:
    """Parse PostgreSQL interval input; None when the text is not a form understood here."""
    s = text.strip().lower()
    if s.startswith("@"):
        s = s[1:]
    ago = False
    if s.endswith(" ago"):
        ago, s = True, s[:-4]
    months = days = 0
    micros = 0.0
    pos = 0
    found = False
    s = s.rstrip()
    while pos < len(s):
        m = _TOKEN.match(s, pos)
        if m is None:
            return None
        pos = m.end()
        found = True
        if m.group("clock"):
            clock = m.group("clock")
            sign = -1 if clock.startswith("-") else 1
            fields = clock.lstrip("+-").split(":")
            h, mi = int(fields[0]), int(fields[1])
            sec = float(fields[2]) if len(fields) > 2 else 0.0
            micros += sign * ((h * 3600 + mi * 60) * US_PER_SECOND + round(sec * US_PER_SECOND))
            continue
        unit = _UNITS.get(m.group("unit"))
        if unit is None:
            return None
        n = float(m.group("num"))
        um, ud, uus = unit
        if um:
            whole_months = n * um
            months += int(whole_months)
            frac = whole_months - int(whole_months)
            days_f = frac * 30  # PostgreSQL: a fractional month is 30 days
            days += int(days_f)
            micros += (days_f - int(days_f)) * US_PER_DAY
        elif ud:
            whole_days = n * ud
            days += int(whole_days)
            micros += (whole_days - int(whole_days)) * US_PER_DAY
        else:
            micros += n * uus
    if not found:
        return None
    result = Interval(months, days, round(micros))
    return -result if ago else result


def interval_of(node: exp.Expression) -> Interval | None:
    """The interval a literal expression denotes: INTERVAL '5 minutes', INTERVAL '5' MINUTE,
    '5 minutes' (a string, as PostgreSQL's unknown-typed literal) or CAST('…' AS INTERVAL)."""
    if isinstance(node, exp.Paren):
        return interval_of(node.this)
    if isinstance(node, exp.Interval):
        value = node.this
        if not isinstance(value, exp.Literal):
            return None
        unit = node.args.get("unit")
        text = value.name
        if unit is not None:
            if not isinstance(unit, exp.Var):
                return None  # INTERVAL '1-2' YEAR TO MONTH and similar
            text = f"{text} {unit.name}"
        return parse_interval(text)
    if isinstance(node, exp.Literal) and node.is_string:
        return parse_interval(node.name)
    if isinstance(node, exp.Cast) and node.to.is_type(exp.DataType.Type.INTERVAL):
        return interval_of(node.this)
    return None
