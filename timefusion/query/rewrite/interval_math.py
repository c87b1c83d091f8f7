"""`interval * number`, `number * interval` and `interval / number` (DataFusion 55 has none of them).

With a constant number the result is computed here with PostgreSQL's interval_mul rules (a fraction
of a month cascades into days at 30 days a month, a fraction of a day into time at 24 h) and written
as an interval literal. With a column: an integer times an interval is built field by field
(`CAST(n*m || ' months ' || n*d || ' days ' || n*us || ' microseconds' AS INTERVAL)`); a fractional
number times a fixed-length interval (no months or days) goes through a microsecond Duration.
Anything else (a fractional number times months) is refused with 0A000.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import ROUND_HALF_EVEN, Decimal

from sqlglot import exp

from timefusion.query.rewrite.errors import RewriteError
from timefusion.query.rewrite.intervals import US_PER_DAY, Interval, interval_of
from timefusion.query.rewrite.literals import arrow_cast
from timefusion.query.rewrite.pgtypes import TypeResolver
from timefusion.schema.tables import TableSchema


def rewrite_interval_math(
    tree: exp.Expression,
    schemas: Mapping[str, TableSchema] | None = None,
    *,
    copy: bool = True,
    resolver: TypeResolver | None = None,
) -> exp.Expression:
    ops = [n for n in tree.find_all(exp.Mul, exp.Div) if _interval_side(n) is not None]
    if not ops:
        return tree
    if copy:
        tree = tree.copy()
    if resolver is None or copy:
        resolver = TypeResolver(tree, schemas or {})
    for node in [n for n in tree.find_all(exp.Mul, exp.Div, bfs=False) if _interval_side(n) is not None][
        ::-1
    ]:
        side = _interval_side(node)
        assert side is not None
        iv, factor = side
        if isinstance(node, exp.Div) and factor is node.this:
            continue  # number / interval: not defined, DataFusion reports it
        replacement = _multiply(iv, factor, isinstance(node, exp.Div), resolver)
        if node is tree:
            return replacement
        node.replace(replacement)
    return tree


def _interval_side(node: exp.Expression) -> tuple[Interval, exp.Expression] | None:
    for a, b in ((node.this, node.expression), (node.expression, node.this)):
        if isinstance(a, exp.Interval):
            iv = interval_of(a)
            if iv is not None and interval_of(b) is None:
                return iv, b
    return None


def _literal_number(node: exp.Expression) -> Decimal | None:
    if isinstance(node, exp.Paren):
        return _literal_number(node.this)
    if isinstance(node, exp.Neg):
        inner = _literal_number(node.this)
        return -inner if inner is not None else None
    if isinstance(node, exp.Literal) and not node.is_string:
        return Decimal(node.name)
    return None


def scale(iv: Interval, factor: Decimal) -> Interval:
    """PostgreSQL's interval_mul: fractions of months spill into days, of days into time."""
    months = Decimal(iv.months) * factor
    whole_months = int(months)
    days = Decimal(iv.days) * factor + (months - whole_months) * 30
    whole_days = int(days)
    micros = Decimal(iv.micros) * factor + (days - whole_days) * US_PER_DAY
    return Interval(whole_months, whole_days, int(micros.quantize(Decimal(1), ROUND_HALF_EVEN)))


def _multiply(iv: Interval, factor: exp.Expression, divide: bool, resolver: TypeResolver) -> exp.Expression:
    number = _literal_number(factor)
    if number is not None:
        if divide:
            if number == 0:
                raise RewriteError("division by zero", "22012")
            number = Decimal(1) / number
        return scale(iv, number).to_expression()
    kind = resolver.type_of(factor)
    if kind not in ("int", "numeric", "float", None):
        raise RewriteError(f"operator does not exist: interval * {kind}", "42883")
    if kind == "int" and not divide:
        parts: list[exp.Expression] = []
        for amount, unit in ((iv.months, "months"), (iv.days, "days"), (iv.micros, "microseconds")):
            if amount:
                n = exp.Mul(this=exp.Paren(this=factor.copy()), expression=exp.Literal.number(amount))
                if parts:
                    parts.append(exp.Literal.string(" "))
                parts += [exp.Cast(this=n, to=exp.DataType.build("TEXT")), exp.Literal.string(f" {unit}")]
        if not parts:
            return iv.to_expression()
        text = parts[0]
        for p in parts[1:]:
            text = exp.DPipe(this=text, expression=p)
        return exp.Cast(this=text, to=exp.DataType.build("INTERVAL"))
    if iv.months or iv.days:
        raise RewriteError(
            "interval arithmetic with a fractional factor and a month or day part is not supported", "0A000"
        )
    micros = (
        exp.Div(this=exp.Literal.number(iv.micros), expression=exp.Paren(this=factor.copy()))
        if divide
        else exp.Mul(this=exp.Paren(this=factor.copy()), expression=exp.Literal.number(iv.micros))
    )
    rounded = exp.Cast(
        this=exp.Anonymous(this="round", expressions=[micros]), to=exp.DataType.build("BIGINT")
    )
    return arrow_cast(arrow_cast(rounded, "Duration(Microsecond)"), "Interval(MonthDayNano)")
