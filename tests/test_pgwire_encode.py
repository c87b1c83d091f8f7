"""The Arrow → DataRow encoder against a real PostgreSQL, byte for byte, in text and binary format.

Each case holds the same values twice: as an Arrow array for our encoder, and as Bind parameters that
PostgreSQL parses (binary parameters for scalars, so the two sides share no formatting code; array
literals in text). PostgreSQL's own RowDescription and DataRow bytes are the expected output for both
our per-row and our vectorised path. Hypothesis then throws random values of the trickiest types at
both, and checks that the two paths agree on random mixed batches. Parameter decoding is checked by
decoding PostgreSQL's own output bytes.
"""

from __future__ import annotations

import datetime as dt
import decimal
import math
import os
import struct
import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pg_server import NOT_FOUND, PgServer, RawClient, find_bin_dir

from timefusion.protocol.pgwire import encode as enc
from timefusion.protocol.pgwire.encode import encode_batch, encode_columns, encode_rows, row_description
from timefusion.protocol.pgwire.types import arrow_type_for_oid, column_type, decode_param

EPOCH_US = 946_684_800_000_000
EPOCH_DAYS = 10_957
PG_MIN_TS_US = -210_866_803_200_000_000  # 4714-11-24 00:00:00 BC, PostgreSQL's lower bound (µs since 1970)
ARROW_MAX_US = 2**63 - 1 - EPOCH_US  # keep µs-since-2000 inside int64 too

# TF_HYPOTHESIS_SCALE=10 multiplies the example counts for a deeper local run.
SCALE = int(os.environ.get("TF_HYPOTHESIS_SCALE", "1"))
FAST = settings(max_examples=40 * SCALE, deadline=None, suppress_health_check=list(HealthCheck))


# ---------------------------------------------------------------------------------------------------
# Fixtures and helpers
# ---------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pg() -> Iterator[RawClient]:
    server = PgServer().start()
    client = RawClient(server.port)
    try:
        yield client
    finally:
        client.close()
        server.stop()


Param = tuple[int, bytes | None]  # (format code, bytes or None for NULL)


def split_rows(data: bytes) -> list[list[bytes | None]]:
    """DataRow messages → field values, for readable assertion diffs."""
    rows, pos = [], 0
    while pos < len(data):
        assert data[pos : pos + 1] == b"D"
        (length,) = struct.unpack_from("!i", data, pos + 1)
        (ncols,) = struct.unpack_from("!h", data, pos + 5)
        p, fields = pos + 7, []
        for _ in range(ncols):
            (n,) = struct.unpack_from("!i", data, p)
            p += 4
            fields.append(None if n < 0 else data[p : p + n])
            p += max(n, 0)
        assert p == pos + 1 + length, "DataRow length field disagrees with its contents"
        rows.append(fields)
        pos = p
    return rows


def pg_result(pg: RawClient, sql_type: str, params: Sequence[Param], fmt: int) -> tuple[bytes, bytes]:
    values = ", ".join(f"(${i + 1}::{sql_type})" for i in range(len(params)))
    res = pg.query(f"SELECT v FROM (VALUES {values}) AS t(v)", [(0, f, b) for f, b in params], fmt)
    return res.row_description, res.data_rows


def assert_same(
    pg: RawClient, sql_type: str, params: Sequence[Param], arr: pa.Array, json: bool = False
) -> None:
    batch = pa.record_batch([arr], names=["v"])
    jc = {"v"} if json else set()
    for fmt in (0, 1):
        desc, rows = pg_result(pg, sql_type, params, fmt)
        assert row_description(batch.schema, [fmt], jc) == desc, (sql_type, fmt)
        for path in (encode_rows, encode_columns):
            ours = path(batch, [fmt], jc)
            assert split_rows(ours) == split_rows(rows), (sql_type, fmt, path.__name__)
            assert ours == rows


def binp(fmt: str) -> Callable[[Any], Param]:
    return lambda v: (1, None if v is None else struct.pack(fmt, v))


def textp(v: object) -> Param:
    return (0, None if v is None else (v if isinstance(v, bytes) else str(v).encode()))


def ts_param(us: int | None) -> Param:
    return (1, None if us is None else struct.pack("!q", us - EPOCH_US))


def date_param(days: int | None) -> Param:
    return (1, None if days is None else struct.pack("!i", days - EPOCH_DAYS))


def interval_param(v: tuple[int, int, int] | None) -> Param:
    return (1, None if v is None else struct.pack("!qii", v[2], v[1], v[0]))


def raw_param(v: bytes | None) -> Param:
    return (1, v)


def float_param(single: bool) -> Callable[[float | None], Param]:
    return binp("!f" if single else "!d")


def array_literal(values: list[Any] | None, elem: Callable[[Any], str] = str) -> str | None:
    """A PostgreSQL array literal with every non-NULL scalar element quoted and escaped."""
    if values is None:
        return None
    items = []
    for v in values:
        if v is None:
            items.append("NULL")
        elif isinstance(v, list):
            items.append(array_literal(v, elem) or "NULL")
        else:
            s = elem(v)
            items.append('"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"')
    return "{" + ",".join(items) + "}"


def mdn(values: list[tuple[int, int, int] | None]) -> pa.Array:
    return pa.array(
        [None if v is None else pa.MonthDayNano([v[0], v[1], v[2] * 1000]) for v in values],
        pa.month_day_nano_interval(),
    )


# ---------------------------------------------------------------------------------------------------
# Edge values of every type, against PostgreSQL
# ---------------------------------------------------------------------------------------------------

