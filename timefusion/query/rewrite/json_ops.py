"""PostgreSQL's JSON operators and functions → TimeFusion's vectorised JSON UDFs (query/functions).

    doc -> 'k' / doc -> 0 / doc #> '{a,b}'    → tf_json_get(doc, '<path>')        (jsonb)
    doc ->> 'k' / doc #>> '{a,b}'            → tf_json_get_text(doc, '<path>')   (text)
    doc @> '{"k": "v"}'                      → tf_json_contains(doc, needle)      (json operands only)
    doc ? 'k', jsonb_path_exists(doc, '$.a.b[0]') → tf_json_exists(doc, '<path>')
    'text'::json / ::jsonb                   → tf_json(text) / tf_jsonb(text)     (jsonb normalises)
    json(b)_build_object, json(b)_build_array, to_json(b) → string concatenation of each argument's
                                               JSON text, built from DataFusion's native functions

A chain of `->` / `#>` collapses into one path (`attributes->'http'->>'method'` is one lookup over the
text, not two). The path is a constant JSON array: a string is an object key, an integer an array
index, and a one-element list a `#>` step (a key, or an index where the value is an array).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping

from sqlglot import exp

from timefusion.query.rewrite.errors import RewriteError
from timefusion.query.rewrite.pgtypes import TypeResolver
from timefusion.schema.tables import TableSchema

GET, GET_TEXT, CONTAINS, EXISTS = "tf_json_get", "tf_json_get_text", "tf_json_contains", "tf_json_exists"
JSON_RESULT = frozenset({GET, "tf_json", "tf_jsonb"})
_BUILD = frozenset({"json_build_object", "jsonb_build_object", "json_build_array", "jsonb_build_array"})
_TO_JSON = frozenset({"to_json", "to_jsonb"})
_ROW = frozenset({"row_to_json"})
_JSON_TYPES = (exp.DataType.Type.JSON, exp.DataType.Type.JSONB)
_TRIGGERS = (
    exp.JSONExtract,
    exp.JSONExtractScalar,
    exp.JSONBExtract,
    exp.JSONBExtractScalar,
    exp.JSONBContainsTopKey,
    exp.ArrayContainsAll,
    exp.Cast,
    exp.Anonymous,
)


def rewrite_json(
    tree: exp.Expression,
    schemas: Mapping[str, TableSchema] | None = None,
    *,
    copy: bool = True,
    resolver: TypeResolver | None = None,
) -> exp.Expression:
    """Replace every JSON operator and function in `tree` (innermost first)."""
    if not any(_applies(n) for n in tree.find_all(*_TRIGGERS)):
        return tree
    if copy:
        tree = tree.copy()
    if resolver is None or copy:
        resolver = TypeResolver(tree, schemas or {})
    for node in list(tree.find_all(*_TRIGGERS, bfs=False))[::-1]:  # children before parents
        if node.parent is None and node is not tree:
            continue  # inside a subtree already replaced
        replacement = _rewrite(node, resolver)
        if replacement is None:
            continue
        if node is tree:
            return replacement
        node.replace(replacement)
    return tree


def _applies(node: exp.Expression) -> bool:
    if isinstance(node, exp.Cast):
        return node.to.this in _JSON_TYPES
    if isinstance(node, exp.Anonymous):
        return node.name.lower() in _BUILD | _TO_JSON | _ROW | {"jsonb_path_exists"}
    return True


def is_json(node: exp.Expression, resolver: TypeResolver) -> bool:
    """Whether `node` is JSON: one of our json columns, a cast to json(b), a JSON function's result."""
    if isinstance(node, exp.Paren):
        return is_json(node.this, resolver)
    if isinstance(node, exp.Anonymous) and node.name.lower() in JSON_RESULT | _BUILD | _TO_JSON | _ROW:
        return True
    if isinstance(node, exp.Cast) and node.to.this in _JSON_TYPES:
        return True
    try:
        kind = resolver.arrow_type_of(node)
    except Exception:
        return False
    return kind is not None and getattr(kind, "extension_name", "") == "arrow.json"


def _call(name: str, *args: exp.Expression) -> exp.Anonymous:
    return exp.Anonymous(this=name, expressions=list(args))


def _text(node: exp.Expression) -> exp.Expression:
    """The JSON text of a document operand (a json column is text already)."""
    if isinstance(node, exp.Cast) and node.to.this in _JSON_TYPES:
        return exp.Cast(this=node.this, to=exp.DataType.build("TEXT"))
    return node


