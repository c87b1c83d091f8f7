"""The pg_catalog / information_schema emulation answers psql's and drivers' real queries like PostgreSQL.

Fixtures (tests/fixtures/catalog/):
* psql15_queries.json: for each backslash command, the exact queries psql 15 sends (`psql -E`) and
  PostgreSQL 15's answers (as psql receives them: text, `\\N` for NULL), recorded against a real
  server holding our two tables (same columns, types, NOT NULL, defaults and table comments).
* driver_queries.json: asyncpg's type introspection, psycopg's TypeInfo query, with PostgreSQL's
  answers.

Each query goes through `rewrite_catalog_sql`, runs in a fresh DataFusion context with
`register_catalog`, and its rows, rendered as PostgreSQL text, are compared with PostgreSQL's, except
where we deliberately differ (listed in DIFFERENCES with the reason).
"""

from __future__ import annotations

import datetime as dt
import json
import math
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import sqlglot
from datafusion import SessionConfig, SessionContext
from sqlglot import exp

from timefusion.query.catalog import SessionInfo, needs_catalog, register_catalog, rewrite_catalog_sql
from timefusion.query.catalog.functions import _size_pretty
from timefusion.query.catalog.pgtypes import TYPES, format_type, regtype_oid
from timefusion.schema import load_tables

FIXTURES = Path(__file__).parent / "fixtures" / "catalog"
PSQL15: dict[str, list[dict[str, Any]]] = json.loads((FIXTURES / "psql15_queries.json").read_text())
DRIVERS: dict[str, dict[str, Any]] = json.loads((FIXTURES / "driver_queries.json").read_text())
SCHEMAS = load_tables()
SESSION = SessionInfo(user="postgres", database="postgres")
OUR_OIDS = {"otel_logs_and_spans": "16384", "otel_metrics": "16385"}
NULL = "\\N"

# (command, query index) → why our answer is not PostgreSQL's; None as index: every query.
DIFFERENCES: dict[tuple[str, int | None], str] = {
    ("\\dt+", None): "Size: we report the Delta table size (0 here), PostgreSQL its heap size",
    ("\\d+", None): "Size, as for \\dt+",
    ("\\l", None): "one database (no template0/template1), no ACLs",
    ("\\l+", None): "one database, sizes",
    ("\\dS pg_class", 1): "we report no indexes on PostgreSQL's own catalog tables",
    ("\\dS pg_class", 2): "PostgreSQL's own text columns have collation C; we model no collations",
    ("\\dn", None): "public is owned by the session user (PostgreSQL 15: pg_database_owner), no ACLs",
    ("\\dn+", None): "as for \\dn",
    ("\\dS pg_class", 3): "no index rows",
    ("\\dx", None): "no extensions (PostgreSQL lists plpgsql)",
    ("\\dL", None): "no procedural languages (PostgreSQL lists plpgsql)",
    ("\\dconfig", None): "our settings are the session's, not a server's postgresql.conf",
}


def make_context() -> SessionContext:
    ctx = SessionContext(SessionConfig().with_information_schema(True))
    register_catalog(ctx, SCHEMAS, SESSION)
    return ctx


def bind(sql: str, params: list[Any]) -> str:
    """Substitute `$n` by literals (what the engine's parameter binding does)."""
    if not params:
        return sql
    tree = sqlglot.parse_one(sql, read="postgres")

    def literal(value: Any) -> exp.Expression:
        if isinstance(value, list):
            return exp.Array(expressions=[literal(v) for v in value])
        if isinstance(value, int):
            return exp.Literal.number(value)
        return exp.Literal.string(str(value))

    for node in list(tree.find_all(exp.Parameter)):
        node.replace(literal(params[int(node.this.name) - 1]))
    return tree.sql(dialect="postgres", normalize_functions="lower")