FLOAT8 = [
    *(0.0, -0.0, 1.0, -1.0, 0.5, 100.0, 1e-5, 1e-4, 0.000123, 1e-7, 9.999999999999999e-05, 0.1 + 0.2),
    *(1e15, 1e16, 1.5e15, 123456789.123, 123456789012345.0, 99999999999999.99, 999999999999999.9),
    *(1e21, 1e22, 12345.678, -1.25e-10, 5e-324, 2.2250738585072014e-308, 1.7976931348623157e308),
    *(math.inf, -math.inf, math.nan, 1234567890123456.7, 0.001, 1e100, -1e-100, None),
    # PostgreSQL's Ryu never prints a decimal lying on a rounding bound, unlike Python's repr:
    *(6.589388800755218e16, -6.256481205227906e16, 2.169616769380772e17, 3.255747046618752e19),
    *(4.003665433541376e19, 2.0**53, 2.0**63, 2.0**64, 9007199254740993.0 * 4),
]
FLOAT4 = [
    *(0.0, -0.0, 1.0, 0.1, 0.3, 1e-5, 1e-4, 123456.7, 1e6, 999999.0, 1234567.0, 16777216.0, 100000.0),
    *(12345.6, 3.4028235e38, 1e-45, 1.17549435e-38, 3.14159274, 1e15, 1e16, -2.5e-7, 0.5e-4),
    *(math.inf, -math.inf, math.nan, None, 6.145943e07, -8.02812e08, 3.816343e07, 1.2363486e08),
    *(2.0**24, 2.0**63, 2.0**100),
]
TIMESTAMPS = [
    *(0, 1_737_123_900_000_000, 1_737_123_900_120_000, 1_737_123_900_000_001, -1, 1_000_000, 1_500_000),
    *(-62_135_596_800_000_000, -62_135_596_800_000_001, -62_167_219_200_000_000, PG_MIN_TS_US),
    *(-100_000_000_000_000_000, 253_402_300_799_999_999, 253_402_300_800_000_000, 9_000_000_000_000_000_000),
    None,
]
DATES = [0, 10_957, -719_162, -719_163, -719_528, -2_440_588, 2_932_896, 2_932_897, 100_000_000, -1, None]
INTERVALS = [
    *((0, 0, 0), (0, 1, 7_384_500_000), (0, 0, 1_000_000), (0, 0, -1_000_000), (3, 0, 0), (14, 0, 0)),
    *((-14, 3, -5), (-1, 0, 0), (12, 0, 0), (1, 1, 1), (0, -1, 3_600_000_000), (-13, -2, -3_723_000_004)),
    *((0, 0, 360_000_000_000_000), (0, 0, 999_999), (-12, 0, 0), (0, 0, 59_999_999), (1, -1, 0), (0, 1, 0)),
    *((-1, 1, 1), (1, -1, -1), (0, 0, -360_000_000_000_000), (25, 40, 86_400_000_000), None),
]
UUIDS = [uuid.UUID("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11").bytes, bytes(16), b"\xff" * 16, None]
STRINGS = ["", "hello", "ü€𝄞", "with\nnewline", "tab\t", "quote'\"", "back\\slash", None, "null", " ", "{}"]
TEXT_ELEMS = [
    *("a", "b c", None, "", "null", "NULL", "Null", 'x"y', "back\\slash", "{}", ",", " lead", "trail "),
    *("tab\t", "new\nline", "é", "nul", "nulls", "\x0b", "\x0c", "\r", "plain", "a,b", "{", "}", '"'),
]
D = decimal.Decimal


