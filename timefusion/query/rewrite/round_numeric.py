"""ROUND as in PostgreSQL: `ROUND(x, n)` is numeric rounding, `ROUND(float8)` rounds half to even.

PostgreSQL has `round(numeric, int)` only, so `ROUND(100.0 * errors / total, 2)` is computed in
numeric and prints with exactly n decimals ("50.00", "12.50", "3.13" for 3.125). DataFusion evaluates
the argument in float64 and its `round(float64, n)` returns float64 ("50", and float noise can flip a
…5). The argument is therefore cast to DECIMAL(38, 10) first (max(10, n) places): ten places absorb
float64 noise (1.00499999999999989 → 1.0050000000 → 1.01, as numeric gives), DataFusion's decimal
round is half away from zero like numeric's, and the result is Decimal128(38, n), which prints n
places. (sqlglot's PostgreSQL generator adds such a cast itself when it can type the argument; this
makes it independent of that.) An argument that already is a decimal cast, such as an exact average
(avg_numeric.py, Decimal128(38, 16)), is rounded as it is: no second rounding at ten places.

`ROUND(x)` without a scale on a float8 is rint (half to even) in PostgreSQL: `round(2.5::float8)` is
2; DataFusion's round gives 3, so it gets the exact half-to-even CASE from int_cast.half_even.
Arguments of a known non-numeric type are left alone.
"""

from __future__ import annotations

from collections.abc import Mapping

from sqlglot import exp

from timefusion.query.rewrite.int_cast import half_even
from timefusion.query.rewrite.pgtypes import NUMERIC, TypeResolver
from timefusion.schema.tables import TableSchema

T = exp.DataType.Type
_PLANNER_SAFE_SCALE = 14


def _scale(to: exp.DataType) -> int | None:
    params = to.expressions
    if len(params) == 2 and isinstance(params[1].this, exp.Literal):
        return int(params[1].this.name)
    return None


def round_like_postgres(
    tree: exp.Expression,
    schemas: Mapping[str, TableSchema] | None = None,
    *,
    copy: bool = True,
    resolver: TypeResolver | None = None,
) -> exp.Expression:
    """Rewrite every ROUND in `tree` to PostgreSQL's semantics."""
    if not any(True for _ in tree.find_all(exp.Round)):
        return tree
    if copy:
        tree = tree.copy()
    if resolver is None or copy:
        resolver = TypeResolver(tree, schemas or {})
    plans: list[tuple[exp.Round, str]] = []
    for node in tree.find_all(exp.Round, bfs=False):
        kind = resolver.type_of(node.this)
        if node.args.get("decimals") is not None:
            if kind in NUMERIC or kind in (None, "unknown"):
                plans.append((node, "decimal"))
        elif kind == "float":
            plans.append((node, "rint"))
    for node, plan in reversed(plans):  # innermost first: half_even() copies its operand
        if plan == "decimal":
            arg = node.this
            decimals = node.args["decimals"]
            n = int(decimals.name) if isinstance(decimals, exp.Literal) and decimals.is_int else None
            if not (isinstance(arg, exp.Cast) and arg.to.this == T.DECIMAL):
                to = exp.DataType.build(f"DECIMAL(38, {max(10, min(n or 0, 38))})")
                node.set("this", exp.Cast(this=arg, to=to))
            elif n is not None and 0 <= n <= 38 and (_scale(arg.to) or 0) > _PLANNER_SAFE_SCALE:
                # DataFusion 55 mis-plans comparisons with round(Decimal128(38, s ≥ 15), n); a cast to
                # the type round() returns anyway avoids it (e.g. ROUND(AVG(int), 2) > 1.5).
                result = exp.Cast(to=exp.DataType.build(f"DECIMAL(38, {n})"))
                if node is tree:
                    result.set("this", node)
                    return result
                node.replace(result)
                result.set("this", node)
        else:
            replacement = half_even(node.this)
            if node is tree:
                return replacement
            node.replace(replacement)
    return tree
