"""JSON functions over JSON text columns, with PostgreSQL's jsonb semantics, vectorised.

The rewrite (`query/rewrite/json_ops.py`) turns `->`, `->>`, `#>`, `#>>`, `@>`, `?` and
`jsonb_path_exists` into calls of the UDFs here, with the whole path collapsed into one constant
(`attributes->'http'->>'method'` is one lookup, not two). Each UDF gets a whole Arrow batch; the
numba kernels in `jsonscan.py` find the value spans in the string buffer and copy them into the result
buffer, and only rows PostgreSQL would re-format (an object or array result, escapes, exponents)
or that the kernels cannot decide go through Python (`json.loads` with exact numbers).

Results of `->`/`#>` are typed `arrow.json`, so the wire layer reports them as `jsonb`. Text that
is not valid JSON gives NULL (TimeFusion does not validate JSON at ingest; one bad row must not fail
every dashboard query), where PostgreSQL would have refused the row when it was written.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


class _Kernels:
    """The numba kernels, imported at first use: importing numba costs seconds, and most processes
    (the ingest path, admin commands, a query without JSON) never need it."""

    NULL, FOUND, SLOW = 0, 1, 2
    NO_INDEX = -(2**63)

    def __getattr__(self, name: str) -> Any:
        from timefusion.query.functions import jsonscan

        return getattr(jsonscan, name)


K = _Kernels()

JSON_FIELD = pa.field("json", pa.json_(pa.string()))
Path = list[Any]  # str: an object key; int: an array index; [str]: a key, or an index on arrays (#>)


class JsonError(ValueError):
    """Bad input to a JSON function; `sqlstate` is PostgreSQL's code for it."""

    def __init__(self, message: str, sqlstate: str = "22P02") -> None:
        super().__init__(message)
        self.sqlstate = sqlstate


# -- PostgreSQL's jsonb text ------------------------------------------------------------------------

_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t"}
_NEEDS_ESCAPE = re.compile(r'["\\\x00-\x1f]')


def quote(text: str) -> str:
    """A JSON string literal as PostgreSQL writes it (escape_json)."""
    return '"' + _NEEDS_ESCAPE.sub(lambda m: _ESCAPES.get(m.group(), f"\\u{ord(m.group()):04x}"), text) + '"'


def loads(text: str) -> Any:
    """Parse JSON keeping numbers exact (as jsonb's numeric does); duplicate keys: the last wins."""
    return json.loads(text, parse_float=Decimal, parse_int=int)


def _number(value: int | Decimal) -> str:
    if isinstance(value, int):
        return str(value)
    text = format(value, "f")
    return "0" if text in ("-0", "-0.0") else text


def jsonb_text(value: Any) -> str:
    """`value` (from `loads`) as PostgreSQL prints a jsonb: `{"a": 1, "b": [1, 2]}`, keys ordered by
    length and then bytes (jsonb's storage order)."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, str):
        return quote(value)
    if isinstance(value, int | Decimal):
        return _number(value)
    if isinstance(value, list):
        return "[" + ", ".join(jsonb_text(v) for v in value) + "]"
    keys = sorted(value, key=lambda k: (len(k.encode()), k.encode()))
    return "{" + ", ".join(f"{quote(k)}: {jsonb_text(value[k])}" for k in keys) + "}"


def as_text(value: Any) -> str | None:
    """`->>`: a string's own text, SQL NULL for JSON null, jsonb text otherwise."""
    if value is None:
        return None
    return value if isinstance(value, str) else jsonb_text(value)


_MISSING = object()


def walk(value: Any, path: Path) -> Any:
    """The value at `path` (or `_MISSING`), as `#>` finds it."""
    for step in path:
        if isinstance(value, dict):
            key = step[0] if isinstance(step, list) else step
            if not isinstance(key, str) or key not in value:
                return _MISSING
            value = value[key]
        elif isinstance(value, list):
            if isinstance(step, list):
                if not re.fullmatch(r"-?\d+", step[0]):
                    return _MISSING
                index = int(step[0])
            elif isinstance(step, int):
                index = step
            else:
                return _MISSING
            if index < 0:
                index += len(value)
            if not 0 <= index < len(value):
                return _MISSING
            value = value[index]
        else:
            return _MISSING
    return value


