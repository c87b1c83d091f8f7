"""`PERCENTILE_CONT(p) WITHIN GROUP (ORDER BY x)` computed exactly, as PostgreSQL does.

DataFusion 55's percentile_cont truncates the interpolation fraction to six decimals: over 1000, 1200,
1700 its 0.95 percentile is 1649.9995 where PostgreSQL says 1650 (and 1636.099361 for 1636.1 in the
reference p95 query). PostgreSQL sorts the group's non-null values, takes pos = p * (n - 1) and
returns lo + (hi - lo) * (pos - floor(pos)) with lo, hi the values at floor(pos) and ceil(pos). This
rewrite spells exactly that with DataFusion's own aggregates:

    S   = ARRAY_SORT(ARRAY_AGG(CAST(x AS DOUBLE PRECISION)) FILTER (WHERE x IS NOT NULL [AND filter]))
    POS = p * (COUNT(x) [FILTER (WHERE filter)] - 1)
    S[floor(POS) + 1] + (S[ceil(POS) + 1] - S[floor(POS) + 1]) * (POS - floor(POS))

DataFusion computes the repeated aggregates once (common subexpression elimination). An exact
percentile needs all values in memory either way; measured on 2M rows in 288 groups this took about
twice as long as the native function (about 200 vs 90 ms). Only numeric arguments are rewritten
(PostgreSQL's percentile_cont over intervals and arrays of fractions are left to DataFusion).
"""

from __future__ import annotations

from collections.abc import Mapping

from sqlglot import exp

from timefusion.query.rewrite.errors import RewriteError
from timefusion.query.rewrite.pgtypes import NUMERIC, TypeResolver
from timefusion.schema.tables import TableSchema

_TEMPLATE = (
    "(array_element({s}, CAST(floor({pos}) AS BIGINT) + 1) + (array_element({s}, CAST(ceil({pos}) AS BIGINT)"
    " + 1) - array_element({s}, CAST(floor({pos}) AS BIGINT) + 1)) * ({pos} - floor({pos})))"
)


def exact_percentiles(
    tree: exp.Expression,
    schemas: Mapping[str, TableSchema] | None = None,
    *,
    copy: bool = True,
    resolver: TypeResolver | None = None,
) -> exp.Expression:
    """Replace every PERCENTILE_CONT(<number>) WITHIN GROUP (ORDER BY <numeric>) in `tree`."""
    if not any(isinstance(w.this, exp.PercentileCont) for w in tree.find_all(exp.WithinGroup)):
        return tree
    if copy:
        tree = tree.copy()
    if resolver is None or copy:
        resolver = TypeResolver(tree, schemas or {})
    plans = []
    for node in tree.find_all(exp.WithinGroup, bfs=False):
        if not isinstance(node.this, exp.PercentileCont):
            continue
        order = node.expression
        keys = order.expressions if isinstance(order, exp.Order) else []
        if len(keys) != 1 or resolver.type_of(keys[0].this) not in NUMERIC:
            continue
        fraction = node.this.this
        if isinstance(fraction, exp.Literal) and not fraction.is_string:
            if not 0 <= float(fraction.name) <= 1:
                raise RewriteError(f"percentile value {fraction.name} is not between 0 and 1", "22003")
        elif not isinstance(fraction, exp.Literal | exp.Null | exp.Neg | exp.Cast):
            continue  # an array of fractions or an expression: leave it to DataFusion
        parent = node.parent
        if isinstance(parent, exp.Window) or (
            isinstance(parent, exp.Filter) and isinstance(parent.parent, exp.Window)
        ):
            continue  # PostgreSQL has no windowed ordered-set aggregates; DataFusion decides
        where = parent.expression.this if isinstance(parent, exp.Filter) and parent.this is node else None
        target = parent if where is not None else node
        plans.append((target, _exact(fraction, keys[0].this, bool(keys[0].args.get("desc")), where)))
    for target, replacement in reversed(plans):
        if target is tree:
            return replacement
        target.replace(replacement)
    return tree


def _sql(node: exp.Expression) -> str:
    return node.sql(dialect="postgres", normalize_functions="lower")


def _exact(
    fraction: exp.Expression, value: exp.Expression, desc: bool, where: exp.Expression | None
) -> exp.Expression:
    """The expansion, as one pre-generated SQL fragment (an `exp.Var` is generated verbatim): it repeats
    the argument a dozen times, and building and generating that as a tree costs milliseconds."""
    x = _sql(value)
    condition = f"{x} IS NOT NULL" if where is None else f"({_sql(where)}) AND {x} IS NOT NULL"
    order = ", 'DESC'" if desc else ""
    sorted_values = f"array_sort(array_agg(CAST({x} AS DOUBLE PRECISION)) FILTER (WHERE {condition}){order})"
    count = f"count({x})" if where is None else f"count({x}) FILTER (WHERE {_sql(where)})"
    pos = f"({_sql(fraction)} * ({count} - 1))"
    return exp.Var(this=_TEMPLATE.format(s=sorted_values, pos=pos))
