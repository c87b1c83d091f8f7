"""How OpenTelemetry values map onto TimeFusion's columns (pure functions, no I/O).

- `flat_columns(schema, "attributes")` reads the table schema and returns, for every flattened
  column such as `attributes___http___response___status_code`, the OpenTelemetry attribute key it
  holds (`http.response.status_code`) and the Python type a value must have to go there. The schema
  is the single source of truth: adding a column to the YAML file makes the receivers fill it.
  The three legacy names with a double underscore (`network___local__address`, …) map `__` to `.`.
- `any_value` turns an `AnyValue` message into plain Python (bytes become base64 text, as OTLP/JSON
  spells them), and `nest` turns a flat `{"http.method": "GET"}` map into the nested JSON objects the
  `attributes` / `resource` columns store (`{"http": {"method": "GET"}}`), which is what
  `bench/datagen.py` and the flattened column names assume.
"""

from __future__ import annotations

import base64
import operator
from collections.abc import Callable, Sequence
from typing import Any

import orjson
import pyarrow as pa

from timefusion.schema import TableSchema

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1

# Type check per flattened column kind: a value that fails it stays only in the JSON column.
Check = Callable[[Any], bool]


def _is_str(v: Any) -> bool:
    return type(v) is str


def _is_int32(v: Any) -> bool:
    return type(v) is int and INT32_MIN <= v <= INT32_MAX


def _is_int64(v: Any) -> bool:
    return type(v) is int


def _is_float(v: Any) -> bool:
    return type(v) is float or type(v) is int


def _is_bool(v: Any) -> bool:
    return type(v) is bool


_CHECKS: dict[pa.DataType, Check] = {
    pa.string(): _is_str,
    pa.int32(): _is_int32,
    pa.int64(): _is_int64,
    pa.float64(): _is_float,
    pa.bool_(): _is_bool,
}


def column_key(column: str, prefix: str) -> str:
    """`attributes___network___local__address` → `network.local.address` (prefix `attributes`)."""
    rest = column[len(prefix) + 3 :]
    return rest.replace("___", ".").replace("__", ".")


def flat_columns(schema: TableSchema, prefix: str) -> dict[str, tuple[str, Check, pa.DataType]]:
    """Attribute key → (flattened column, type check, Arrow type) for the `prefix___*` columns."""
    out: dict[str, tuple[str, Check, pa.DataType]] = {}
    for col in schema.columns:
        if col.name.startswith(prefix + "___") and col.arrow_type in _CHECKS:
            out[column_key(col.name, prefix)] = (col.name, _CHECKS[col.arrow_type], col.arrow_type)
    return out


# -- AnyValue → Python --------------------------------------------------------------------------


def _array(v: Any) -> list[Any]:
    return [any_value(x) for x in v.array_value.values]


def _kvlist(v: Any) -> dict[str, Any]:
    return {kv.key: any_value(kv.value) for kv in v.kvlist_value.values}


def _bytes(v: Any) -> str:
    return base64.b64encode(v.bytes_value).decode("ascii")


_GET: dict[str | None, Callable[[Any], Any]] = {
    "string_value": lambda v: v.string_value,
    "int_value": lambda v: v.int_value,
    "double_value": lambda v: v.double_value,
    "bool_value": lambda v: v.bool_value,
    "array_value": _array,
    "kvlist_value": _kvlist,
    "bytes_value": _bytes,
    None: lambda v: None,
}


def any_value(v: Any) -> Any:
    """An OTLP `AnyValue` as plain Python (None when empty)."""
    return _GET[v.WhichOneof("value")](v)


def key_values(kvs: Any) -> list[tuple[str, Any]]:
    """A repeated `KeyValue` as (key, Python value) pairs."""
    get = _GET
    return [(kv.key, get[kv.value.WhichOneof("value")](kv.value)) for kv in kvs]


# -- flat attribute map → nested JSON object ------------------------------------------------------

_PATHS: dict[str, tuple[tuple[str, ...], str]] = {}


def split_key(key: str) -> tuple[tuple[str, ...], str]:
    """`"http.response.status_code"` → `(("http", "response"), "status_code")`, cached."""
    path = _PATHS.get(key)
    if path is None:
        parts = key.split(".")
        path = (tuple(parts[:-1]), parts[-1])
        if len(_PATHS) < 100_000:
            _PATHS[key] = path
    return path


