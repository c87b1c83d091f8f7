"""Statement splitting, classification, SET parsing and session values (pure functions)."""

import pytest

from timefusion.protocol.pgwire.errors import PgError
from timefusion.protocol.pgwire.session import Settings, timeout_ms
from timefusion.protocol.pgwire.splitter import split_statements
from timefusion.protocol.pgwire.statements import bind_session_values, classify, parse_set


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("SELECT 1; SELECT 2", ["SELECT 1", "SELECT 2"]),
        ("SELECT 'a;b'; SELECT 2;", ["SELECT 'a;b'", "SELECT 2"]),
        ("SELECT 'it''s;'", ["SELECT 'it''s;'"]),
        ("SELECT E'\\';'; SELECT 1", ["SELECT E'\\';'", "SELECT 1"]),
        ('SELECT ";" AS "a;b"', ['SELECT ";" AS "a;b"']),
        ("SELECT $$a;b$$; SELECT $tag$ ; $$ ; $tag$", ["SELECT $$a;b$$", "SELECT $tag$ ; $$ ; $tag$"]),
        (
            "-- c; omment\nSELECT 1; /* a; /* nested; */ b; */ SELECT 2",
            ["-- c; omment\nSELECT 1", "/* a; /* nested; */ b; */ SELECT 2"],
        ),
        ("SELECT $1; SELECT 2", ["SELECT $1", "SELECT 2"]),
        ("  ;  ; -- only a comment", []),
        ("", []),
    ],
)
def test_split_statements(sql: str, expected: list[str]) -> None:
    assert split_statements(sql) == expected


@pytest.mark.parametrize(
    ("sql", "kind", "tag"),
    [
        ("select 1", "query", ""),
        ("  (SELECT 1)", "query", ""),
        ("WITH x AS (SELECT 1) SELECT * FROM x", "query", ""),
        ("/* hi */ insert into t values (1)", "insert", ""),
        ("BEGIN", "begin", "BEGIN"),
        ("start transaction isolation level read committed", "begin", "BEGIN"),
        ("COMMIT", "commit", "COMMIT"),
        ("end", "commit", "COMMIT"),
        ("ROLLBACK", "rollback", "ROLLBACK"),
        ("ROLLBACK TO SAVEPOINT a", "noop", "ROLLBACK"),
        ("SET TRANSACTION ISOLATION LEVEL SERIALIZABLE", "noop", "SET"),
        ("DISCARD ALL", "discard", "DISCARD ALL"),
        ("DEALLOCATE ALL", "deallocate", "DEALLOCATE ALL"),
        ("deallocate prepare s1", "deallocate", "DEALLOCATE"),
        ("SAVEPOINT a", "noop", "SAVEPOINT"),
        ("show server_version", "show", "SHOW"),
    ],
)
def test_classify(sql: str, kind: str, tag: str) -> None:
    st = classify(sql)
    assert (st.kind, st.tag) == (kind, tag)


@pytest.mark.parametrize(
    ("sql", "name", "value"),
    [
        ("SET statement_timeout = '5s'", "statement_timeout", "5s"),
        ("set session application_name to 'my app'", "application_name", "my app"),
        ("SET TIME ZONE 'UTC'", "timezone", "UTC"),
        ('SET search_path TO public, "$user"', "search_path", 'public, "$user"'),
        ("SET extra_float_digits = 3", "extra_float_digits", "3"),
        ("SET datestyle TO DEFAULT", "datestyle", None),
        ("SET NAMES 'UTF8'", "client_encoding", "UTF8"),
        ("SET application_name = 'it''s'", "application_name", "it's"),
    ],
)
def test_parse_set(sql: str, name: str, value: str | None) -> None:
    assert parse_set(sql) == (name, value)


def test_settings_report_and_validate() -> None:
    s = Settings("alice", {"application_name": "psql", "user": "alice"})
    reported = dict(s.reported())
    assert reported["server_version"].startswith("16.")
    assert reported["TimeZone"] == "UTC"
    assert reported["application_name"] == "psql"
    assert reported["session_authorization"] == "alice"
    assert s.set("application_name", "x") is True  # reportable: send ParameterStatus
    assert s.set("statement_timeout", "250ms") is False
    assert s.statement_timeout_ms == 250
    with pytest.raises(PgError) as err:
        s.set("statement_timeout", "soon")
    assert err.value.sqlstate == "22023"
    with pytest.raises(PgError):
        s.set("server_version", "9.6")
    assert s.reset("all") == ["application_name"]
    assert s.get("application_name") == ""
    assert timeout_ms("1min") == 60_000


def test_session_values_become_literals_outside_quotes() -> None:
    def setting(name: str) -> str | None:
        return {"timezone": "UTC"}.get(name.lower())

    sql = "SELECT current_user, 'current_user', version(), current_setting('TimeZone') -- current_user"
    out = bind_session_values(sql, "bob", "db1", 42, setting)
    assert out.startswith("SELECT 'bob', 'current_user', 'PostgreSQL 16.")
    assert out.endswith("'UTC' -- current_user")
    assert bind_session_values("SELECT pg_backend_pid(), current_database()", "u", "d", 7, setting) == (
        "SELECT 7, 'd'"
    )
    with pytest.raises(PgError) as err:
        bind_session_values("SELECT current_setting('nope')", "u", "d", 1, setting)
    assert err.value.sqlstate == "42704"
    assert bind_session_values("SELECT current_setting('nope', true)", "u", "d", 1, setting) == (
        "SELECT CAST(NULL AS TEXT)"
    )
