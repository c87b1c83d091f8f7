"""TimescaleDB's `time_bucket(width, ts [, origin | offset])` → DataFusion's native `date_bin`.

TimescaleDB aligns fixed-width buckets to the origin 2000-01-03 00:00 UTC (a Monday: weeks start on
Monday; for widths that divide a day this is the same as aligning to the Unix epoch), so the origin
is always passed explicitly (DataFusion's default is the epoch, which puts weeks on Thursdays).
`date_bin` returns nanosecond timestamps even for microsecond input, so the result is cast back to
the input's type: Timestamp(µs, UTC) for our columns and timestamptz values, µs without zone for
`timestamp`, and `date` for a date argument (TimescaleDB returns the argument's type).

Month and year widths have no fixed length: TimescaleDB aligns them to 2000-01-01; '1 month' and
'1 year' become `date_trunc`, other whole-month widths `date_bin` with a month stride (DataFusion
steps calendar months). A width mixing months with days or time is refused (TimescaleDB refuses it
too), as is a custom origin for month widths that is not the first of a month, and a time zone.

The width may be an INTERVAL literal or a string ('5 minutes', '1h', '15m', '1 day', '1w', …).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

from sqlglot import exp

from timefusion.query.rewrite.errors import RewriteError
from timefusion.query.rewrite.intervals import Interval, interval_of
from timefusion.query.rewrite.literals import (
    ARROW_TS_NAIVE,
    ARROW_TS_UTC,
    arrow_cast,
    is_arrow_cast,
    parse_timestamp,
    timestamp_expression,
)
from timefusion.query.rewrite.pgtypes import TypeResolver
from timefusion.schema.tables import TableSchema

ORIGIN = datetime(2000, 1, 3, tzinfo=UTC)
MONTH_ORIGIN = datetime(2000, 1, 1, tzinfo=UTC)


def rewrite_time_bucket(
    tree: exp.Expression,
    schemas: Mapping[str, TableSchema] | None = None,
    *,
    copy: bool = True,
    resolver: TypeResolver | None = None,
) -> exp.Expression:
    """Replace every `time_bucket(...)` call in `tree`."""
    if not any(_is_time_bucket(n) for n in tree.find_all(exp.Anonymous)):
        return tree
    if copy:
        tree = tree.copy()
    if resolver is None or copy:
        resolver = TypeResolver(tree, schemas or {})
    calls = [n for n in tree.find_all(exp.Anonymous, bfs=False) if _is_time_bucket(n)]
    for call in reversed(calls):  # innermost first
        replacement = _rewrite_call(call, resolver)
        if call is tree:
            return replacement
        call.replace(replacement)
    return tree


def _is_time_bucket(node: exp.Anonymous) -> bool:
    return node.name.lower() == "time_bucket"


def _rewrite_call(call: exp.Anonymous, resolver: TypeResolver) -> exp.Expression:
    positional = [a for a in call.expressions if not isinstance(a, exp.Kwarg)]
    named = {a.this.name.lower(): a.expression for a in call.expressions if isinstance(a, exp.Kwarg)}
    if len(positional) < 2 or len(positional) > 3:
        raise RewriteError(f"function time_bucket() takes 2 or 3 arguments, got {len(positional)}", "42883")
    width, ts = positional[0], positional[1]
    origin = named.pop("origin", None)
    offset = named.pop("offset", None)
    zone = named.pop("timezone", None)
    if named:
        raise RewriteError(f"time_bucket(): unknown argument {next(iter(named))!r}", "42883")
    if len(positional) == 3:
        third = positional[2]
        if interval_of(third) is not None and not _is_timestamp_text(third):
            offset = third
        elif isinstance(third, exp.Literal) and third.is_string and not _is_timestamp_text(third):
            zone = third
        else:
            origin = third
    if zone is not None and not (isinstance(zone, exp.Literal) and zone.name.upper() in ("UTC", "ETC/UTC")):
        raise RewriteError("time_bucket() with a time zone is not supported (timestamps are UTC)", "0A000")

    kind = resolver.type_of(ts)
    if kind == "date":
        target = ARROW_TS_NAIVE
        ts = arrow_cast(ts.copy(), ARROW_TS_NAIVE)
    elif kind == "timestamp":
        target = ARROW_TS_NAIVE
        ts = ts.copy()
    else:
        target = ARROW_TS_UTC
        if kind == "unknown":  # untyped text: a timestamptz, in a form Arrow's parser accepts
            value = _literal_timestamp(ts)
            ts = timestamp_expression(value) if value is not None else arrow_cast(ts.copy(), ARROW_TS_UTC)
        else:
            ts = ts.copy()

    base: exp.Expression = ts
    offset_iv: exp.Expression | None = None
    if offset is not None:
        iv = interval_of(offset)
        offset_iv = iv.to_expression() if iv is not None else offset.copy()
        base = exp.Sub(this=base, expression=offset_iv)

    width_iv = interval_of(width)
    if width_iv is None:
        if isinstance(width, (exp.Literal, exp.Interval)):
            raise RewriteError(f'invalid input syntax for type interval: "{width.name}"', "22007")
        bucket = _date_bin(width.copy(), base, _origin(origin, ORIGIN, target))  # computed width
    elif width_iv.months:
        bucket = _month_bucket(width_iv, base, origin, target)
    else:
        if width_iv.total_micros <= 0:
            raise RewriteError("time_bucket(): period must be greater than 0", "22023")
        bucket = _date_bin(width_iv.to_expression(), base, _origin(origin, ORIGIN, target))

    if offset_iv is not None:
        bucket = exp.Add(this=bucket, expression=offset_iv.copy())
    if kind == "date":
        return exp.Cast(this=bucket, to=exp.DataType.build("DATE"))
    return bucket


def _month_bucket(
    width: Interval, base: exp.Expression, origin: exp.Expression | None, target: str
) -> exp.Expression:
    if width.days or width.micros:
        raise RewriteError("time_bucket(): month intervals cannot have day or time component", "0A000")
    if width.months <= 0:
        raise RewriteError("time_bucket(): period must be greater than 0", "22023")
    if origin is not None:
        value = _literal_timestamp(origin)
        if value is None or value.day != 1 or value.time() != datetime.min.time():
            raise RewriteError(
                "time_bucket(): a month width with an origin other than the first of a month at "
                "midnight is not supported",
                "0A000",
            )
        if (value.year * 12 + value.month - 2000 * 12 - 1) % width.months == 0:
            origin = None  # same alignment as the default
    if origin is None and width.months in (1, 12):
        unit = "month" if width.months == 1 else "year"
        truncated = exp.Anonymous(this="date_trunc", expressions=[exp.Literal.string(unit), base])
        return arrow_cast(truncated, target)
    return _date_bin(width.to_expression(), base, _origin(origin, MONTH_ORIGIN, target))


def _date_bin(width: exp.Expression, base: exp.Expression, origin: exp.Expression) -> exp.Expression:
    # The cast back: date_bin returns Timestamp(ns, tz) for any input unit.
    target = origin.expressions[1].name if is_arrow_cast(origin) else ARROW_TS_UTC
    return arrow_cast(exp.Anonymous(this="date_bin", expressions=[width, base, origin]), target)


def _origin(origin: exp.Expression | None, default: datetime, target: str) -> exp.Expression:
    if origin is None:
        value = default
    else:
        literal = _literal_timestamp(origin)
        if literal is None:
            return arrow_cast(origin.copy(), target)
        value = literal
    text = value.strftime("%Y-%m-%dT%H:%M:%S") + (f".{value.microsecond:06d}" if value.microsecond else "")
    if target == ARROW_TS_UTC:
        text += "Z"
    return arrow_cast(exp.Literal.string(text), target)


def _literal_timestamp(node: exp.Expression) -> datetime | None:
    if isinstance(node, exp.Cast | exp.TryCast) and isinstance(node.this, exp.Literal):
        node = node.this
    elif is_arrow_cast(node):
        node = node.expressions[0]
    if isinstance(node, exp.Literal) and node.is_string:
        return parse_timestamp(node.name)
    return None


def _is_timestamp_text(node: exp.Expression) -> bool:
    return _literal_timestamp(node) is not None
