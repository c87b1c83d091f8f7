"""Coerce incoming Arrow data to a table's schema, column by column.

Every ingest protocol ends here, so the rules live in one place: missing nullable columns become
NULL, missing NOT NULL columns take their declared default (a NOT NULL list becomes an empty list),
`date` is always derived from `timestamp`, timestamps become microseconds UTC, a NULL `project_id`
becomes `default`, and a value that cannot be coerced is an `IngestError` naming column and row.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from timefusion.schema import Column, TableSchema
from timefusion.schema.tables import TIMESTAMP

DEFAULT_PROJECT = "default"


class IngestError(ValueError):
    """Data that cannot be stored; `sqlstate` is the PostgreSQL code a wire client gets."""

    def __init__(self, message: str, sqlstate: str = "22P02") -> None:
        super().__init__(message)
        self.sqlstate = sqlstate


def _first_bad_row(arr: pa.Array, convert: Any) -> tuple[int, Any]:
    """Locate the first element that fails `convert` (only used on the error path)."""
    for i in range(len(arr)):
        one = arr.slice(i, 1)
        try:
            convert(one)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, ValueError, TypeError, OverflowError):
            try:
                return i, one[0].as_py()
            except (ValueError, OverflowError):
                return i, str(one[0])
    return -1, None


def _parse_timestamps(arr: pa.Array) -> pa.Array:
    """Strings, any-unit timestamps or dates → timestamp[us, UTC]; naive values are UTC."""
    t = arr.type
    if pa.types.is_timestamp(t):
        if t.tz is None:
            arr = pc.assume_timezone(arr, "UTC")
        return arr.cast(TIMESTAMP, safe=False)  # sub-microsecond digits are dropped
    if pa.types.is_date(t):
        return arr.cast(pa.timestamp("us")).cast(TIMESTAMP)
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        arr = arr.cast(pa.string())
        try:
            return arr.cast(TIMESTAMP)  # values with a zone offset or Z
        except pa.ArrowInvalid:
            pass
        try:
            return arr.cast(pa.timestamp("us")).cast(TIMESTAMP)  # naive values: UTC
        except pa.ArrowInvalid:
            pass
        out = []  # a mix of both forms: per value (rare)
        for v in arr.to_pylist():
            if v is None:
                out.append(None)
                continue
            parsed = dt.datetime.fromisoformat(v.strip().replace(" ", "T", 1))
            out.append(parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC))
        return pa.array(out, TIMESTAMP)
    raise TypeError(f"cannot use a value of type {t} as a timestamp")


def _to_json_text(arr: pa.Array) -> pa.Array:
    if pa.types.is_string(arr.type):
        return arr
    if pa.types.is_large_string(arr.type) or pa.types.is_string_view(arr.type):
        return arr.cast(pa.string())
    return pa.array(
        [None if v is None else json.dumps(v, default=str, separators=(",", ":")) for v in arr.to_pylist()],
        pa.string(),
    )


def _convert(col: Column, arr: pa.Array) -> pa.Array:
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_decode()
    target = col.arrow_type
    if col.is_json:
        return _to_json_text(arr)
    if arr.type == target:
        return arr
    if target == TIMESTAMP:
        return _parse_timestamps(arr)
    if pa.types.is_null(arr.type):
        return pa.nulls(len(arr), target)
    if pa.types.is_list(target) and pa.types.is_string(arr.type):
        raise TypeError(f"expected an array of {target.value_type}, got text")
    return arr.cast(target)


def _default(col: Column, n: int, now: dt.datetime) -> pa.Array:
    if pa.types.is_list(col.arrow_type) and col.default is None:
        return pa.array([[]] * n, col.arrow_type)
    if col.default == "now":
        return pa.array([now] * n, col.arrow_type)
    if col.default == "uuid":
        return pa.array([str(uuid.uuid4()) for _ in range(n)], col.arrow_type)
    if col.default is not None:
        return pa.array([col.default] * n, col.arrow_type)
    raise IngestError(f'column "{col.name}" is NOT NULL and has no default; supply a value', "23502")


def coerce(schema: TableSchema, data: pa.RecordBatch | pa.Table) -> pa.RecordBatch:
    """Return `data` as one RecordBatch with exactly `schema`'s columns, types and order."""
    if isinstance(data, pa.Table):
        data = data.combine_chunks()
        data = pa.RecordBatch.from_arrays([c.combine_chunks() for c in data.columns], schema=data.schema)
    n = data.num_rows
    by_name = schema.by_name
    incoming: dict[str, pa.Array] = {}
    for name, arr in zip(data.schema.names, data.columns):
        if name not in by_name:
            raise IngestError(f'column "{name}" of relation "{schema.name}" does not exist', "42703")
        if name in incoming:
            raise IngestError(f'column "{name}" specified more than once', "42701")
        incoming[name] = arr
    now = dt.datetime.now(dt.UTC)
    out: list[pa.Array] = []
    for col in schema.columns:
        if col.name == "date":
            out.append(pa.nulls(n, pa.date32()))  # derived below from timestamp
            continue
        arr = incoming.get(col.name)
        if arr is None:
            out.append(pa.nulls(n, col.arrow_type) if col.nullable else _default(col, n, now))
            continue
        try:
            value = _convert(col, arr)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, ValueError, TypeError, OverflowError) as e:
            row, bad = _first_bad_row(arr, lambda a, c=col: _convert(c, a))
            where = f" in row {row + 1}" if row >= 0 else ""
            shown = f" ({bad!r})" if row >= 0 else ""
            raise IngestError(
                f'invalid value{shown} for column "{col.name}" ({col.type_name}){where}: {e}'
            ) from None
        if not col.nullable and value.null_count:
            if col.default is not None or pa.types.is_list(col.arrow_type):
                value = pc.if_else(pc.is_null(value), _default(col, n, now), value)
            else:
                row = pc.index(pc.is_null(value), True).as_py()
                raise IngestError(
                    f'null value in column "{col.name}" of relation "{schema.name}" violates '
                    f"not-null constraint (row {row + 1})",
                    "23502",
                )
        out.append(value)
    names = [c.name for c in schema.columns]
    ts = out[names.index("timestamp")]
    out[names.index("date")] = ts.cast(pa.date32())
    pidx = names.index("project_id")
    if out[pidx].null_count:
        out[pidx] = pc.fill_null(out[pidx], DEFAULT_PROJECT)
    return pa.RecordBatch.from_arrays(out, schema=schema.arrow_schema)