def run(sql: str, params: list[Any] | None = None, session: SessionInfo | None = None) -> pa.Table:
    ctx = SessionContext(SessionConfig().with_information_schema(True))
    register_catalog(ctx, SCHEMAS, session or SESSION)
    return ctx.sql(bind(rewrite_catalog_sql(sql), params or [])).to_arrow_table()


def pg_text(value: Any) -> str:
    """A value as PostgreSQL's text output shows it (what psql receives)."""
    if value is None:
        return NULL
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, list):
        return "{" + ",".join("NULL" if v is None else pg_text(v) for v in value) + "}"
    if isinstance(value, float):
        return str(int(value)) if math.isfinite(value) and value == int(value) else repr(value)
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ")
    return str(value)


def text_rows(table: pa.Table) -> list[list[str]]:
    return [[pg_text(v) for v in row.values()] for row in table.to_pylist()]


def _psql_cases() -> list[tuple[str, int]]:
    return [(command, i) for command, entries in PSQL15.items() for i in range(len(entries))]


def _oid_map(command: str) -> dict[str, str]:
    """PostgreSQL's OIDs of our tables (from the command's first answer) → ours, for `\\d` commands."""
    mapping = {}
    first = PSQL15[command][0]
    if first["sql"].lstrip().startswith("SELECT c.oid,"):
        for oid, _nsp, name in first["pg15_rows"]:
            if name in OUR_OIDS:
                mapping[oid] = OUR_OIDS[name]
    return mapping


@pytest.mark.parametrize(("command", "index"), _psql_cases(), ids=lambda v: str(v))
def test_psql15_query_answers_like_postgresql(command: str, index: int) -> None:
    entry = PSQL15[command][index]
    mapping = _oid_map(command)
    sql = entry["sql"]
    for theirs, ours in mapping.items():
        sql = sql.replace(f"'{theirs}'", f"'{ours}'")
    assert needs_catalog(sql)
    got = text_rows(run(sql))
    expected = [[mapping.get(v, v) for v in row] for row in entry["pg15_rows"]]
    if (command, None) in DIFFERENCES or (command, index) in DIFFERENCES:
        assert len(got[0]) == len(expected[0]) if got and expected else True
        return
    assert got == expected


def test_describe_table_lists_every_column_with_postgres_types() -> None:
    """`\\d otel_logs_and_spans`: 92 rows in schema order, PostgreSQL type names, NOT NULL flags."""
    entries = PSQL15["\\d otel_logs_and_spans"]
    found = run(entries[0]["sql"]).to_pylist()
    assert found == [{"oid": 16384, "nspname": "public", "relname": "otel_logs_and_spans"}]
    attributes = run(entries[2]["sql"].replace("'16384'", "'16384'")).to_pylist()
    table = SCHEMAS["otel_logs_and_spans"]
    assert len(attributes) == len(table.columns) == 92
    names = {
        "utf8": "text",
        "json": "jsonb",
        "int32": "integer",
        "int64": "bigint",
        "float64": "double precision",
        "bool": "boolean",
        "date32": "date",
        "timestamp": "timestamp with time zone",
        "list<utf8>": "text[]",
        "list<int64>": "bigint[]",
        "list<float64>": "double precision[]",
    }
    for row, column in zip(attributes, table.columns):
        assert row["attname"] == column.name
        assert row["format_type"] == names[column.type_name]
        assert row["attnotnull"] is (not column.nullable)
        assert row["attcollation"] is None
    assert {r["format_type"] for r in attributes} >= {"text", "jsonb", "timestamp with time zone", "text[]"}