def nest(pairs: Sequence[tuple[Any, ...]]) -> dict[str, Any]:
    """`[("http.method", "GET"), ("http.route", "/x")]` → `{"http": {"method": "GET", "route": "/x"}}`.

    Keys are split at dots. When a key is both a value and a prefix of another key (`a` and `a.b`),
    the value that would be overwritten is kept under the empty key (`{"a": {"": 1, "b": 2}}`), so
    nothing is lost whatever the order of the keys. Items are (key, value) or, from
    `AttributeCache`, (key, value, column, split key) — then the split is not redone.
    """
    root: dict[str, Any] = {}
    for item in pairs:
        val = item[1]
        prefix, leaf = split_key(item[0])
        node = root
        for part in prefix:
            nxt = node.get(part)
            if nxt is None:
                nxt = node[part] = {}
            elif type(nxt) is not dict:
                nxt = node[part] = {"": nxt}
            node = nxt
        old = node.get(leaf)
        if old is not None and type(old) is dict and type(val) is not dict:
            old[""] = val
        else:
            node[leaf] = val
    return root


# -- enums ----------------------------------------------------------------------------------------

SPAN_KINDS = {0: None, 1: "INTERNAL", 2: "SERVER", 3: "CLIENT", 4: "PRODUCER", 5: "CONSUMER"}
STATUS_CODES = {0: "UNSET", 1: "OK", 2: "ERROR"}
TEMPORALITY = {0: None, 1: "DELTA", 2: "CUMULATIVE"}


def severity_text(number: int) -> str | None:
    """OpenTelemetry's short name for a severity number (1–4 TRACE, 5–8 DEBUG, … 21–24 FATAL)."""
    if number <= 0:
        return None
    names = ("TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL")
    return names[min((number - 1) // 4, 5)]


# -- nesting by key set ---------------------------------------------------------------------------

MAX_TEMPLATE_KEYS = 128


Template = tuple[str, Callable[[Sequence[Any]], tuple[Any, ...]] | None]


def compile_template(keys: tuple[str, ...]) -> Template | None:
    """A %-format string that spells `nest()`'s JSON for exactly these keys, and the fill order.

    Spans of one instrumentation point carry the same attribute keys, so the nested shape is worked
    out once per key set: `("http.method", "http.route")` → `'{"http":{"method":%s,"route":%s}}'`.
    Filled with the values' JSON texts (cached per attribute encoding by `AttributeCache`), one `%`
    operation yields the column's text with no dicts built and no JSON encoder call. Nesting can
    regroup keys (`a.x, b, a.y` → `{"a":{"x","y"},"b"}`); the second item then picks the values in
    template order (None: key order). None when a key repeats or is a prefix of another (then
    `nest()` resolves the conflict).
    """
    if len(keys) > MAX_TEMPLATE_KEYS:
        return None
    root: dict[str, Any] = {}
    for i, key in enumerate(keys):
        prefix, leaf = split_key(key)
        node = root
        for part in prefix:
            nxt = node.setdefault(part, {})
            if type(nxt) is not dict:
                return None
            node = nxt
        if leaf in node:
            return None
        node[leaf] = i
    order: list[int] = []

    def emit(node: dict[str, Any]) -> str:
        parts = []
        for k, v in node.items():
            if type(v) is dict:
                parts.append(f"{key_text(k)}:{emit(v)}")
            else:
                order.append(v)
                parts.append(f"{key_text(k)}:%s")
        return "{" + ",".join(parts) + "}"

    text = emit(root)
    if order == sorted(order):
        return text, None
    if len(order) == 1:
        return text, None
    return text, operator.itemgetter(*order)


def key_text(key: str) -> str:
    """A key as JSON text, with `%` doubled so it can sit inside a template."""
    return orjson.dumps(key).decode().replace("%", "%%")


class Templates:
    """`compile_template` per key set, bounded (emptied when `limit` key sets are held)."""

    def __init__(self, limit: int = 10_000) -> None:
        self.limit = limit
        self.templates: dict[tuple[str, ...], Template | None] = {}

    def get(self, keys: tuple[str, ...]) -> Template | None:
        t = self.templates.get(keys, False)
        if t is False:
            t = compile_template(keys)
            if len(self.templates) >= self.limit:
                self.templates.clear()
            self.templates[keys] = t
        return t  # type: ignore[return-value]
