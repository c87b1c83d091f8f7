"""COPY over pgwire with real clients: psycopg 3, asyncpg and psql against `timefusion serve`.

COPY FROM STDIN in text, CSV and binary stores rows through the ingest path (visible at once, the
same coercion and SQLSTATEs as INSERT, nothing stored from a failed COPY, the connection usable
afterwards); COPY TO STDOUT matches a real PostgreSQL 15 byte for byte on the same rows.
"""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import io
import os
import re
import socket
import struct
import subprocess
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import psycopg
import pytest
from pg_server import PgServer
from pgwire_server import TimeFusionServer, running_server

T = "otel_logs_and_spans"
UTC = dt.UTC
COLS = "project_id, timestamp, id, name, duration, context___is_remote, hashes"

# Rows with every text-format trap: tabs, newlines, backslashes, quotes, commas, NULLs, empty
# strings, unicode, array elements that need quoting, and a NULL array element.
ROWS = [
    ("cp", dt.datetime(2025, 2, 1, 10, 0, 0, tzinfo=UTC), "r1", "plain", 1, True, ["a", "b"]),
    (
        "cp",
        dt.datetime(2025, 2, 1, 10, 0, 1, 250000, tzinfo=UTC),
        "r2",
        "tab\there",
        -2,
        False,
        ["x y", 'q"t'],
    ),
    ("cp", dt.datetime(2025, 2, 1, 10, 0, 2, tzinfo=UTC), "r3", "new\nline\r\nand \\ slash", None, None, []),
    ("cp", dt.datetime(2025, 2, 1, 10, 0, 3, 123456, tzinfo=UTC), "r4", None, 2**40, True, None),
    ("cp", dt.datetime(2025, 2, 1, 10, 0, 4, tzinfo=UTC), "r5", "", 0, False, ["", "NULL", None, "a,b"]),
    ("cp", dt.datetime(2025, 2, 1, 10, 0, 5, tzinfo=UTC), "r6", 'comma, "quote"; ünïcødé ✓', 7, None, ["{}"]),
]


@pytest.fixture(scope="module")
def srv() -> Iterator[TimeFusionServer]:
    with running_server() as server:
        yield server


@pytest.fixture(scope="module")
def pg() -> Iterator[PgServer]:
    with PgServer() as server:
        with psycopg.connect(
            f"host=127.0.0.1 port={server.port} user=postgres dbname=postgres", autocommit=True
        ) as c:
            c.execute(
                f"CREATE TABLE {T} (project_id text, timestamp timestamptz, id text, name text, duration int8, "
                "context___is_remote bool, hashes text[])"
            )
        yield server


def pg_connect(pg: PgServer) -> psycopg.Connection:
    conn = psycopg.connect(f"host=127.0.0.1 port={pg.port} user=postgres dbname=postgres", autocommit=True)
    conn.execute("SET TimeZone = 'UTC'")
    conn.execute("SET extra_float_digits = 1")
    return conn


def rows_of(conn: psycopg.Connection, project: str) -> list[tuple]:
    return conn.execute(
        f"SELECT {COLS} FROM {T} WHERE project_id = %s ORDER BY id", (project,), prepare=False
    ).fetchall()


def with_project(project: str) -> list[tuple]:
    return [(project, *r[1:]) for r in ROWS]


def write_rows(conn: psycopg.Connection, project: str, fmt: str = "text") -> str | None:
    options = " (FORMAT binary)" if fmt == "binary" else ""
    with conn.cursor() as cur:
        with cur.copy(f"COPY {T} ({COLS}) FROM STDIN{options}") as copy:
            if fmt == "binary":
                copy.set_types(["text", "timestamptz", "text", "text", "int8", "bool", "text[]"])
            for r in with_project(project):
                copy.write_row(r)
        return cur.statusmessage


# -- COPY FROM ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["text", "binary"])
def test_psycopg_write_row_round_trips(srv: TimeFusionServer, fmt: str) -> None:
    project = f"cp-{fmt}"
    with srv.connect() as conn:
        assert write_rows(conn, project, fmt) == f"COPY {len(ROWS)}"
        assert rows_of(conn, project) == with_project(project)


