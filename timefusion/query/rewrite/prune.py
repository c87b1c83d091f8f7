"""Pruning hulls: which `project_id`s, `timestamp`s and `date`s each of our tables' references can need.

The hull only lets the engine skip Delta files; the SQL still applies the real filters. So it must
contain every row the query could need, and everything here is conservative: a reference gets the
conjuncts (AND-split; nothing under OR/NOT) of the WHERE of the SELECT that reads it, plus the ON of
an inner join, or of the LEFT JOIN that brings it in (never the ON of a join whose rows it preserves).
A predicate counts only when its column surely belongs to that reference (qualified by its alias, or
unqualified with no other source that has or may have such a column) and its other side is a literal
(after parameter binding): `project_id` = / IN / = ANY(ARRAY[…]); `timestamp` and `date` with = < <=
> >= BETWEEN IN. Timestamp text without a zone is UTC. `now()`/CURRENT_TIMESTAMP/CURRENT_DATE, with
± intervals, are evaluated at `now` for lower bounds only: DataFusion evaluates now() later, at a time
≥ `now`, so a lower bound from `now` is ≤ the real one, while an upper bound from it would be too small.

A table read several times gets the union of the references' ranges (one unconstrained reference
makes that dimension unbounded). A timestamp range implies a date range (`date` is derived from
`timestamp` on write, in UTC). Anything not understood (a statement sqlglot cannot scope, a table
reference outside a SELECT's FROM) makes that table unbounded.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from typing import TypeVar

from sqlglot import exp
from sqlglot.optimizer.scope import Scope, traverse_scope

from timefusion.query.rewrite.intervals import Interval, interval_of
from timefusion.query.rewrite.literals import is_arrow_cast, parse_date, parse_timestamp
from timefusion.query.rewrite.pgtypes import our_table
from timefusion.schema.tables import TableSchema

ONE_US = timedelta(microseconds=1)
ONE_DAY = timedelta(days=1)


@dataclass(frozen=True)
class PruneSpec:
    """Hull of the predicates a query puts on one of our tables; None = unbounded. Used ONLY to skip
    Delta files; the SQL still applies the real filters, so the hull must be a SUPERSET of the rows the
    query can need (be conservative). ts_min > ts_max (or an empty `projects`) means no row at all."""

    projects: frozenset[str] | None = None
    ts_min: datetime | None = None  # inclusive, tz-aware UTC
    ts_max: datetime | None = None  # inclusive, tz-aware UTC
    date_min: date | None = None  # inclusive
    date_max: date | None = None  # inclusive

    def intersect(self, other: PruneSpec) -> PruneSpec:
        """Both hold (two conjuncts of one WHERE)."""
        return PruneSpec(
            _meet(self.projects, other.projects, frozenset.__and__),
            _meet(self.ts_min, other.ts_min, max),
            _meet(self.ts_max, other.ts_max, min),
            _meet(self.date_min, other.date_min, max),
            _meet(self.date_max, other.date_max, min),
        )

    def union(self, other: PruneSpec) -> PruneSpec:
        """Either holds (two references to one table): a None on either side stays None."""
        return PruneSpec(
            _join(self.projects, other.projects, frozenset.__or__),
            _join(self.ts_min, other.ts_min, min),
            _join(self.ts_max, other.ts_max, max),
            _join(self.date_min, other.date_min, min),
            _join(self.date_max, other.date_max, max),
        )

    def with_implied_dates(self) -> PruneSpec:
        """A timestamp range bounds the date partitions too (date = timestamp's UTC date)."""
        spec = self
        if self.ts_min is not None:
            d = self.ts_min.astimezone(UTC).date()
            spec = replace(spec, date_min=d if spec.date_min is None else max(spec.date_min, d))
        if self.ts_max is not None:
            d = self.ts_max.astimezone(UTC).date()
            spec = replace(spec, date_max=d if spec.date_max is None else min(spec.date_max, d))
        return spec


UNBOUNDED = PruneSpec()


_V = TypeVar("_V")


def _meet(a: _V | None, b: _V | None, f: Callable[[_V, _V], _V]) -> _V | None:
    """Both bounds hold: the tighter one (None = no bound)."""
    if a is None:
        return b
    if b is None:
        return a
    return f(a, b)


def _join(a: _V | None, b: _V | None, f: Callable[[_V, _V], _V]) -> _V | None:
    """Either holds: the looser one (None = no bound wins)."""
    if a is None or b is None:
        return None
    return f(a, b)


def extract_prune(
    tree: exp.Expression, schemas: Mapping[str, TableSchema], now: datetime | None = None
) -> dict[str, PruneSpec]:
    """For each of our tables that `tree` (a query) reads: the hull of the rows it can need."""
    now = now.astimezone(UTC) if now is not None else datetime.now(UTC)
    specs: dict[str, PruneSpec] = {}
    handled: set[int] = set()

    def add(name: str, spec: PruneSpec) -> None:
        specs[name] = spec.union(specs[name]) if name in specs else spec

    try:
        scopes = traverse_scope(tree)
    except Exception:
        scopes = []
    for scope in scopes:
        if not isinstance(scope.expression, exp.Select):
            continue
        for alias, (node, source) in scope.selected_sources.items():
            handled.add(id(node))  # a CTE or derived table reference, or one of ours handled here
            if not isinstance(source, exp.Table):
                continue
            schema = our_table(source, schemas)
            if schema is None:
                continue
            handled.add(id(source))
            spec = UNBOUNDED
            for predicate in _predicates_for(scope, alias, source):
                spec = spec.intersect(_predicate_spec(predicate, scope, alias, schema, schemas, now))
            add(schema.name, spec.with_implied_dates())
    # Any other reference to one of our tables (odd syntax, DML, a scope sqlglot did not build).
    for table in tree.find_all(exp.Table):
        schema = our_table(table, schemas)
        if schema is not None and id(table) not in handled:
            add(schema.name, UNBOUNDED)
    return specs


# -- which conjuncts apply to a reference ---------------------------------------------------------


def conjuncts(node: exp.Expression | None) -> Iterator[exp.Expression]:
    """AND-split, through parentheses."""
    if node is None:
        return
    while isinstance(node, exp.Paren):
        node = node.this
    if isinstance(node, exp.And):
        yield from conjuncts(node.this)
        yield from conjuncts(node.expression)
    else:
        yield node


def _predicates_for(scope: Scope, alias: str, table: exp.Table) -> Iterable[exp.Expression]:
    select = scope.expression
    where = select.args.get("where")
    if where is not None:
        yield from conjuncts(where.this)
    for join in select.args.get("joins") or []:
        on = join.args.get("on")
        if on is None:
            continue
        side = (join.side or "").upper()
        kind = (join.kind or "").upper()
        if kind in ("SEMI", "ANTI"):
            continue
        if side == "" or (side == "LEFT" and join.this is table):
            yield from conjuncts(on)


# -- one predicate ---------------------------------------------------------------------------------

_FLIP = {exp.GT: exp.LT, exp.GTE: exp.LTE, exp.LT: exp.GT, exp.LTE: exp.GTE, exp.EQ: exp.EQ}


def _predicate_spec(
    node: exp.Expression,
    scope: Scope,
    alias: str,
    schema: TableSchema,
    schemas: Mapping[str, TableSchema],
    now: datetime,
) -> PruneSpec:
    def ours(col: exp.Expression) -> str | None:
        while isinstance(col, exp.Paren):
            col = col.this
        if not isinstance(col, exp.Column) or col.name not in ("project_id", "timestamp", "date"):
            return None
        return col.name if _belongs(col, scope, alias, schema, schemas) else None

    if isinstance(node, exp.Between):
        name = ours(node.this)
        if name is None or name == "project_id":
            return UNBOUNDED
        low = _bound(name, exp.GTE, node.args["low"], now)
        high = _bound(name, exp.LTE, node.args["high"], now)
        return low.intersect(high)
    if isinstance(node, exp.In):
        name = ours(node.this)
        if name is None or node.args.get("query") is not None or node.args.get("unnest") is not None:
            return UNBOUNDED
        return _any_of(name, node.expressions, now)
    if type(node) in _FLIP:
        op: type[exp.Expression] = type(node)
        left, right = node.this, node.expression
        name = ours(left)
        if name is None:
            name = ours(right)
            if name is None:
                return UNBOUNDED
            left, right, op = right, left, _FLIP[op]
        if op is exp.EQ:
            inner = right
            while isinstance(inner, exp.Paren):
                inner = inner.this
            if isinstance(inner, exp.Any):
                array = inner.this
                while isinstance(array, exp.Paren):
                    array = array.this
                if isinstance(array, exp.Array):
                    return _any_of(name, array.expressions, now)
                return UNBOUNDED
            return _any_of(name, [right], now)
        return _bound(name, op, right, now)
    return UNBOUNDED


def _belongs(
    col: exp.Column, scope: Scope, alias: str, schema: TableSchema, schemas: Mapping[str, TableSchema]
) -> bool:
    """Does `col` surely name a column of the reference `alias` (and of no other source)?"""
    if col.table:
        return col.table == alias
    for other, (_node, source) in scope.selected_sources.items():
        if other == alias:
            continue
        if isinstance(source, exp.Table):
            other_schema = our_table(source, schemas)
            if other_schema is None or col.name in other_schema.by_name:
                return False  # an unknown table may have the column too
        else:
            select = source.expression
            while isinstance(select, exp.SetOperation):
                select = select.this
            if not isinstance(select, exp.Select):
                return False
            for projection in select.expressions:
                if isinstance(projection, exp.Star) or projection.alias_or_name in (col.name, "*"):
                    return False
    return col.name in schema.by_name


def _any_of(name: str, values: list[exp.Expression], now: datetime) -> PruneSpec:
    """The column equals one of `values` (= or IN): the hull of them; unbounded if one is not literal."""
    if name == "project_id":
        projects: set[str] = set()
        for value in values:
            while isinstance(value, exp.Paren):
                value = value.this
            if isinstance(value, exp.Null):
                continue  # never equal
            if not (isinstance(value, exp.Literal) and value.is_string):
                return UNBOUNDED
            projects.add(value.name)
        return PruneSpec(projects=frozenset(projects))
    spec: PruneSpec | None = None
    for value in values:
        one = _bound(name, exp.GTE, value, now).intersect(_bound(name, exp.LTE, value, now))
        if one == UNBOUNDED:
            return UNBOUNDED
        spec = one if spec is None else spec.union(one)
    return spec or UNBOUNDED


def _bound(name: str, op: type[exp.Expression], value: exp.Expression, now: datetime) -> PruneSpec:
    """`column op value` as a range; op is one of GT GTE LT LTE."""
    upper = op in (exp.LT, exp.LTE)
    v = _evaluate(value, now, upper=upper, as_date=name == "date")
    if v is None:
        return UNBOUNDED
    if name == "timestamp":
        if not isinstance(v, datetime):
            v = datetime(v.year, v.month, v.day, tzinfo=UTC)  # a date compares as its midnight
        if op is exp.GT:
            return PruneSpec(ts_min=v + ONE_US)  # timestamps are whole microseconds
        if op is exp.GTE:
            return PruneSpec(ts_min=v)
        if op is exp.LT:
            return PruneSpec(ts_max=v - ONE_US)
        return PruneSpec(ts_max=v)
    # date
    if isinstance(v, datetime):  # date compared with a timestamp: the timestamp's day, inclusive
        d = v.date()
        return PruneSpec(date_max=d) if upper else PruneSpec(date_min=d)
    if op is exp.GT:
        return PruneSpec(date_min=v + ONE_DAY)
    if op is exp.GTE:
        return PruneSpec(date_min=v)
    if op is exp.LT:
        return PruneSpec(date_max=v - ONE_DAY)
    return PruneSpec(date_max=v)


_NOW_FUNCTIONS = ("now", "transaction_timestamp", "statement_timestamp", "clock_timestamp")


def _evaluate(node: exp.Expression, now: datetime, *, upper: bool, as_date: bool) -> datetime | date | None:
    """A constant timestamp (aware UTC) or date expression's value; None when unknown. `upper` says the
    value bounds from above (then now() is unknown, and sub-microsecond digits round up)."""
    while isinstance(node, exp.Paren):
        node = node.this
    if isinstance(node, exp.Literal) and node.is_string:
        if as_date:
            return parse_date(node.name)
        return _timestamp_text(node.name, upper)
    if (
        isinstance(node, exp.Cast | exp.TryCast)
        and isinstance(node.this, exp.Literal)
        and node.this.is_string
    ):
        to = node.to
        if to.is_type(exp.DataType.Type.DATE):
            return parse_date(node.this.name)
        if to.is_type(exp.DataType.Type.TIMESTAMP, exp.DataType.Type.TIMESTAMPTZ):
            return _timestamp_text(node.this.name, upper)
        return None
    if is_arrow_cast(node):
        inner = node.expressions[0]
        if isinstance(inner, exp.Literal) and inner.is_string:
            return _timestamp_text(inner.name, upper)
        return None
    if isinstance(node, exp.CurrentTimestamp) or (
        isinstance(node, exp.Anonymous) and node.name.lower() in _NOW_FUNCTIONS and not node.expressions
    ):
        return None if upper else now
    if isinstance(node, exp.CurrentDate):
        return None if upper else now.date()
    if isinstance(node, exp.TimestampTrunc | exp.DateTrunc):  # monotone: keeps a bound a bound
        unit = node.args.get("unit")
        inner_value = _evaluate(node.this, now, upper=upper, as_date=False)
        if unit is None or not isinstance(inner_value, datetime):
            return None
        return _truncate(inner_value, unit.name.lower())
    if isinstance(node, exp.Add | exp.Sub):
        base, delta = node.this, node.expression
        if isinstance(node, exp.Add) and interval_of(base) is not None and not _is_text(base):
            base, delta = delta, base
        value = _evaluate(base, now, upper=upper, as_date=False)
        if value is None:
            return None
        iv = _interval_or_days(delta, value)
        if iv is None:
            return None
        if isinstance(node, exp.Sub):
            iv = -iv
        if isinstance(value, datetime):
            return iv.add_to(value)
        if iv.micros == 0 and iv.months == 0:
            return value + timedelta(days=iv.days)  # date ± integer stays a date
        return iv.add_to(datetime(value.year, value.month, value.day, tzinfo=UTC))
    return None


def _is_text(node: exp.Expression) -> bool:
    return isinstance(node, exp.Literal) and node.is_string


def _interval_or_days(node: exp.Expression, value: datetime | date) -> Interval | None:
    while isinstance(node, exp.Paren):
        node = node.this
    if isinstance(node, exp.Literal) and not node.is_string:
        if isinstance(value, datetime) or not node.name.lstrip("-").isdigit():
            return None
        return Interval(days=int(node.name))  # date ± n days
    if isinstance(node, exp.Literal):
        return None  # an unknown-typed string: too ambiguous to trust
    return interval_of(node)


def _timestamp_text(text: str, upper: bool) -> datetime | None:
    value = parse_timestamp(text)
    if value is not None and upper and _has_sub_microseconds(text):
        value += ONE_US
    return value


def _has_sub_microseconds(text: str) -> bool:
    dot = text.find(".")
    if dot < 0:
        return False
    digits = ""
    for ch in text[dot + 1 :]:
        if not ch.isdigit():
            break
        digits += ch
    return any(c != "0" for c in digits[6:])


def _truncate(value: datetime, unit: str) -> datetime | None:
    if unit in ("microsecond", "microseconds"):
        return value
    if unit in ("millisecond", "milliseconds"):
        return value.replace(microsecond=value.microsecond // 1000 * 1000)
    if unit in ("second", "seconds"):
        return value.replace(microsecond=0)
    if unit in ("minute", "minutes"):
        return value.replace(second=0, microsecond=0)
    if unit in ("hour", "hours"):
        return value.replace(minute=0, second=0, microsecond=0)
    if unit in ("day", "days"):
        return value.replace(hour=0, minute=0, second=0, microsecond=0)
    if unit in ("week", "weeks"):
        day = value.replace(hour=0, minute=0, second=0, microsecond=0)
        return day - timedelta(days=day.weekday())
    if unit in ("month", "months"):
        return value.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    if unit in ("year", "years"):
        return value.replace(month=1, day=1, hour=0, minute=0, second=0, microsecond=0)
    return None
