"""`ts AT TIME ZONE tz`, `at_time_zone(ts, tz)` and `extract_epoch(ts)` with PostgreSQL's meaning.

PostgreSQL: a timestamptz AT TIME ZONE 'zone' is the wall-clock time there, a `timestamp` (no
zone); a `timestamp` AT TIME ZONE 'zone' reads the wall-clock time as being in that zone and gives a
timestamptz. DataFusion's AT TIME ZONE only relabels the zone (and returns nanoseconds), so:

    timestamptz → to_local_time(arrow_cast(ts, Timestamp(µs, zone)))  cast to Timestamp(µs, None)
    timestamp   → arrow_cast(ts, Timestamp(µs, zone)) (Arrow reads it as local time), then to UTC

A numeric zone ('+05:30') is read the POSIX way, as PostgreSQL does: hours *west* of Greenwich.
`extract_epoch(ts)` (TimeFusion's) is `date_part('epoch', ts)`. The zone must be a constant name
('UTC', 'America/New_York') or offset ('+02:00'); an unknown zone is PostgreSQL's error 22023.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlglot import exp

from timefusion.query.rewrite.errors import RewriteError
from timefusion.query.rewrite.literals import ARROW_TS_NAIVE, ARROW_TS_UTC, arrow_cast
from timefusion.query.rewrite.pgtypes import TypeResolver
from timefusion.schema.tables import TableSchema

_OFFSET = re.compile(r"^[+-]\d{2}:\d{2}$")


def rewrite_time_zones(
    tree: exp.Expression,
    schemas: Mapping[str, TableSchema] | None = None,
    *,
    copy: bool = True,
    resolver: TypeResolver | None = None,
) -> exp.Expression:
    """Replace AT TIME ZONE, at_time_zone() and extract_epoch() in `tree`."""
    if not any(_applies(n) for n in tree.find_all(exp.AtTimeZone, exp.Anonymous)):
        return tree
    if copy:
        tree = tree.copy()
    if resolver is None or copy:
        resolver = TypeResolver(tree, schemas or {})
    for node in [n for n in tree.find_all(exp.AtTimeZone, exp.Anonymous, bfs=False) if _applies(n)][::-1]:
        if isinstance(node, exp.AtTimeZone):
            replacement = _at_zone(node.this, node.args["zone"], resolver)
        elif node.name.lower() == "at_time_zone":
            if len(node.expressions) != 2:
                raise RewriteError("function at_time_zone(timestamp, text) takes 2 arguments", "42883")
            replacement = _at_zone(node.expressions[0], node.expressions[1], resolver)
        else:
            if len(node.expressions) != 1:
                raise RewriteError("function extract_epoch(timestamp) takes 1 argument", "42883")
            arg = node.expressions[0]
            if resolver.type_of(arg) not in ("timestamptz", "timestamp", "date", "unknown", None):
                raise RewriteError(f"function extract_epoch({resolver.type_of(arg)}) does not exist", "42883")
            replacement = exp.Anonymous(
                this="date_part", expressions=[exp.Literal.string("epoch"), arg.copy()]
            )
        if node is tree:
            return replacement
        node.replace(replacement)
    return tree


def _applies(node: exp.Expression) -> bool:
    return isinstance(node, exp.AtTimeZone) or node.name.lower() in ("at_time_zone", "extract_epoch")


def _zone_name(zone: exp.Expression) -> str:
    if not (isinstance(zone, exp.Literal) and zone.is_string):
        raise RewriteError("AT TIME ZONE needs a constant time zone", "0A000")
    name = zone.name.strip()
    if _OFFSET.match(name):  # POSIX: '+05:30' is 5:30 *west* of Greenwich, as PostgreSQL reads it
        return ("-" if name[0] == "+" else "+") + name[1:]
    if name.upper() in ("UTC", "Z", "GMT", "ETC/UTC"):
        return "UTC"
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise RewriteError(f'time zone "{name}" not recognized', "22023") from None
    return name


def _at_zone(ts: exp.Expression, zone: exp.Expression, resolver: TypeResolver) -> exp.Expression:
    name = _zone_name(zone)
    kind = resolver.type_of(ts)
    zoned = f'Timestamp(Microsecond, Some("{name}"))'
    if kind == "timestamp":
        return arrow_cast(arrow_cast(ts.copy(), zoned), ARROW_TS_UTC)
    if kind not in ("timestamptz", "unknown", "date", None):
        raise RewriteError(f"function timezone(unknown, {kind}) does not exist", "42883")
    value = ts.copy() if kind in ("timestamptz", None) else arrow_cast(ts.copy(), ARROW_TS_UTC)
    local = exp.Anonymous(this="to_local_time", expressions=[arrow_cast(value, zoned)])
    return arrow_cast(local, ARROW_TS_NAIVE)
