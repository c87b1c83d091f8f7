"""Array values in PostgreSQL's text form become real arrays; `a && b` becomes `array_has_any(a, b)`.

PostgreSQL reads `'{x,"y z",NULL}'::text[]` with its array input syntax: braces, elements separated by
commas, double quotes around elements that need them, backslash escapes (quoted or not), unquoted
`NULL` (any case) for a null element, whitespace around unquoted elements ignored, nested braces for
more dimensions (sub-arrays of equal length), and an optional `[1:2]=` dimension prefix. DataFusion 55
casts the whole string into a one-element array (`['{x,"y z",NULL}']`), so this rewrite replaces

  - a cast of a string literal to an array type: `'{1,2}'::int[]`, `CAST('{}' AS text[])`, and
  - an untyped string literal where PostgreSQL infers an array type from the context (the same rules
    as for parameters, param_types.py): `project_id = ANY('{a,b}')`, `hashes @> '{x}'`,
    `hashes && $1` after a text value was bound to `$1`

by `arrow_cast(ARRAY[<typed elements>], 'List(<element>)')`: the elements are converted here exactly
as the wire layer converts an array parameter (`parse_pg_array`, then `params.value_expression`, so a
malformed literal fails with PostgreSQL's 22P02 before DataFusion sees it), and arrow_cast gives the
array its exact type (`int[]` is List(Int32), `'{}'::text[]` an empty List(Utf8), not List(Null)).

DataFusion 55 has no `&&` operator for arrays ("Unsupported binary operator: PGOverlap");
`array_has_any` is the same test (differences: with NULL elements, PostgreSQL never matches NULL).
"""

from __future__ import annotations

import math
import re
import uuid
from collections.abc import Callable, Mapping
from datetime import date, datetime, time
from decimal import Decimal, InvalidOperation

import pyarrow as pa
from sqlglot import exp

from timefusion.query.rewrite.errors import RewriteError
from timefusion.query.rewrite.intervals import parse_interval
from timefusion.query.rewrite.literals import arrow_cast, parse_date, parse_timestamp
from timefusion.query.rewrite.param_types import expected_type
from timefusion.query.rewrite.params import value_expression
from timefusion.query.rewrite.pgtypes import TypeResolver, arrow_of_datatype
from timefusion.schema.tables import TableSchema

T = exp.DataType.Type

# -- PostgreSQL's array input syntax ----------------------------------------------------------------

_DIMENSIONS = re.compile(r"\s*(\[\s*[+-]?\d+\s*(:\s*[+-]?\d+\s*)?\]\s*)+=\s*")
_SPACE = " \t\n\r\v\f"


def _malformed(text: str, detail: str) -> RewriteError:
    return RewriteError(f'malformed array literal: "{text}" ({detail})', "22P02")


def parse_array_text(text: str) -> list:
    """The elements of an array's text form as (nested) lists of `str`, None for NULL elements."""
    pos = 0
    m = _DIMENSIONS.match(text)
    if m is not None:
        pos = m.end()
    while pos < len(text) and text[pos] in _SPACE:
        pos += 1
    if pos >= len(text) or text[pos] != "{":
        raise _malformed(text, 'Array value must start with "{" or dimension information.')
    value, pos = _parse_level(text, pos)
    while pos < len(text) and text[pos] in _SPACE:
        pos += 1
    if pos != len(text):
        raise _malformed(text, "Junk after closing right brace.")
    _check_rectangular(text, value)
    return value