def _equal(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool) or a is None or b is None:
        return a is b
    if isinstance(a, int | Decimal) and isinstance(b, int | Decimal):
        return Decimal(a) == Decimal(b)
    return type(a) is type(b) and a == b


def contains(doc: Any, needle: Any, top: bool = True) -> bool:
    """PostgreSQL's jsonb `@>`: objects by key recursively, arrays as sets (any element may match),
    and at the top level only, an array contains a scalar it has as an element."""
    if isinstance(doc, dict):
        return isinstance(needle, dict) and all(
            k in doc and contains(doc[k], v, False) for k, v in needle.items()
        )
    if isinstance(doc, list):
        if isinstance(needle, list):
            return all(any(contains(d, n, False) for d in doc) for n in needle)
        if top and not isinstance(needle, dict):
            return any(not isinstance(d, dict | list) and _equal(d, needle) for d in doc)
        return False
    return not isinstance(needle, dict | list) and _equal(doc, needle)


# -- Arrow plumbing ---------------------------------------------------------------------------------


def _as_string(arr: pa.Array) -> pa.Array:
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if isinstance(arr.type, pa.BaseExtensionType):
        arr = arr.storage
    if arr.type != pa.string():
        arr = arr.cast(pa.string())
    return arr


def _buffers(arr: pa.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(bytes, offsets, validity) of a string array, without copying the text."""
    _, off_buf, data_buf = arr.buffers()
    offsets = np.frombuffer(off_buf, dtype=np.int32)[arr.offset : arr.offset + len(arr) + 1]
    data = np.frombuffer(data_buf, dtype=np.uint8) if data_buf is not None else np.zeros(1, np.uint8)
    if arr.null_count:
        valid = np.asarray(arr.is_valid().to_numpy(zero_copy_only=False), dtype=np.bool_)
    else:
        valid = np.ones(len(arr), dtype=np.bool_)
    return data, offsets, valid


def _constant(arr: pa.Array) -> tuple[bool, Any]:
    """Whether every row of a (literal) argument holds one value, and that value."""
    if len(arr) == 0:
        return True, None
    first = arr[0].as_py()
    if arr.null_count == len(arr):
        return True, None
    if arr.null_count or len(pc.unique(arr)) != 1:
        return False, None
    return True, first


def parse_path(text: str) -> Path:
    try:
        path = json.loads(text)
    except ValueError:
        raise JsonError(f"invalid JSON path {text!r}") from None
    if not isinstance(path, list):
        raise JsonError(f"invalid JSON path {text!r}")
    return path


def _encode_path(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    keys, offs, is_key, idx = bytearray(), [0], [], []
    for step in path:
        if isinstance(step, list):  # #> step: a key, or an index where the container is an array
            key = str(step[0])
            keys += key.encode()
            is_key.append(True)
            idx.append(int(key) if re.fullmatch(r"-?\d{1,18}", key) else K.NO_INDEX)
        elif isinstance(step, int):
            is_key.append(False)
            idx.append(step)
        else:
            keys += str(step).encode()
            is_key.append(True)
            idx.append(K.NO_INDEX)
        offs.append(len(keys))
    return (
        np.frombuffer(bytes(keys) or b"\0", dtype=np.uint8),
        np.array(offs, dtype=np.int64),
        np.array(is_key, dtype=np.bool_),
        np.array(idx, dtype=np.int64),
    )


def _spans(arr: pa.Array, path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    data, offsets, valid = _buffers(arr)
    n = len(arr)
    starts = np.zeros(n, dtype=np.int64)
    ends = np.zeros(n, dtype=np.int64)
    status = np.zeros(n, dtype=np.uint8)
    keys, key_offs, is_key, idx = _encode_path(path)
    K.json_spans(data, offsets, valid, keys, key_offs, is_key, idx, len(path), starts, ends, status)
    return data, starts, ends, status


def _slow_value(arr: pa.Array, row: int, path: Path) -> Any:
    text = arr[row].as_py()
    if text is None:
        return _MISSING
    try:
        return walk(loads(text), path)
    except ValueError:
        return _MISSING


def _assemble(
    data: np.ndarray, starts: np.ndarray, ends: np.ndarray, status: np.ndarray, slow: dict[int, str | None]
) -> pa.Array:
    """A string array of the found spans, with the Python-computed `slow` rows filled in."""
    n = len(status)
    lengths = np.where(status == K.FOUND, ends - starts, 0)
    encoded = {r: v.encode() for r, v in slow.items() if v is not None}
    for r, b in encoded.items():
        lengths[r] = len(b)
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    if offsets[-1] >= 2**31:
        raise JsonError("JSON result too large for one batch", "54000")
    out = np.empty(max(int(offsets[-1]), 1), dtype=np.uint8)
    K.gather(data, starts, ends, status, offsets, out)
    valid = status == K.FOUND
    for r, b in encoded.items():
        out[offsets[r] : offsets[r] + len(b)] = np.frombuffer(b, dtype=np.uint8)
        valid[r] = True
    for r, v in slow.items():
        if v is None:
            valid[r] = False
    bitmap = pa.py_buffer(np.packbits(valid, bitorder="little"))
    return pa.StringArray.from_buffers(
        n, pa.py_buffer(offsets.astype(np.int32)), pa.py_buffer(out), bitmap, n - int(valid.sum())
    )


def _per_row(arr: pa.Array, paths: pa.Array, fn: Callable[[Any], Any], out_type: pa.DataType) -> pa.Array:
    """Fallback for a path that differs from row to row."""
    out = []
    for text, path_text in zip(arr.to_pylist(), paths.to_pylist()):
        if text is None or path_text is None:
            out.append(None)
            continue
        try:
            value = walk(loads(text), parse_path(path_text))
        except ValueError:
            value = _MISSING
        out.append(None if value is _MISSING else fn(value))
    return pa.array(out, out_type)


def _extract(doc: pa.Array, path_arg: pa.Array, text: bool) -> pa.Array:
    doc = _as_string(doc)
    path_arg = _as_string(path_arg)
    constant, path_text = _constant(path_arg)
    if not constant:
        return _per_row(doc, path_arg, as_text if text else jsonb_text, pa.string())
    if path_text is None:
        return pa.nulls(len(doc), pa.string())
    path = parse_path(path_text)
    data, starts, ends, status = _spans(doc, path)
    K.text_spans(data, starts, ends, status, text)
    slow: dict[int, str | None] = {}
    for r in np.flatnonzero(status == K.SLOW).tolist():
        value = _slow_value(doc, r, path)
        slow[r] = None if value is _MISSING else (as_text(value) if text else jsonb_text(value))
        status[r] = K.NULL
    return _assemble(data, starts, ends, status, slow)


def json_get(doc: pa.Array, path: pa.Array) -> pa.Array:
    """`doc #> path` (and `->`): the value at the path as jsonb text."""
    return pa.ExtensionArray.from_storage(JSON_FIELD.type, _extract(doc, path, False))


def json_get_text(doc: pa.Array, path: pa.Array) -> pa.Array:
    """`doc #>> path` (and `->>`): the value at the path as text."""
    return _extract(doc, path, True)


def json_exists(doc: pa.Array, path: pa.Array) -> pa.Array:
    """Whether a value (JSON null included) exists at the path (`?`, `jsonb_path_exists`)."""
    doc = _as_string(doc)
    path_arg = _as_string(path)
    constant, path_text = _constant(path_arg)
    if not constant:
        found = _per_row(doc, path_arg, lambda v: True, pa.bool_())
        return pc.if_else(pc.or_(doc.is_null(), path_arg.is_null()), None, pc.fill_null(found, False))
    if path_text is None:
        return pa.nulls(len(doc), pa.bool_())
    p = parse_path(path_text)
    _, _, _, status = _spans(doc, p)
    result = status == K.FOUND
    for r in np.flatnonzero(status == K.SLOW).tolist():
        result[r] = _slow_value(doc, r, p) is not _MISSING
    return pa.array(result, pa.bool_(), mask=~_buffers(doc)[2])


def _leaves(needle: Any, prefix: Path) -> list[tuple[Path, Any]] | None:
    """The scalar leaves of an object needle with their paths; None if it has arrays (Python decides)."""
    out: list[tuple[Path, Any]] = []
    for key, value in needle.items():
        if isinstance(value, dict) and value:
            inner = _leaves(value, [*prefix, key])
            if inner is None:
                return None
            out.extend(inner)
        elif isinstance(value, list) and value:
            return None
        else:
            out.append(([*prefix, key], value))
    return out


def json_contains(doc: pa.Array, needle: pa.Array) -> pa.Array:
    """`doc @> needle` for jsonb. A constant object needle is checked leaf by leaf in compiled code."""
    doc = _as_string(doc)
    needle = _as_string(needle)
    constant, needle_text = _constant(needle)
    n = len(doc)
    doc_valid = _buffers(doc)[2]
    if constant and needle_text is None:
        return pa.nulls(n, pa.bool_())
    if not constant:
        out = []
        for d, t in zip(doc.to_pylist(), needle.to_pylist()):
            out.append(None if d is None or t is None else _contains_text(d, _needle(t)))
        return pa.array(out, pa.bool_())
    parsed = _needle(needle_text)
    leaves = _leaves(parsed, []) if isinstance(parsed, dict) else None
    if leaves is None:
        out = [None if d is None else _contains_text(d, parsed) for d in doc.to_pylist()]
        return pa.array(out, pa.bool_())
    if not leaves:  # `@> '{}'`: every object
        data, offsets, valid = _buffers(doc)
        result = np.zeros(n, dtype=np.uint8)
        starts, ends, status = np.zeros(n, np.int64), np.zeros(n, np.int64), np.zeros(n, np.uint8)
        K.json_spans(data, offsets, valid, *_encode_path([]), 0, starts, ends, status)
        K.equal_spans(data, starts, ends, status, np.zeros(1, np.uint8), 2, result)
        return pa.array(result == 1, pa.bool_(), mask=~doc_valid)
    total = np.ones(n, dtype=np.uint8)
    for path, value in leaves:
        data, starts, ends, status = _spans(doc, path)
        if isinstance(value, dict):
            kind, text = 2, b""
        elif isinstance(value, list):
            kind, text = 3, b""
        elif isinstance(value, int | Decimal) and not isinstance(value, bool):
            kind, text = 1, jsonb_text(value).encode()
        else:
            kind, text = 0, jsonb_text(value).encode()
        result = np.zeros(n, dtype=np.uint8)
        K.equal_spans(
            data, starts, ends, status, np.frombuffer(text or b"\0", np.uint8)[: len(text)], kind, result
        )
        total = np.where((total == 0) | (result == 0), 0, np.maximum(total, result))
    for r in np.flatnonzero(total == 2).tolist():
        total[r] = _contains_text(doc[r].as_py(), parsed)
    return pa.array(total == 1, pa.bool_(), mask=~doc_valid)


def _needle(text: str) -> Any:
    try:
        return loads(text)
    except ValueError:
        raise JsonError(f"invalid input syntax for type json: {text!r}") from None


def _contains_text(doc: str, needle: Any) -> bool:
    try:
        return contains(loads(doc), needle)
    except ValueError:  # not JSON: contains nothing (as the compiled path finds)
        return False


def json_quote(values: pa.Array) -> pa.Array:
    """Text → a JSON string literal (`to_json(text)`), vectorised; NULL stays NULL."""
    values = _as_string(values)
    escaped = pc.replace_substring(values, "\\", "\\\\")
    escaped = pc.replace_substring(escaped, '"', '\\"')
    control = pc.match_substring_regex(escaped, r"[\x00-\x1f]")
    if pc.any(control).as_py():
        fixed = [
            None if v is None else quote(v)[1:-1] if c else e
            for v, e, c in zip(values.to_pylist(), escaped.to_pylist(), control.to_pylist())
        ]
        escaped = pa.array(fixed, pa.string())
    return pc.binary_join_element_wise('"', escaped, '"', "")


def json_normalize(values: pa.Array) -> pa.Array:
    """Text → jsonb text (`'…'::jsonb`): PostgreSQL's formatting; invalid JSON is an error."""
    values = _as_string(values)
    out = []
    for v in values.to_pylist():
        if v is None:
            out.append(None)
            continue
        try:
            out.append(jsonb_text(loads(v)))
        except ValueError:
            raise JsonError(f'invalid input syntax for type json: "{v}"') from None
    return pa.ExtensionArray.from_storage(JSON_FIELD.type, pa.array(out, pa.string()))
