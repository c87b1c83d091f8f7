"""Parameter types as PostgreSQL infers them (infer_param_types), and array text (parse_pg_array).

tests/fixtures/rewrite/param_types.yaml holds PostgreSQL's answers (checked against a real server by
tests/fixtures/pg_answers/regenerate.py); our Arrow types are compared under the names the wire layer
reports them by (None is reported as text).
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pytest
import yaml

from timefusion.query.rewrite import RewriteError, infer_param_types, parse_pg_array, prepare
from timefusion.schema.tables import load_tables

SCHEMAS = load_tables()
CASES = yaml.safe_load((Path(__file__).parent / "fixtures" / "rewrite" / "param_types.yaml").read_text())

_NAMES = {
    pa.int16(): "smallint",
    pa.int32(): "integer",
    pa.int64(): "bigint",
    pa.float32(): "real",
    pa.float64(): "double precision",
    pa.string(): "text",
    pa.bool_(): "boolean",
    pa.date32(): "date",
    pa.timestamp("us", tz="UTC"): "timestamp with time zone",
    pa.timestamp("us"): "timestamp without time zone",
    pa.month_day_nano_interval(): "interval",
    pa.time64("us"): "time without time zone",
    pa.binary(): "bytea",
    pa.uuid(): "uuid",
    pa.json_(): "jsonb",
}


def pg_name(t: pa.DataType | None) -> str:
    if t is None:
        return "text"
    if pa.types.is_list(t):
        return pg_name(t.value_type) + "[]"
    if pa.types.is_decimal(t):
        return "numeric"
    return _NAMES[t]


@pytest.mark.parametrize("case", CASES, ids=[c["title"] for c in CASES])
def test_fixture(case: dict) -> None:
    types = infer_param_types(case["sql"], SCHEMAS)
    assert [pg_name(t) for t in types] == case.get("ours", case["types"])


def test_unknown_stays_none_and_never_raises() -> None:
    assert infer_param_types("SELECT 1", SCHEMAS) == []
    assert infer_param_types("SELECT $1", SCHEMAS) == [None]
    # a gap, EXPLAIN, and spaces-less placeholders
    assert infer_param_types("EXPLAIN SELECT name FROM otel_logs_and_spans WHERE name=$2", SCHEMAS) == [
        None,
        pa.string(),
    ]
    assert infer_param_types("SELECT * FROM otel_logs_and_spans WHERE duration>$1,$2", SCHEMAS) == [
        None,
        None,
    ]
    for broken in (
        "SELECT $1 FROM WHERE ) $2",  # sqlglot cannot parse it
        "SELECT $1, 'unterminated $2",  # does not even lex
        "SET application_name = $1; SET x = $2",
        "INSERT INTO otel_logs_and_spans (id) VALUES ($1) RETURNING $2",
        "INSERT INTO nowhere (a, b) VALUES ($1, $2::int)",
    ):
        types = infer_param_types(broken, SCHEMAS)
        assert len(types) == 2, broken
    assert infer_param_types("INSERT INTO nowhere (a, b) VALUES ($1, $2::int)", SCHEMAS) == [None, pa.int32()]
    assert infer_param_types("SELECT * FROM somewhere WHERE x = $1 AND y = $2::date", SCHEMAS) == [
        None,
        pa.date32(),
    ]


def test_large_insert_is_fast() -> None:
    """Parse runs this for every statement; the ingest path sends 500-row INSERTs with placeholders."""
    columns = ["id", "timestamp", "date", "name", "duration", "hashes", "project_id", "deleted"]
    rows = ", ".join("(" + ", ".join(f"${i * 8 + j + 1}" for j in range(8)) + ")" for i in range(500))
    sql = f"INSERT INTO otel_logs_and_spans ({', '.join(columns)}) VALUES {rows}"
    mixed_rows = ", ".join(
        f"(${i * 3 + 1}, ${i * 3 + 2}::text[], ARRAY[${i * 3 + 3}], 'it''s')" for i in range(300)
    )
    mixed = f"INSERT INTO otel_logs_and_spans (id, hashes, summary, name) VALUES {mixed_rows}"
    for statement, count in ((sql, 4000), (mixed, 900)):
        start = time.perf_counter()
        types = infer_param_types(statement, SCHEMAS)
        elapsed = time.perf_counter() - start
        assert len(types) == count and None not in types
        assert elapsed < 0.2, elapsed  # measured: about 15 ms each
    assert types[:3] == [pa.string(), pa.list_(pa.string()), pa.string()]


# -- array text --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "element", "expected"),
    [
        ("{}", pa.string(), []),
        ("  { }  ", pa.string(), []),
        ("{x,y}", pa.string(), ["x", "y"]),
        (
            '{"a b",NULL,"NULL",null, z ,"q\\"",a\\,b,"",\\NULL}',
            pa.string(),
            ["a b", None, "NULL", None, "z", 'q"', "a,b", "", "NULL"],
        ),
        ("{ 1 , -2,+3}", pa.int32(), [1, -2, 3]),
        ("{{1,2},{3,NULL}}", pa.int64(), [[1, 2], [3, None]]),
        ("[0:1]={5,6}", pa.int64(), [5, 6]),
        ("{1.5,NaN,-Infinity}", pa.float64(), [1.5, pytest.approx(float("nan"), nan_ok=True), float("-inf")]),
        ("{1.50,2}", pa.decimal128(38, 10), [Decimal("1.50"), Decimal("2")]),
        ("{t,false,YES,0}", pa.bool_(), [True, False, True, False]),
        ("{2025-01-17}", pa.date32(), [date(2025, 1, 17)]),
        ('{"2025-01-17 14:00:00+02"}', pa.timestamp("us", tz="UTC"), [datetime(2025, 1, 17, 12, tzinfo=UTC)]),
        ('{"2025-01-17 14:00:00"}', pa.timestamp("us"), [datetime(2025, 1, 17, 14)]),
        ('{"1 hour"}', pa.month_day_nano_interval(), [pa.MonthDayNano([0, 0, 3_600_000_000_000])]),
        (
            "{550e8400-e29b-41d4-a716-446655440000}",
            pa.uuid(),
            [uuid.UUID("550e8400-e29b-41d4-a716-446655440000")],
        ),
        ("{a,b}", pa.list_(pa.string()), ["a", "b"]),  # the array's own type is accepted too
    ],
)
def test_parse_pg_array(text: str, element: pa.DataType, expected: list) -> None:
    assert parse_pg_array(text, element) == expected


@pytest.mark.parametrize(
    ("text", "element"),
    [
        ("x,y", pa.string()),
        ("{a,b", pa.string()),
        ("{a,,b}", pa.string()),
        ("{a}x", pa.string()),
        ('{"a}', pa.string()),
        ("{{1},2}", pa.int64()),
        ("{{1},{2,3}}", pa.int64()),
        ("{1,x}", pa.int32()),
        ("{99999999999}", pa.int32()),
        ("{maybe}", pa.bool_()),
        ("{yesterday-ish}", pa.timestamp("us", tz="UTC")),
    ],
)
def test_parse_pg_array_errors(text: str, element: pa.DataType) -> None:
    with pytest.raises(RewriteError) as info:
        parse_pg_array(text, element)
    assert info.value.sqlstate in ("22P02", "22003")


def test_text_and_list_parameters_become_arrays() -> None:
    """A text value where an array is inferred is array text; a list is ARRAY[…] as it is."""
    sql = (
        "SELECT * FROM otel_logs_and_spans WHERE hashes && $1 AND project_id = ANY($2) AND duration = ANY($3)"
    )
    text = prepare(sql, ['{a,"b c"}', "{p1}", "{1,2}"], SCHEMAS).sql
    assert "array_has_any(hashes, arrow_cast(array['a', 'b c'], 'List(Utf8)'))" in text
    assert "project_id = ANY(arrow_cast(array['p1'], 'List(Utf8)'))" in text
    assert "duration = ANY(arrow_cast(array[1, 2], 'List(Int64)'))" in text
    listed = prepare(sql, [["a", "b c"], ["p1"], [1, 2]], SCHEMAS).sql
    assert "array_has_any(hashes, array['a', 'b c'])" in listed
    with pytest.raises(RewriteError) as info:
        prepare(sql, ["{a", "{p1}", "{1,2}"], SCHEMAS)
    assert info.value.sqlstate == "22P02"