def _parse_level(text: str, pos: int) -> tuple[list, int]:
    """Parse `{…}` starting at text[pos] == '{'; return the elements and the position after '}'."""
    items: list = []
    pos += 1
    expect_item = True  # at the start, or after a comma
    while True:
        while pos < len(text) and text[pos] in _SPACE:
            pos += 1
        if pos >= len(text):
            raise _malformed(text, "Unexpected end of input.")
        c = text[pos]
        if c == "}":
            if expect_item and items:
                raise _malformed(text, 'Unexpected "}" character.')
            return items, pos + 1
        if not expect_item:
            if c != ",":
                raise _malformed(text, f'Unexpected "{c}" character.')
            pos += 1
            expect_item = True
            continue
        if c == "{":
            sub, pos = _parse_level(text, pos)
            items.append(sub)
        elif c == '"':
            chars: list[str] = []
            pos += 1
            while True:
                if pos >= len(text):
                    raise _malformed(text, "Unexpected end of input.")
                c = text[pos]
                if c == "\\":
                    if pos + 1 >= len(text):
                        raise _malformed(text, "Unexpected end of input.")
                    chars.append(text[pos + 1])
                    pos += 2
                elif c == '"':
                    pos += 1
                    break
                else:
                    chars.append(c)
                    pos += 1
            items.append("".join(chars))
        elif c == ",":
            raise _malformed(text, 'Unexpected "," character.')
        else:
            chars = []
            trailing = 0  # unescaped trailing whitespace, trimmed as PostgreSQL does
            escaped = False
            while pos < len(text) and text[pos] not in ",}":
                c = text[pos]
                if c in '{"':
                    raise _malformed(text, f'Unexpected "{c}" character.')
                if c == "\\":
                    if pos + 1 >= len(text):
                        raise _malformed(text, "Unexpected end of input.")
                    chars.append(text[pos + 1])
                    escaped = True
                    trailing = 0
                    pos += 2
                    continue
                chars.append(c)
                trailing = trailing + 1 if c in _SPACE else 0
                pos += 1
            word = "".join(chars[: len(chars) - trailing])
            items.append(None if not escaped and word.upper() == "NULL" else word)
        expect_item = False


def _check_rectangular(text: str, value: list) -> None:
    """PostgreSQL: sub-arrays of one dimension have equal lengths; scalars and sub-arrays don't mix."""
    if not value:
        return
    nested = [isinstance(v, list) for v in value]
    if any(nested) and not all(nested):
        raise _malformed(text, "Multidimensional arrays must have sub-arrays with matching dimensions.")
    if all(nested):
        if len({len(v) for v in value}) != 1 or not value[0]:
            raise _malformed(text, "Multidimensional arrays must have sub-arrays with matching dimensions.")
        for v in value:
            _check_rectangular(text, v)
        if len({_shape(v) for v in value}) != 1:
            raise _malformed(text, "Multidimensional arrays must have sub-arrays with matching dimensions.")


def _shape(value: list) -> tuple[int, ...]:
    return (len(value), *(_shape(value[0]) if value and isinstance(value[0], list) else ()))


# -- element conversion ------------------------------------------------------------------------------


def _invalid(type_name: str, text: str) -> RewriteError:
    return RewriteError(f'invalid input syntax for type {type_name}: "{text}"', "22P02")


_INT = re.compile(r"\s*[+-]?\d+\s*$")
_BOOLS = {"t": True, "true": True, "y": True, "yes": True, "on": True, "1": True}
_BOOLS |= {"f": False, "false": False, "n": False, "no": False, "off": False, "0": False}


def _integer(bits: int, name: str) -> Callable[[str], int]:
    def convert(text: str) -> int:
        if not _INT.match(text):
            raise _invalid(name, text)
        value = int(text)
        if not -(2 ** (bits - 1)) <= value < 2 ** (bits - 1):
            raise RewriteError(f'value "{text}" is out of range for type {name}', "22003")
        return value

    return convert


def _float(text: str) -> float:
    word = text.strip().lower()
    special = {"nan": math.nan, "infinity": math.inf, "+infinity": math.inf, "-infinity": -math.inf}
    special |= {"inf": math.inf, "+inf": math.inf, "-inf": -math.inf}
    if word in special:
        return special[word]
    try:
        return float(word)
    except ValueError:
        raise _invalid("double precision", text) from None


def _numeric(text: str) -> Decimal:
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        raise _invalid("numeric", text) from None
    if value.is_infinite() or (value.is_nan() and text.strip().lower() != "nan"):
        raise _invalid("numeric", text)
    return value


