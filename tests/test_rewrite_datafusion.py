"""prepare() output runs in DataFusion 55 with PostgreSQL's (and TimescaleDB's) results.

Tables are registered in memory with the exact Arrow schemas of load_tables(), in a session configured
as the engine configures it (time zone UTC).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pyarrow as pa
import pytest
from datafusion import SessionConfig, SessionContext

from timefusion.query.rewrite import RewriteError, prepare, split_insert
from timefusion.schema.tables import TIMESTAMP, load_tables

SCHEMAS = load_tables()
NOW = datetime(2025, 1, 17, 15, 0, tzinfo=UTC)

REFERENCE_QUERIES = [
    "SELECT name, COUNT(*) AS count FROM otel_logs_and_spans WHERE project_id = 'prod-api-001' AND date = "
    "'2025-01-17' GROUP BY name ORDER BY count DESC;",
    "SELECT name AS endpoint, COUNT(*) AS request_count, AVG(duration / 1000000)::INT AS avg_duration_ms, "
    "MAX(duration / 1000000)::INT AS max_duration_ms FROM otel_logs_and_spans WHERE project_id = "
    "'prod-api-001' AND timestamp >= '2025-01-17 14:00:00' AND timestamp < '2025-01-17 15:00:00' AND "
    "duration > 1000000000 GROUP BY name ORDER BY avg_duration_ms DESC;",
    "SELECT name AS endpoint, date_trunc('hour', timestamp) AS hour, COUNT(*) AS total_requests, COUNT(*) "
    "FILTER (WHERE attributes___http___response___status_code >= 400) AS errors, ROUND(100.0 * COUNT(*) "
    "FILTER (WHERE attributes___http___response___status_code >= 400) / COUNT(*), 2) AS error_rate FROM "
    "otel_logs_and_spans WHERE project_id = 'prod-api-001' AND timestamp >= '2025-01-16 15:00:00' AND "
    "timestamp < '2025-01-17 15:00:00' GROUP BY name, date_trunc('hour', timestamp) ORDER BY hour DESC, "
    "error_rate DESC;",
    "SELECT id AS trace_id, name AS endpoint, timestamp, (duration / 1000000)::INT AS duration_ms, "
    "attributes___error___type AS error_type FROM otel_logs_and_spans WHERE project_id = 'prod-api-001' "
    "AND 'trace_124' = ANY(hashes) AND timestamp >= '2025-01-17 14:00:00' AND timestamp < "
    "'2025-01-17 15:00:00';",
    "SELECT time_bucket(INTERVAL '5 minutes', timestamp) AS bucket, COUNT(*) AS requests, AVG(duration / "
    "1000000)::INT AS avg_duration_ms, PERCENTILE_CONT(0.95) WITHIN GROUP (ORDER BY duration / 1000000) AS "
    "p95_duration_ms FROM otel_logs_and_spans WHERE project_id = 'prod-api-001' AND timestamp >= "
    "'2025-01-17 14:00:00' AND timestamp < '2025-01-17 15:00:00' GROUP BY bucket ORDER BY bucket DESC;",
    "WITH ts AS (SELECT time_bucket(INTERVAL '1 minute', timestamp) AS minute, name AS endpoint, "
    "AVG(duration / 1000000) AS avg_duration_ms FROM otel_logs_and_spans WHERE project_id = 'prod-api-001' "
    "AND timestamp >= '2025-01-17 14:30:00' AND timestamp < '2025-01-17 15:00:00' GROUP BY minute, "
    "endpoint) SELECT minute, endpoint, avg_duration_ms::INT, AVG(avg_duration_ms) OVER (PARTITION BY "
    "endpoint ORDER BY minute ROWS BETWEEN 2 PRECEDING AND CURRENT ROW)::INT AS moving_avg FROM ts ORDER BY "
    "endpoint, minute DESC;",
    "INSERT INTO otel_logs_and_spans (name, id, project_id, timestamp, date, hashes) VALUES ('api.request', "
    "'550e8400-e29b-41d4-a716-446655440000', 'prod-api-001', '2025-01-17 14:25:00', '2025-01-17', "
    "ARRAY[]::text[]);",
]


def context(rows: list[dict] | None = None) -> SessionContext:
    ctx = SessionContext(SessionConfig().set("datafusion.execution.time_zone", "+00:00"))
    for name, schema in SCHEMAS.items():
        data = []
        for r in rows or []:
            row = {c.name: None for c in schema.columns}
            row.update({"id": "x", "summary": [], "series_id": "s", "metric_name": "m", "metric_unit": ""})
            row.update(
                {"metric_type": "gauge", "ingested_at": NOW, "flags": 0, "dropped_attributes_count": 0}
            )
            row.update({"message_size_bytes": 0})
            row.update(r)
            data.append({k: row[k] for k in schema.arrow_schema.names})
        ctx.register_record_batches(name, [[pa.RecordBatch.from_pylist(data, schema=schema.arrow_schema)]])
    return ctx


EMPTY = context()
SMALL = context(
    [
        {
            "project_id": "prod-api-001",
            "name": "GET /x",
            "timestamp": datetime(2025, 1, 17, 14, 27, 31, tzinfo=UTC),
            "date": date(2025, 1, 17),
            "duration": 1_500_000_000,
            "hashes": ["trace_124"],
            "attributes___http___response___status_code": 500,
        },
        {
            "project_id": "prod-api-001",
            "name": "GET /x",
            "timestamp": datetime(2025, 1, 17, 14, 29, 59, tzinfo=UTC),
            "date": date(2025, 1, 17),
            "duration": 2_000_000_000,
            "hashes": [],
            "attributes___http___response___status_code": 200,
        },
        {
            "project_id": "prod-api-001",
            "name": "GET /y",
            "timestamp": datetime(2025, 1, 17, 14, 45, tzinfo=UTC),
            "date": date(2025, 1, 17),
            "duration": 2_500_000_000,
            "hashes": ["trace_9"],
            "attributes___http___response___status_code": 200,
        },
    ]
)


def run(ctx: SessionContext, sql: str, params: list | None = None) -> pa.Table:
    insert = split_insert(sql)
    prepared = prepare(insert[2] if insert else sql, params, SCHEMAS, NOW)
    return ctx.sql(prepared.sql).to_arrow_table()


@pytest.mark.parametrize("sql", REFERENCE_QUERIES, ids=[f"ref{i}" for i in range(1, 8)])
def test_reference_queries_run(sql: str) -> None:
    assert run(EMPTY, sql).num_rows == 0 or sql.startswith("INSERT")
    result = run(SMALL, sql)
    if sql.startswith("INSERT"):
        assert result.num_rows == 1 and result.num_columns == 6
        assert result.column(5).to_pylist() == [[]]
    else:
        assert result.num_rows >= 1


def test_reference_query_values() -> None:
    p95 = run(SMALL, REFERENCE_QUERIES[4]).to_pylist()
    assert p95[1:] == [
        {
            "bucket": datetime(2025, 1, 17, 14, 25, tzinfo=UTC),
            "requests": 2,
            "avg_duration_ms": 1750,
            "p95_duration_ms": 1975.0,  # 1500 + (2000 - 1500) * 0.95, exactly
        }
    ]
    assert run(SMALL, REFERENCE_QUERIES[2]).column("error_rate").to_pylist()[0].as_tuple().exponent == -2
    assert run(SMALL, REFERENCE_QUERIES[4]).schema.field("bucket").type == TIMESTAMP


def test_split_insert() -> None:
    table, columns, source = split_insert(REFERENCE_QUERIES[6])  # type: ignore[misc]
    assert table == "otel_logs_and_spans"
    assert columns == ("name", "id", "project_id", "timestamp", "date", "hashes")
    assert source.startswith("VALUES ('api.request'") and source.endswith("ARRAY[]::text[])")
    assert split_insert("SELECT 1") is None
    assert split_insert('insert into public."Odd ""Name""" values ($1)') == (
        'Odd "Name"',
        None,
        "values ($1)",
    )
    assert split_insert("INSERT INTO otel_metrics SELECT * FROM otel_metrics WHERE x = 'RETURNING'") == (
        "otel_metrics",
        None,
        "SELECT * FROM otel_metrics WHERE x = 'RETURNING'",
    )
    for unsupported in (
        "INSERT INTO t VALUES (1) RETURNING *",
        "INSERT INTO t VALUES (1) ON CONFLICT DO NOTHING",
    ):
        with pytest.raises(RewriteError) as info:
            split_insert(unsupported)
        assert info.value.sqlstate == "0A000"