def test_binary_narrower_integers_are_widened(srv: TimeFusionServer) -> None:
    # int2/int4 values for a bigint column are accepted (PostgreSQL would reject the field width)
    with srv.connect() as conn, conn.cursor() as cur:
        for pg_type, value in (("int2", -5), ("int4", 70000)):
            with cur.copy(
                f"COPY {T} (project_id, timestamp, id, duration) FROM STDIN (FORMAT binary)"
            ) as copy:
                copy.set_types(["text", "timestamptz", "text", pg_type])
                copy.write_row(("cp-widths", dt.datetime(2025, 2, 1, tzinfo=UTC), pg_type, value))
        got = conn.execute(
            f"SELECT id, duration FROM {T} WHERE project_id = 'cp-widths' ORDER BY id"
        ).fetchall()
    assert got == [("int2", -5), ("int4", 70000)]


def test_raw_text_blocks_with_end_marker_and_escapes(srv: TimeFusionServer) -> None:
    data = (
        "cp-raw\t2025-02-01 10:00:00+00\tb1\tback\\\\slash \\x41\\101\\ttab\t\\N\n"
        "cp-raw\t2025-02-01 11:00:00\tb2\t\\N\t42\n"
        "\\.\n"
    )
    with srv.connect() as conn, conn.cursor() as cur:
        with cur.copy(f"COPY {T} (project_id, timestamp, id, name, duration) FROM STDIN") as copy:
            for i in range(0, len(data), 7):  # arbitrary block boundaries, mid-row and mid-escape
                copy.write(data[i : i + 7])
        assert cur.statusmessage == "COPY 2"
        got = conn.execute(
            f"SELECT id, timestamp, name, duration FROM {T} WHERE project_id = 'cp-raw' ORDER BY id"
        ).fetchall()
    assert got == [
        ("b1", dt.datetime(2025, 2, 1, 10, tzinfo=UTC), "back\\slash AA\ttab", None),
        ("b2", dt.datetime(2025, 2, 1, 11, tzinfo=UTC), None, 42),
    ]


def test_csv_options_header_delimiter_null_quote(srv: TimeFusionServer) -> None:
    data = (
        "id;timestamp;name;duration\nc1;2025-02-01 10:00:00;'semi;colon';NA\n"
        "c2;2025-02-01 10:00:00;'multi\nline ''q''';5\nc3;2025-02-01 10:00:00;;6\n"
        "c4;2025-02-01 10:00:00;'';7\n"
    )
    sql = f"COPY {T} (id, timestamp, name, duration) FROM STDIN WITH (FORMAT csv, HEADER true, DELIMITER ';', NULL 'NA', QUOTE '''')"
    with srv.connect() as conn, conn.cursor() as cur:
        with cur.copy(sql) as copy:
            copy.write(data)
        assert cur.statusmessage == "COPY 4"
        got = conn.execute(
            f"SELECT id, name, duration, project_id FROM {T} WHERE id IN ('c1','c2','c3','c4') ORDER BY id"
        ).fetchall()
    assert got == [
        ("c1", "semi;colon", None, "default"),
        ("c2", "multi\nline 'q'", 5, "default"),
        ("c3", "", 6, "default"),  # with NULL 'NA' an empty unquoted field is an empty string
        ("c4", "", 7, "default"),
    ]


def test_csv_default_null_is_unquoted_empty_and_legacy_syntax(srv: TimeFusionServer) -> None:
    data = 'cp-csv,2025-02-01 10:00:00,k1,,""\ncp-csv,2025-02-01 10:00:00,k2,"a,b",x\n'
    with srv.connect() as conn, conn.cursor() as cur:
        with cur.copy(f"COPY {T} (project_id, timestamp, id, name, level) FROM STDIN WITH CSV") as copy:
            copy.write(data)
        got = conn.execute(
            f"SELECT id, name, level FROM {T} WHERE project_id = 'cp-csv' ORDER BY id"
        ).fetchall()
    assert got == [("k1", None, ""), ("k2", "a,b", "x")]