def test_list_commands() -> None:
    dt_rows = run(PSQL15["\\dt"][0]["sql"]).to_pylist()
    assert [(r["Schema"], r["Name"], r["Type"], r["Owner"]) for r in dt_rows] == [
        ("public", "otel_logs_and_spans", "table", "postgres"),
        ("public", "otel_metrics", "table", "postgres"),
    ]
    other = SessionInfo(user="alice", database="observability", table_sizes={"otel_metrics": 123456})
    databases = run(PSQL15["\\l"][0]["sql"], session=other).to_pylist()
    assert [(d["Name"], d["Owner"], d["Encoding"], d["Collate"]) for d in databases] == [
        ("observability", "alice", "UTF8", "C.UTF-8"),
        ("postgres", "alice", "UTF8", "C.UTF-8"),
    ]
    assert run(PSQL15["\\dn"][0]["sql"], session=other).to_pylist() == [{"Name": "public", "Owner": "alice"}]
    sizes = {r["Name"]: r["Size"] for r in run(PSQL15["\\dt+"][0]["sql"], session=other).to_pylist()}
    assert sizes == {"otel_logs_and_spans": "0 bytes", "otel_metrics": "121 kB"}
    roles = run(PSQL15["\\du"][0]["sql"], session=other).to_pylist()
    assert [(r["rolname"], r["rolsuper"], r["memberof"]) for r in roles] == [("alice", True, [])]


def test_unknown_catalog_relations_answer_empty() -> None:
    table = run("SELECT pid, usename, state, query FROM pg_catalog.pg_stat_activity WHERE state = 'active'")
    assert table.num_rows == 0 and table.column_names == ["pid", "usename", "state", "query"]
    # pg_stat_activity exists in PostgreSQL 15: all its columns are there.
    assert "backend_type" in run("SELECT * FROM pg_stat_activity").column_names
    # A relation no PostgreSQL 15 has (pg_wait_events is 17's): the columns the query names.
    table = run("SELECT w.type, w.name FROM pg_catalog.pg_wait_events w ORDER BY 1")
    assert table.num_rows == 0 and table.column_names == ["type", "name"]
    assert run("SELECT count(*) AS n FROM information_schema.no_such_view").to_pylist() == [{"n": 0}]
    assert run("SELECT * FROM pg_catalog.pg_policy").num_rows == 0


def test_information_schema() -> None:
    tables = run(
        "SELECT table_schema, table_name, table_type FROM information_schema.tables "
        "WHERE table_schema NOT IN ('pg_catalog', 'information_schema') ORDER BY table_name"
    ).to_pylist()
    assert [t["table_name"] for t in tables] == ["otel_logs_and_spans", "otel_metrics"]
    assert {t["table_type"] for t in tables} == {"BASE TABLE"}
    columns = run(
        "SELECT column_name, data_type, udt_name, is_nullable, column_default, ordinal_position "
        "FROM information_schema.columns WHERE table_schema = 'public' AND table_name = 'otel_metrics' "
        "ORDER BY ordinal_position"
    ).to_pylist()
    assert len(columns) == 69
    by_name = {c["column_name"]: c for c in columns}
    assert by_name["timestamp"]["data_type"] == "timestamp with time zone"
    assert by_name["timestamp"]["udt_name"] == "timestamptz"
    assert by_name["timestamp"]["is_nullable"] == "NO"
    assert by_name["ingested_at"]["column_default"] == "now()"
    assert by_name["attributes"]["data_type"] == "jsonb"
    schemata = run("SELECT schema_name FROM information_schema.schemata ORDER BY 1").column("schema_name")
    assert "public" in schemata.to_pylist()


def _sorted(rows: list[list[str]]) -> list[list[str]]:
    return sorted(rows)


def test_asyncpg_type_introspection() -> None:
    for name in ("asyncpg_intro_lookup_types", "asyncpg_intro_lookup_types_13"):
        case = DRIVERS[name]
        table = run(case["sql"], case["params"])
        assert table.column_names[:4] == ["oid", "ns", "name", "kind"]
        # PostgreSQL orders only by depth: compare as sets.
        assert _sorted(text_rows(table)) == _sorted(case["pg15_rows"]), name
    case = DRIVERS["asyncpg_type_by_name"]
    assert text_rows(run(case["sql"], case["params"])) == case["pg15_rows"]
    jit = run(DRIVERS["asyncpg_jit_off"]["sql"]).to_pylist()
    assert jit == [{"cur": "off", "new": "off"}]


