"""AVG of integers and numerics is exact, as PostgreSQL's numeric AVG; DataFusion averages in float64.

PostgreSQL's AVG(int2/int4/int8/numeric) is numeric: sum / count, rounded half away from zero at a
display scale of at least 16 significant digits (select_div_scale: 16 fractional digits for averages
between about 1 and 10⁴, fewer above, more below 1). DataFusion 55 averages integers in float64, so a
mean of exactly k + 0.5 can come out as k + 0.4999999999999995: over the per-minute averages 2526,
2503 and 2487.5 a window AVG is 2505.4999999999995, `::INT` gives 2505 where PostgreSQL gives 2506.
So every AVG whose argument PostgreSQL types as integer or numeric (pgtypes) becomes

    CAST(AVG(CAST(x AS DECIMAL(38, 13))) AS DECIMAL(38, 16))

DataFusion's decimal AVG returns Decimal128(38, 17) (four digits more than its input), truncated; the
outer cast rounds half away from zero to 16 digits, and truncating at 17 then rounding at 16 is
exactly rounding the true quotient at 16: PostgreSQL's value for averages in its 16-digit range (a
window AVG over such averages, whose input is already Decimal128(38, 16), gets no inner cast). The
result prints with 16 decimals like PostgreSQL's (`2505.5000000000000000`); where PostgreSQL picks
another scale (averages ≥ 10⁴ or < 1) the digits shown differ, the value does not. Casts to integers
then round it half away from zero (int_cast.py), ROUND(x, n) rounds it in decimal (round_numeric.py).

Two DataFusion limits shape the rest. A decimal AVG errors on overflow (Arithmetic Overflow in
AvgAccumulator) instead of wrapping: the input scale 13 leaves room for sums up to ~10²⁵ (1M int64
values near 9·10¹⁸ work). And decimal × decimal or decimal ÷ decimal at scale 16 overflows Decimal128
from values of about 10² on (DataFusion scales the dividend by 10^(4 + divisor's scale)), so an
averaged operand of `*`, `/` or `%` is cast to float64 there, as DataFusion computed it before,
except where that is safe and stays exact: divided by an integer (`AVG(x) / 1000`, the quotient
rounded to 16 places like PostgreSQL's) or multiplied by an integer constant (`AVG(x) * 2`).
Cost, measured on 1M int64 rows (float64 → this): ungrouped 2.5 → 10 ms, 300 groups 9 → 16 ms, i.e.
about 7 ms per million rows, mostly the int64 → Decimal128 cast.
"""

from __future__ import annotations

from collections.abc import Mapping

from sqlglot import exp

from timefusion.query.rewrite.pgtypes import PG_CLASS, TypeResolver
from timefusion.schema.tables import TableSchema

T = exp.DataType.Type

INPUT_SCALE = 13  # DataFusion's AVG(Decimal128(p, s)) is Decimal128(min(38, p + 4), s + 4): 17 digits
SCALE = 16  # PostgreSQL's display scale of an average between about 1 and 10⁴
_MARK = "exact_avg"  # meta key on the outer cast: the scale of an exact average
_PASS_THROUGH = exp.Paren | exp.Window | exp.Filter | exp.Min | exp.Max | exp.Sum


def exact_averages(
    tree: exp.Expression,
    schemas: Mapping[str, TableSchema] | None = None,
    *,
    copy: bool = True,
    resolver: TypeResolver | None = None,
) -> exp.Expression:
    """Make every AVG over integers or numerics in `tree` an exact decimal average."""
    if not any(True for _ in tree.find_all(exp.Avg)):
        return tree
    if copy:
        tree = tree.copy()
    if resolver is None or copy:
        resolver = TypeResolver(tree, schemas or {})
    # Decide everything before changing anything (the resolver types the tree as it is).
    plans: list[exp.Avg] = []
    for node in tree.find_all(exp.Avg, bfs=False):
        arg = node.this
        if isinstance(arg, exp.Distinct):
            if len(arg.expressions) != 1:
                continue
            arg = arg.expressions[0]
        if resolver.type_of(arg) in ("int", "numeric"):
            plans.append(node)
    if not plans:
        return tree
    for avg in reversed(plans):  # innermost first: an outer AVG sees the exact inner one
        arg = avg.this.expressions[0] if isinstance(avg.this, exp.Distinct) else avg.this
        scale = decimal_scale(arg, resolver)
        if scale is None or scale < INPUT_SCALE:
            _wrap(arg, exp.Cast(to=exp.DataType.build(f"DECIMAL(38, {INPUT_SCALE})")))
        scale = max(SCALE, scale or 0)
        outer: exp.Expression = avg
        while isinstance(outer.parent, exp.Filter | exp.Window) and outer.parent.this is outer:
            outer = outer.parent
        result = exp.Cast(to=exp.DataType.build(f"DECIMAL(38, {scale})"))
        result.meta[_MARK] = scale
        if outer is tree:
            result.set("this", outer)
            tree = result
        else:
            _wrap(outer, result)
    _float_arithmetic(tree, resolver)
    return tree