def test_insert_with_params_keeps_placeholders() -> None:
    insert = split_insert("INSERT INTO otel_logs_and_spans (name, timestamp) VALUES ($1, $2)")
    assert insert is not None
    source = insert[2]
    result = run(EMPTY, source, ["a'b", datetime(2025, 1, 17, 16, tzinfo=UTC)])
    assert result.to_pylist() == [{"column1": "a'b", "column2": datetime(2025, 1, 17, 16, tzinfo=UTC)}]


# -- time_bucket against TimescaleDB's semantics ---------------------------------------------------

ORIGIN = datetime(2000, 1, 3, tzinfo=UTC)


def expected_bucket(ts: datetime, width: str) -> datetime:
    """TimescaleDB's time_bucket, computed in Python: floor from 2000-01-03 (months: from 2000-01-01)."""
    n, unit = width.split()
    months = {"month": 1, "months": 1, "year": 12, "years": 12}.get(unit)
    if months:
        total = (ts.year - 2000) * 12 + ts.month - 1
        k = total // (int(n) * months) * int(n) * months
        return datetime(2000 + k // 12, k % 12 + 1, 1, tzinfo=UTC)
    step = timedelta(**{unit if unit.endswith("s") else unit + "s": int(n)})
    return ORIGIN + ((ts - ORIGIN) // step) * step


TIMESTAMPS = [
    datetime(2025, 1, 17, 14, 27, 31, tzinfo=UTC),
    datetime(2025, 1, 13, 0, 0, tzinfo=UTC),
    datetime(2025, 1, 12, 23, 59, 59, 999999, tzinfo=UTC),
    datetime(2000, 1, 3, tzinfo=UTC),
    datetime(1999, 12, 31, 23, 59, tzinfo=UTC),
    datetime(1970, 1, 1, tzinfo=UTC),
    datetime(1969, 12, 31, 23, 58, 0, 1, tzinfo=UTC),
    datetime(1950, 3, 4, 5, 59, 59, 999999, tzinfo=UTC),
    datetime(2024, 2, 29, 12, tzinfo=UTC),
]
WIDTHS = [
    "1 minutes",
    "5 minutes",
    "7 minutes",
    "1 hours",
    "90 minutes",
    "1 days",
    "3 days",
    "1 weeks",
    "2 weeks",
    "1 month",
    "3 months",
    "1 year",
    "2 years",
]


def test_time_bucket_matches_timescaledb() -> None:
    ctx = SessionContext(SessionConfig().set("datafusion.execution.time_zone", "+00:00"))
    ctx.register_record_batches(
        "v", [[pa.RecordBatch.from_pydict({"ts": TIMESTAMPS}, pa.schema([("ts", TIMESTAMP)]))]]
    )
    projections = ", ".join(f"time_bucket('{w}', ts) AS b{i}" for i, w in enumerate(WIDTHS))
    result = ctx.sql(prepare(f"SELECT ts, {projections} FROM v", None, SCHEMAS).sql).to_arrow_table()
    assert all(result.schema.field(f"b{i}").type == TIMESTAMP for i in range(len(WIDTHS)))
    for row in result.to_pylist():
        for i, width in enumerate(WIDTHS):
            assert row[f"b{i}"] == expected_bucket(row["ts"], width), (row["ts"], width)


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        # TimescaleDB's documented behaviour: weeks start on Monday, buckets floor (also before 1970).
        ("time_bucket('1 week', '2025-01-17'::timestamptz)", datetime(2025, 1, 13, tzinfo=UTC)),
        ("time_bucket('5 minutes', '2025-01-17 14:27:31')", datetime(2025, 1, 17, 14, 25, tzinfo=UTC)),
        ("time_bucket(INTERVAL '1 day', '2025-01-17 23:59:59+00')", datetime(2025, 1, 17, tzinfo=UTC)),
        ("time_bucket('1 day', '2025-01-17 01:00:00+02:00')", datetime(2025, 1, 16, tzinfo=UTC)),
        ("time_bucket('1h', '1969-12-31 23:30:00')", datetime(1969, 12, 31, 23, tzinfo=UTC)),
        ("time_bucket('15m', '1900-01-01 00:14:59.999999')", datetime(1900, 1, 1, tzinfo=UTC)),
        (
            "time_bucket('1 day', '2025-01-17 05:00', '2025-01-01 06:00')",
            datetime(2025, 1, 16, 6, tzinfo=UTC),
        ),
        (
            "time_bucket('1 day', '2025-01-17 05:00', INTERVAL '6 hours')",
            datetime(2025, 1, 16, 6, tzinfo=UTC),
        ),
        ("time_bucket('1 month', '2025-03-31 23:00')", datetime(2025, 3, 1, tzinfo=UTC)),
        ("time_bucket('1 week', DATE '2025-01-19')", date(2025, 1, 13)),
        ("time_bucket('5 minutes', TIMESTAMP '2025-01-17 14:27:31')", datetime(2025, 1, 17, 14, 25)),
    ],
)
def test_time_bucket_values(expression: str, expected: object) -> None:
    result = EMPTY.sql(prepare(f"SELECT {expression} AS v", None, SCHEMAS).sql).to_arrow_table()
    assert result.column("v").to_pylist() == [expected]


