"""Casts to an integer type round, as in PostgreSQL; DataFusion truncates toward zero.

PostgreSQL rounds when converting a non-integer to int2/int4/int8, with two rules:
  - numeric (literals like 2.7, AVG/SUM of integers, anything mixed with a numeric) rounds half away
    from zero: `CAST(x AS INT)` → `CAST(ROUND(x) AS INT)` (DataFusion's round() is half away from
    zero, for float64 and decimal alike);
  - float8/float4 (float columns, AVG of floats, percentile_cont) uses rint, half to even:
    → `CAST(CASE WHEN ABS(x - TRUNC(x)) = 0.5 THEN 2 * ROUND(x / 2) ELSE ROUND(x) END AS INT)`
    (every step is exact in binary floating point, so this is exactly rint).
AVG of integers and numerics is an exact decimal (avg_numeric.py), so `AVG(x)::INT` rounds the true
average. Other numeric expressions DataFusion evaluates as float64, so a numeric whose true value is
exactly k+0.5 still rounds correctly when float64 holds it exactly (k + 0.5 is exact below 2^52, and
the quotient of exactly representable numbers is correctly rounded), but not, say, 0.1 + 0.2 - 0.3
noise.

The operand's type comes from `types.TypeResolver` (scopes, our schemas, PostgreSQL's promotion rules).
Integer and text operands are left alone (a bigint must not pass through float64), and so is anything
whose type is unknown. Casts of ROUND/FLOOR/CEIL/TRUNC without a scale are already integral.
"""

from __future__ import annotations

from collections.abc import Mapping

from sqlglot import exp

from timefusion.query.rewrite.pgtypes import TypeResolver
from timefusion.schema.tables import TableSchema

T = exp.DataType.Type
INTEGER_TYPES = frozenset({T.TINYINT, T.SMALLINT, T.INT, T.BIGINT, T.MEDIUMINT})


def _is_int_cast(node: exp.Cast) -> bool:
    return node.to.this in INTEGER_TYPES and not node.to.args.get("nested")


def round_int_casts(
    tree: exp.Expression,
    schemas: Mapping[str, TableSchema] | None = None,
    *,
    copy: bool = True,
    resolver: TypeResolver | None = None,
) -> exp.Expression:
    """Make every cast to an integer type round its float/numeric operand like PostgreSQL."""
    if not any(_is_int_cast(c) for c in tree.find_all(exp.Cast)):
        return tree  # the hot path: no scopes, no typing
    if copy:
        tree = tree.copy()
    if resolver is None or copy:
        resolver = TypeResolver(tree, schemas or {})
    # Decide everything before changing anything (the resolver walks the unmodified tree).
    casts = [(c, _rounding(c.this, resolver)) for c in tree.find_all(exp.Cast, bfs=False) if _is_int_cast(c)]
    for cast, kind in reversed(casts):  # innermost first: half_even() copies an operand
        if kind == "numeric":
            cast.set("this", exp.Round(this=cast.this))
        elif kind == "float":
            cast.set("this", half_even(cast.this))
    return tree


def _rounding(operand: exp.Expression, resolver: TypeResolver) -> str | None:
    inner = operand
    while isinstance(inner, exp.Paren):
        inner = inner.this
    if (
        inner.meta.get("integral")
        or isinstance(inner, exp.Floor | exp.Ceil)
        or (isinstance(inner, exp.Round | exp.Anonymous) and _integral_call(inner))
    ):
        return None
    kind = resolver.type_of(operand)
    return kind if kind in ("numeric", "float") else None


def _integral_call(node: exp.Expression) -> bool:
    if isinstance(node, exp.Round):
        return node.args.get("decimals") is None
    if isinstance(node, exp.Anonymous):
        return (
            node.name.lower() in ("trunc", "round", "floor", "ceil", "ceiling") and len(node.expressions) == 1
        )
    return False


def half_even(x: exp.Expression) -> exp.Expression:
    """rint(x) for a float8 `x`: round half to even."""

    def copy() -> exp.Expression:
        return x.copy()

    two = exp.Literal.number(2)
    tie = exp.EQ(
        this=exp.Abs(this=exp.Sub(this=copy(), expression=exp.Anonymous(this="trunc", expressions=[copy()]))),
        expression=exp.Literal.number("0.5"),
    )
    half = exp.Div(this=copy(), expression=two.copy(), typed=True)  # typed: no cast added by sqlglot
    even = exp.Mul(this=two, expression=exp.Round(this=half))
    result = exp.Case(ifs=[exp.If(this=tie, true=even)], default=exp.Round(this=x))
    result.meta["integral"] = True  # a cast of it to an integer needs no rounding
    return result
