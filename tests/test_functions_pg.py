"""TimeFusion's SQL functions give PostgreSQL's own answers.

Two checks against a real PostgreSQL 15 cluster (tests/pg_server.py; `make test` installs it):

1. Every record of the conformance suite (tests/sql/*.test) that PostgreSQL can run as written (it
   reads no table of ours and calls no TimescaleDB/TimeFusion-only function) is run on PostgreSQL,
   and its checked-in expected rows (or SQLSTATE) must be PostgreSQL's.
2. A list of expressions (to_char patterns, JSON operators over literal documents, AT TIME ZONE,
   interval arithmetic) is evaluated on both servers and the text results compared.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import psycopg
import pytest
from pg_server import PgServer
from pgwire_server import server  # noqa: F401
from psycopg.types.string import TextLoader
from test_sql_suite import FILES, Record, parse, render, run, text_connection

# Functions PostgreSQL (without TimescaleDB) does not have, and our tables.
_OURS = re.compile(
    r"otel_logs_and_spans|otel_metrics|time_bucket|percentile_agg|approx_percentile|approx_count_distinct|"
    r"distinct_count|extract_epoch|at_time_zone|approx_distinct|\bmedian\b|arrow_",
    re.IGNORECASE,
)
# Records where TimeFusion deliberately differs (each with its reason, also listed in the README).
_KNOWN_DIFFERENCES = {
    # numeric division: PostgreSQL gives 20 significant digits (0.33333333333333333333), we 16.
    "SELECT 1 / 2, 1.0 / 3, 7 % 3, 2 ^ 10",
}


@pytest.fixture(scope="module")
def pg() -> Iterator[psycopg.Connection]:
    with PgServer() as cluster:
        conn = psycopg.connect(
            host="127.0.0.1",
            port=cluster.port,
            user="postgres",
            dbname="postgres",
            autocommit=True,
            options="-c TimeZone=UTC -c DateStyle=ISO,MDY -c IntervalStyle=postgres -c extra_float_digits=1",
        )
        for info in psycopg.postgres.types:
            conn.adapters.register_loader(info.oid, TextLoader)
            if info.array_oid:
                conn.adapters.register_loader(info.array_oid, TextLoader)
        yield conn
        conn.close()


def _portable() -> list[tuple[str, Record]]:
    out = []
    for path in FILES:
        for rec in parse(path):
            # 0A000 marks what TimeFusion does not support yet (PostgreSQL does)
            portable = not _OURS.search(rec.sql) and rec.sql.strip() not in _KNOWN_DIFFERENCES
            if rec.kind == "query" and portable and rec.error != "0A000":
                out.append((f"{path.stem}:{rec.line}", rec))
    return out


PORTABLE = _portable()


@pytest.mark.parametrize("rec", [r for _, r in PORTABLE], ids=[i for i, _ in PORTABLE])
def test_suite_record_is_postgres_answer(pg: psycopg.Connection, rec: Record) -> None:
    state, rows = run(pg, rec)
    if rec.error is not None:
        assert state == rec.error, f"PostgreSQL: {state} {rows}"
    else:
        assert state is None, f"PostgreSQL failed: {state} {rows}"
        assert (sorted(rows) if rec.rowsort else rows) == (
            sorted(rec.expected) if rec.rowsort else rec.expected
        )


TS = "TIMESTAMPTZ '2025-03-09 07:05:03.0405+00'"
EXPRESSIONS = [
    # to_char
    f"to_char({TS}, 'YYYY-MM-DD\"T\"HH24:MI:SS.US')",
    f"to_char({TS}, 'Day, DD Month YYYY HH12:MI:SS AM TZ')",
    f"to_char({TS}, 'FMDay FMDD FMMonth FMHH12 FMMI')",
    f"to_char({TS}, 'DY dy Dy MON mon Mon MONTH month')",
    f"to_char({TS}, 'Q D ID IW IYYY DDD YY Y,YYY')",
    f"to_char({TS}, 'MS US SS MI HH HH24 am a.m. PM')",
    f"to_char({TS}, 'YYYY/MM/DD hh24:mi')",
    "to_char(TIMESTAMPTZ '2024-12-30 23:59:59.999999+00', 'IYYY-IW-ID YYYY-DDD HH12 PM')",
    "to_char(TIMESTAMP '2025-01-01 00:00:00', 'YYYY-MM-DD HH24:MI:SS TZ')",
    # JSON over literal documents
    """'{"a":{"b":[1,2,{"c":"x"}]}}'::jsonb #> '{a,b,2}'""",
    """'{"a":{"b":[1,2,{"c":"x"}]}}'::jsonb #>> '{a,b,-1,c}'""",
    """'{"a":{"b":[1,2,{"c":"x"}]}}'::jsonb -> 'a' -> 'b' ->> 1""",
    """'{"a":"\\u00e9\\n","b":1e2,"c":1.50,"d":-0.0}'::jsonb ->> 'a'""",
    """'{"a":"\\u00e9\\n","b":1e2,"c":1.50,"d":[]}'::jsonb""",
    """'{"a":1,"a":2,"bb":{},"b":[]}'::jsonb""",
    """'{"a":[1,{"b":2}]}'::jsonb @> '{"a":[{"b":2}]}'""",
    """'{"a":[1,2]}'::jsonb @> '{"a":1}'""",
    """'["a",["b"]]'::jsonb @> '[["b"]]'""",
    """'{"a":1}'::jsonb @> '{"a":1.0}'""",
    """'{"a":true}'::jsonb @> '{"a":1}'""",
    """'{"a":null}'::jsonb ? 'a'""",
    """jsonb_path_exists('{"a":{"b":[0,1]}}', '$.a.b[1]')""",
    """jsonb_path_exists('{"a":{"b":[0,1]}}', '$.a.c')""",
    """json_build_object('a', 1, 'b', 'two', 'c', NULL, 'd', false)""",
    """jsonb_build_object('bb', 1, 'a', 'two', 'a', 3)""",
    """json_build_array(1, 'two', NULL, true, 2.5)""",
    """to_json('tab\tquote" backslash\\'::text)""",
    """to_jsonb(42)""",
    "to_jsonb(TIMESTAMPTZ '2025-01-17 10:00:00.25+00')",
    "to_json(TIMESTAMPTZ '2025-01-17 10:00:00+00')",
    "to_json(TIMESTAMP '2025-01-17 10:00:00.123456')",
    "json_build_object('t', TIMESTAMPTZ '2025-01-17 10:00:00.5+00')",
    # time zones and intervals
    "TIMESTAMPTZ '2025-03-30 00:59:59+00' AT TIME ZONE 'Europe/Berlin'",
    "TIMESTAMPTZ '2025-03-30 01:00:00+00' AT TIME ZONE 'Europe/Berlin'",
    "TIMESTAMP '2025-10-26 02:30:00' AT TIME ZONE 'America/New_York'",
    "TIMESTAMPTZ '2025-01-17 12:00:00+00' AT TIME ZONE '+05:30'",
    "INTERVAL '1 day 2 hours' * 2",
    "2.5 * INTERVAL '1 hour'",
    "INTERVAL '1 month' * 1.5",
    "INTERVAL '1 hour' / 4",
    "array_length(ARRAY[1,2,3], 1)",
    "array_length(ARRAY[]::int[], 1)",
]


@pytest.fixture(scope="module")
def ours(server) -> Iterator[psycopg.Connection]:  # noqa: F811
    with text_connection(server) as conn:
        yield conn


@pytest.mark.parametrize("expression", EXPRESSIONS)
def test_expression_matches_postgres(
    pg: psycopg.Connection, ours: psycopg.Connection, expression: str
) -> None:
    rec = Record(line=0, kind="query", sql=f"SELECT {expression}")
    want = run(pg, rec)
    got = run(ours, rec)
    assert want[0] is None, f"PostgreSQL failed: {want}"
    assert got == want
    assert render(None) == "NULL"