def scalar_cases() -> list[tuple[str, str, pa.Array, list[Param], bool]]:
    """(id, PostgreSQL type, Arrow array, the same values as Bind parameters, is JSON)."""
    i8 = binp("!q")
    cases: list[tuple[str, str, pa.Array, bool]] = [
        ("int2", "int2", pa.array([0, 1, -1, 32767, -32768, None], pa.int16()), False),
        ("int8->int2", "int2", pa.array([-128, 127, None], pa.int8()), False),
        ("uint8->int2", "int2", pa.array([0, 255], pa.uint8()), False),
        ("int4", "int4", pa.array([0, 2**31 - 1, -(2**31), 7, None], pa.int32()), False),
        ("uint16->int4", "int4", pa.array([65535, 0], pa.uint16()), False),
        ("int8", "int8", pa.array([0, 2**63 - 1, -(2**63), 42, None], pa.int64()), False),
        ("uint32->int8", "int8", pa.array([2**32 - 1, None], pa.uint32()), False),
        ("float8", "float8", pa.array(FLOAT8, pa.float64()), False),
        ("float4", "float4", pa.array(FLOAT4, pa.float32()), False),
        ("bool", "bool", pa.array([True, False, None]), False),
        ("text", "text", pa.array(STRINGS), False),
        ("large_string", "text", pa.array(STRINGS, pa.large_string()), False),
        ("string_view", "text", pa.array(STRINGS, pa.string_view()), False),
        ("dictionary", "text", pa.array(["a", "b", None, "a"]).dictionary_encode(), False),
        ("null", "text", pa.nulls(3), False),
        ("dictionary_int", "int8", pa.array([1, 2, None, 1]).dictionary_encode(), False),
        ("binary_view", "bytea", pa.array([b"ab", None, b""], pa.binary_view()), False),
        ("float16", "float4", pa.array(np.array([1.5, -0.0, 65504.0, 6e-08], np.float16)), False),
        ("bytea", "bytea", pa.array([b"", b"\x00\x01\xff", b"abc", None, bytes(range(256))]), False),
        ("large_binary", "bytea", pa.array([b"\x01", None], pa.large_binary()), False),
        ("fixed_binary", "bytea", pa.array([b"\x01\x02\x03", None], pa.binary(3)), False),
        ("uuid", "uuid", pa.array(UUIDS, pa.binary(16)), False),
        (
            "uuid_ext",
            "uuid",
            pa.ExtensionArray.from_storage(pa.uuid(), pa.array(UUIDS, pa.binary(16))),
            False,
        ),
        ("date32", "date", pa.array(DATES, pa.date32()), False),
        ("date64", "date", pa.array([0, 86_400_000 * 20_000, -86_400_000, None], pa.date64()), False),
        (
            "time64",
            "time",
            pa.array([0, 1, 86_399_999_999, 45_296_789_000, None], pa.time64("us")),
            False,
        ),
        ("time32", "time", pa.array([0, 3661, None], pa.time32("s")), False),
        ("time64ns", "time", pa.array([1_500, 45_296_789_000_999], pa.time64("ns")), False),
        ("timestamp", "timestamp", pa.array(TIMESTAMPS, pa.timestamp("us")), False),
        ("timestamptz", "timestamptz", pa.array(TIMESTAMPS, pa.timestamp("us", tz="UTC")), False),
        (
            "timestamptz_kolkata",
            "timestamptz",
            pa.array(TIMESTAMPS, pa.timestamp("us", tz="Asia/Kolkata")),
            False,
        ),
        ("interval", "interval", mdn(INTERVALS), False),
        ("duration", "interval", pa.array([0, 90_000_000_000, -1, 1, None], pa.duration("us")), False),
        (
            "jsonb",
            "jsonb",
            pa.array(['{"a": 1}', '[1, 2, "x"]', '"str"', "null", "{}", "1.5", None]),
            True,
        ),
    ]
    params = {
        "int2": binp("!h"),
        "int4": binp("!i"),
        "int8": i8,
        "float8": float_param(False),
        "float4": float_param(True),
        "bool": binp("?"),
        "text": textp,
        "bytea": raw_param,
        "uuid": raw_param,
        "jsonb": textp,
        "interval": interval_param,
    }
    out = []
    for name, sql_type, arr, json in cases:
        if sql_type in ("timestamp", "timestamptz"):
            us = arr.cast(pa.int64()).to_pylist()
            ps = [ts_param(v) for v in us]
        elif sql_type == "date":
            days = (
                arr.cast(pa.int32()).to_pylist()
                if arr.type == pa.date32()
                else [None if v is None else v // 86_400_000 for v in arr.cast(pa.int64()).to_pylist()]
            )
            ps = [date_param(v) for v in days]
        elif sql_type == "time":
            unit = {"s": 1_000_000, "ms": 1000, "us": 1, "ns": 1}[arr.type.unit]
            raw = arr.cast(pa.int64() if pa.types.is_time64(arr.type) else pa.int32()).to_pylist()
            ps = [
                (
                    1,
                    None
                    if v is None
                    else struct.pack("!q", v // 1000 if arr.type.unit == "ns" else v * unit),
                )
                for v in raw
            ]
        elif sql_type == "interval" and pa.types.is_duration(arr.type):
            ps = [interval_param(None if v is None else (0, 0, v)) for v in arr.cast(pa.int64()).to_pylist()]
        elif sql_type == "interval":
            ps = [interval_param(None if v is None else (v[0], v[1], v[2] // 1000)) for v in arr.to_pylist()]
        else:
            values = arr.to_pylist() if not isinstance(arr, pa.ExtensionArray) else arr.storage.to_pylist()
            ps = [params[sql_type](v) for v in values]
        out.append((name, sql_type, arr, ps, json))
    # Units other than µs (inside each unit's range).
    ns = [0, 1_737_123_900_123_456_789, -1, -1_000, None]
    out.append(
        (
            "timestamp_ns",
            "timestamp",
            pa.array(ns, pa.timestamp("ns")),
            [ts_param(None if v is None else v // 1000) for v in ns],
            False,
        )
    )
    secs = [0, 1_737_123_900, -62_135_596_801, None]
    out.append(
        (
            "timestamp_s",
            "timestamptz",
            pa.array(secs, pa.timestamp("s", tz="UTC")),
            [ts_param(None if v is None else v * 1_000_000) for v in secs],
            False,
        )
    )
    ms = [0, 1_737_123_900_123, -1, None]
    out.append(
        (
            "timestamp_ms",
            "timestamp",
            pa.array(ms, pa.timestamp("ms")),
            [ts_param(None if v is None else v * 1000) for v in ms],
            False,
        )
    )
    dur_ns = [1_500, -1_500, 86_400_000_000_000, None]
    out.append(
        (
            "duration_ns",
            "interval",
            pa.array(dur_ns, pa.duration("ns")),
            [interval_param(None if v is None else (0, 0, int(v / 1000))) for v in dur_ns],
            False,
        )
    )
    return out


@pytest.mark.parametrize("case", scalar_cases(), ids=lambda c: c[0])
def test_scalars_match_postgres(pg: RawClient, case: tuple[str, str, pa.Array, list[Param], bool]) -> None:
    _, sql_type, arr, params, json = case
    assert_same(pg, sql_type, params, arr, json)


NUMERIC_CASES = [
    ((10, 2), ["1.50", "-1.50", "0.00", "12345678.90", "-0.05", "0.01", None, "10.00", "100.10"]),
    (
        (38, 10),
        ["0.0000000001", "-0.0000001000", "1234567890123456789012345678.0123456789", "0", "0.0001000000"],
    ),
    ((38, 10), ["-9999999999999999999999999999.9999999999", "10000.0000000000", "-0.0000000005"]),
    ((38, 0), ["9" * 38, "-" + "9" * 38, "0", "10000", "100000000", "123456789012345678901234567890"]),
    ((5, 5), ["0.12345", "-0.00001", "0.00000"]),
    ((20, 4), ["10000.0000", "1.0001", "-9999999999999999.9999", "0.0010"]),
    ((18, 3), ["999999999999999.999", "-0.001", "1.000"]),
    ((60, 30), ["1.2", "-123456789012345678901234567890.123456789012345678901234567890", "0", None]),
    ((76, 0), ["9" * 76, "-1"]),
]


@pytest.mark.parametrize("case", NUMERIC_CASES, ids=lambda c: f"numeric{c[0]}")
def test_numeric_matches_postgres(pg: RawClient, case: tuple[tuple[int, int], list[str | None]]) -> None:
    (p, s), values = case
    dtype = pa.decimal128(p, s) if p <= 38 else pa.decimal256(p, s)
    arr = pa.array([None if v is None else D(v) for v in values], dtype)
    assert_same(pg, f"numeric({p},{s})", [textp(v) for v in values], arr)


def test_negative_scale_decimal_is_sent_as_integers(pg: RawClient) -> None:
    arr = pa.array([D("1.23E+4"), D("-5E+2"), D("0"), None], pa.decimal128(5, -2))
    assert_same(pg, "numeric(7,0)", [textp(v) for v in ("12300", "-500", "0", None)], arr)


def test_small_decimals_are_numeric(pg: RawClient) -> None:
    values = ["1.25", "-0.05", None]
    arr32 = pa.array([None if v is None else D(v) for v in values], pa.decimal32(5, 2))
    assert_same(pg, "numeric(5,2)", [textp(v) for v in values], arr32)
    arr64 = pa.array([None if v is None else D(v) for v in values], pa.decimal64(12, 2))
    assert_same(pg, "numeric(12,2)", [textp(v) for v in values], arr64)


def test_uint64_is_numeric(pg: RawClient) -> None:
    values = [0, 2**64 - 1, None, 12345]
    assert_same(pg, "numeric(20,0)", [textp(v) for v in values], pa.array(values, pa.uint64()))


def ts_text(us: int, tz: bool) -> str:
    return enc._py_timestamp(us, tz).decode()


ARRAY_CASES: list[tuple[str, str, pa.Array, list[str | None], bool]] = [
    (
        "int8[]",
        "int8[]",
        pa.array([[1, 2, None], [], None, [-(2**63), 2**63 - 1], [None]], pa.list_(pa.int64())),
        ["{1,2,NULL}", "{}", None, "{-9223372036854775808,9223372036854775807}", "{NULL}"],
        False,
    ),
    ("int4[]", "int4[]", pa.array([[1], [2, 3]], pa.list_(pa.int32())), ["{1}", "{2,3}"], False),
    ("int2[]", "int2[]", pa.array([[1, -1]], pa.list_(pa.int16())), ["{1,-1}"], False),
    (
        "text[]",
        "text[]",
        pa.array([TEXT_ELEMS, [], None, ["only"], [None, None]]),
        [array_literal(TEXT_ELEMS), "{}", None, "{only}", "{NULL,NULL}"],
        False,
    ),
    (
        "large_list_text",
        "text[]",
        pa.array([["a b", "c"], None], pa.large_list(pa.large_string())),
        ['{"a b",c}', None],
        False,
    ),
    (
        "float8[]",
        "float8[]",
        pa.array([[1e-5, math.nan, math.inf, -math.inf, -0.0, 0.1 + 0.2, 1e16, None, 1e15]]),
        ["{1e-05,NaN,Infinity,-Infinity,-0,0.30000000000000004,1e+16,NULL,1e+15}"],
        False,
    ),
    (
        "float4[]",
        "float4[]",
        pa.array([[0.1, 1e6, None]], pa.list_(pa.float32())),
        ["{0.1,1e+06,NULL}"],
        False,
    ),
    ("bool[]", "bool[]", pa.array([[True, False, None]]), ["{t,f,NULL}"], False),
    (
        "numeric[]",
        "numeric(10,2)[]",
        pa.array([[D("1.50"), None, D("-0.05")]], pa.list_(pa.decimal128(10, 2))),
        ["{1.50,NULL,-0.05}"],
        False,
    ),
    (
        "date[]",
        "date[]",
        pa.array([[0, -719_163, None]], pa.list_(pa.date32())),
        ['{1970-01-01,"0001-12-31 BC",NULL}'],
        False,
    ),
    (
        "timestamp[]",
        "timestamp[]",
        pa.array([[1_737_123_900_120_000, -62_135_596_800_000_001, None]], pa.list_(pa.timestamp("us"))),
        [
            array_literal(
                [ts_text(1_737_123_900_120_000, False), ts_text(-62_135_596_800_000_001, False), None]
            )
        ],
        False,
    ),
    (
        "timestamptz[]",
        "timestamptz[]",
        pa.array([[1_737_123_900_120_000, 0]], pa.list_(pa.timestamp("us", tz="UTC"))),
        ['{"2025-01-17 14:25:00.12+00","1970-01-01 00:00:00+00"}'],
        False,
    ),
    (
        "interval[]",
        "interval[]",
        pa.ListArray.from_arrays(
            pa.array([0, 3]), mdn([(0, 1, 7_384_500_000), (0, 0, 1_000_000), (0, 0, -1)])
        ),
        ['{"1 day 02:03:04.5","00:00:01","-00:00:00.000001"}'],
        False,
    ),
    (
        "uuid[]",
        "uuid[]",
        pa.array([[UUIDS[0], None, UUIDS[1]]], pa.list_(pa.binary(16))),
        [f"{{{uuid.UUID(bytes=UUIDS[0])},NULL,{uuid.UUID(bytes=UUIDS[1])}}}"],
        False,
    ),
    (
        "bytea[]",
        "bytea[]",
        pa.array([[b"\x01\x02", b"", None]], pa.list_(pa.binary())),
        ['{"\\\\x0102","\\\\x",NULL}'],
        False,
    ),
    (
        "jsonb[]",
        "jsonb[]",
        pa.array([['{"a": 1}', None, "[]", '"s"']]),
        [array_literal(['{"a": 1}', None, "[]", '"s"'])],
        True,
    ),
    (
        "int4[][]",
        "int4[]",
        pa.array([[[1, 2], [3, 4]], [[None, 5]], [], None, [[]], [[], []]], pa.list_(pa.list_(pa.int32()))),
        ["{{1,2},{3,4}}", "{{NULL,5}}", "{}", None, "{}", "{}"],
        False,
    ),
    (
        "text[][]",
        "text[]",
        pa.array([[["a", "b c"], ["", None]]], pa.list_(pa.list_(pa.string()))),
        ['{{a,"b c"},{"",NULL}}'],
        False,
    ),
    (
        "list_view",
        "int8[]",
        pa.array([[1, 2], None, [3]], pa.list_view(pa.int64())),
        ["{1,2}", None, "{3}"],
        False,
    ),
    (
        "fixed_size_list",
        "int8[]",
        pa.array([[1, 2], None, [3, None]], pa.list_(pa.int64(), 2)),
        ["{1,2}", None, "{3,NULL}"],
        False,
    ),
]


@pytest.mark.parametrize("case", ARRAY_CASES, ids=lambda c: c[0])
def test_arrays_match_postgres(
    pg: RawClient, case: tuple[str, str, pa.Array, list[str | None], bool]
) -> None:
    _, sql_type, arr, literals, json = case
    assert_same(pg, sql_type, [textp(v) for v in literals], arr, json)


def test_multi_column_batch_matches_postgres(pg: RawClient) -> None:
    """Several columns (with NULLs in different places) in one DataRow, per-column formats mixed."""
    batch = pa.record_batch(
        {
            "a": pa.array([1, None, 3], pa.int64()),
            "b": pa.array(["x", "y z", None]),
            "c": pa.array([1.5, None, 1e-7]),
            "d": pa.array([0, 1_737_123_900_120_000, None], pa.timestamp("us", tz="UTC")),
            "e": pa.array([["p", None], None, []]),
        }
    )
    types = ("int8", "text", "float8", "timestamptz", "text[]")
    rows = ", ".join(
        "(" + ", ".join(f"${r * 5 + c + 1}::{t}" for c, t in enumerate(types)) + ")" for r in range(3)
    )
    sql = f"SELECT a, b, c, d, e FROM (VALUES {rows}) AS t(a, b, c, d, e)"
    int8, float8 = binp("!q"), float_param(False)
    params = [
        *(int8(1), textp("x"), float8(1.5), ts_param(0), textp("{p,NULL}")),
        *(int8(None), textp("y z"), float8(None), ts_param(1_737_123_900_120_000), textp(None)),
        *(int8(3), textp(None), float8(1e-7), ts_param(None), textp("{}")),
    ]
    for formats in ([0], [1], [0, 1, 0, 1, 0], [1, 0, 1, 0, 1]):
        res = pg.query(sql, [(0, f, b) for f, b in params], formats)
        assert row_description(batch.schema, formats) == res.row_description
        for path in (encode_rows, encode_columns):
            assert path(batch, formats) == res.data_rows


def test_sliced_arrays_encode_like_whole_ones() -> None:
    arr = pa.array([f"s{i}" if i % 3 else None for i in range(300)])
    lists = pa.array([[f"e{i}", None, "a b"] if i % 4 else None for i in range(300)])
    ts = pa.array(list(range(300)), pa.timestamp("us"))
    batch = pa.record_batch({"s": arr, "l": lists, "t": ts}).slice(37, 150)
    copy = pa.record_batch(
        {k: pa.array(batch.column(k).to_pylist(), batch.column(k).type) for k in ("s", "l", "t")}
    )
    for fmt in (0, 1):
        assert encode_columns(batch, [fmt]) == encode_columns(copy, [fmt]) == encode_rows(copy, [fmt])


def test_threaded_and_split_encoding_give_the_same_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    n = 5000
    batch = pa.record_batch(
        {
            "i": pa.array(range(n)),
            "s": pa.array([None if i % 7 == 0 else f"v {i}" for i in range(n)]),
            "t": pa.array(range(0, n * 1_000_003, 1_000_003), pa.timestamp("us", tz="UTC")),
            "l": pa.array([[str(i), None] if i % 5 else [] for i in range(n)]),
        }
    )
    expected = {fmt: encode_rows(batch, [fmt]) for fmt in (0, 1)}
    monkeypatch.setattr(enc, "THREADS", 3)
    monkeypatch.setattr(enc, "PARALLEL_ROWS", 1000)
    for fmt in (0, 1):
        chunks = enc.encode_batch_chunks(batch, [fmt])
        assert len(chunks) == 3
        assert b"".join(chunks) == encode_batch(batch, [fmt]) == expected[fmt]
    monkeypatch.setattr(enc, "THREADS", 1)
    monkeypatch.setattr(enc, "_SPLIT_BYTES", batch.nbytes // 4)
    for fmt in (0, 1):
        assert len(enc.encode_batch_chunks(batch, [fmt])) >= 4
        assert encode_batch(batch, [fmt]) == expected[fmt]


def test_large_batch_uses_vectorised_path(monkeypatch: pytest.MonkeyPatch) -> None:
    batch = pa.record_batch({"a": pa.array(range(100))})
    calls: list[str] = []
    monkeypatch.setattr(enc, "encode_rows", lambda *a: calls.append("rows") or b"")
    monkeypatch.setattr(enc, "encode_columns", lambda *a: calls.append("columns") or b"")
    encode_batch(batch, [0])
    encode_batch(batch.slice(0, 64), [0])
    assert calls == ["columns", "rows"]


def test_formats_argument() -> None:
    batch = pa.record_batch({"a": pa.array([1]), "b": pa.array(["x"])})
    assert (
        encode_batch(batch, [])
        == encode_batch(batch, [0])
        == encode_batch(batch, [0, 0])
        == encode_batch(batch, 0)
    )
    with pytest.raises(ValueError):
        encode_batch(batch, [0, 1, 0])
    with pytest.raises(ValueError):
        encode_batch(batch, [2])


def test_row_description_json_and_types() -> None:
    schema = pa.schema(
        [("j", pa.string()), ("x", pa.json_()), ("l", pa.list_(pa.string())), ("n", pa.decimal128(10, 2))]
    )
    desc = row_description(schema, [0], {"j", "l"})
    assert desc[:1] == b"T"
    assert [column_type(f.type, json=f.name in {"j", "l"}).oid for f in schema] == [3802, 3802, 3807, 1700]
    assert struct.pack("!i", 3802) in desc and struct.pack("!i", 3807) in desc
    assert column_type(pa.json_()).oid == 3802
    assert column_type(pa.null()).oid == 25
    assert column_type(pa.list_(pa.float64())).oid == 1022
    assert column_type(pa.list_(pa.int32())).oid == 1007
    assert column_type(pa.large_list(pa.timestamp("ns", tz="UTC"))).oid == 1185
    with pytest.raises(TypeError):
        column_type(pa.struct([("a", pa.int64())]))


def test_binary_rejects_ragged_nested_arrays() -> None:
    batch = pa.record_batch({"a": pa.array([[[1, 2], [3]]], pa.list_(pa.list_(pa.int64())))})
    for path in (encode_rows, encode_columns):
        with pytest.raises(ValueError, match="rectangular"):
            path(batch, [1])
        assert path(batch, [0]) == encode_rows(batch, [0])


def test_missing_binaries_fail_loudly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("glob.glob", lambda pattern: [])
    with pytest.raises(RuntimeError) as err:
        find_bin_dir()
    assert str(err.value) == NOT_FOUND
    assert "apt-get install -y postgresql" in NOT_FOUND


# ---------------------------------------------------------------------------------------------------
# Random values against PostgreSQL
# ---------------------------------------------------------------------------------------------------


def maybe(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(st.none(), strategy)


FLOATS8 = st.one_of(
    st.floats(),
    st.integers(2**50, 2**80).map(float),  # integral: PostgreSQL's Ryu excludes rounding bounds
    st.floats(1e-11, 1e-3),
    st.floats(1e9, 1e16),
)
FLOATS4 = st.one_of(
    st.floats(width=32),
    st.integers(2**22, 2**70).map(lambda v: float(np.float32(v))),
    st.floats(1e-11, 1e-3).map(lambda v: float(np.float32(v))),
    st.floats(1e5, 1e11).map(lambda v: float(np.float32(v))),
)


@FAST
@given(st.lists(maybe(FLOATS8), min_size=1, max_size=30))
def test_random_float8(pg: RawClient, values: list[float | None]) -> None:
    assert_same(pg, "float8", [float_param(False)(v) for v in values], pa.array(values, pa.float64()))


@FAST
@given(st.lists(maybe(FLOATS4), min_size=1, max_size=30))
def test_random_float4(pg: RawClient, values: list[float | None]) -> None:
    assert_same(pg, "float4", [float_param(True)(v) for v in values], pa.array(values, pa.float32()))


@FAST
@given(
    st.lists(
        maybe(st.builds(lambda m, e: m * 10.0**e, st.floats(-10, 10), st.integers(-30, 30))),
        min_size=1,
        max_size=20,
    )
)
def test_random_float8_scales(pg: RawClient, values: list[float | None]) -> None:
    assert_same(pg, "float8", [float_param(False)(v) for v in values], pa.array(values, pa.float64()))


@FAST
@given(st.lists(maybe(st.integers(-(2**63), 2**63 - 1)), min_size=1, max_size=30))
def test_random_int8(pg: RawClient, values: list[int | None]) -> None:
    assert_same(pg, "int8", [binp("!q")(v) for v in values], pa.array(values, pa.int64()))


TEXT = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=12)


@FAST
@given(st.lists(maybe(TEXT), min_size=1, max_size=20))
def test_random_text(pg: RawClient, values: list[str | None]) -> None:
    assert_same(pg, "text", [textp(v) for v in values], pa.array(values, pa.string()))


@FAST
@given(st.lists(maybe(st.lists(maybe(TEXT), max_size=5)), min_size=1, max_size=10))
def test_random_text_arrays(pg: RawClient, values: list[list[str | None] | None]) -> None:
    assert_same(
        pg, "text[]", [textp(array_literal(v)) for v in values], pa.array(values, pa.list_(pa.string()))
    )


TS_US = st.integers(PG_MIN_TS_US, ARROW_MAX_US)
TS_NEAR = st.integers(-(10**17), 10**17).map(lambda v: v - v % 1000 if v % 3 == 0 else v)


@FAST
@given(st.lists(maybe(st.one_of(TS_US, TS_NEAR)), min_size=1, max_size=30), st.booleans())
def test_random_timestamps(pg: RawClient, values: list[int | None], tz: bool) -> None:
    dtype = pa.timestamp("us", tz="UTC" if tz else None)
    assert_same(
        pg, "timestamptz" if tz else "timestamp", [ts_param(v) for v in values], pa.array(values, dtype)
    )


@FAST
@given(st.lists(maybe(st.integers(-2_440_588, 100_000_000)), min_size=1, max_size=30))
def test_random_dates(pg: RawClient, values: list[int | None]) -> None:
    assert_same(pg, "date", [date_param(v) for v in values], pa.array(values, pa.date32()))


@FAST
@given(
    st.lists(
        maybe(
            st.tuples(
                st.integers(-100_000, 100_000),
                st.integers(-100_000, 100_000),
                st.one_of(st.integers(-(10**15), 10**15), st.integers(-(10**7), 10**7)),
            )
        ),
        min_size=1,
        max_size=20,
    )
)
def test_random_intervals(pg: RawClient, values: list[tuple[int, int, int] | None]) -> None:
    assert_same(pg, "interval", [interval_param(v) for v in values], mdn(values))


@FAST
@given(
    st.integers(1, 38).flatmap(
        lambda p: st.tuples(
            st.just(p),
            st.integers(0, p).flatmap(
                lambda s: st.tuples(
                    st.just(s),
                    st.lists(maybe(st.integers(-(10**p) + 1, 10**p - 1)), min_size=1, max_size=15),
                )
            ),
        )
    )
)
def test_random_numeric(pg: RawClient, spec: tuple[int, tuple[int, list[int | None]]]) -> None:
    p, (s, unscaled) = spec
    values = [None if u is None else D(f"{u}E-{s}") for u in unscaled]
    arr = pa.array(values, pa.decimal128(p, s))
    assert_same(pg, f"numeric({p},{s})", [textp(None if v is None else format(v, "f")) for v in values], arr)


# ---------------------------------------------------------------------------------------------------
# Both encoder paths agree on random mixed batches (no PostgreSQL needed)
# ---------------------------------------------------------------------------------------------------

COLUMN_STRATEGIES: dict[str, tuple[pa.DataType, st.SearchStrategy[Any]]] = {
    "i64": (pa.int64(), st.integers(-(2**63), 2**63 - 1)),
    "i16": (pa.int16(), st.integers(-(2**15), 2**15 - 1)),
    "u64": (pa.uint64(), st.integers(0, 2**64 - 1)),
    "f64": (pa.float64(), st.floats()),
    "f32": (pa.float32(), st.floats(width=32)),
    "b": (pa.bool_(), st.booleans()),
    "s": (pa.string(), TEXT),
    "bin": (pa.binary(), st.binary(max_size=8)),
    "ts": (pa.timestamp("us"), TS_US),
    "tstz": (pa.timestamp("ns", tz="UTC"), st.integers(-(2**63) + 1, 2**63 - 1)),
    "d": (pa.date32(), st.integers(-3_000_000, 3_000_000)),
    "dec": (pa.decimal128(12, 3), st.decimals(min_value=-(10**8), max_value=10**8, places=3)),
    "dec0": (pa.decimal128(38, 0), st.integers(-(10**37), 10**37).map(D)),
    "uuid": (pa.binary(16), st.binary(min_size=16, max_size=16)),
    "iv": (
        pa.month_day_nano_interval(),
        st.tuples(st.integers(-1000, 1000), st.integers(-1000, 1000), st.integers(-(10**15), 10**15)).map(
            lambda t: pa.MonthDayNano([t[0], t[1], t[2] * 1000])
        ),
    ),
    "dur": (pa.duration("ns"), st.integers(-(10**15), 10**15)),
    "time": (pa.time64("us"), st.integers(0, 86_399_999_999)),
    "ls": (pa.list_(pa.string()), st.lists(maybe(TEXT), max_size=4)),
    "lf": (pa.list_(pa.float64()), st.lists(maybe(st.floats()), max_size=4)),
    "lts": (pa.list_(pa.timestamp("us", tz="UTC")), st.lists(maybe(TS_US), max_size=3)),
    "lls": (
        pa.list_(pa.list_(pa.int32())),
        st.lists(st.lists(maybe(st.integers(-5, 5)), min_size=2, max_size=2), max_size=3),
    ),
    "ldec": (
        pa.list_(pa.decimal128(10, 2)),
        st.lists(maybe(st.decimals(min_value=-1000, max_value=1000, places=2)), max_size=3),
    ),
}


@st.composite
def batches(draw: st.DrawFn) -> tuple[pa.RecordBatch, list[int], set[str]]:
    names = draw(st.lists(st.sampled_from(sorted(COLUMN_STRATEGIES)), min_size=1, max_size=6, unique=True))
    n = draw(st.integers(0, 90))
    lead = draw(st.integers(0, 5))
    columns = {}
    for name in names:
        dtype, values = COLUMN_STRATEGIES[name]
        with_nulls = draw(st.booleans())
        col = draw(st.lists(maybe(values) if with_nulls else values, min_size=n + lead, max_size=n + lead))
        columns[name] = pa.array(col, dtype)
    batch = pa.record_batch(columns).slice(lead)
    formats = draw(st.lists(st.integers(0, 1), min_size=len(names), max_size=len(names)))
    json = {"s"} if draw(st.booleans()) else set()
    return batch, formats, json


@settings(max_examples=150 * SCALE, deadline=None, suppress_health_check=list(HealthCheck))
@given(batches())
def test_row_and_column_paths_agree(case: tuple[pa.RecordBatch, list[int], set[str]]) -> None:
    batch, formats, json = case
    assert encode_rows(batch, formats, json) == encode_columns(batch, formats, json)


# ---------------------------------------------------------------------------------------------------
# Parameter decoding: PostgreSQL's own output bytes decode to the expected Python values
# ---------------------------------------------------------------------------------------------------

PARAM_CASES: list[tuple[str, int, object]] = [
    ("true", 16, True),
    ("32767::int2", 21, 32767),
    ("(-2147483648)::int4", 23, -(2**31)),
    ("9223372036854775807::int8", 20, 2**63 - 1),
    ("1e-5::float8", 701, 1e-5),
    ("0.1::float4", 700, float(np.float32(0.1))),
    ("'1.50'::numeric", 1700, D("1.50")),
    ("'-0.000123'::numeric", 1700, D("-0.000123")),
    ("'123456789012345678901234567890.5'::numeric", 1700, D("123456789012345678901234567890.5")),
    ("'0'::numeric(10,3)", 1700, D("0.000")),
    ("'héllo'::text", 25, "héllo"),
    ("'\\x00ff'::bytea", 17, b"\x00\xff"),
    ("'2025-01-17'::date", 1082, dt.date(2025, 1, 17)),
    ("'14:25:00.12'::time", 1083, dt.time(14, 25, 0, 120000)),
    ("'2025-01-17 14:25:00.12'::timestamp", 1114, dt.datetime(2025, 1, 17, 14, 25, 0, 120000)),
    ("'2025-01-17 14:25:00+05'::timestamptz", 1184, dt.datetime(2025, 1, 17, 9, 25, tzinfo=dt.UTC)),
    ("'1 year 2 mons -3 days 04:05:06.5'::interval", 1186, pa.MonthDayNano([14, -3, 14_706_500_000_000])),
    ("'-00:00:01'::interval", 1186, pa.MonthDayNano([0, 0, -1_000_000_000])),
    ("'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid", 2950, uuid.UUID("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11")),
    ("'{\"a\": [1, 2]}'::jsonb", 3802, '{"a": [1, 2]}'),
    ("'{1,NULL,3}'::int8[]", 1016, [1, None, 3]),
    ('\'{"a b",NULL,"","q\\""}\'::text[]', 1009, ["a b", None, "", 'q"']),
    ("'{{1,2},{3,4}}'::int4[]", 1007, [[1, 2], [3, 4]]),
    ("'{}'::float8[]", 1022, []),
    (
        "'{\"2025-01-17 14:25:00+00\"}'::timestamptz[]",
        1185,
        [dt.datetime(2025, 1, 17, 14, 25, tzinfo=dt.UTC)],
    ),
]


@pytest.mark.parametrize("case", PARAM_CASES, ids=lambda c: c[0])
def test_decode_param_reads_postgres_output(pg: RawClient, case: tuple[str, int, object]) -> None:
    expr, oid, expected = case
    for fmt in (0, 1):
        res = pg.query(f"SELECT {expr}", [], fmt)
        (row,) = split_rows(res.data_rows)
        got = decode_param(oid, fmt, row[0])
        assert got == expected and type(got) is type(expected), (fmt, got)
    assert decode_param(oid, 0, None) is None
    arrow_type_for_oid(oid)  # every OID we decode also has an Arrow type


@pytest.mark.parametrize(
    ("oid", "text", "expected"),
    [
        (16, "yes", True),
        (16, " off ", False),
        (16, "f", False),
        (20, " 42 ", 42),
        (20, "0x1F", 31),
        (701, "Infinity", math.inf),
        (1186, "1 day ago", pa.MonthDayNano([0, -1, 0])),
        (1186, "P1Y2M3DT4H5M6.5S", pa.MonthDayNano([14, 3, 14_706_500_000_000])),
        (1186, "@ 2 hours 30 mins", pa.MonthDayNano([0, 0, 9_000_000_000_000])),
        (1186, "90", pa.MonthDayNano([0, 0, 90_000_000_000])),
        (1184, "2025-01-17 14:25:00", dt.datetime(2025, 1, 17, 14, 25, tzinfo=dt.UTC)),
        (1184, "2025-01-17T14:25:00Z", dt.datetime(2025, 1, 17, 14, 25, tzinfo=dt.UTC)),
        (17, "a\\\\b\\001", b"a\\b\x01"),
        (0, "anything", "anything"),
    ],
)
def test_decode_param_text_inputs(oid: int, text: str, expected: object) -> None:
    assert decode_param(oid, 0, text.encode()) == expected


@pytest.mark.parametrize(
    ("oid", "text"), [(16, "maybe"), (21, "40000"), (23, "1.5"), (1700, "abc"), (2950, "xyz")]
)
def test_decode_param_rejects_bad_input(oid: int, text: str) -> None:
    with pytest.raises(ValueError):
        decode_param(oid, 0, text.encode())
