"""The INSERT … VALUES literal scanner: every literal form, both scanner paths, errors, fallback, params."""

from __future__ import annotations

import datetime as dt
import math
import uuid
from decimal import Decimal

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from timefusion.query import insert_values as iv
from timefusion.query.insert_values import InsertError, parse_insert
from timefusion.schema import Column, TableSchema, load_tables
from timefusion.write.coerce import coerce

TABLES = load_tables()
LOGS = TABLES["otel_logs_and_spans"]
T = TableSchema(
    "t",
    tuple(
        Column(name, type_name, True)
        for name, type_name in [
            ("s", "utf8"),
            ("i", "int32"),
            ("b", "int64"),
            ("f", "float64"),
            ("ok", "bool"),
            ("ts", "timestamp"),
            ("d", "date32"),
            ("j", "json"),
            ("tags", "list<utf8>"),
            ("ns", "list<int64>"),
            ("fs", "list<float64>"),
        ]
    ),
    (),
    (),
    (),
)
SCHEMAS = {**TABLES, "t": T}
UTC = dt.UTC
README_INSERT = (
    "INSERT INTO otel_logs_and_spans (name, id, project_id, timestamp, date, hashes) VALUES ('api.request', "
    "'550e8400-e29b-41d4-a716-446655440000', 'prod-api-001', '2025-01-17 14:25:00', '2025-01-17', ARRAY[]::text[]);"
)