# -- parameters stay values ------------------------------------------------------------------------

NASTY = [
    "x' OR '1'='1",
    "ends with a backslash\\",
    "\\' OR 1=1 --",
    "'; DROP TABLE otel_logs_and_spans; --",
    "back\\slash\\' still text",
    "$1 $2 $$ dollar $$",
    "/* comment */ -- dash",
    'double "quotes"',
    "new\nline\ttab",
    "é漢字🙂",
]


@pytest.mark.parametrize("value", NASTY)
def test_string_parameters_stay_one_literal(value: str) -> None:
    result = run(
        SMALL, "SELECT $1 AS v, $2 AS w, count(*) AS n FROM otel_logs_and_spans WHERE name = $1", [value, 7]
    )
    assert result.to_pylist() == [{"v": value, "w": 7, "n": 0}]


def test_placeholders_without_spaces() -> None:
    """sqlglot's tokenizer alone fails on `$1,$2` (it sees a dollar quote); drivers send exactly that."""
    result = run(
        SMALL, "SELECT $1,$2||$3 AS s FROM otel_logs_and_spans WHERE name=$4 LIMIT 1", [1, "a", "b", "GET /y"]
    )
    assert result.to_pylist() == [{"?column?": 1, "s": "ab"}]


def test_values_fast_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """An ingest VALUES list is not parsed by sqlglot (500 rows took it ~375 ms), only bound."""
    import sqlglot

    def no_parse(*args: object, **kwargs: object) -> None:
        raise AssertionError("sqlglot parsed a plain VALUES list")

    rows = ", ".join(f"($1, 'id-{i}', $2, {i}, ARRAY['a'], E'it\\'s', NULL)" for i in range(500))
    monkeypatch.setattr(sqlglot, "parse", no_parse)
    monkeypatch.setattr(sqlglot, "parse_one", no_parse)
    prepared = prepare(f"VALUES {rows}", ["n'ame", datetime(2025, 1, 17, 14, tzinfo=UTC)], SCHEMAS)
    monkeypatch.undo()
    assert prepared.tables == {}
    table = EMPTY.sql(prepared.sql).to_arrow_table()
    assert table.num_rows == 500
    assert table.slice(0, 1).to_pylist()[0] == {
        "column1": "n'ame",
        "column2": "id-0",
        "column3": datetime(2025, 1, 17, 14, tzinfo=UTC),
        "column4": 0,
        "column5": ["a"],
        "column6": "it's",
        "column7": None,
    }
    # A cast to an integer still takes the full path (it must round).
    assert "round" in prepare("VALUES (2.5::int)", None, SCHEMAS).sql.lower()


