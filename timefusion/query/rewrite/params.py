"""Bind `$1 … $n` placeholders to literals built from Python values (the extended-protocol Bind).

This is an SQL-injection boundary: every value becomes a sqlglot literal node, never text spliced into
SQL, so the generator quotes it (a string with quotes, backslashes or `$1` in it stays one string
literal). Types follow what PostgreSQL drivers send: str → text (unknown-typed, coerced by context as
PostgreSQL does), int → integer, float → float8, Decimal → numeric (an exact decimal), bool, None →
NULL, datetime → timestamptz (aware, converted to UTC) or timestamp (naive), date, time, timedelta or
pyarrow.MonthDayNano → interval, bytes → bytea, UUID → text (our ids are text), list/tuple →
ARRAY[…] (nested lists too; a text value in an array context is array text, read by
array_literals.py after binding). A text value of digits in LIMIT/OFFSET becomes a number, as
PostgreSQL infers bigint for an untyped parameter there.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Sequence
from datetime import date, datetime, time, timedelta
from decimal import Decimal

import pyarrow as pa
from sqlglot import exp

from timefusion.query.rewrite.errors import RewriteError
from timefusion.query.rewrite.intervals import Interval
from timefusion.query.rewrite.literals import date_expression, timestamp_expression


def parameter_index(node: exp.Parameter) -> int | None:
    """n of a `$n` node; None for other parameter spellings (`@x`, `:x`)."""
    inner = node.this
    if isinstance(inner, exp.Literal) and not inner.is_string and inner.name.isdigit():
        return int(inner.name)
    return None


def check_count(indices: Sequence[int], params: Sequence[object] | None) -> None:
    """Raise PostgreSQL's error when the placeholders and the supplied values do not match."""
    highest = max(indices, default=0)
    if params is None:
        if indices:
            raise RewriteError(f"there is no parameter ${min(indices)}", "42P02")
        return
    if 0 in indices:
        raise RewriteError("there is no parameter $0", "42P02")
    if len(params) != highest:
        raise RewriteError(
            f"bind message supplies {len(params)} parameters, but prepared statement requires {highest}",
            "08P01",
        )


def bind_params(
    tree: exp.Expression, params: Sequence[object] | None, *, copy: bool = True
) -> exp.Expression:
    """Replace every `$n` in `tree` by a literal of `params[n-1]`."""
    nodes = [(n, parameter_index(n)) for n in tree.find_all(exp.Parameter)]
    nodes = [(n, i) for n, i in nodes if i is not None]
    check_count([i for _, i in nodes], params)
    if not nodes:
        return tree
    if copy:
        tree = tree.copy()
        nodes = [(n, parameter_index(n)) for n in tree.find_all(exp.Parameter)]
        nodes = [(n, i) for n, i in nodes if i is not None]
    assert params is not None
    literals: dict[int, exp.Expression] = {}
    for node, index in nodes:
        value = params[index - 1]
        limit = isinstance(node.parent, exp.Limit | exp.Offset | exp.Fetch)
        if limit and isinstance(value, str) and value.strip().lstrip("+-").isdigit():
            # An untyped (text) value in LIMIT/OFFSET: PostgreSQL infers bigint there.
            node.replace(_number(str(int(value))))
            continue
        if index not in literals:
            literals[index] = value_expression(value, index)
        replacement = literals[index].copy()
        if node is tree:
            return replacement
        node.replace(replacement)
    return tree


def value_expression(value: object, index: int = 0) -> exp.Expression:
    """The SQL literal (as a sqlglot node) for one parameter value."""
    if value is None:
        return exp.Null()
    if isinstance(value, bool):
        return exp.Boolean(this=value)
    if isinstance(value, int):
        return _number(str(value))
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            text = "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
            return exp.Cast(this=exp.Literal.string(text), to=exp.DataType.build("DOUBLE PRECISION"))
        return exp.Cast(this=exp.Literal.number(repr(value)), to=exp.DataType.build("DOUBLE PRECISION"))
    if isinstance(value, Decimal):
        return _decimal(value)
    if isinstance(value, str):
        return exp.Literal.string(_text(value, index))
    if isinstance(value, uuid.UUID):
        return exp.Literal.string(str(value))
    if isinstance(value, datetime):
        return timestamp_expression(value)
    if isinstance(value, date):
        return date_expression(value)
    if isinstance(value, time):
        return exp.Cast(this=exp.Literal.string(value.isoformat()), to=exp.DataType.build("TIME"))
    if isinstance(value, timedelta):
        return Interval(0, value.days, value.seconds * 1_000_000 + value.microseconds).to_expression()
    if isinstance(value, pa.MonthDayNano):  # the wire layer's interval (a tuple: before lists)
        return Interval(value.months, value.days, value.nanoseconds // 1000).to_expression()
    if isinstance(value, bytes | bytearray | memoryview):
        return exp.HexString(this=bytes(value).hex())
    if isinstance(value, list | tuple):
        return exp.Array(expressions=[value_expression(v, index) for v in value])
    raise RewriteError(
        f"parameter ${index}: values of type {type(value).__name__} are not supported", "0A000"
    )


def _number(text: str) -> exp.Expression:
    if text.startswith("-"):
        # Parenthesised so that no operator before it can form `--` (a comment) or bind tighter.
        return exp.Paren(this=exp.Neg(this=exp.Literal.number(text[1:])))
    return exp.Literal.number(text)


def _decimal(value: Decimal) -> exp.Expression:
    if not value.is_finite():
        text = "NaN" if value.is_nan() else ("Infinity" if value > 0 else "-Infinity")
        return exp.Cast(this=exp.Literal.string(text), to=exp.DataType.build("DOUBLE PRECISION"))
    text = format(value, "f")
    scale = len(text.partition(".")[2])
    precision = max(len(text.lstrip("-").replace(".", "").lstrip("0")), 1)
    precision = max(precision, scale + 1)
    if precision > 38:  # beyond Decimal128: a plain numeric literal (DataFusion reads it as float64)
        return _number(text)
    return exp.Cast(
        this=exp.Literal.string(text),
        to=exp.DataType.build(f"DECIMAL({precision}, {scale})"),
    )


def _text(value: str, index: int) -> str:
    if "\x00" in value:
        raise RewriteError(f'parameter ${index}: invalid byte sequence for encoding "UTF8": 0x00', "22021")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise RewriteError(f"parameter ${index}: text is not valid UTF-8", "22021") from None
    return value