def _bool(text: str) -> bool:
    word = text.strip().lower()
    if word not in _BOOLS:
        raise _invalid("boolean", text)
    return _BOOLS[word]


def _timestamp(aware: bool) -> Callable[[str], datetime]:
    def convert(text: str) -> datetime:
        value = parse_timestamp(text)
        if value is None:
            name = "timestamp with time zone" if aware else "timestamp without time zone"
            raise _invalid(name, text)
        return value if aware else value.replace(tzinfo=None)

    return convert


def _date(text: str) -> date:
    value = parse_date(text)
    if value is None:
        raise _invalid("date", text)
    return value


def _interval(text: str) -> pa.MonthDayNano:
    value = parse_interval(text)
    if value is None:
        raise _invalid("interval", text)
    return pa.MonthDayNano([value.months, value.days, value.micros * 1000])


def _time(text: str) -> time:
    try:
        return time.fromisoformat(text.strip())
    except ValueError:
        raise _invalid("time without time zone", text) from None


def _uuid(text: str) -> uuid.UUID:
    try:
        return uuid.UUID(text.strip())
    except ValueError:
        raise _invalid("uuid", text) from None


def _bytea(text: str) -> bytes:
    if text.startswith("\\x"):
        try:
            return bytes.fromhex(text[2:])
        except ValueError:
            raise _invalid("bytea", text) from None
    return text.encode()


def _converter(element: pa.DataType) -> Callable[[str], object]:
    t = pa.types
    if isinstance(element, pa.BaseExtensionType):
        return _uuid if element.extension_name == "arrow.uuid" else str
    if t.is_int16(element):
        return _integer(16, "smallint")
    if t.is_int32(element):
        return _integer(32, "integer")
    if t.is_integer(element):
        return _integer(64, "bigint")
    if t.is_floating(element):
        return _float
    if t.is_decimal(element):
        return _numeric
    if t.is_boolean(element):
        return _bool
    if t.is_timestamp(element):
        return _timestamp(element.tz is not None)
    if t.is_date(element):
        return _date
    if element == pa.month_day_nano_interval():
        return _interval
    if t.is_time(element):
        return _time
    if t.is_binary(element) or t.is_large_binary(element):
        return _bytea
    return str


def parse_pg_array(text: str, element: pa.DataType) -> list:
    """PostgreSQL array input text (`'{a,"b c",NULL}'`, `'{{1,2},{3,4}}'`) as a (nested) Python list
    of values of the `element` Arrow type (str, int, float, Decimal, bool, datetime — UTC-aware for a
    zoned timestamp —, date, time, pyarrow.MonthDayNano, UUID, bytes), the kinds of values `prepare()`
    binds. `element` may be the array's list type itself. Raises RewriteError 22P02 when malformed."""
    while pa.types.is_list(element) or pa.types.is_large_list(element):
        element = element.value_type
    convert = _converter(element)

    def walk(items: list) -> list:
        return [walk(v) if isinstance(v, list) else None if v is None else convert(v) for v in items]

    return walk(parse_array_text(text))


# -- arrays as SQL -----------------------------------------------------------------------------------


def arrow_type_name(t: pa.DataType) -> str | None:
    """DataFusion's name of an Arrow type (for arrow_cast); None for types not modelled here."""
    if isinstance(t, pa.BaseExtensionType):
        return "Utf8" if t.extension_name in ("arrow.json", "arrow.uuid") else None
    simple = {
        pa.int16(): "Int16",
        pa.int32(): "Int32",
        pa.int64(): "Int64",
        pa.float32(): "Float32",
        pa.float64(): "Float64",
        pa.string(): "Utf8",
        pa.bool_(): "Boolean",
        pa.date32(): "Date32",
        pa.binary(): "Binary",
        pa.month_day_nano_interval(): "Interval(MonthDayNano)",
        pa.time64("us"): "Time64(Microsecond)",
    }
    if t in simple:
        return simple[t]
    if pa.types.is_decimal128(t):
        return f"Decimal128({t.precision}, {t.scale})"
    if pa.types.is_timestamp(t) and t.unit == "us":
        return "Timestamp(Microsecond, None)" if t.tz is None else 'Timestamp(Microsecond, Some("UTC"))'
    if pa.types.is_list(t):
        inner = arrow_type_name(t.value_type)
        return None if inner is None else f"List({inner})"
    return None