@pytest.fixture(params=["fast", "slow"])
def path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a test once as is and once with the vectorised scanner disabled (token parser only)."""
    if request.param == "slow":
        monkeypatch.setattr(iv, "_scan_fast", lambda text: None)
    return str(request.param)


def parse(sql: str, params: list[object] | None = None) -> iv.ParsedInsert:
    result = parse_insert(sql, SCHEMAS, params)
    assert result is not None
    return result


def rows(sql: str, params: list[object] | None = None) -> list[dict[str, object]]:
    result = parse(sql, params)
    assert not result.fallback and result.data is not None, result
    return result.data.to_pylist()


def values(sql: str, column: str, params: list[object] | None = None) -> list[object]:
    return [r[column] for r in rows(sql, params)]


def error(sql: str, params: list[object] | None = None) -> InsertError:
    with pytest.raises(InsertError) as info:
        parse_insert(sql, SCHEMAS, params)
    return info.value


def fast_grid(sql: str) -> iv._Grid | None:
    head = iv._parse_head(sql)
    assert head is not None and head.values_end is not None
    return iv._scan_fast(iv._source(sql, head.values_end).lstrip())


# -- the README statement and realistic rows -------------------------------------------------------


def test_readme_statement_round_trips_through_coerce(path: str) -> None:
    parsed = parse(README_INSERT)
    assert parsed.table == "otel_logs_and_spans"
    assert parsed.columns == ["name", "id", "project_id", "timestamp", "date", "hashes"]
    assert not parsed.fallback and parsed.source_sql is None
    assert parsed.data is not None
    assert parsed.data.schema.field("timestamp").type == pa.timestamp("us", tz="UTC")
    assert parsed.data.schema.field("hashes").type == pa.list_(pa.string())
    batch = coerce(LOGS, parsed.data)
    assert batch.schema == LOGS.arrow_schema
    row = batch.to_pylist()[0]
    assert row["name"] == "api.request"
    assert row["id"] == "550e8400-e29b-41d4-a716-446655440000"
    assert row["project_id"] == "prod-api-001"
    assert row["timestamp"] == dt.datetime(2025, 1, 17, 14, 25, tzinfo=UTC)
    assert row["date"] == dt.date(2025, 1, 17)
    assert row["hashes"] == []
    assert row["summary"] == []  # NOT NULL list, filled by coerce


def test_readme_statement_takes_the_fast_path() -> None:
    assert fast_grid(README_INSERT) is not None


def test_many_span_rows_match_the_source_batch(path: str) -> None:
    from bench.insert_parse import COLUMNS_30, render_insert, span_rows

    batch = span_rows(200, COLUMNS_30)
    sql = render_insert("otel_logs_and_spans", batch)
    assert path == "slow" or fast_grid(sql) is not None
    parsed = parse(sql)
    assert parsed.data is not None and parsed.data.num_rows == 200
    assert parsed.data.to_pylist() == batch.to_pylist()
    coerce(LOGS, parsed.data)


# -- literal forms ---------------------------------------------------------------------------------


def test_standard_strings_and_doubled_quotes(path: str) -> None:
    sql = "INSERT INTO t (s, j) VALUES ('a', 'it''s'), ('''', ''), ('x''''y', '{\"k\": \"v''\"}');"
    assert rows(sql) == [
        {"s": "a", "j": "it's"},
        {"s": "'", "j": ""},
        {"s": "x''y", "j": '{"k": "v\'"}'},
    ]


def test_backslashes_are_literal_in_standard_strings(path: str) -> None:
    assert values(r"INSERT INTO t (s) VALUES ('C:\temp\n'), ('\')", "s") == ["C:\\temp\\n", "\\"]


def test_escape_strings(path: str) -> None:
    sql = r"INSERT INTO t (s) VALUES (E'a\nb\tc\\d\'e\x41\u00e9\101\U0001F600'), (e'it''s'), (E'')"
    assert values(sql, "s") == ["a\nb\tc\\d'eAé A😀".replace(" ", ""), "it's", ""]


def test_dollar_quoted_strings(path: str) -> None:
    sql = 'INSERT INTO t (s, j) VALUES ($$it\'s \\ $$, $tag$ {"a": [1, 2]} $x$ $tag$), ($$$$, $a$$$a$)'
    assert rows(sql) == [{"s": "it's \\ ", "j": ' {"a": [1, 2]} $x$ '}, {"s": "", "j": "$"}]


def test_string_continuation_across_lines(path: str) -> None:
    assert values("INSERT INTO t (s) VALUES ('a'\n  'b' -- c\n 'c')", "s") == ["abc"]


def test_strings_that_look_like_punctuation_or_keywords(path: str) -> None:
    sql = (
        "INSERT INTO t (s, tags, j) VALUES (')', ARRAY[']', '[', ',', '('], 'NULL'),"
        " ('(', '{\"]\", \"}\"}', 'DEFAULT'), ('::text', ARRAY['::', '$1'], '--'), ('/*', ARRAY[]::text[], '$$')"
    )
    assert rows(sql) == [
        {"s": ")", "tags": ["]", "[", ",", "("], "j": "NULL"},
        {"s": "(", "tags": ["]", "}"], "j": "DEFAULT"},
        {"s": "::text", "tags": ["::", "$1"], "j": "--"},
        {"s": "/*", "tags": [], "j": "$$"},
    ]


def test_unicode_and_newlines_inside_strings(path: str) -> None:
    sql = "INSERT INTO t (s, tags) VALUES ('héllo\nwörld ✓', ARRAY['日本', 'a,b', '(x)'])"
    assert rows(sql) == [{"s": "héllo\nwörld ✓", "tags": ["日本", "a,b", "(x)"]}]


def test_numbers(path: str) -> None:
    sql = (
        "INSERT INTO t (i, b, f, s) VALUES (+5, -7, 1.5e3, 42), (- 5, 9223372036854775807, -.5, 1.50),"
        " (0, -9223372036854775808, 2E-3, -0.0), ('12', ' 13 ', '1e2', 3e1)"
    )
    assert rows(sql) == [
        {"i": 5, "b": -7, "f": 1500.0, "s": "42"},
        {"i": -5, "b": 9223372036854775807, "f": -0.5, "s": "1.50"},
        {"i": 0, "b": -9223372036854775808, "f": 0.002, "s": "0.0"},
        {"i": 12, "b": 13, "f": 100.0, "s": "30"},
    ]


def test_numeric_constants_print_like_postgresql_in_text_columns(path: str) -> None:
    sql = "INSERT INTO t (s) VALUES (+3), (2.5e3), (.5), (1.50), (-0), (5.), (007), (1.5e-3), (-7), (3::text)"
    assert values(sql, "s") == ["3", "2500", "0.5", "1.50", "0", "5", "7", "0.0015", "-7", "3"]


def test_numeric_constants_round_into_integer_columns(path: str) -> None:
    assert rows("INSERT INTO t (i, b) VALUES (1.5, -2.5), (2.4, 1e3)") == [
        {"i": 2, "b": -3},
        {"i": 2, "b": 1000},
    ]


def test_special_floats(path: str) -> None:
    got = values("INSERT INTO t (f) VALUES ('NaN'), ('Infinity'), ('-infinity'), (' 2.5 ')", "f")
    assert math.isnan(got[0]) and got[1:] == [math.inf, -math.inf, 2.5]


def test_booleans_null_and_default_in_any_case(path: str) -> None:
    sql = (
        "INSERT INTO t (ok, s, i) VALUES (TRUE, FALSE, NULL), (tRuE, NuLl, DeFaUlT), (false, true, null),"
        " ('yes', 'x', default), ('off', 'y', 1), (' T ', 'z', 2), (DEFAULT, DEFAULT, 3)"
    )
    assert rows(sql) == [
        {"ok": True, "s": "false", "i": None},
        {"ok": True, "s": None, "i": None},
        {"ok": False, "s": "true", "i": None},
        {"ok": True, "s": "x", "i": None},
        {"ok": False, "s": "y", "i": 1},
        {"ok": True, "s": "z", "i": 2},
        {"ok": None, "s": None, "i": 3},
    ]


def test_arrays(path: str) -> None:
    sql = (
        "INSERT INTO t (tags, ns, fs) VALUES"
        " (ARRAY['a','b'], ARRAY[1, -2, 3], ARRAY[1.5, -2e3]),"
        " (ARRAY[]::text[], ARRAY[]::bigint[], ARRAY[]::float8[]),"
        " ('{a,b}', '{4,5}', '{NaN, 1}'),"
        ' (\'{"a b","c,d",NULL,"NULL", e\\\\f , "q\\"q"}\', \'{}\', \'{ }\'),'
        " (ARRAY['x', NULL], ARRAY[NULL, 7], NULL),"
        " (NULL, '{1,null}'::bigint[], ARRAY['2.5']::float8[]),"
        " (array [ 'sp' ] , ARRAY[$1], ARRAY[$2, 1])"
    )
    assert rows(sql, [9, 0.25]) == [
        {"tags": ["a", "b"], "ns": [1, -2, 3], "fs": [1.5, -2000.0]},
        {"tags": [], "ns": [], "fs": []},
        {"tags": ["a", "b"], "ns": [4, 5], "fs": [pytest.approx(math.nan, nan_ok=True), 1.0]},
        {"tags": ["a b", "c,d", None, "NULL", "e\\f", 'q"q'], "ns": [], "fs": []},
        {"tags": ["x", None], "ns": [None, 7], "fs": None},
        {"tags": None, "ns": [1, None], "fs": [2.5]},
        {"tags": ["sp"], "ns": [9], "fs": [0.25, 1.0]},
    ]


def test_array_text_literal_and_array_constructor_mixed_in_one_column(path: str) -> None:
    assert values("INSERT INTO t (tags) VALUES (ARRAY['a']), ('{b,c}'), (NULL), ('{}')", "tags") == [
        ["a"],
        ["b", "c"],
        None,
        [],
    ]


def test_typed_literals_and_casts(path: str) -> None:
    sql = (
        "INSERT INTO t (ts, d, s, b, i) VALUES"
        " ('2025-01-17 14:25:00'::timestamptz, '2025-01-17', 'x'::text, 123::bigint, CAST('1' AS INT)),"
        " (TIMESTAMP '2025-01-17 14:25:00+02', DATE '2025-01-18', 'y'::varchar, '7'::int8, CAST(2.5 AS integer)),"
        " (TIMESTAMPTZ '2025-01-17 14:25:00+02', '2025-01-19 10:00'::date, CAST('z' AS text), 1.5::int, '3'::int),"
        " (CAST('2025-01-17' AS DATE), '2025-01-20'::timestamp, 5::text, '9'::numeric, '2.5'::float8),"
        " (timestamp with time zone '2025-01-17 00:00:00-01:30', NULL::date, 'q'::jsonb, NULL::int, 7::smallint)"
    )
    assert rows(sql) == [
        {
            "ts": dt.datetime(2025, 1, 17, 14, 25, tzinfo=UTC),
            "d": dt.date(2025, 1, 17),
            "s": "x",
            "b": 123,
            "i": 1,
        },
        {
            "ts": dt.datetime(2025, 1, 17, 14, 25, tzinfo=UTC),
            "d": dt.date(2025, 1, 18),
            "s": "y",
            "b": 7,
            "i": 3,
        },
        {
            "ts": dt.datetime(2025, 1, 17, 12, 25, tzinfo=UTC),
            "d": dt.date(2025, 1, 19),
            "s": "z",
            "b": 2,
            "i": 3,
        },
        {"ts": dt.datetime(2025, 1, 17, tzinfo=UTC), "d": dt.date(2025, 1, 20), "s": "5", "b": 9, "i": 3},
        {"ts": dt.datetime(2025, 1, 17, 1, 30, tzinfo=UTC), "d": None, "s": "q", "b": None, "i": 7},
    ]


def test_timestamp_text_forms(path: str) -> None:
    sql = (
        "INSERT INTO t (ts) VALUES ('2025-01-17 14:25:00'), ('2025-01-17T14:25:00Z'), ('2025-01-17 16:25:00+02'),"
        " ('2025-01-17 14:25:00.1234567'), (' 2025-1-7 4:05 '), ('2025-01-17'), ('epoch'), ('2025-01-17 09:25:00-0500')"
    )
    assert values(sql, "ts") == [
        dt.datetime(2025, 1, 17, 14, 25, tzinfo=UTC),
        dt.datetime(2025, 1, 17, 14, 25, tzinfo=UTC),
        dt.datetime(2025, 1, 17, 14, 25, tzinfo=UTC),
        dt.datetime(2025, 1, 17, 14, 25, 0, 123457, tzinfo=UTC),
        dt.datetime(2025, 1, 7, 4, 5, tzinfo=UTC),
        dt.datetime(2025, 1, 17, tzinfo=UTC),
        dt.datetime(1970, 1, 1, tzinfo=UTC),
        dt.datetime(2025, 1, 17, 14, 25, tzinfo=UTC),
    ]


def test_json_columns_keep_the_text(path: str) -> None:
    sql = "INSERT INTO t (j) VALUES ('{\"a\": [1, 2.50]}'), ('{\"b\":1}'::jsonb), (5), (TRUE), (NULL)"
    assert values(sql, "j") == ['{"a": [1, 2.50]}', '{"b":1}', "5", "true", None]


def test_identifiers_schema_qualification_and_comments(path: str) -> None:
    sql = (
        '/* lead */ -- line\n insert /* a /* nested */ b */ into public."otel_logs_and_spans" ("timestamp", Name)'
        " -- c\n VALUES ( /*x*/ '2025-01-17 14:25:00' -- y\n , 'n' ) ; "
    )
    parsed = parse(sql)
    assert parsed.table == "otel_logs_and_spans" and parsed.columns == ["timestamp", "name"]
    assert parsed.data is not None
    assert parsed.data.to_pylist() == [
        {"timestamp": dt.datetime(2025, 1, 17, 14, 25, tzinfo=UTC), "name": "n"}
    ]
    assert parse("INSERT INTO T AS x (S) VALUES ('up')").data.to_pylist() == [{"s": "up"}]  # type: ignore[union-attr]


def test_whitespace_everywhere(path: str) -> None:
    sql = "\n\tINSERT\nINTO\tt\n(\ns\n,\ni\n)\nVALUES\n(\n'a'\n,\n1\n)\n,\n(\t'b'\t,\t- 2\t)\n;\n"
    assert rows(sql) == [{"s": "a", "i": 1}, {"s": "b", "i": -2}]
    assert rows("INSERT INTO t(s,i)VALUES('a',1),('b',2)") == [{"s": "a", "i": 1}, {"s": "b", "i": 2}]


def test_no_column_list_targets_the_leading_columns(path: str) -> None:
    parsed = parse("INSERT INTO t VALUES ('a', 1), ('b', 2)")
    assert parsed.columns is None
    assert parsed.data is not None and parsed.data.column_names == ["s", "i"]


def test_default_values() -> None:
    parsed = parse("INSERT INTO t DEFAULT VALUES;")
    assert parsed.columns is None and parsed.data is not None
    assert parsed.data.num_rows == 1 and parsed.data.column_names == [c.name for c in T.columns]


def test_output_is_typed_like_the_target_columns(path: str) -> None:
    parsed = parse(
        "INSERT INTO t (s, i, b, f, ok, ts, d, j, tags, ns, fs) VALUES (NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)"
    )
    assert parsed.data is not None
    assert parsed.data.schema == pa.schema([pa.field(c.name, c.arrow_type) for c in T.columns])


def test_fast_path_covers_the_common_forms() -> None:
    for sql in [
        "INSERT INTO t (s, i, f, ok, tags) VALUES ('a', -1, 2.5e3, TRUE, ARRAY['x','y']), (NULL, +2, .5, null, ARRAY[]::text[])",
        "INSERT INTO t (ts, d, s) VALUES ('2025-01-17'::timestamptz, DATE '2025-01-17', 'it''s'), ($1, $2, $3)",
        "INSERT INTO t (tags, ns) VALUES ('{a,b}', ARRAY[$1, 2]), (ARRAY[NULL,'q'], '{}'::bigint[])",
        "INSERT INTO t (s) VALUES (DEFAULT), ('x');",
    ]:
        assert fast_grid(sql) is not None, sql


# -- parameters ------------------------------------------------------------------------------------


def test_params_bind_python_values(path: str) -> None:
    sql = (
        "INSERT INTO t (s, i, b, f, ok, ts, d, j, tags, ns) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
    )
    params: list[object] = [
        "it's $2 -- \\",
        7,
        Decimal("12"),
        0.1,
        True,
        dt.datetime(2025, 1, 17, 16, 25, tzinfo=dt.timezone(dt.timedelta(hours=2))),
        dt.date(2025, 1, 17),
        {"a": [1, "x"]},
        ["p", None, "q"],
        (1, 2),
    ]
    assert rows(sql, params) == [
        {
            "s": "it's $2 -- \\",
            "i": 7,
            "b": 12,
            "f": 0.1,
            "ok": True,
            "ts": dt.datetime(2025, 1, 17, 14, 25, tzinfo=UTC),
            "d": dt.date(2025, 1, 17),
            "j": '{"a": [1, "x"]}',
            "tags": ["p", None, "q"],
            "ns": [1, 2],
        }
    ]


def test_params_as_text_none_uuid_naive_datetime_and_casts(path: str) -> None:
    sql = "INSERT INTO t (s, i, ts, tags, ok) VALUES ($1,$2,$3,$4,$5),($6::text, '5', $7::timestamptz, $8, NULL)"
    u = uuid.UUID("550e8400-e29b-41d4-a716-446655440000")
    params: list[object] = [
        u,
        "42",
        dt.datetime(2025, 1, 17, 14, 25),
        '{a,"b c"}',
        "t",
        None,
        "2025-01-17 14:25Z",
        None,
    ]
    assert rows(sql, params) == [
        {
            "s": str(u),
            "i": 42,
            "ts": dt.datetime(2025, 1, 17, 14, 25, tzinfo=UTC),
            "tags": ["a", "b c"],
            "ok": True,
        },
        {"s": None, "i": 5, "ts": dt.datetime(2025, 1, 17, 14, 25, tzinfo=UTC), "tags": None, "ok": None},
    ]


def test_a_parameter_used_twice_and_many_parameters(path: str) -> None:
    n = 300
    sql = "INSERT INTO t (s, i) VALUES " + ", ".join(f"(${2 * k + 1}, ${2 * k + 2})" for k in range(n))
    params: list[object] = [x for k in range(n) for x in (f"v{k}", k)]
    assert rows(sql, params)[-1] == {"s": f"v{n - 1}", "i": n - 1}
    assert rows("INSERT INTO t (s, j) VALUES ($1, $1)", ["x"]) == [{"s": "x", "j": "x"}]


@pytest.mark.parametrize(
    ("sql", "params", "sqlstate", "text"),
    [
        ("INSERT INTO t (s) VALUES ($1)", None, "42P02", "there is no parameter $1"),
        ("INSERT INTO t (s) VALUES ($0)", [1], "42P02", "there is no parameter $0"),
        (
            "INSERT INTO t (s, i) VALUES ($1, $3)",
            ["a", 1],
            "08P01",
            "supplies 2 parameters, but prepared statement requires 3",
        ),
        ("INSERT INTO t (s) VALUES ($1)", ["a", "b"], "08P01", "supplies 2 parameters"),
        ("INSERT INTO t (s) VALUES ('a')", ["a"], "08P01", "requires 0"),
        ("INSERT INTO t (tags) VALUES (ARRAY[$1])", None, "42P02", "there is no parameter $1"),
        ("INSERT INTO t (i) VALUES ($1)", [object()], "0A000", "not supported"),
        (
            "INSERT INTO t (i) VALUES ($1)",
            [True],
            "42804",
            "is of type integer but expression is of type boolean",
        ),
    ],
)
def test_parameter_errors(path: str, sql: str, params: list[object] | None, sqlstate: str, text: str) -> None:
    e = error(sql, params)
    assert e.sqlstate == sqlstate and text in e.message


# -- errors ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sql", "sqlstate", "text"),
    [
        ("INSERT INTO nope VALUES (1)", "42P01", 'relation "nope" does not exist'),
        ("INSERT INTO other.t VALUES (1)", "42P01", 'relation "other.t" does not exist'),
        ("INSERT INTO t (zz) VALUES (1)", "42703", 'column "zz" of relation "t" does not exist'),
        ('INSERT INTO t ("S") VALUES (1)', "42703", 'column "S" of relation "t" does not exist'),
        ("INSERT INTO t (s, s) VALUES ('a', 'b')", "42701", 'column "s" specified more than once'),
        ("INSERT INTO t (s) VALUES ('a', 1)", "42601", "INSERT has more expressions than target columns"),
        (
            "INSERT INTO t VALUES ('a', 1, 2, 3, true, null, null, null, null, null, null, 1)",
            "42601",
            "more expressions",
        ),
        ("INSERT INTO t (s, i) VALUES ('a')", "42601", "INSERT has more target columns than expressions"),
        ("INSERT INTO t (s, i) VALUES ('a', 1), ('b')", "42601", "VALUES lists must all be the same length"),
        ("INSERT INTO t (s, i) VALUES ('a', 1", "42601", "syntax error at end of input"),
        ("INSERT INTO t (s, i) VALUES ('a, 1)", "42601", "unterminated quoted string"),
        ("INSERT INTO t (s) VALUES ($$abc)", "42601", "unterminated dollar-quoted string"),
        ("INSERT INTO t (s) VALUES ('a') /* never closed", "42601", "unterminated /* comment"),
        ("INSERT INTO t (s) VALUES ('a',)", "42601", 'syntax error at or near ")"'),
        ("INSERT INTO t (s) VALUES ()", "42601", 'syntax error at or near ")"'),
        ("INSERT INTO t (s) VALUES ('a') ('b')", "42601", 'syntax error at or near "("'),
        ("INSERT INTO t (s) VALUES ('a'); SELECT 1", "42601", "cannot insert multiple commands"),
        ("INSERT t (s) VALUES ('a')", "42601", 'syntax error at or near "t"'),
        ("INSERT INTO t (s) VALUE ('a')", "42601", 'syntax error at or near "VALUE"'),
        ("INSERT INTO t (s) VALUES ('a' 'b')", "42601", "syntax error at or near \"'b'\""),
        ("INSERT INTO t (s) DEFAULT VALUES", "42601", "syntax error"),
        ("INSERT INTO t (i) VALUES (DEFAULT::int)", "42601", 'syntax error at or near "::"'),
        ("INSERT INTO t (tags) VALUES (ARRAY['a',])", "42601", 'syntax error at or near "]"'),
        (
            "INSERT INTO t (i) VALUES ('abc')",
            "22P02",
            'invalid input syntax for type integer: "abc" (column "i", row 1)',
        ),
        ("INSERT INTO t (i) VALUES (1), (2), ('3x')", "22P02", '"3x" (column "i", row 3)'),
        ("INSERT INTO t (b) VALUES ('1.5')", "22P02", 'invalid input syntax for type bigint: "1.5"'),
        (
            "INSERT INTO t (f) VALUES ('1,5')",
            "22P02",
            'invalid input syntax for type double precision: "1,5"',
        ),
        ("INSERT INTO t (ok) VALUES ('maybe')", "22P02", 'invalid input syntax for type boolean: "maybe"'),
        (
            "INSERT INTO t (s, ts) VALUES ('a', '2025-01-17'), ('b', '17/01/2025')",
            "22P02",
            '"17/01/2025" (column "ts", row 2)',
        ),
        (
            "INSERT INTO t (d) VALUES ('2025-02-30')",
            "22P02",
            'invalid input syntax for type date: "2025-02-30"',
        ),
        (
            "INSERT INTO t (tags) VALUES ('{a,b')",
            "22P02",
            'malformed array literal: "{a,b" (column "tags", row 1)',
        ),
        ("INSERT INTO t (tags) VALUES ('{{a},{b}}')", "22P02", "malformed array literal"),
        ("INSERT INTO t (ns) VALUES (ARRAY[1, 'x'])", "22P02", 'invalid input syntax for type bigint: "x"'),
        (
            "INSERT INTO t (i) VALUES (3000000000)",
            "22003",
            'value "3000000000" is out of range for type integer',
        ),
        ("INSERT INTO t (i) VALUES (1e10)", "22003", "integer out of range"),
        ("INSERT INTO t (b) VALUES ('99999999999999999999')", "22003", "out of range for type bigint"),
        (
            "INSERT INTO t (i) VALUES (TRUE)",
            "42804",
            'column "i" is of type integer but expression is of type boolean',
        ),
        (
            "INSERT INTO t (ok) VALUES (1)",
            "42804",
            'column "ok" is of type boolean but expression is of type integer',
        ),
        (
            "INSERT INTO t (ts) VALUES (5)",
            "42804",
            "is of type timestamp with time zone but expression is of type integer",
        ),
        (
            "INSERT INTO t (s) VALUES (ARRAY['a'])",
            "42804",
            "is of type text but expression is of type text[]",
        ),
        ("INSERT INTO t (tags) VALUES (5)", "42804", "is of type text[] but expression is of type integer"),
        (
            "INSERT INTO t (tags) VALUES ('a'::text)",
            "42804",
            "is of type text[] but expression is of type text",
        ),
        (
            "INSERT INTO t (i) VALUES ('5'::text)",
            "42804",
            "is of type integer but expression is of type text",
        ),
        ("INSERT INTO t (ts) VALUES (5::timestamp)", "42846", "cannot cast type numeric to timestamp"),
    ],
)
def test_errors(path: str, sql: str, sqlstate: str, text: str) -> None:
    e = error(sql)
    assert e.sqlstate == sqlstate, e.message
    assert text in e.message


def test_syntax_errors_carry_a_position() -> None:
    sql = "INSERT INTO t (s, i) VALUES ('a', 1) x"
    e = error(sql)
    assert e.position is not None and sql[e.position - 1] == "x"
    sql = "INSERT INTO t (s) VALUES ('a'), ('b)"
    e = error(sql)
    assert e.position is not None and sql[e.position - 1 :] == "'b)"


# -- fallback --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sql", "source"),
    [
        ("INSERT INTO t (s) SELECT s FROM t;", "SELECT s FROM t"),
        ("INSERT INTO t (s) (SELECT 'a')", "(SELECT 'a')"),
        ("INSERT INTO t WITH x AS (SELECT 1) SELECT 'a' FROM x", "WITH x AS (SELECT 1) SELECT 'a' FROM x"),
        ("INSERT INTO t TABLE t", "TABLE t"),
        ("INSERT INTO t (ts) VALUES (now())", "VALUES (now())"),
        ("INSERT INTO t (i) VALUES (1 + 2)", "VALUES (1 + 2)"),
        ("INSERT INTO t (i) VALUES (-$1)", "VALUES (-$1)"),
        ("INSERT INTO t (s) VALUES ('a' || 'b')", "VALUES ('a' || 'b')"),
        ("INSERT INTO t (s) VALUES ((SELECT 'a'))", "VALUES ((SELECT 'a'))"),
        ("INSERT INTO t (s) VALUES (lower('A'))", "VALUES (lower('A'))"),
        ("INSERT INTO t (s) VALUES (s)", "VALUES (s)"),
        ('INSERT INTO t (s) VALUES ("s")', 'VALUES ("s")'),
        ("INSERT INTO t (s) VALUES ('abc'::varchar(2))", "VALUES ('abc'::varchar(2))"),
        ("INSERT INTO t (i) VALUES ('1'::text::int)", "VALUES ('1'::text::int)"),
        ("INSERT INTO t (s) VALUES (INTERVAL '1 day')", "VALUES (INTERVAL '1 day')"),
        ("INSERT INTO t (s) VALUES ('a'::regclass)", "VALUES ('a'::regclass)"),
        ("INSERT INTO t (tags) VALUES (ARRAY(SELECT 'a'))", "VALUES (ARRAY(SELECT 'a'))"),
        (
            "INSERT INTO t (ts) VALUES ('2025-01-17' AT TIME ZONE 'UTC')",
            "VALUES ('2025-01-17' AT TIME ZONE 'UTC')",
        ),
        ("INSERT INTO t (s) VALUES (U&'\\0041')", "VALUES (U&'\\0041')"),
        ("INSERT INTO t (s) VALUES ('a') ON CONFLICT DO NOTHING;", "VALUES ('a') ON CONFLICT DO NOTHING"),
        ("INSERT INTO t (s) VALUES ('a') RETURNING *", "VALUES ('a') RETURNING *"),
        ("INSERT INTO t (s) VALUES ('a') ORDER BY 1", "VALUES ('a') ORDER BY 1"),
    ],
)
def test_fallback(path: str, sql: str, source: str) -> None:
    parsed = parse(sql)
    assert parsed.fallback and parsed.data is None
    assert parsed.table == "t" and parsed.source_sql == source


def test_fallback_is_not_checked_for_parameters() -> None:
    parsed = parse("INSERT INTO t (ts, s) VALUES (now(), $1)")
    assert parsed.fallback and parsed.columns == ["ts", "s"]


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT 1",
        "  select * from t",
        "WITH x AS (SELECT 1) INSERT INTO t (s) VALUES ('a')",
        "INSERTX INTO t",
        "",
        "'",
    ],
)
def test_not_an_insert(sql: str) -> None:
    assert parse_insert(sql, SCHEMAS) is None


# -- property: rendered literals parse back --------------------------------------------------------

TEXT = st.text(
    alphabet=st.one_of(
        st.sampled_from(list("'\\\"\n\r\t ,(){}[]$-/*;:eE?&")),
        st.characters(exclude_categories=("Cs",), exclude_characters="\x00"),
    ),
    max_size=24,
)
INT = st.integers(-(2**63), 2**63 - 1)
FLOAT = st.floats(allow_nan=True, allow_infinity=True)
ROW = st.tuples(
    st.none() | TEXT, st.none() | INT, st.none() | FLOAT, st.none() | st.lists(st.none() | TEXT, max_size=4)
)


def _dollar(text: str) -> str:
    for k in range(100):
        tag = f"${'q' * k}$"
        if (text + tag).find(tag) == len(text):
            return f"{tag}{text}{tag}"
    raise AssertionError("no dollar tag")


def _string(text: str, style: int) -> str:
    if style == 1:
        escaped = text.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n").replace("\t", "\\t")
        return f"E'{escaped}'"
    if style == 2:
        return _dollar(text)
    return "'" + text.replace("'", "''") + "'"


def _array_text(items: list[str | None]) -> str:
    def one(v: str | None) -> str:
        return "NULL" if v is None else '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'

    return "{" + ",".join(one(v) for v in items) + "}"


def _render(row: tuple[object, ...], styles: list[int]) -> str:
    text, integer, number, items = row
    cells = []
    cells.append("NULL" if text is None else _string(str(text), styles[0]))
    if integer is None:
        cells.append("null")
    else:
        cells.append(
            [str(integer), f"'{integer}'", f"{integer}::bigint", f"CAST({integer} AS BIGINT)"][styles[1] % 4]
        )
    if number is None:
        cells.append("Null")
    elif not math.isfinite(float(number)):  # type: ignore[arg-type]
        cells.append("'NaN'" if math.isnan(float(number)) else f"'{float(number)}'::float8")  # type: ignore[arg-type]
    else:
        cells.append([repr(number), f"'{number!r}'", f"{number!r}::float8", f"{number!r}"][styles[2] % 4])
    if items is None:
        cells.append("NULL")
    elif styles[3] % 2:
        cells.append(_string(_array_text(items), styles[0]))  # type: ignore[arg-type]
    else:
        parts = ["NULL" if v is None else _string(v, styles[0]) for v in items]  # type: ignore[attr-defined]
        cells.append(f"ARRAY[{', '.join(parts)}]::text[]" if not parts else f"ARRAY[{', '.join(parts)}]")
    return "(" + ", ".join(cells) + ")"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rows=st.lists(ROW, min_size=1, max_size=12), styles=st.lists(st.integers(0, 7), min_size=4, max_size=4)
)
def test_rendered_literals_parse_back(rows: list[tuple[object, ...]], styles: list[int]) -> None:
    plain = styles[0] >= 3  # standard strings only: the vectorised path; otherwise E'…' / $$…$$
    string_style = 0 if plain else styles[0]
    sql = "INSERT INTO t (s, b, f, tags) VALUES " + ",\n".join(
        _render(r, [string_style, *styles[1:]]) for r in rows
    )
    parsed = parse_insert(sql, SCHEMAS)
    assert parsed is not None and parsed.data is not None, sql
    got = parsed.data.to_pylist()
    for want, have in zip(rows, got):
        assert have["s"] == want[0]
        assert have["b"] == want[1]
        if want[2] is not None and math.isnan(float(want[2])):  # type: ignore[arg-type]
            assert math.isnan(have["f"])
        else:
            assert have["f"] == want[2]
        assert have["tags"] == want[3]


# -- property: the vectorised scanner and the token parser agree ------------------------------------

ATOMS = [
    "'a'", "''", "'it''s'", "'{a,b}'", "'{}'", "'2025-01-17 14:25:00'", "'2025-01-17'", "'t'", "'12'", "'1.5'",
    "NULL", "null", "Null", "nUlL", "TRUE", "false", "DEFAULT", "1", "-2", "+3", "- 4", "1.5", "-2.5e3", ".5", "5.",
    "$1", "$2", "ARRAY['x','y']", "ARRAY[]", "ARRAY[1,2]", "ARRAY[NULL]", "array['q']", "ARRAY ['z']", "ARRAY['a',]",
    "TIMESTAMP '2025-01-17 10:00+02'", "DATE '2025-01-17'", "timestamptz '2025-01-17Z'", "INT '5'", "E'x\\ny'",
    "$$d$$", "('p')", "CAST('7' AS INT)", "now()", "1+2", "'a' || 'b'", "x", "'open", "1e", "1.2.3", "'a'\n'b'",
    "'a' 'b'", "(", ",", "::", "0x10",
]  # fmt: skip
CASTS = ["::text", "::int", "::bigint", "::float8", "::boolean", "::timestamptz", "::timestamp", "::date",
         "::text[]", "::bigint[]", "::jsonb", " :: TEXT", "::interval", "::varchar(2)", "::int::text"]  # fmt: skip
CELL = st.builds(lambda a, c: a + c, st.sampled_from(ATOMS), st.sampled_from(["", "", "", "", *CASTS]))


def _outcome(sql: str, params: list[object] | None) -> tuple[str, object]:
    try:
        result = parse_insert(sql, SCHEMAS, params)
    except InsertError as e:
        return "error", e.sqlstate
    assert result is not None
    return ("fallback", result.source_sql) if result.fallback else ("rows", str(result.data.to_pylist()))  # type: ignore[union-attr]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    columns=st.sampled_from(
        [["s"], ["s", "j"], ["s", "j", "tags"], ["i", "ts"], ["ok", "ns", "d"], ["f", "b", "s"]]
    ),
    cells=st.lists(CELL, min_size=1, max_size=12),
    tail=st.sampled_from(["", ";", " ;; ", " RETURNING *", "; SELECT 1"]),
)
def test_fast_and_slow_paths_agree(columns: list[str], cells: list[str], tail: str) -> None:
    width = len(columns)
    rows = [cells[k : k + width] for k in range(0, len(cells), width)]
    sql = (
        f"INSERT INTO t ({', '.join(columns)}) VALUES "
        + ",\n".join("(" + ", ".join(r) + ")" for r in rows)
        + tail
    )
    params: list[object] | None = ["v1", 2] if "$2" in sql else (["v1"] if "$1" in sql else None)
    fast = _outcome(sql, params)
    original = iv._scan_fast
    iv._scan_fast = lambda text: None  # type: ignore[assignment]
    try:
        slow = _outcome(sql, params)
    finally:
        iv._scan_fast = original
    assert fast == slow, sql