def _path_steps(path: exp.Expression, pound: bool) -> list:
    if pound:  # #> '{a,b}'
        if not (isinstance(path, exp.Literal) and path.is_string):
            raise RewriteError("#> and #>> need a constant path such as '{a,b}'", "0A000")
        text = path.name.strip()
        if not (text.startswith("{") and text.endswith("}")):
            raise RewriteError(f'malformed array literal: "{text}"', "22P02")
        inner = text[1:-1].strip()
        items = [s.strip().strip('"') for s in inner.split(",")] if inner else []
        return [[s] for s in items]
    if isinstance(path, exp.Neg) and isinstance(path.this, exp.Literal) and not path.this.is_string:
        return [-int(path.this.name)]
    if isinstance(path, exp.Literal):
        return [path.name if path.is_string else int(path.name)]
    if not isinstance(path, exp.JSONPath):
        raise RewriteError("-> and ->> need a constant key or index", "0A000")
    steps: list = []
    for part in path.expressions:
        if isinstance(part, exp.JSONPathRoot):
            continue
        if isinstance(part, exp.JSONPathKey):
            steps.append(str(part.this))
        elif isinstance(part, exp.JSONPathSubscript) and isinstance(part.this, int):
            steps.append(part.this)
        else:
            raise RewriteError("-> and ->> need a constant key or index", "0A000")
    return steps


def _rewrite(node: exp.Expression, resolver: TypeResolver) -> exp.Expression | None:
    if isinstance(node, exp.JSONExtract | exp.JSONExtractScalar | exp.JSONBExtract | exp.JSONBExtractScalar):
        pound = isinstance(node, exp.JSONBExtract | exp.JSONBExtractScalar)
        steps = _path_steps(node.expression, pound)
        doc = node.this
        if isinstance(doc, exp.Anonymous) and doc.name == GET:  # a chain: one lookup
            doc, prefix = doc.expressions[0], json.loads(doc.expressions[1].name)
            steps = prefix + steps
        elif not is_json(doc, resolver) and resolver.type_of(doc) not in ("unknown", None):
            raise RewriteError(
                f"operator does not exist: {resolver.type_of(doc)} {'#>' if pound else '->'} text", "42883"
            )
        scalar = isinstance(node, exp.JSONExtractScalar | exp.JSONBExtractScalar)
        return _call(GET_TEXT if scalar else GET, _text(doc), exp.Literal.string(json.dumps(steps)))
    if isinstance(node, exp.JSONBContainsTopKey):
        return _call(EXISTS, _text(node.this), _path_literal([node.expression]))
    if isinstance(node, exp.ArrayContainsAll):
        if is_json(node.this, resolver) or is_json(node.expression, resolver):
            return _call(CONTAINS, _text(node.this), _text(node.expression))
        return None
    if isinstance(node, exp.Cast):
        if node.to.this not in _JSON_TYPES:
            return None
        if isinstance(node.parent, exp.Anonymous) and node.parent.name in (GET, GET_TEXT, CONTAINS, EXISTS):
            return None
        name = "tf_jsonb" if node.to.this == exp.DataType.Type.JSONB else "tf_json"
        return _call(name, exp.Cast(this=node.this, to=exp.DataType.build("TEXT")))
    if isinstance(node, exp.Anonymous):
        name = node.name.lower()
        if name == "jsonb_path_exists":
            return _path_exists(node)
        if name in _TO_JSON:
            if len(node.expressions) != 1:
                raise RewriteError(f"function {name}() takes one argument", "42883")
            return _call("tf_json", to_json(node.expressions[0], resolver, null="sql"))
        if name in _BUILD:
            return _call("tf_json", _build(name, node.expressions, resolver))
        if name in _ROW:
            return _call("tf_json", _row_to_json(node, resolver))
    return None