def test_psycopg_typeinfo() -> None:
    case = DRIVERS["psycopg_typeinfo"]
    assert text_rows(run(case["sql"], case["params"])) == case["pg15_rows"]
    assert text_rows(run(case["sql"], ["text[]"])) == [["_text", "1009", "0", "text[]", ","]]
    assert run(case["sql"], ["no_such_type"]).num_rows == 0


@pytest.mark.parametrize(
    ("oid", "name", "array"),
    [
        (16, "bool", 1000),
        (17, "bytea", 1001),
        (20, "int8", 1016),
        (21, "int2", 1005),
        (23, "int4", 1007),
        (25, "text", 1009),
        (114, "json", 199),
        (700, "float4", 1021),
        (701, "float8", 1022),
        (1043, "varchar", 1015),
        (1082, "date", 1182),
        (1114, "timestamp", 1115),
        (1184, "timestamptz", 1185),
        (1186, "interval", 1187),
        (1700, "numeric", 1231),
        (2950, "uuid", 2951),
        (3802, "jsonb", 3807),
    ],
)
def test_pg_type_rows_by_oid(oid: int, name: str, array: int) -> None:
    rows = run(
        "SELECT t.typname, t.typnamespace, t.typtype, t.typarray, t.typinput, a.typname AS array_name, "
        "a.typelem, a.typinput AS array_input FROM pg_catalog.pg_type t "
        "JOIN pg_catalog.pg_type a ON a.oid = t.typarray WHERE t.oid = $1",
        [oid],
    ).to_pylist()
    assert rows == [
        {
            "typname": name,
            "typnamespace": 11,
            "typtype": "b",
            "typarray": array,
            "typinput": f"{TYPES[oid].typinput}",
            "array_name": "_" + name,
            "typelem": oid,
            "array_input": "array_in",
        }
    ]


def test_jdbc_and_sqlalchemy_style_queries() -> None:
    # pgjdbc: is the type an array?
    rows = run(
        "SELECT typinput='pg_catalog.array_in'::regproc as is_array, typtype, typname, pg_type.oid "
        "FROM pg_catalog.pg_type LEFT JOIN (select ns.oid as nspoid, ns.nspname, r.r "
        "from pg_namespace as ns join ( select s.r, (current_schemas(false))[s.r] as nspname "
        "from generate_series(1, array_upper(current_schemas(false), 1)) as s(r) ) as r using ( nspname ) "
        ") as sp ON sp.nspoid = typnamespace WHERE pg_type.oid = $1 ORDER BY sp.r, pg_type.oid DESC",
        [1016],
    ).to_pylist()
    assert rows == [{"is_array": True, "typtype": "b", "typname": "_int8", "oid": 1016}]
    rows = run(
        "SELECT n.nspname = ANY(current_schemas(true)), n.nspname, t.typname FROM pg_catalog.pg_type t "
        "JOIN pg_catalog.pg_namespace n ON t.typnamespace = n.oid WHERE t.oid = $1",
        [3802],
    )
    assert text_rows(rows) == [["t", "pg_catalog", "jsonb"]]
    # SQLAlchemy's has_table
    rows = run(
        "SELECT pg_catalog.pg_class.relname FROM pg_catalog.pg_class JOIN pg_catalog.pg_namespace ON "
        "pg_catalog.pg_namespace.oid = pg_catalog.pg_class.relnamespace WHERE pg_catalog.pg_class.relname = "
        "'otel_metrics' AND pg_catalog.pg_class.relkind = ANY (ARRAY['r', 'p', 'f', 'v', 'm']) AND "
        "pg_catalog.pg_table_is_visible(pg_catalog.pg_class.oid) AND pg_catalog.pg_namespace.nspname != 'pg_catalog'"
    ).to_pylist()
    assert rows == [{"relname": "otel_metrics"}]