def test_typed_parameters_in_datafusion() -> None:
    sql = (
        "SELECT count(*) AS n FROM otel_logs_and_spans WHERE project_id = ANY($1) AND timestamp >= $2 "
        "AND timestamp < $3 AND date = $4 AND duration > $5"
    )
    params = [
        ["prod-api-001", "o'ther"],
        datetime(2025, 1, 17, 16, 28, tzinfo=timezone(timedelta(hours=2))),  # 14:28 UTC
        "2025-01-17 14:40:00",
        date(2025, 1, 17),
        1_600_000_000.5,
    ]
    assert run(SMALL, sql, params).to_pylist() == [{"n": 1}]


def test_array_text_becomes_arrays() -> None:
    """`'{x,y}'::text[]` is a two-element array in PostgreSQL; DataFusion alone makes it ['{x,y}']."""
    result = run(
        EMPTY, "SELECT $1::text[] AS h, '{}'::text[] AS e, CAST('{1,2}' AS bigint[]) AS b", ["{x,y}"]
    )
    assert result.to_pylist() == [{"h": ["x", "y"], "e": [], "b": [1, 2]}]
    assert result.schema.field("e").type == pa.list_(pa.string())
    # a VALUES list with array text takes the full path (not the fast, unparsed one)
    values = run(EMPTY, "VALUES ('{a,\"b c\"}'::text[], $1::int[])", ["{1,NULL}"])
    assert values.to_pylist() == [{"column1": ["a", "b c"], "column2": [1, None]}]
    found = run(SMALL, "SELECT count(*) AS n FROM otel_logs_and_spans WHERE hashes && $1", ["{trace_9,x}"])
    assert found.to_pylist() == [{"n": 1}]