def _row_to_json(node: exp.Anonymous, resolver: TypeResolver) -> exp.Expression:
    """row_to_json(alias): an object of the FROM item's columns, `{"a":1,"b":"x"}` (PostgreSQL's
    row_to_json puts no spaces). Columns of our tables by their schema (json columns embedded),
    a subquery's or CTE's by its output names (each value's JSON decided by its Arrow type)."""
    if len(node.expressions) != 1 or not isinstance(node.expressions[0], exp.Column | exp.Table):
        raise RewriteError("row_to_json() takes a table alias (row_to_json(t))", "0A000")
    alias = node.expressions[0].name
    scope = resolver.scope_of(node)
    source = scope.sources.get(alias) if scope is not None else None
    columns: list[tuple[str, bool]] = []  # (name, is json)
    if isinstance(source, exp.Table):
        schema = resolver.table_schema(source)
        if schema is None:
            raise RewriteError(f'row_to_json(): unknown table "{source.name}"', "42P01")
        columns = [(c.name, c.is_json) for c in schema.columns]
    elif source is not None and hasattr(source, "expression") and isinstance(source.expression, exp.Query):
        selects = source.expression.selects
        if any(isinstance(e, exp.Star) or (isinstance(e, exp.Column) and e.is_star) for e in selects):
            raise RewriteError("row_to_json() over a subquery with * is not supported", "0A000")
        columns = [(e.alias_or_name, is_json(e.unalias(), resolver)) for e in selects]
    else:
        raise RewriteError(f'row_to_json(): "{alias}" is not a table or subquery of the FROM clause', "0A000")
    parts: list[exp.Expression] = [exp.Literal.string("{")]
    for i, (name, json_column) in enumerate(columns):
        parts.append(exp.Literal.string(("," if i else "") + json.dumps(name, ensure_ascii=False) + ":"))
        ref = exp.column(name, table=alias, quoted=True)
        value = exp.Cast(this=ref, to=exp.DataType.build("TEXT")) if json_column else _by_arrow_type(ref)
        parts.append(exp.Coalesce(this=value, expressions=[exp.Literal.string("null")]))
    parts.append(exp.Literal.string("}"))
    return _concat(parts)


def _path_literal(steps: list[exp.Expression]) -> exp.Expression:
    values = []
    for s in steps:
        if not (isinstance(s, exp.Literal) and s.is_string):
            raise RewriteError("the ? operator needs a constant key", "0A000")
        values.append(s.name)
    return exp.Literal.string(json.dumps(values))


_JSONPATH_STEP = re.compile(r'\s*(?:\.\s*(?:"((?:[^"\\]|\\.)*)"|([A-Za-z_$][\w$]*))|\[\s*(-?\d+)\s*\])')


def _path_exists(node: exp.Anonymous) -> exp.Expression:
    """jsonb_path_exists(doc, '$.a."b c"[0]'): member and index accessors only (no filters)."""
    if len(node.expressions) < 2:
        raise RewriteError("function jsonb_path_exists() needs a document and a path", "42883")
    doc, path = node.expressions[0], node.expressions[1]
    if not (isinstance(path, exp.Literal) and path.is_string):
        raise RewriteError("jsonb_path_exists() needs a constant path", "0A000")
    text = path.name.strip()
    if text.startswith("strict "):
        text = text[7:].strip()
    elif text.startswith("lax "):
        text = text[4:].strip()
    if not text.startswith("$"):
        raise RewriteError(f'syntax error at or near "{text[:1]}" of jsonpath input', "42601")
    steps: list = []
    pos = 1
    while pos < len(text):
        m = _JSONPATH_STEP.match(text, pos)
        if m is None:
            if text[pos:].strip() == "":
                break
            raise RewriteError(
                f"jsonpath {text!r}: only member (.key) and index ([n]) accessors are supported", "0A000"
            )
        if m.group(3) is not None:
            steps.append(int(m.group(3)))
        else:
            steps.append(json.loads(f'"{m.group(1)}"') if m.group(1) is not None else m.group(2))
        pos = m.end()
    return _call(EXISTS, _text(doc), exp.Literal.string(json.dumps(steps)))


def to_json(node: exp.Expression, resolver: TypeResolver, null: str = "json") -> exp.Expression:
    """SQL that computes PostgreSQL's JSON text of `node`: NULL → JSON null inside json_build_*,
    SQL NULL for to_json itself (`null="sql"`; the function is strict)."""
    if isinstance(node, exp.Null):
        return (
            exp.Literal.string("null")
            if null == "json"
            else exp.Cast(this=exp.Null(), to=exp.DataType.build("TEXT"))
        )
    if is_json(node, resolver):
        inner = node
        if isinstance(inner, exp.Anonymous) and inner.name in ("tf_json", "tf_jsonb"):
            inner = inner.expressions[0]
        value: exp.Expression = exp.Cast(this=_text(inner), to=exp.DataType.build("TEXT"))
    else:
        kind = resolver.type_of(node)
        if kind in ("int", "numeric", "float"):
            value = exp.Cast(this=node.copy(), to=exp.DataType.build("TEXT"))
        elif kind == "bool":
            value = exp.Case(
                ifs=[exp.If(this=node.copy(), true=exp.Literal.string("true"))],
                default=exp.Literal.string("false"),
            )
            value = exp.Case(
                ifs=[exp.If(this=exp.Is(this=node.copy(), expression=exp.Null()), true=exp.Null())],
                default=value,
            )
        elif kind in ("timestamptz", "timestamp"):
            value = _call("tf_json_quote", _iso_text(node))
        elif kind in ("text", "unknown", "date"):
            value = _call("tf_json_quote", exp.Cast(this=node.copy(), to=exp.DataType.build("TEXT")))
        elif kind is None:  # decided by the value's Arrow type when the statement runs
            value = _by_arrow_type(node)
        else:
            raise RewriteError(f"to_json of a value of type {kind} is not supported", "0A000")
    if null == "sql":
        return value
    return exp.Coalesce(this=value, expressions=[exp.Literal.string("null")])