# Catalog queries other tools send (reconstructed from their sources, not captured): each must run;
# the value is the number of rows PostgreSQL would return for our two tables.
TOOL_QUERIES: dict[str, tuple[str, int]] = {
    "psql tab completion, tables": (
        "SELECT pg_catalog.quote_ident(c.relname) FROM pg_catalog.pg_class c WHERE c.relkind IN ('r', 'p') "
        "AND substring(pg_catalog.quote_ident(c.relname),1,4)='otel' AND pg_catalog.pg_table_is_visible(c.oid) "
        "AND c.relnamespace <> (SELECT oid FROM pg_catalog.pg_namespace WHERE nspname = 'pg_catalog')\nUNION\n"
        "SELECT pg_catalog.quote_ident(n.nspname) || '.' FROM pg_catalog.pg_namespace n "
        "WHERE substring(pg_catalog.quote_ident(n.nspname) || '.',1,4)='otel' AND (SELECT pg_catalog.count(*) "
        "FROM pg_catalog.pg_namespace WHERE substring(pg_catalog.quote_ident(nspname) || '.',1,4) = "
        "substring('otel',1,pg_catalog.length(pg_catalog.quote_ident(nspname))+1)) > 1\nLIMIT 1000",
        2,
    ),
    "psql tab completion, columns": (
        "SELECT pg_catalog.quote_ident(attname) FROM pg_catalog.pg_attribute a, pg_catalog.pg_class c "
        "WHERE c.oid = a.attrelid AND a.attnum > 0 AND NOT a.attisdropped "
        "AND substring(pg_catalog.quote_ident(attname),1,2)='me' AND (pg_catalog.quote_ident(relname)='otel_metrics' "
        "OR '\"' || relname || '\"'='otel_metrics') AND pg_catalog.pg_table_is_visible(c.oid)\nLIMIT 1000",
        5,
    ),
    "DBeaver schemas": (
        "SELECT n.oid,n.*,d.description FROM pg_catalog.pg_namespace n LEFT OUTER JOIN pg_catalog.pg_description d "
        "ON d.objoid=n.oid AND d.objsubid=0 AND d.classoid='pg_namespace'::regclass ORDER BY nspname",
        4,
    ),
    "DBeaver tables": (
        "SELECT c.oid,c.*,d.description,pg_catalog.pg_get_expr(c.relpartbound, c.oid) as partition_expr, "
        "pg_catalog.pg_get_partkeydef(c.oid) as partition_key FROM pg_catalog.pg_class c LEFT OUTER JOIN "
        "pg_catalog.pg_description d ON d.objoid=c.oid AND d.objsubid=0 AND d.classoid='pg_class'::regclass "
        "WHERE c.relnamespace=2200 AND c.relkind not in ('i','I','c')",
        2,
    ),
    "DBeaver columns": (
        "SELECT a.*,pg_catalog.pg_get_expr(ad.adbin, ad.adrelid, true) as def_value,dsc.description,dep.objid "
        "FROM pg_catalog.pg_attribute a INNER JOIN pg_catalog.pg_class c ON (a.attrelid=c.oid) LEFT OUTER JOIN "
        "pg_catalog.pg_attrdef ad ON (a.attrelid=ad.adrelid AND a.attnum = ad.adnum) LEFT OUTER JOIN "
        "pg_catalog.pg_description dsc ON (c.oid=dsc.objoid AND a.attnum = dsc.objsubid) LEFT OUTER JOIN "
        "pg_depend dep on dep.refobjid = a.attrelid AND dep.deptype = 'i' and dep.refobjsubid = a.attnum and "
        "dep.classid = dep.refclassid WHERE NOT a.attisdropped AND c.relkind not in ('i','I','c') AND c.oid=16385 "
        "ORDER BY a.attnum",
        69,
    ),
    "Metabase tables": (
        'SELECT "n"."nspname" AS "schema", "c"."relname" AS "name", CASE "c"."relkind" WHEN \'r\' THEN \'TABLE\' '
        'ELSE NULL END AS "type", "d"."description" AS "description", "stat"."n_live_tup" AS "estimated_row_count" '
        'FROM "pg_catalog"."pg_class" AS "c" INNER JOIN "pg_catalog"."pg_namespace" AS "n" ON "c"."relnamespace" = '
        '"n"."oid" LEFT JOIN "pg_catalog"."pg_description" AS "d" ON ("c"."oid" = "d"."objoid") AND '
        '("d"."objsubid" = 0) AND ("d"."classoid" = \'pg_class\'::regclass) LEFT JOIN "pg_stat_user_tables" AS '
        '"stat" ON ("n"."nspname" = "stat"."schemaname") AND ("c"."relname" = "stat"."relname") WHERE '
        "(\"n\".\"nspname\" !~ '^pg_') AND (\"n\".\"nspname\" <> 'information_schema') AND c.relkind in ('r', 'p') "
        'AND has_schema_privilege("n"."nspname", \'USAGE\') AND (has_table_privilege(\'"\' || "n"."nspname" '
        '|| \'"."\' || "c"."relname" || \'"\', \'SELECT\')) ORDER BY "type" ASC, "schema" ASC, "name" ASC',
        2,
    ),
    "SQLAlchemy columns": (
        "SELECT pg_catalog.pg_attribute.attname AS name, pg_catalog.format_type(pg_catalog.pg_attribute.atttypid, "
        "pg_catalog.pg_attribute.atttypmod) AS format_type, (SELECT pg_catalog.pg_get_expr(pg_catalog.pg_attrdef.adbin, "
        "pg_catalog.pg_attrdef.adrelid) AS pg_get_expr_1 FROM pg_catalog.pg_attrdef WHERE "
        "pg_catalog.pg_attrdef.adrelid = pg_catalog.pg_attribute.attrelid AND pg_catalog.pg_attrdef.adnum = "
        'pg_catalog.pg_attribute.attnum AND pg_catalog.pg_attribute.atthasdef) AS "default", '
        "pg_catalog.pg_attribute.attnotnull AS not_null, pg_catalog.pg_class.relname AS table_name, "
        "pg_catalog.pg_description.description AS comment, pg_catalog.pg_attribute.attgenerated AS generated, "
        "(SELECT json_build_object('always', pg_catalog.pg_attribute.attidentity = 'a', 'start', "
        "pg_catalog.pg_sequence.seqstart) AS json_build_object_1 FROM pg_catalog.pg_attribute AS attr, "
        "pg_catalog.pg_sequence WHERE attr.attrelid = pg_catalog.pg_attribute.attrelid AND attr.attnum = "
        "pg_catalog.pg_attribute.attnum AND pg_catalog.pg_sequence.seqrelid = CAST(CAST(pg_catalog.pg_get_serial_sequence("
        "CAST(CAST(pg_catalog.pg_attribute.attrelid AS REGCLASS) AS TEXT), pg_catalog.pg_attribute.attname) AS REGCLASS) "
        "AS OID) AND pg_catalog.pg_attribute.attidentity != '') AS identity_options FROM pg_catalog.pg_class LEFT OUTER "
        "JOIN pg_catalog.pg_attribute ON pg_catalog.pg_class.oid = pg_catalog.pg_attribute.attrelid AND "
        "pg_catalog.pg_attribute.attnum > 0 AND NOT pg_catalog.pg_attribute.attisdropped LEFT OUTER JOIN "
        "pg_catalog.pg_description ON pg_catalog.pg_description.objoid = pg_catalog.pg_attribute.attrelid AND "
        "pg_catalog.pg_description.objsubid = pg_catalog.pg_attribute.attnum JOIN pg_catalog.pg_namespace ON "
        "pg_catalog.pg_namespace.oid = pg_catalog.pg_class.relnamespace WHERE pg_catalog.pg_class.relkind = ANY "
        "(ARRAY['r', 'p', 'f', 'v', 'm']) AND pg_catalog.pg_table_is_visible(pg_catalog.pg_class.oid) AND "
        "pg_catalog.pg_namespace.nspname != 'pg_catalog' AND pg_catalog.pg_class.relname IN ('otel_metrics') "
        "ORDER BY pg_catalog.pg_class.relname, pg_catalog.pg_attribute.attnum",
        69,
    ),
    "Grafana columns": (
        "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'otel_metrics' "
        "ORDER BY column_name",
        69,
    ),
    "pg_settings": ("select * from pg_catalog.pg_settings where name='standard_conforming_strings'", 1),
    "pg_tables": ("SELECT schemaname, tablename FROM pg_tables WHERE schemaname = 'public'", 2),
    "pg_indexes": ("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'otel_metrics'", 0),
    "primary keys": (
        "SELECT tc.constraint_name, kcu.column_name FROM information_schema.table_constraints tc JOIN "
        "information_schema.key_column_usage kcu ON tc.constraint_name = kcu.constraint_name "
        "WHERE tc.table_name = 'otel_metrics' AND tc.constraint_type = 'PRIMARY KEY'",
        0,
    ),
}


