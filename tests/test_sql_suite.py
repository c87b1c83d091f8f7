"""The SQL conformance suite: every `tests/sql/*.test` file run through a real PostgreSQL client.

Each file is a sequence of records separated by blank lines (a sqllogictest-style format of our own):

    # a comment
    statement ok
    INSERT INTO otel_logs_and_spans (…) VALUES (…)

    statement error 22P02
    SELECT '{bad'::jsonb

    query [rowsort]
    SELECT a, b FROM …
    ----
    1 | x
    NULL | (empty)

A `query` lists the expected rows, one per line, columns joined by ` | `, each value exactly as
PostgreSQL's text format puts it on the wire (`NULL` for SQL NULL, `(empty)` for an empty string, `\\n` for a newline and `\\\\` for a backslash);
`rowsort` sorts both sides first. `query error <SQLSTATE>` expects an error with that code.

The statements go through psycopg (extended protocol, text results) to the real `timefusion serve`
started by the `server` fixture; one server serves every file, and each file keeps its rows apart
with a project_id of its own. TF_SQL_SUITE_UPDATE=1 rewrites the expected rows with what the server
returned (then review the diff against PostgreSQL's documented answers before committing it).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest
from pgwire_server import server  # noqa: F401
from psycopg.types.string import TextLoader

SQL_DIR = Path(__file__).parent / "sql"
FILES = sorted(SQL_DIR.glob("*.test"))
UPDATE = os.environ.get("TF_SQL_SUITE_UPDATE") == "1"


@dataclass
class Record:
    line: int
    kind: str  # statement | query
    sql: str
    error: str | None = None  # expected SQLSTATE
    rowsort: bool = False
    expected: list[str] = field(default_factory=list)
    header: str = ""


def parse(path: Path) -> list[Record]:
    records: list[Record] = []
    lines = path.read_text().splitlines()
    i = 0
    while i < len(lines):
        text = lines[i].strip()
        if not text or text.startswith("#"):
            i += 1
            continue
        words = text.split()
        assert words[0] in ("statement", "query"), f"{path.name}:{i + 1}: expected statement/query: {text!r}"
        rec = Record(line=i + 1, kind=words[0], sql="", header=lines[i])
        if len(words) > 1 and words[1] == "error":
            rec.error = words[2]
        elif words[0] == "statement":
            assert words[1:] == ["ok"], f"{path.name}:{i + 1}: statement ok | statement error <SQLSTATE>"
        else:
            rec.rowsort = "rowsort" in words[1:]
        i += 1
        sql: list[str] = []
        while i < len(lines) and lines[i].strip() and lines[i].strip() != "----":
            sql.append(lines[i])
            i += 1
        rec.sql = "\n".join(sql)
        if i < len(lines) and lines[i].strip() == "----":
            i += 1
            while i < len(lines) and lines[i].strip():
                rec.expected.append(lines[i].rstrip())
                i += 1
        records.append(rec)
    return records


def render(value: object) -> str:
    if value is None:
        return "NULL"
    text = str(value)
    return "(empty)" if text == "" else text.replace("\\", "\\\\").replace("\n", "\\n")


def text_connection(srv: object) -> psycopg.Connection:
    """A connection whose every column comes back as PostgreSQL's text (no Python conversion)."""
    conn = srv.connect()  # type: ignore[attr-defined]
    for info in psycopg.postgres.types:
        conn.adapters.register_loader(info.oid, TextLoader)
        if info.array_oid:
            conn.adapters.register_loader(info.array_oid, TextLoader)
    return conn


def run(conn: psycopg.Connection, rec: Record) -> tuple[str | None, list[str]]:
    """(SQLSTATE or None, rendered rows)."""
    try:
        with conn.cursor() as cur:
            cur.execute(rec.sql.encode())  # bytes: no client-side placeholder parsing
            rows = cur.fetchall() if cur.description is not None else []
    except psycopg.Error as e:
        return e.sqlstate or "?????", [str(e).strip().splitlines()[0] if str(e).strip() else ""]
    out = [" | ".join(render(v) for v in row) for row in rows]
    return None, out


def write_back(path: Path, results: dict[int, tuple[str | None, list[str]]]) -> None:
    """Rewrite `path` with each query's actual rows (TF_SQL_SUITE_UPDATE=1)."""
    lines = path.read_text().splitlines()
    out: list[str] = []
    by_line = {rec.line: rec for rec in parse(path)}
    i = 0
    while i < len(lines):
        rec = by_line.get(i + 1)
        if rec is None:
            out.append(lines[i])
            i += 1
            continue
        state, rows = results[rec.line]
        header = rec.header
        if rec.kind == "query" and state is not None:
            header = f"query error {state}"
        elif rec.kind == "query" and rec.error:
            header = "query rowsort" if rec.rowsort else "query"
        elif rec.kind == "statement":
            header = f"statement error {state}" if state else "statement ok"
        out.append(header)
        i += 1
        while i < len(lines) and lines[i].strip() and lines[i].strip() != "----":
            out.append(lines[i])
            i += 1
        if i < len(lines) and lines[i].strip() == "----":
            i += 1
            while i < len(lines) and lines[i].strip():
                i += 1
        if rec.kind == "query" and state is None:
            out.append("----")
            out.extend(sorted(rows) if rec.rowsort else rows)
    path.write_text("\n".join(out) + "\n")


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_sql_file(server, path: Path) -> None:  # noqa: F811
    failures: list[str] = []
    results: dict[int, tuple[str | None, list[str]]] = {}
    with text_connection(server) as conn:
        for rec in parse(path):
            state, rows = run(conn, rec)
            results[rec.line] = (state, rows)
            where = f"{path.name}:{rec.line}: {rec.sql.strip().splitlines()[0][:100]}"
            if rec.error is not None:
                if state != rec.error:
                    got = f"error {state}: {rows[0]}" if state else f"success {rows[:3]}"
                    failures.append(f"{where}\n  expected error {rec.error}, got {got}")
            elif state is not None:
                failures.append(f"{where}\n  unexpected error {state}: {rows[0]}")
            elif rec.kind == "query":
                got = sorted(rows) if rec.rowsort else rows
                want = sorted(rec.expected) if rec.rowsort else rec.expected
                if got != want:
                    failures.append(f"{where}\n  expected {want}\n  got      {got}")
    if UPDATE:
        write_back(path, results)
        return
    assert not failures, f"{len(failures)} failing record(s):\n" + "\n".join(failures)


def test_every_area_has_a_file() -> None:
    areas = {"aggregations", "filtering", "functions", "json", "percentiles", "time", "edge_cases"}
    assert areas <= {p.stem for p in FILES}
    for path in FILES:
        assert parse(path), f"{path.name} has no records"


def test_json_results_are_reported_as_jsonb(server) -> None:  # noqa: F811
    """JSON columns, `->`/`#>` results, casts and builders come back typed jsonb (OID 3802);
    `->>` results are text (25)."""
    with server.connect() as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT attributes, attributes->'http', attributes#>'{a,b}', attributes->>'x', "
            "'{}'::jsonb, json_build_object('a', 1) FROM otel_logs_and_spans LIMIT 0"
        )
        assert [d.type_code for d in cur.description] == [3802, 3802, 3802, 25, 3802, 3802]