def array_expression(values: list, element: pa.DataType) -> exp.Expression:
    """`arrow_cast(ARRAY[…], 'List(…)')` for a (nested) list of Python values of type `element`."""
    while pa.types.is_list(element):
        element = element.value_type
    depth = 1
    probe = values
    while probe and isinstance(probe[0], list):
        depth += 1
        probe = probe[0]
    if pa.types.is_decimal(element):  # numeric elements keep their digits: the largest scale given
        digits = [v for v in _flatten(values) if isinstance(v, Decimal) and v.is_finite()]
        scale = max([0, *(-int(v.as_tuple().exponent) for v in digits)])
        element = pa.decimal128(38, min(scale, 38))
    name = arrow_type_name(element)
    if isinstance(element, pa.BaseExtensionType):  # uuid and json elements are our text
        values = _stringify(values)
    array = _array_of(values)
    if name is None:
        return array
    return arrow_cast(array, "List(" * depth + name + ")" * depth)


def _flatten(values: list) -> list:
    return [x for v in values for x in (_flatten(v) if isinstance(v, list) else [v])]


def _stringify(values: list) -> list:
    return [_stringify(v) if isinstance(v, list) else None if v is None else str(v) for v in values]


def _array_of(values: list) -> exp.Expression:
    items = [_array_of(v) if isinstance(v, list) else value_expression(v) for v in values]
    return exp.Array(expressions=items)


# -- the rewrite -------------------------------------------------------------------------------------


def _is_array_cast(node: exp.Expression) -> bool:
    return (
        isinstance(node, exp.Cast | exp.TryCast)
        and node.to.this == T.ARRAY
        and isinstance(node.this, exp.Literal)
        and node.this.is_string
    )


def rewrite_array_literals(
    tree: exp.Expression,
    schemas: Mapping[str, TableSchema] | None = None,
    *,
    copy: bool = True,
    resolver: TypeResolver | None = None,
) -> exp.Expression:
    """Replace array text literals (cast, or typed by their context) by arrays; `&&` by array_has_any."""
    casts = [n for n in tree.find_all(exp.Cast, exp.TryCast) if _is_array_cast(n)]
    overlaps = list(tree.find_all(exp.ArrayOverlaps))
    # Untyped text literals that look like arrays, in a context that may make them one.
    candidates = [
        n
        for n in tree.find_all(exp.Literal)
        if n.is_string and n.name.lstrip().startswith(("{", "[")) and not _is_array_cast(n.parent)
    ]
    if not (casts or overlaps or candidates):
        return tree
    if copy:
        tree = tree.copy()
        return rewrite_array_literals(tree, schemas, copy=False)
    if resolver is None:
        resolver = TypeResolver(tree, schemas or {})
    plans: list[tuple[exp.Expression, exp.Expression]] = []
    for cast in casts:
        target = arrow_of_datatype(cast.to)
        if target is not None:
            plans.append((cast, array_expression(parse_pg_array(cast.this.name, target), target)))
    for literal in candidates:
        target = expected_type(literal, resolver)
        if target is not None and pa.types.is_list(target) and arrow_type_name(target) is not None:
            plans.append((literal, array_expression(parse_pg_array(literal.name, target), target)))
    for node, replacement in plans:
        if node is tree:
            return replacement
        node.replace(replacement)
    for node in overlaps:
        call = exp.Anonymous(this="array_has_any", expressions=[node.this, node.expression])
        if node is tree:
            return call
        node.replace(call)
    return tree