@pytest.mark.parametrize("name", sorted(TOOL_QUERIES))
def test_tool_queries(name: str) -> None:
    sql, rows = TOOL_QUERIES[name]
    assert needs_catalog(sql)
    assert run(sql).num_rows == rows


def test_sqlalchemy_columns_report_defaults() -> None:
    rows = run(TOOL_QUERIES["SQLAlchemy columns"][0]).to_pylist()
    by_name = {r["name"]: r for r in rows}
    assert by_name["ingested_at"]["default"] == "now()"
    assert by_name["metric_unit"]["default"] == "''::text"
    assert by_name["flags"]["default"] == "0"
    assert by_name["timestamp"]["not_null"] is True and by_name["timestamp"]["default"] is None


def test_regclass_and_session_functions() -> None:
    rows = run(
        "SELECT 'otel_metrics'::regclass::oid AS o, 'pg_catalog.pg_class'::regclass AS c, "
        "'public.otel_logs_and_spans'::regclass::text AS t, current_database(), current_schema(), "
        "current_user, current_setting('server_version_num'), pg_catalog.current_schemas(true) AS s"
    ).to_pylist()
    assert rows == [
        {
            "o": 16385,
            "c": 1259,
            "t": "otel_logs_and_spans",
            "current_database": "postgres",
            "current_schema": "public",
            "current_user": "postgres",
            "current_setting": "160004",
            "s": ["pg_catalog", "public"],
        }
    ]
    rows = run(
        "SELECT a.attname FROM pg_attribute a WHERE a.attrelid = 'otel_metrics'::regclass AND a.attnum = 2"
    ).to_pylist()
    assert rows == [{"attname": "timestamp"}]
    rows = run(
        "SELECT c.oid::regclass AS r, c.relnamespace::regnamespace AS n FROM pg_class c WHERE c.oid = 16384"
    )
    assert rows.to_pylist() == [{"r": "otel_logs_and_spans", "n": "public"}]