def test_exact_average_of_averages() -> None:
    """Per-minute averages 2526, 2503, 2487.5 average to exactly 2505.5: ::INT is 2506 (float64: 2505)."""
    sql = (
        "SELECT AVG(x) OVER (ORDER BY i ROWS BETWEEN 2 PRECEDING AND CURRENT ROW)::INT AS m, AVG(x) OVER "
        "(ORDER BY i ROWS BETWEEN 2 PRECEDING AND CURRENT ROW) AS exact FROM (SELECT i, AVG(d) AS x FROM "
        "(VALUES (1, 2526), (2, 2503), (3, 2487), (3, 2488)) AS t(i, d) GROUP BY i) AS g ORDER BY i"
    )
    result = run(EMPTY, sql)
    assert result.column("m").to_pylist() == [2526, 2515, 2506]
    assert [str(v) for v in result.column("exact").to_pylist()] == [
        "2526.0000000000000000",
        "2514.5000000000000000",
        "2505.5000000000000000",
    ]


def test_fallback_substitutes_only_when_safe() -> None:
    unparseable = "SELECT $1 FROM otel_logs_and_spans WHERE )"
    prepared = prepare(unparseable, ["it's"], SCHEMAS)
    assert prepared.sql == "SELECT 'it''s' FROM otel_logs_and_spans WHERE )"
    assert prepared.tables == {"otel_logs_and_spans": prepared.tables["otel_logs_and_spans"]}
    # Placeholders are found by PostgreSQL's (and DataFusion's) lexical rules: '\' is a whole string.
    assert prepare("SELECT '\\', $1 FROM WHERE )", ["x"], SCHEMAS).sql == "SELECT '\\', 'x' FROM WHERE )"
    with pytest.raises(RewriteError) as info:  # does not even lex: nothing is spliced
        prepare("SELECT 'unterminated, $1", ["x"], SCHEMAS)
    assert info.value.sqlstate == "0A000"
    assert prepare("SET application_name = $1", ["a'b"], SCHEMAS).sql == "SET application_name = 'a''b'"
    assert prepare("SHOW TimeZone", None, SCHEMAS).sql == "SHOW TimeZone"
    with pytest.raises(RewriteError) as info:
        prepare("SELECT 1; SELECT 2", None, SCHEMAS)
    assert info.value.sqlstate == "42601"