def _iso_text(node: exp.Expression) -> exp.Expression:
    """A timestamp as PostgreSQL's JSON writes it: `2025-01-17T10:00:00.5+00:00` (DataFusion's text is
    `…T10:00:00.500Z`: trailing zeros of the fraction dropped, Z spelled +00:00)."""
    as_text = exp.Cast(this=node.copy(), to=exp.DataType.build("TEXT"))
    trimmed = exp.Anonymous(
        this="regexp_replace",
        expressions=[as_text, exp.Literal.string(r"(\.\d*[1-9])0+(Z?)$"), exp.Literal.string("${1}${2}")],
    )
    return exp.Anonymous(
        this="regexp_replace", expressions=[trimmed, exp.Literal.string("Z$"), exp.Literal.string("+00:00")]
    )


def _by_arrow_type(node: exp.Expression) -> exp.Expression:
    kind = exp.Anonymous(this="arrow_typeof", expressions=[node.copy()])
    numeric = exp.RegexpLike(this=kind.copy(), expression=exp.Literal.string("^(U?Int|Float|Decimal)"))
    as_text = exp.Cast(this=node.copy(), to=exp.DataType.build("TEXT"))
    timestamp = exp.RegexpLike(this=kind.copy(), expression=exp.Literal.string("^Timestamp"))
    # DataFusion writes a UTC timestamp as …T…Z; PostgreSQL's JSON has …T…+00:00
    iso = _iso_text(node)
    return exp.Case(
        ifs=[
            exp.If(this=numeric, true=as_text),
            exp.If(this=timestamp, true=_call("tf_json_quote", iso)),
            exp.If(
                this=exp.EQ(this=kind.copy(), expression=exp.Literal.string("Boolean")),
                true=exp.Anonymous(this="lower", expressions=[as_text.copy()]),
            ),
        ],
        default=_call("tf_json_quote", as_text.copy()),
    )


def _concat(parts: list[exp.Expression]) -> exp.Expression:
    out = parts[0]
    for p in parts[1:]:
        out = exp.DPipe(this=out, expression=p, safe=True)
    return out


def _build(name: str, args: list[exp.Expression], resolver: TypeResolver) -> exp.Expression:
    binary = name.startswith("jsonb")
    if name.endswith("_array"):
        items = [to_json(a, resolver) for a in args]
        parts: list[exp.Expression] = [exp.Literal.string("[")]
        for i, item in enumerate(items):
            if i:
                parts.append(exp.Literal.string(", "))
            parts.append(item)
        parts.append(exp.Literal.string("]"))
        return _concat(parts)
    if len(args) % 2:
        raise RewriteError(f"{name}(): argument list must have even number of elements", "22023")
    pairs = [(args[i], args[i + 1]) for i in range(0, len(args), 2)]
    for i, (key, _) in enumerate(pairs):
        if isinstance(key, exp.Null):
            raise RewriteError(f"argument {2 * i + 1} cannot be null", "22023")
    if binary and all(isinstance(k, exp.Literal) for k, _ in pairs):
        last = {k.name: (k, v) for k, v in pairs}  # jsonb: the last duplicate wins, keys sorted
        pairs = [last[k] for k in sorted(last, key=lambda s: (len(s.encode()), s.encode()))]
    colon = ": " if binary else " : "
    parts = [exp.Literal.string("{")]
    for i, (key, value) in enumerate(pairs):
        if i:
            parts.append(exp.Literal.string(", "))
        if isinstance(key, exp.Literal):
            parts.append(exp.Literal.string(json.dumps(key.name, ensure_ascii=False) + colon))
        else:
            parts.append(_call("tf_json_quote", exp.Cast(this=key.copy(), to=exp.DataType.build("TEXT"))))
            parts.append(exp.Literal.string(colon))
        parts.append(to_json(value, resolver))
    parts.append(exp.Literal.string("}"))
    return _concat(parts)