def test_newer_psql_queries() -> None:
    """psql 16/17 ask for columns PostgreSQL 15 lacks (ICU rules, builtin locale) and drop \\du's array."""
    rows = run(
        'SELECT d.datname as "Name", pg_catalog.pg_get_userbyid(d.datdba) as "Owner", '
        'pg_catalog.pg_encoding_to_char(d.encoding) as "Encoding", '
        "CASE d.datlocprovider WHEN 'b' THEN 'builtin' WHEN 'c' THEN 'libc' WHEN 'i' THEN 'icu' END AS \"Locale Provider\", "
        'd.datcollate as "Collate", d.datctype as "Ctype", d.datlocale as "Locale", d.daticurules as "ICU Rules", '
        "pg_catalog.array_to_string(d.datacl, E'\\n') AS \"Access privileges\" FROM pg_catalog.pg_database d ORDER BY 1;"
    ).to_pylist()
    assert [r["Name"] for r in rows] == ["postgres"] and rows[0]["Locale Provider"] == "libc"
    rows = run(
        "SELECT r.rolname, r.rolsuper, r.rolinherit, r.rolcreaterole, r.rolcreatedb, r.rolcanlogin, "
        "r.rolconnlimit, r.rolvaliduntil, r.rolreplication, r.rolbypassrls FROM pg_catalog.pg_roles r "
        "WHERE r.rolname !~ '^pg_' ORDER BY 1;"
    ).to_pylist()
    assert [r["rolname"] for r in rows] == ["postgres"]
    # psql 18's not-null constraint listing: pg_constraint is empty here.
    rows = run(
        "SELECT c.conname, a.attname, c.connoinherit, c.conislocal, c.coninhcount <> 0 "
        "FROM pg_catalog.pg_constraint c JOIN pg_catalog.pg_attribute a ON "
        "(a.attrelid = c.conrelid AND a.attnum = c.conkey[1]) WHERE c.contype = 'n' AND c.conrelid = '16384'::pg_catalog.oid "
        "ORDER BY a.attnum;"
    )
    assert rows.num_rows == 0