# -- sqlglot's output stays DataFusion's input ------------------------------------------------------

COMMON = [
    "SELECT * FROM otel_logs_and_spans WHERE name ILIKE '%api%' LIMIT 10",
    "SELECT name FROM otel_logs_and_spans WHERE name ~ '^GET' ORDER BY timestamp DESC NULLS LAST "
    "LIMIT 5 OFFSET 2",
    "SELECT count(DISTINCT name), string_agg(name, ','), array_agg(name) FROM otel_logs_and_spans",
    "SELECT DISTINCT ON (name) name, timestamp FROM otel_logs_and_spans ORDER BY name, timestamp DESC",
    "SELECT extract(epoch from timestamp), date_part('hour', timestamp), to_char(timestamp, 'YYYY') "
    "FROM otel_logs_and_spans",
    "SELECT now() - interval '1 day', current_date, timestamp::date, timestamp::text "
    "FROM otel_logs_and_spans",
    "SELECT name, count(*) FROM otel_logs_and_spans GROUP BY 1 HAVING count(*) > 1 ORDER BY 2 DESC",
    "SELECT coalesce(name, 'x'), nullif(name, ''), greatest(duration, 0) FROM otel_logs_and_spans",
    "SELECT CASE WHEN duration > 1000 THEN 'slow' ELSE 'fast' END AS speed, count(*) "
    "FROM otel_logs_and_spans GROUP BY speed",
    "SELECT a.name FROM otel_logs_and_spans a JOIN otel_logs_and_spans b ON a.parent_id = b.id "
    "LEFT JOIN otel_metrics m ON m.project_id = a.project_id",
    "SELECT name, row_number() OVER (PARTITION BY name ORDER BY timestamp), lag(duration) OVER w "
    "FROM otel_logs_and_spans WINDOW w AS (ORDER BY timestamp)",
    "SELECT name FROM otel_logs_and_spans UNION ALL SELECT metric_name FROM otel_metrics",
    "SELECT cardinality(hashes), array_length(hashes, 1), hashes[1] FROM otel_logs_and_spans",
    "SELECT length(name), substring(name, 1, 3), position('a' in name), split_part(name, '/', 2) "
    "FROM otel_logs_and_spans",
    "SELECT name || '-' || id, concat(name, id), lower(name) LIKE 'get%' FROM otel_logs_and_spans",
    "SELECT duration::float8 / 1e6, duration::numeric(20,2), abs(duration), sqrt(duration), duration % 7 "
    "FROM otel_logs_and_spans",
    "SELECT * FROM generate_series(1, 3)",
    "SELECT avg(duration)::numeric(10,2), stddev(duration), variance(duration), median(duration) "
    "FROM otel_logs_and_spans",
    'SELECT "name", "timestamp" FROM "otel_logs_and_spans" WHERE "project_id" = \'x\'',
    "SELECT date_bin(INTERVAL '15 minutes', timestamp, TIMESTAMP '2000-01-01') FROM otel_logs_and_spans",
    "SELECT name FROM otel_logs_and_spans WHERE id IN "
    "(SELECT id FROM otel_logs_and_spans WHERE duration > 5)",
    "EXPLAIN SELECT count(*) FROM otel_logs_and_spans",
]


@pytest.mark.parametrize("sql", COMMON)
def test_common_queries_plan(sql: str) -> None:
    EMPTY.sql(prepare(sql, None, SCHEMAS).sql).schema()