def _wrap(node: exp.Expression, wrapper: exp.Expression) -> None:
    """Put `wrapper` where `node` is, with `node` as its `this` (no copy: nested plans stay valid)."""
    node.replace(wrapper)
    wrapper.set("this", node)


def decimal_scale(node: exp.Expression, resolver: TypeResolver, depth: int = 0) -> int | None:
    """The scale of `node` if it is one of these exact averages (or reads one through a column, a
    parenthesis, a window, MIN/MAX/SUM or COALESCE), or an explicit cast to DECIMAL(p, s)."""
    if depth > 16:
        return None
    if _MARK in node.meta:
        return node.meta[_MARK]
    if isinstance(node, exp.Cast) and node.to.this == T.DECIMAL:
        params = node.to.expressions
        if len(params) == 2 and all(isinstance(p.this, exp.Literal) for p in params):
            return int(params[1].this.name)
        return None
    if isinstance(node, _PASS_THROUGH | exp.Coalesce):
        return decimal_scale(node.this, resolver, depth + 1)
    if isinstance(node, exp.Column):
        origin = resolver.column_origin(node)
        if isinstance(origin, exp.Expression):
            return decimal_scale(origin, resolver, depth + 1)
    return None


def _is_exact_average(node: exp.Expression, resolver: TypeResolver, depth: int = 0) -> bool:
    if depth > 16:
        return False
    if _MARK in node.meta:
        return True
    if isinstance(node, _PASS_THROUGH | exp.Neg | exp.Abs):
        return _is_exact_average(node.this, resolver, depth + 1)
    if isinstance(node, exp.Coalesce):
        return any(_is_exact_average(e, resolver, depth + 1) for e in (node.this, *node.expressions))
    if isinstance(node, exp.Add | exp.Sub | exp.Mul | exp.Div):
        return _is_exact_average(node.this, resolver, depth + 1) or _is_exact_average(
            node.expression, resolver, depth + 1
        )
    if isinstance(node, exp.Column):
        origin = resolver.column_origin(node)
        return isinstance(origin, exp.Expression) and _is_exact_average(origin, resolver, depth + 1)
    return False


def _decimal_safe(
    node: exp.Expression, average: exp.Expression, other: exp.Expression, resolver: TypeResolver
) -> bool:
    """Whether DataFusion computes `node` (average op other) in Decimal128(38, 16) without overflow:
    an average divided by an integer (the dividend is scaled by 10⁴), or multiplied by an integer
    constant. As a divisor, the dividend is scaled by 10²⁰ (SUM(x) / AVG(x) overflows from 1.7·10¹⁸)."""
    if resolver.type_of(other) != "int":
        return False
    if isinstance(node, exp.Mul):
        inner = other
        while isinstance(inner, exp.Paren | exp.Neg):
            inner = inner.this
        return isinstance(inner, exp.Literal)
    return node.this is average


def _float_arithmetic(tree: exp.Expression, resolver: TypeResolver) -> None:
    """Averages multiplied or divided by anything but an integer are computed in float64 (see above);
    divided by an integer, the quotient is rounded to 16 places as PostgreSQL's numeric division does
    (DataFusion's Decimal128 quotient has 20, truncated)."""
    casts: list[exp.Expression] = []
    quotients: list[exp.Div] = []
    for node in tree.find_all(exp.Mul, exp.Div, exp.Mod):
        for operand, other in ((node.this, node.expression), (node.expression, node.this)):
            if _is_exact_average(operand, resolver) and not _decimal_safe(node, operand, other, resolver):
                casts.append(operand)
        if (
            isinstance(node, exp.Div)
            and _is_exact_average(node.this, resolver)
            and resolver.type_of(node.expression) == "int"
        ):
            quotients.append(node)
    for quotient in reversed(quotients):  # innermost first
        rounded = exp.Cast(to=exp.DataType.build(f"DECIMAL(38, {SCALE})"))
        rounded.meta[_MARK] = SCALE
        if quotient.parent is None:
            continue  # the statement itself is the quotient: nothing to attach the cast to
        _wrap(quotient, rounded)
    for operand in casts:
        cast = exp.Cast(to=exp.DataType.build("DOUBLE PRECISION"))
        cast.meta[PG_CLASS] = "numeric"  # still numeric to the later rewrites (a ::INT rounds half up)
        _wrap(operand, cast)