def test_rewrite_syntax() -> None:
    out = rewrite_catalog_sql(
        "SELECT c.relname FROM pg_catalog.pg_class c WHERE c.relname OPERATOR(pg_catalog.~) '^(x)$' "
        "COLLATE pg_catalog.default AND c.oid = 'pg_class'::pg_catalog.regclass"
    )
    assert "OPERATOR" not in out and "COLLATE" not in out and "::" not in out
    assert "to_regclass('pg_class')" in out
    assert rewrite_catalog_sql("SELECT 1 FROM information_schema.tables").endswith(
        "__tf_information_schema.tables"
    )
    assert "pg_catalog.pg_type" in rewrite_catalog_sql("SELECT typname FROM pg_type")
    # A CTE named like a catalog relation is the CTE.
    assert "pg_catalog.pg_type" not in rewrite_catalog_sql(
        "WITH pg_type AS (SELECT 1 AS x) SELECT x FROM pg_type"
    )


def test_needs_catalog() -> None:
    for sql in (
        "SELECT * FROM pg_catalog.pg_class",
        "select * from information_schema.columns",
        "SELECT oid FROM pg_type WHERE typname = $1",
        "SELECT 'x'::regclass",
        "SELECT current_setting('jit')",
        "SELECT current_database()",
    ):
        assert needs_catalog(sql), sql
    for sql in (
        "SELECT count(*) FROM otel_logs_and_spans WHERE timestamp > now() - INTERVAL '1 hour'",
        "INSERT INTO otel_metrics (metric_name) VALUES ('x')",
        "SELECT version()",
    ):
        assert not needs_catalog(sql), sql


def test_helpers_match_postgresql() -> None:
    assert [_size_pretty(n) for n in (0, 10239, 10240, 123456, 10 * 1024**2, 5 * 1024**4, -20000)] == [
        "0 bytes",
        "10239 bytes",
        "10 kB",
        "121 kB",
        "10 MB",
        "5120 GB",
        "-20 kB",
    ]
    assert format_type(1184, -1) == "timestamp with time zone"
    assert format_type(1022) == "double precision[]"
    assert format_type(1043, 36) == "character varying(32)"
    assert format_type(999999) == "???"
    assert regtype_oid("integer") == 23 and regtype_oid("pg_catalog.int8[]") == 1016
    assert regtype_oid("timestamp with time zone") == 1184 and regtype_oid("nope") is None
