"""TimescaleDB's `time_bucket_gapfill(width, ts [, start, finish])` with `locf()` and `interpolate()`.

A dashboard query such as

    SELECT time_bucket_gapfill('5 minutes', timestamp) AS b, name, count(*), locf(avg(duration)),
           interpolate(max(duration))
    FROM otel_logs_and_spans WHERE timestamp >= X AND timestamp < Y GROUP BY b, name ORDER BY b

returns one row per bucket between start and finish for every group (every combination of the other
GROUP BY columns that occurs), as TimescaleDB does: buckets without rows have NULL aggregates (also
count), `locf(agg)` carries the last non-NULL value forward within the group, and `interpolate(agg)`
fills a gap linearly between the neighbouring buckets that have values (NULL at the edges).

The statement becomes: the original aggregation with `time_bucket` (`__tf_agg`), a grid of every
bucket (`unnest(range(…))` of microseconds) crossed with the groups found, a LEFT JOIN of the two, and
window functions for locf/interpolate. start and finish are the optional arguments or else the
bounds of the bucketed column in WHERE (as found for pruning); without them, or with a month width,
the statement is refused as TimescaleDB refuses it (22023). At most 1,000,000 buckets.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

import sqlglot
from sqlglot import exp

from timefusion.query.rewrite.errors import RewriteError
from timefusion.query.rewrite.intervals import interval_of
from timefusion.query.rewrite.literals import parse_timestamp
from timefusion.query.rewrite.prune import extract_prune
from timefusion.query.rewrite.time_bucket import ORIGIN
from timefusion.schema.tables import TableSchema

MAX_BUCKETS = 1_000_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def rewrite_gapfill(
    tree: exp.Expression, schemas: Mapping[str, TableSchema], now: datetime
) -> exp.Expression:
    """Replace a SELECT using time_bucket_gapfill by its gap-filling form (a new tree)."""
    calls = [n for n in tree.find_all(exp.Anonymous) if n.name.lower() == "time_bucket_gapfill"]
    if not calls:
        return tree
    if not isinstance(tree, exp.Select) or tree.args.get("with_"):
        raise RewriteError("time_bucket_gapfill() is supported in the SELECT list of a plain query", "0A000")
    items = tree.expressions
    bucket_items = [i for i, e in enumerate(items) if _is_gapfill(e.unalias())]
    if len(bucket_items) != 1 or len(calls) != 1:
        raise RewriteError("time_bucket_gapfill() must appear once, as an item of the SELECT list", "0A000")
    call = items[bucket_items[0]].unalias()
    args = [a for a in call.expressions if not isinstance(a, exp.Kwarg)]
    named = {a.this.name.lower(): a.expression for a in call.expressions if isinstance(a, exp.Kwarg)}
    if len(args) < 2:
        raise RewriteError("function time_bucket_gapfill() takes 2 to 4 arguments", "42883")
    width, ts = args[0], args[1]
    start_arg = named.get("start", args[2] if len(args) > 2 else None)
    finish_arg = named.get("finish", args[3] if len(args) > 3 else None)
    iv = interval_of(width)
    if iv is None or iv.months or iv.total_micros <= 0:
        raise RewriteError("time_bucket_gapfill() needs a constant, positive width without months", "22023")
    step = iv.total_micros

    inner = tree.copy()
    for key in ("order", "limit", "offset"):
        inner.set(key, None)
    start, finish = _bound(start_arg), _bound(finish_arg)
    if start is None or finish is None:
        spec = next(iter(extract_prune(inner, schemas, now).values()), None)
        if spec is not None:
            start = start or spec.ts_min
            if finish is None and spec.ts_max is not None:
                finish = spec.ts_max + _us(1)  # the hull is inclusive, finish exclusive
    if start is None or finish is None:
        raise RewriteError(
            "missing time_bucket_gapfill argument: could not infer start or finish from the WHERE clause "
            "(bound the time column, or pass start and finish)",
            "22023",
        )
    origin = (ORIGIN - _EPOCH) // _us(1)
    lo = (start - _EPOCH) // _us(1)
    hi = (finish - _EPOCH) // _us(1)
    first = lo - (lo - origin) % step
    if (hi - first) // step > MAX_BUCKETS:
        raise RewriteError(f"time_bucket_gapfill(): more than {MAX_BUCKETS} buckets", "54000")

    roles: list[tuple[str, exp.Expression, str]] = []  # (role, inner expression, output name)
    for i, item in enumerate(items):
        expr = item.unalias()
        name = (
            item.alias_or_name
            if isinstance(item, exp.Alias)
            else (expr.name if isinstance(expr, exp.Column | exp.Anonymous) else f"col{i}")
        )
        if i == bucket_items[0]:
            roles.append(
                ("bucket", exp.Anonymous(this="time_bucket", expressions=[width.copy(), ts.copy()]), name)
            )
        elif isinstance(expr, exp.Anonymous) and expr.name.lower() in ("locf", "interpolate"):
            if not expr.expressions:
                raise RewriteError(f"function {expr.name.lower()}() needs an argument", "42883")
            roles.append((expr.name.lower(), expr.expressions[0].copy(), name))
        elif expr.find(exp.AggFunc) is not None:
            roles.append(("agg", expr.copy(), name))
        else:
            roles.append(("group", expr.copy(), name))
    inner.set("expressions", [exp.alias_(e, f"__tf_c{i}") for i, (_, e, _) in enumerate(roles)])
    keys = [i for i, (role, _, _) in enumerate(roles) if role in ("bucket", "group")]
    inner.set("group", exp.Group(expressions=[exp.Literal.number(i + 1) for i in keys]))
    b = f"__tf_c{bucket_items[0]}"
    groups = [f"__tf_c{i}" for i, (role, _, _) in enumerate(roles) if role == "group"]

    grid = (
        f"SELECT arrow_cast(to_timestamp_micros(__tf_v), 'Timestamp(Microsecond, Some(\"UTC\"))') AS {b}"
        + "".join(f", __tf_k.{g}" for g in groups)
        + f" FROM (SELECT unnest(range({first}, {hi}, {step})) AS __tf_v) AS __tf_r"
    )
    if groups:
        grid += f" CROSS JOIN (SELECT DISTINCT {', '.join(groups)} FROM __tf_agg) AS __tf_k"
    join = " AND ".join(
        [f"__tf_grid.{b} = __tf_agg.{b}"]
        + [f"__tf_grid.{g} IS NOT DISTINCT FROM __tf_agg.{g}" for g in groups]
    )
    values = [
        f"__tf_agg.__tf_c{i}" for i, (role, _, _) in enumerate(roles) if role not in ("bucket", "group")
    ]
    filled = (
        f"SELECT __tf_grid.*{''.join(', ' + v for v in values)} FROM __tf_grid LEFT JOIN __tf_agg ON {join}"
    )
    partition = f"PARTITION BY {', '.join(groups)} " if groups else ""
    before = f"OVER ({partition}ORDER BY {b} ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)"
    after = f"OVER ({partition}ORDER BY {b} ROWS BETWEEN CURRENT ROW AND UNBOUNDED FOLLOWING)"
    outputs = []
    verbatim: dict[str, str] = {}  # sqlglot's PostgreSQL generator drops IGNORE NULLS: kept as text
    for i, (role, _, name) in enumerate(roles):
        c = f"__tf_c{i}"
        if role == "locf":
            sql = f"last_value({c}) IGNORE NULLS {before}"
        elif role == "interpolate":
            t_prev = f"last_value(CASE WHEN {c} IS NOT NULL THEN {b} END) IGNORE NULLS {before}"
            t_next = f"first_value(CASE WHEN {c} IS NOT NULL THEN {b} END) IGNORE NULLS {after}"
            v_prev = f"last_value({c}) IGNORE NULLS {before}"
            v_next = f"first_value({c}) IGNORE NULLS {after}"
            sql = (
                f"CASE WHEN {c} IS NOT NULL THEN CAST({c} AS DOUBLE PRECISION) ELSE "
                f"CAST({v_prev} AS DOUBLE PRECISION) + (CAST({v_next} AS DOUBLE PRECISION) - {v_prev}) * "
                f"(date_part('epoch', {b}) - date_part('epoch', {t_prev})) / "
                f"(date_part('epoch', {t_next}) - date_part('epoch', {t_prev})) END"
            )
        else:
            sql = c
        if role in ("locf", "interpolate"):
            verbatim[f"__tf_w{i}"] = sql
            sql = f"__tf_w{i}"
        outputs.append(f"{sql} AS {exp.to_identifier(name).sql('postgres')}")
    order = ""
    if tree.args.get("order"):
        order = " " + _order(tree.args["order"], roles, items).sql("postgres")
    limit = ""
    for key in ("limit", "offset"):
        if tree.args.get(key):
            limit += " " + tree.args[key].sql("postgres")
    inner_sql = inner.sql("postgres", normalize_functions="lower")
    text = (
        f"WITH __tf_agg AS ({inner_sql}), __tf_grid AS ({grid}), __tf_filled AS ({filled}) "
        f"SELECT {', '.join(outputs)} FROM __tf_filled{order}{limit}"
    )
    out = sqlglot.parse_one(text, read="postgres")
    for column in list(out.find_all(exp.Column)):
        if column.name in verbatim:
            column.replace(exp.Var(this=f"({verbatim[column.name]})"))
    return out


def _is_gapfill(node: exp.Expression) -> bool:
    return isinstance(node, exp.Anonymous) and node.name.lower() == "time_bucket_gapfill"


def _us(n: int) -> timedelta:
    return timedelta(microseconds=n)


def _bound(node: exp.Expression | None) -> datetime | None:
    if node is None:
        return None
    if isinstance(node, exp.Cast | exp.TryCast) and isinstance(node.this, exp.Literal):
        node = node.this
    if isinstance(node, exp.Literal) and node.is_string:
        value = parse_timestamp(node.name)
        if value is None:
            raise RewriteError(
                f'invalid input syntax for type timestamp with time zone: "{node.name}"', "22007"
            )
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    raise RewriteError("time_bucket_gapfill(): start and finish must be constant timestamps", "0A000")


def _order(order: exp.Order, roles: list, items: list) -> exp.Order:
    """The ORDER BY of the outer query: output names and positions stay, an item's expression becomes
    its output name."""
    order = order.copy()
    for key in order.expressions:
        target = key.this
        for i, item in enumerate(items):
            if target == item.unalias() and not isinstance(target, exp.Literal):
                key.set("this", exp.column(roles[i][2]))
                break
    return order