def test_large_copy_spans_many_chunks(srv: TimeFusionServer) -> None:
    n = 200_000
    lines = "".join(
        f"cp-big\t2025-02-01 10:{i // 6000 % 60:02d}:{i // 100 % 60:02d}\tid{i}\t{i}\n" for i in range(n)
    )
    with srv.connect() as conn, conn.cursor() as cur:
        with cur.copy(f"COPY {T} (project_id, timestamp, id, duration) FROM STDIN") as copy:
            copy.write(lines)
        assert cur.statusmessage == f"COPY {n}"
        got = conn.execute(f"SELECT count(*), sum(duration) FROM {T} WHERE project_id = 'cp-big'").fetchone()
    assert got == (n, n * (n - 1) // 2)


@pytest.mark.parametrize(
    ("sql", "data", "sqlstate", "message"),
    [
        (
            f"COPY {T} (project_id, timestamp, duration) FROM STDIN",
            "e1\t2025-01-01\t12\ne1\t2025-01-01\tabc\n",
            "22P02",
            'invalid input syntax for type bigint: "abc" (COPY otel_logs_and_spans, line 2, column duration)',
        ),
        (
            f"COPY {T} (project_id, timestamp) FROM STDIN",
            "e2\t2025-01-01\textra\n",
            "22P04",
            "extra data after last expected column",
        ),
        (
            f"COPY {T} (project_id, timestamp, id) FROM STDIN",
            "e3\t2025-01-01\n",
            "22P04",
            'missing data for column "id"',
        ),
        (
            f"COPY {T} (project_id, timestamp) FROM STDIN",
            "e4\tnot a time\n",
            "22P02",
            "invalid input syntax for type timestamp with time zone",
        ),
        (f"COPY {T} (project_id, hashes) FROM STDIN", "e5\t{a,b\n", "22P02", "malformed array literal"),
        (f"COPY {T} (project_id, name) FROM STDIN", "e6\tx\n", "23502", 'column "timestamp" is NOT NULL'),
        (
            f"COPY {T} (project_id, timestamp) FROM STDIN (FORMAT binary)",
            "not binary at all, no",
            "22P04",
            "COPY file signature not recognized",
        ),
    ],
)
def test_bad_data_is_an_error_and_stores_nothing(
    srv: TimeFusionServer, sql: str, data: str, sqlstate: str, message: str
) -> None:
    with srv.connect() as conn, conn.cursor() as cur:
        with pytest.raises(psycopg.Error) as caught, cur.copy(sql) as copy:
            copy.write(data.encode() if "binary" in sql else data)
        assert caught.value.sqlstate == sqlstate, caught.value
        assert message in str(caught.value)
        project = data[:2]
        assert conn.execute(f"SELECT count(*) FROM {T} WHERE project_id = %s", (project,)).fetchone() == (0,)
        assert conn.execute("SELECT 1").fetchone() == (1,)  # the connection is fine afterwards


@pytest.mark.parametrize(
    ("sql", "sqlstate", "message"),
    [
        ("COPY no_such_table FROM STDIN", "42P01", 'relation "no_such_table" does not exist'),
        (
            f"COPY {T} (nope) FROM STDIN",
            "42703",
            'column "nope" of relation "otel_logs_and_spans" does not exist',
        ),
        (f"COPY {T} (id, id) FROM STDIN", "42701", 'column "id" specified more than once'),
        (f"COPY {T} FROM '/etc/passwd'", "0A000", "not supported"),
        (f"COPY {T} TO PROGRAM 'ls'", "0A000", "not supported"),
        (f"COPY {T} FROM STDIN (FORMAT xml)", "22023", 'COPY format "xml" not recognized'),
        (
            f"COPY {T} FROM STDIN (FORMAT binary, DELIMITER ',')",
            "42601",
            "cannot specify DELIMITER in BINARY mode",
        ),
        (f"COPY {T} FROM STDIN (QUOTE '\"')", "0A000", "COPY quote available only in CSV mode"),
        (f"COPY {T} FROM STDIN (DELIMITER 'ab')", "0A000", "single one-byte character"),
        (f"COPY {T} FROM STDIN (bogus 1)", "42601", 'option "bogus" not recognized'),
        (f"COPY {T} FROM STDOUT", "42601", "syntax error"),
    ],
)
def test_bad_statements(srv: TimeFusionServer, sql: str, sqlstate: str, message: str) -> None:
    with srv.connect() as conn:
        with pytest.raises(psycopg.Error) as caught:
            conn.execute(sql)
        assert caught.value.sqlstate == sqlstate, caught.value
        assert message in str(caught.value)
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_copy_fail_from_client_stores_nothing(srv: TimeFusionServer) -> None:
    with srv.connect() as conn, conn.cursor() as cur:
        # psycopg sends CopyFail and re-raises the block's exception
        with (
            pytest.raises(RuntimeError, match="changed its mind"),
            cur.copy(f"COPY {T} (project_id, timestamp) FROM STDIN") as copy,
        ):
            copy.write("cp-fail\t2025-01-01\n")
            raise RuntimeError("client changed its mind")
        assert conn.execute(f"SELECT count(*) FROM {T} WHERE project_id = 'cp-fail'").fetchone() == (0,)
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_copy_in_a_transaction_block(srv: TimeFusionServer) -> None:
    with srv.connect(autocommit=False) as conn, conn.cursor() as cur:
        with cur.copy(f"COPY {T} (project_id, timestamp, id) FROM STDIN") as copy:
            copy.write_row(("cp-tx", dt.datetime(2025, 2, 1, tzinfo=UTC), "t1"))
        conn.commit()
        assert conn.execute(f"SELECT count(*) FROM {T} WHERE project_id = 'cp-tx'").fetchone() == (1,)


def test_asyncpg_copy_records_and_copy_to_table_and_copy_from_query(srv: TimeFusionServer) -> None:
    async def run() -> tuple[str, str, list, bytes]:
        conn = await asyncpg.connect(srv.url)
        try:
            records = [(r[0].replace("cp", "cp-apg"), r[1], r[2], r[3], r[4], r[5], r[6]) for r in ROWS]
            status = await conn.copy_records_to_table(
                T, records=records, columns=[c.strip() for c in COLS.split(",")]
            )
            raw = io.BytesIO(
                b"cp-apg2\t2025-02-01 10:00:00+00\tq1\t5\ncp-apg2\t2025-02-01 10:00:00+00\tq2\t\\N\n"
            )
            status2 = await conn.copy_to_table(
                T, source=raw, columns=["project_id", "timestamp", "id", "duration"]
            )
            rows = await conn.fetch(f"SELECT {COLS} FROM {T} WHERE project_id = 'cp-apg' ORDER BY id")
            out = io.BytesIO()
            await conn.copy_from_query(
                f"SELECT id, duration FROM {T} WHERE project_id = 'cp-apg2' ORDER BY id",
                output=out,
                format="csv",
            )
            return status, status2, [tuple(r) for r in rows], out.getvalue()
        finally:
            await conn.close()

    status, status2, rows, out = asyncio.run(run())
    assert status == f"COPY {len(ROWS)}" and status2 == "COPY 2"
    assert rows == with_project("cp-apg")
    assert out == b"q1,5\nq2,\n"


def test_asyncpg_copy_from_table(srv: TimeFusionServer) -> None:
    with srv.connect() as conn:
        write_rows(conn, "cp-apg3")

    async def run() -> bytes:
        conn = await asyncpg.connect(srv.url)
        try:
            out = io.BytesIO()
            await conn.copy_from_table(T, columns=["id", "name"], output=out, format="text")
            return out.getvalue()
        finally:
            await conn.close()

    assert b"r3\tnew\\nline\\r\\nand \\\\ slash\n" in asyncio.run(run())


def psql(srv: TimeFusionServer, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PGHOST": "127.0.0.1",
        "PGPORT": str(srv.port),
        "PGUSER": srv.user,
        "PGPASSWORD": srv.password,
        "PGDATABASE": "postgres",
    }
    return subprocess.run(
        ["psql", "-X", "-v", "ON_ERROR_STOP=1", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
    )


def test_psql_backslash_copy_both_directions(srv: TimeFusionServer, tmp_path: Path) -> None:
    src = tmp_path / "in.csv"
    src.write_text(
        'project_id,timestamp,id,name\ncp-psql,2025-02-01 10:00:00,p1,"hello, world"\ncp-psql,2025-02-01 10:00:01,p2,\n'
    )
    out = psql(
        srv,
        "-c",
        f"\\copy {T} (project_id, timestamp, id, name) from 'in.csv' with (format csv, header)",
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "COPY 2"
    out = psql(
        srv,
        "-c",
        f"\\copy (SELECT id, name, timestamp FROM {T} WHERE project_id = 'cp-psql' ORDER BY id) to 'out.csv' csv header",
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "out.csv").read_text() == (
        'id,name,timestamp\np1,"hello, world",2025-02-01 10:00:00+00\np2,,2025-02-01 10:00:01+00\n'
    )
    bad = tmp_path / "bad.txt"
    bad.write_text("cp-psql2\tnot a time\n")
    out = psql(srv, "-c", f"\\copy {T} (project_id, timestamp) from 'bad.txt'", cwd=tmp_path)
    assert out.returncode != 0 and "invalid input syntax for type timestamp with time zone" in out.stderr


# -- COPY TO, byte for byte against PostgreSQL 15 ------------------------------------------------


def copy_out(conn: psycopg.Connection, sql: str) -> bytes:
    buf = bytearray()
    with conn.cursor() as cur, cur.copy(sql) as copy:
        for block in copy:
            buf += block
    return bytes(buf)


@pytest.mark.parametrize(
    "options",
    [
        "",
        "(FORMAT csv)",
        "(FORMAT csv, HEADER)",
        "(FORMAT text, HEADER true)",
        "(FORMAT binary)",
        "(FORMAT csv, DELIMITER '|', NULL 'NULL', QUOTE '''', FORCE_QUOTE (name))",
        "(DELIMITER ',', NULL '')",
        "WITH CSV HEADER FORCE QUOTE *",
        "(DELIMITER ' ')",
        "(FORMAT csv, DELIMITER ':')",
    ],
)
def test_copy_to_matches_postgresql(srv: TimeFusionServer, pg: PgServer, options: str) -> None:
    with srv.connect() as tf, pg_connect(pg) as p:
        if tf.execute(f"SELECT count(*) FROM {T} WHERE project_id = 'cp-cmp'").fetchone() == (0,):
            write_rows(tf, "cp-cmp")
        if p.execute(f"SELECT count(*) FROM {T}").fetchone() == (0,):
            write_rows(p, "cp-cmp")
        query = (
            f"SELECT id, name, duration, CAST(duration AS DOUBLE PRECISION) / 7 AS ratio, timestamp, "
            f"context___is_remote, hashes FROM {T} WHERE project_id = 'cp-cmp' ORDER BY id"
        )
        sql = f"COPY ({query}) TO STDOUT {options}"
        ours, theirs = copy_out(tf, sql), copy_out(p, sql)
    assert ours == theirs


def test_copy_table_to_stdout_and_column_list(srv: TimeFusionServer, pg: PgServer) -> None:
    with srv.connect() as tf, pg_connect(pg) as p:
        if tf.execute(f"SELECT count(*) FROM {T} WHERE project_id = 'cp-cmp'").fetchone() == (0,):
            write_rows(tf, "cp-cmp")
        if p.execute(f"SELECT count(*) FROM {T}").fetchone() == (0,):
            write_rows(p, "cp-cmp")
        whole = copy_out(tf, f"COPY {T} TO STDOUT")
        assert len(whole.splitlines()) >= len(ROWS)
        assert whole.split(b"\n")[0].count(b"\t") == 91  # every column of the table
        ours = copy_out(tf, f"COPY {T} (id, name, hashes) TO STDOUT (FORMAT csv)")
        theirs = copy_out(p, f"COPY {T} (id, name, hashes) TO STDOUT (FORMAT csv)")
        records = lambda b: Counter(tuple(r) for r in csv.reader(io.StringIO(b.decode())))  # noqa: E731
        assert not records(theirs) - records(ours)  # every PostgreSQL record, byte-identical


def test_copy_to_rows_parse_in_psycopg_and_bad_query(srv: TimeFusionServer) -> None:
    with srv.connect() as conn:
        write_rows(conn, "cp-rows")
        with (
            conn.cursor() as cur,
            cur.copy(
                f"COPY (SELECT id, name, duration FROM {T} WHERE project_id = 'cp-rows' ORDER BY id) TO STDOUT"
            ) as copy,
        ):
            copy.set_types(["text", "text", "int8"])
            got = list(copy.rows())
        assert got == [(r[2], r[3], r[4]) for r in ROWS]
        with pytest.raises(psycopg.Error) as caught:
            copy_out(conn, f"COPY (SELECT nope FROM {T}) TO STDOUT")
        assert caught.value.sqlstate == "42703"
        assert conn.execute("SELECT 1").fetchone() == (1,)


# -- the sub-protocol, message by message ------------------------------------------------------------


class Raw:
    """A bare protocol-v3 client (trust auth) that returns the backend's message types."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        params = b"user\0postgres\0database\0postgres\0\0"
        self.sock.sendall(struct.pack("!ii", 8 + len(params), 196608) + params)
        assert self.until_ready()[-1] == "Z"

    def send(self, kind: bytes, body: bytes = b"") -> None:
        self.sock.sendall(kind + struct.pack("!i", len(body) + 4) + body)

    def read(self) -> tuple[str, bytes]:
        head = self._exact(5)
        kind, length = head[:1].decode(), struct.unpack("!i", head[1:])[0]
        return kind, self._exact(length - 4)

    def _exact(self, n: int) -> bytes:
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            assert chunk, "server closed the connection"
            buf += chunk
        return buf

    def until_ready(self) -> list[str]:
        kinds = []
        while True:
            kind, body = self.read()
            kinds.append(kind if kind != "E" else "E:" + body.split(b"\0C", 1)[1][:5].decode())
            if kind == "Z":
                return kinds

    def until(self, kind: str) -> list[str]:
        kinds = []
        while True:
            k, _ = self.read()
            kinds.append(k)
            if k == kind:
                return kinds


@pytest.fixture(scope="module")
def trust_srv() -> Iterator[TimeFusionServer]:
    with running_server(env={"TIMEFUSION_ALLOW_INSECURE_AUTH": "true", "PGWIRE_PASSWORD": ""}) as server:
        yield server


def test_extended_protocol_error_mid_copy_skips_to_sync(trust_srv: TimeFusionServer) -> None:
    c = Raw(trust_srv.port)
    sql = f"COPY {T} (project_id, timestamp, duration) FROM STDIN".encode()
    c.send(b"P", b"\0" + sql + b"\0\0\0")
    c.send(b"B", b"\0\0" + b"\0\0" + b"\0\0" + b"\0\0")
    c.send(b"E", b"\0\0\0\0\0")
    c.send(b"H")
    assert c.until("G") == ["1", "2", "G"]  # ParseComplete, BindComplete, CopyInResponse
    c.send(b"d", b"cp-raw-ext\t2025-01-01\tnot a number\n")
    c.send(b"c")
    c.send(b"d", b"dropped after the error\n")  # ignored until Sync, as PostgreSQL does
    c.send(b"S")
    assert c.until_ready() == ["E:22P02", "Z"]
    c.send(b"Q", b"SELECT 1\0")
    assert c.until_ready() == ["T", "D", "C", "Z"]


def test_simple_protocol_copy_fail_and_stray_copy_data(trust_srv: TimeFusionServer) -> None:
    c = Raw(trust_srv.port)
    c.send(b"Q", f"COPY {T} (project_id, timestamp) FROM STDIN\0".encode())
    assert c.until("G") == ["G"]
    c.send(b"d", b"cp-raw-fail\t2025-01-01\n")
    c.send(b"f", b"client gave up\0")
    assert c.until_ready() == ["E:57014", "Z"]
    c.send(b"d", b"late data\n")  # CopyData after the COPY ended is dropped
    c.send(b"c")
    c.send(b"Q", f"SELECT count(*) FROM {T} WHERE project_id = 'cp-raw-fail'\0".encode())
    kinds = c.until_ready()
    assert kinds == ["T", "D", "C", "Z"]


def test_unexpected_message_during_copy_in_is_an_error(trust_srv: TimeFusionServer) -> None:
    c = Raw(trust_srv.port)
    c.send(b"Q", f"COPY {T} (project_id, timestamp) FROM STDIN\0".encode())
    assert c.until("G") == ["G"]
    c.send(b"Q", b"SELECT 1\0")
    assert c.until_ready() == ["E:08P01", "Z"]
    c.send(b"Q", b"SELECT 1\0")
    assert c.until_ready() == ["T", "D", "C", "Z"]


def test_header_match(srv: TimeFusionServer) -> None:
    sql = f"COPY {T} (project_id, timestamp, id) FROM STDIN (FORMAT csv, HEADER match)"
    with srv.connect() as conn, conn.cursor() as cur:
        with cur.copy(sql) as copy:
            copy.write("project_id,timestamp,id\ncp-match,2025-02-01 10:00:00,m1\n")
        assert cur.statusmessage == "COPY 1"
        with pytest.raises(psycopg.Error) as caught, cur.copy(sql) as copy:
            copy.write("project_id,ts,id\ncp-match,2025-02-01 10:00:00,m2\n")
        assert caught.value.sqlstate == "22P04"
        assert 'column name mismatch in header line field: got "ts", expected "timestamp"' in str(
            caught.value
        )
        assert conn.execute(f"SELECT count(*) FROM {T} WHERE project_id = 'cp-match'").fetchone() == (1,)


def test_readme_copy_example_runs(srv: TimeFusionServer, capsys: pytest.CaptureFixture[str]) -> None:
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    section = readme.split("## Bulk load with COPY", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```python\n(.*?)```", section, re.S)
    assert block is not None
    dsn = "postgresql://postgres:postgres@localhost:5432/postgres"
    assert dsn in block.group(1)
    exec(compile(block.group(1).replace(dsn, srv.url), "README.md", "exec"), {})
    assert capsys.readouterr().out.strip() == "COPY 1"


def test_copy_larger_than_a_part_is_stored_in_parts_and_says_so_on_error() -> None:
    # a 64 MB buffer makes parts of 1 MB of parsed rows; 16 MB of rows are parsed in 4 MB chunks,
    # so the bad last row comes after some parts were stored
    with running_server(env={"TIMEFUSION_BUFFER_MAX_MEMORY_MB": "64"}) as server, server.connect() as conn:
        n = 400_000
        lines = "".join(f"cp-parts\t2025-02-01 10:00:{i % 60:02d}\tp{i}\n" for i in range(n))
        with conn.cursor() as cur:
            with cur.copy(f"COPY {T} (project_id, timestamp, id) FROM STDIN") as copy:
                copy.write(lines)
            assert cur.statusmessage == f"COPY {n}"
            with (
                pytest.raises(psycopg.Error) as caught,
                cur.copy(f"COPY {T} (project_id, timestamp, id) FROM STDIN") as copy,
            ):
                copy.write(lines.replace("cp-parts", "cp-parts2") + "cp-parts2\tbad time\tx\n")
        assert caught.value.sqlstate == "22P02"
        stored = conn.execute(f"SELECT count(*) FROM {T} WHERE project_id = 'cp-parts2'").fetchone()[0]
        assert 0 < stored < n
        assert caught.value.diag.message_detail == f"{stored} rows of this COPY were stored before the error"
        assert conn.execute(f"SELECT count(*) FROM {T} WHERE project_id = 'cp-parts'").fetchone() == (n,)
