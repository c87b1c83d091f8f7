"""Real clients over real sockets against `timefusion serve`: psycopg 3, psycopg2, asyncpg, pg8000, psql.

The module's server gets a deterministic data set in two halves: the first half is inserted, the
server is stopped with SIGTERM (which flushes it to Delta) and started again, and the second half
is inserted after the restart (it stays in memory: the flush interval is an hour). Every reference
query (the README's and the issue's) then runs through every client and protocol variant, and the
values are checked against a pure-Python oracle that follows PostgreSQL's semantics (integer
division, `AVG(bigint)::INT` rounds half away from zero, linear `PERCENTILE_CONT`).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import math
import os
import random
import re
import signal
import subprocess
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import asyncpg
import pg8000.native
import psycopg
import psycopg2
import pytest
from pgwire_server import TimeFusionServer, fresh_server, server  # noqa: F401

HERE = Path(__file__).resolve().parent
README_SQL = HERE / "fixtures" / "readme_examples.sql"
UTC = dt.UTC
T = "otel_logs_and_spans"
P = "prod-api-001"
OTHER = "checkout-002"
NAMES = ["GET /api/users", "POST /api/orders", "GET /api/items", "SELECT users", "GET /health"]
SLOW = (
    "SELECT count(*) FROM generate_series(1, 12000) a, generate_series(1, 12000) b "
    "WHERE a.value * b.value % 1000003 = 7"
)


# -- the data set ----------------------------------------------------------------------------------


def make_rows(n: int = 600, seed: int = 20250117) -> list[dict[str, Any]]:
    """Spans of two projects, mostly inside the reference queries' windows (2025-01-17 14:00–15:00)."""
    rng = random.Random(seed)
    windows = [
        (dt.datetime(2025, 1, 17, 14, 0, tzinfo=UTC), 3600, 0.65),
        (dt.datetime(2025, 1, 16, 15, 0, tzinfo=UTC), 23 * 3600, 0.25),
        (dt.datetime(2025, 1, 17, 15, 0, tzinfo=UTC), 3600, 0.10),
    ]

    def pick(x: float) -> tuple[dt.datetime, int]:
        for start, secs, share in windows:
            if x < share:
                return start, secs
            x -= share
        return windows[-1][0], windows[-1][1]

    rows = []
    for i in range(n):
        start, secs = pick(rng.random())
        ts = start + dt.timedelta(microseconds=rng.randrange(secs * 1_000_000))
        status = rng.choice([200, 200, 200, 201, 404, 500, None])
        rows.append(
            {
                "id": f"span-{i:04d}",
                "project_id": P if rng.random() < 0.8 else OTHER,
                "timestamp": ts,
                "name": rng.choice(NAMES),
                "duration": rng.randrange(1_000_000, 5_000_000_000),
                "status": status,
                "error_type": "timeout" if status == 500 else None,
                "hashes": [f"trace_{t}" for t in rng.sample(range(118, 130), rng.randrange(0, 3))],
            }
        )
    return rows


ROWS = make_rows()
FIRST, SECOND = ROWS[: len(ROWS) // 2], ROWS[len(ROWS) // 2 :]
COLUMNS = (
    "id, project_id, timestamp, name, duration, attributes___http___response___status_code, "
    "attributes___error___type, hashes"
)


def sql_literal(v: Any) -> str:
    if v is None:
        return "NULL"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, dt.datetime):
        return "'" + v.strftime("%Y-%m-%d %H:%M:%S.%f") + "'"
    if isinstance(v, list):
        return "ARRAY[" + ", ".join(sql_literal(x) for x in v) + "]::text[]"
    return "'" + str(v).replace("'", "''") + "'"


def row_values(r: dict[str, Any]) -> list[Any]:
    return [
        r[k] for k in ("id", "project_id", "timestamp", "name", "duration", "status", "error_type", "hashes")
    ]


def insert_literal(conn: psycopg.Connection, rows: list[dict[str, Any]], per: int = 50) -> int:
    done = 0
    for i in range(0, len(rows), per):
        chunk = rows[i : i + per]
        values = ", ".join("(" + ", ".join(sql_literal(v) for v in row_values(r)) + ")" for r in chunk)
        cur = conn.execute(f"INSERT INTO {T} ({COLUMNS}) VALUES {values}")
        assert cur.statusmessage == f"INSERT 0 {len(chunk)}"
        done += cur.rowcount
    return done


def insert_params(conn: psycopg.Connection, rows: list[dict[str, Any]], per: int = 50) -> int:
    """The same rows as server-side parameters. A non-empty array goes as a binary text[] parameter;
    psycopg sends a list as text (OID 0, '{…}'), and always so when empty, which the server cannot
    store yet (see test_insert_text_format_array_parameter)."""
    done = 0
    for i in range(0, len(rows), per):
        chunk = rows[i : i + per]
        values = ", ".join(
            "(%s, %s, %s, %s, %s, %s, %s, " + ("%b)" if r["hashes"] else "ARRAY[]::text[])") for r in chunk
        )
        params = [v for r in chunk for v in row_values(r)[:-1] + ([r["hashes"]] if r["hashes"] else [])]
        cur = conn.execute(f"INSERT INTO {T} ({COLUMNS}) VALUES {values}", params)
        assert cur.statusmessage == f"INSERT 0 {len(chunk)}"
        done += cur.rowcount
    return done


# -- PostgreSQL-semantics oracle -------------------------------------------------------------------


def pg_round(x: Decimal | int) -> int:
    return int(Decimal(x).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def percentile_cont(values: list[int], q: float) -> float:
    s = sorted(values)
    pos = q * (len(s) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def ts(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=UTC)


def in_window(r: dict[str, Any], lo: str, hi: str) -> bool:
    return r["project_id"] == P and ts(lo) <= r["timestamp"] < ts(hi)


def utc(v: Any) -> Any:
    if isinstance(v, dt.datetime):
        return v.replace(tzinfo=UTC) if v.tzinfo is None else v.astimezone(UTC)
    return v


def check_count_by_name(got: list[dict[str, Any]]) -> None:
    expected: dict[str, int] = defaultdict(int)
    for r in ROWS:
        if r["project_id"] == P and r["timestamp"].date() == dt.date(2025, 1, 17):
            expected[r["name"]] += 1
    assert [list(r) for r in got[:1]] == [["name", "count"]]
    assert {r["name"]: r["count"] for r in got} == expected
    assert len(got) == len(expected)
    assert [r["count"] for r in got] == sorted(expected.values(), reverse=True)


def check_slow_endpoints(got: list[dict[str, Any]]) -> None:
    groups: dict[str, list[int]] = defaultdict(list)
    for r in ROWS:
        if in_window(r, "2025-01-17 14:00:00", "2025-01-17 15:00:00") and r["duration"] > 1_000_000_000:
            groups[r["name"]].append(r["duration"] // 1_000_000)
    expected = {
        name: {
            "endpoint": name,
            "request_count": len(v),
            "avg_duration_ms": pg_round(Decimal(sum(v)) / len(v)),
            "max_duration_ms": max(v),
        }
        for name, v in groups.items()
    }
    assert list(got[0]) == ["endpoint", "request_count", "avg_duration_ms", "max_duration_ms"]
    assert {r["endpoint"]: r for r in got} == expected
    assert len(got) == len(expected)
    assert [r["avg_duration_ms"] for r in got] == sorted(
        (e["avg_duration_ms"] for e in expected.values()), reverse=True
    )


def check_error_rate(got: list[dict[str, Any]]) -> None:
    groups: dict[tuple[str, dt.datetime], list[int]] = defaultdict(lambda: [0, 0])
    for r in ROWS:
        if in_window(r, "2025-01-16 15:00:00", "2025-01-17 15:00:00"):
            g = groups[(r["name"], r["timestamp"].replace(minute=0, second=0, microsecond=0))]
            g[0] += 1
            g[1] += 1 if r["status"] is not None and r["status"] >= 400 else 0
    assert list(got[0]) == ["endpoint", "hour", "total_requests", "errors", "error_rate"]
    assert len(got) == len(groups)
    for r in got:
        total, errors = groups[(r["endpoint"], utc(r["hour"]))]
        assert (r["total_requests"], r["errors"]) == (total, errors)
        rate = (Decimal(100) * errors / total).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
        assert Decimal(str(r["error_rate"])) == rate
    keys = [(utc(r["hour"]), Decimal(str(r["error_rate"]))) for r in got]
    assert keys == sorted(keys, reverse=True)


def check_trace_lookup(got: list[dict[str, Any]]) -> None:
    expected = {
        r["id"]: (r["name"], r["timestamp"], r["duration"] // 1_000_000, r["error_type"])
        for r in ROWS
        if in_window(r, "2025-01-17 14:00:00", "2025-01-17 15:00:00") and "trace_124" in r["hashes"]
    }
    assert len(expected) > 5
    assert list(got[0]) == ["trace_id", "endpoint", "timestamp", "duration_ms", "error_type"]
    assert len(got) == len(expected)
    assert {
        r["trace_id"]: (r["endpoint"], utc(r["timestamp"]), r["duration_ms"], r["error_type"]) for r in got
    } == expected


def check_time_bucket(got: list[dict[str, Any]]) -> None:
    groups: dict[dt.datetime, list[int]] = defaultdict(list)
    for r in ROWS:
        if in_window(r, "2025-01-17 14:00:00", "2025-01-17 15:00:00"):
            t = r["timestamp"]
            bucket = t.replace(minute=t.minute - t.minute % 5, second=0, microsecond=0)
            groups[bucket].append(r["duration"] // 1_000_000)
    assert list(got[0]) == ["bucket", "requests", "avg_duration_ms", "p95_duration_ms"]
    assert [utc(r["bucket"]) for r in got] == sorted(groups, reverse=True)
    assert len(got) == 12
    for r in got:
        v = groups[utc(r["bucket"])]
        assert r["requests"] == len(v)
        assert r["avg_duration_ms"] == pg_round(Decimal(sum(v)) / len(v))
        assert float(r["p95_duration_ms"]) == pytest.approx(percentile_cont(v, 0.95), rel=1e-12)


def check_moving_average(got: list[dict[str, Any]]) -> None:
    per: dict[str, dict[dt.datetime, list[int]]] = defaultdict(lambda: defaultdict(list))
    for r in ROWS:
        if in_window(r, "2025-01-17 14:30:00", "2025-01-17 15:00:00"):
            minute = r["timestamp"].replace(second=0, microsecond=0)
            per[r["name"]][minute].append(r["duration"] // 1_000_000)
    expected = []
    for endpoint in sorted(per):
        minutes = sorted(per[endpoint])
        avgs = [Decimal(sum(per[endpoint][m])) / len(per[endpoint][m]) for m in minutes]
        out = []
        for i, m in enumerate(minutes):
            window = avgs[max(0, i - 2) : i + 1]
            out.append((m, endpoint, pg_round(avgs[i]), pg_round(sum(window) / len(window))))
        expected.extend(reversed(out))
    assert list(got[0]) == ["minute", "endpoint", "avg_duration_ms", "moving_avg"]
    assert [(utc(r["minute"]), r["endpoint"], r["avg_duration_ms"], r["moving_avg"]) for r in got] == expected


@dataclass(frozen=True)
class RefQuery:
    """A reference query; `{name}` marks a value that clients may send as a bound parameter."""

    name: str
    template: str
    values: dict[str, Any]
    check: Callable[[list[dict[str, Any]]], None]

    def literal(self) -> str:
        return self.template.format(**{k: sql_literal(v) for k, v in self.values.items()})

    def pyformat(self) -> str:  # psycopg, psycopg2
        return self.template.format(**{k: f"%({k})s" for k in self.values})

    def numbered(self) -> tuple[str, list[Any]]:  # asyncpg: $n, typed values (the server infers types)
        names = list(self.values)
        sql = self.template.format(**{k: f"${i + 1}" for i, k in enumerate(names)})
        return sql, [self.values[k] for k in names]

    def named(self) -> str:  # pg8000 native
        return self.template.format(**{k: f":{k}" for k in self.values})


def window(t0: str, t1: str) -> dict[str, Any]:
    return {"project": P, "t0": ts(t0), "t1": ts(t1)}


QUERIES = [
    RefQuery(
        "count_by_name",
        "SELECT name, COUNT(*) AS count FROM otel_logs_and_spans\n"
        "WHERE project_id = {project} AND date = {day} GROUP BY name ORDER BY count DESC",
        {"project": P, "day": dt.date(2025, 1, 17)},
        check_count_by_name,
    ),
    RefQuery(
        "slow_endpoints",
        "SELECT name AS endpoint, COUNT(*) AS request_count, AVG(duration / 1000000)::INT AS avg_duration_ms, "
        "MAX(duration / 1000000)::INT AS max_duration_ms FROM otel_logs_and_spans "
        "WHERE project_id = {project} AND timestamp >= {t0} AND timestamp < {t1} AND duration > 1000000000 "
        "GROUP BY name ORDER BY avg_duration_ms DESC",
        window("2025-01-17 14:00:00", "2025-01-17 15:00:00"),
        check_slow_endpoints,
    ),
    RefQuery(
        "error_rate",
        "SELECT name AS endpoint, date_trunc('hour', timestamp) AS hour, COUNT(*) AS total_requests, "
        "COUNT(*) FILTER (WHERE attributes___http___response___status_code >= 400) AS errors, "
        "ROUND(100.0 * COUNT(*) FILTER (WHERE attributes___http___response___status_code >= 400) / COUNT(*), 2) "
        "AS error_rate FROM otel_logs_and_spans WHERE project_id = {project} "
        "AND timestamp >= {t0} AND timestamp < {t1} "
        "GROUP BY name, date_trunc('hour', timestamp) ORDER BY hour DESC, error_rate DESC",
        window("2025-01-16 15:00:00", "2025-01-17 15:00:00"),
        check_error_rate,
    ),
    RefQuery(
        "trace_lookup",
        "SELECT id AS trace_id, name AS endpoint, timestamp, (duration / 1000000)::INT AS duration_ms, "
        "attributes___error___type AS error_type FROM otel_logs_and_spans "
        "WHERE project_id = {project} AND 'trace_124' = ANY(hashes) "
        "AND timestamp >= {t0} AND timestamp < {t1}",
        window("2025-01-17 14:00:00", "2025-01-17 15:00:00"),
        check_trace_lookup,
    ),
    RefQuery(
        "time_bucket_p95",
        "SELECT time_bucket(INTERVAL '5 minutes', timestamp) AS bucket, COUNT(*) AS requests, "
        "AVG(duration / 1000000)::INT AS avg_duration_ms,\n"
        "       PERCENTILE_CONT(0.95) WITHIN GROUP (ORDER BY duration / 1000000) AS p95_duration_ms\n"
        "FROM otel_logs_and_spans\n"
        "WHERE project_id = {project} AND timestamp >= {t0} AND timestamp < {t1}\n"
        "GROUP BY bucket ORDER BY bucket DESC",
        window("2025-01-17 14:00:00", "2025-01-17 15:00:00"),
        check_time_bucket,
    ),
    RefQuery(
        "moving_average",
        "WITH ts AS (SELECT time_bucket(INTERVAL '1 minute', timestamp) AS minute, name AS endpoint, "
        "AVG(duration / 1000000) AS avg_duration_ms FROM otel_logs_and_spans "
        "WHERE project_id = {project} AND timestamp >= {t0} AND timestamp < {t1} "
        "GROUP BY minute, endpoint) "
        "SELECT minute, endpoint, avg_duration_ms::INT, AVG(avg_duration_ms) OVER (PARTITION BY endpoint "
        "ORDER BY minute ROWS BETWEEN 2 PRECEDING AND CURRENT ROW)::INT AS moving_avg "
        "FROM ts ORDER BY endpoint, minute DESC",
        window("2025-01-17 14:30:00", "2025-01-17 15:00:00"),
        check_moving_average,
    ),
]


# -- the loaded server -----------------------------------------------------------------------------


@dataclass
class Loaded:
    server: TimeFusionServer
    restart_rc: int | None
    restart_log: str
    idle_error: BaseException | None
    first_half_after_restart: int
    parquet_files: int


@pytest.fixture(scope="module")
def loaded(server: TimeFusionServer) -> Loaded:  # noqa: F811
    with server.connect() as conn:
        assert insert_literal(conn, FIRST) == len(FIRST)
    idle = server.connect()
    idle.execute("SELECT 1")
    rc, log = server.restart(signal.SIGTERM)  # flushes FIRST to Delta
    idle_error: BaseException | None = None
    try:
        idle.execute("SELECT 1")
    except psycopg.Error as e:
        idle_error = e
    finally:
        idle.close()
    with server.connect() as conn:
        (after,) = conn.execute(f"SELECT count(*) FROM {T} WHERE project_id IN ('{P}', '{OTHER}')").fetchone()
        assert insert_params(conn, SECOND) == len(SECOND)  # stays in memory
    parquet = len(list(server.data_dir.rglob("*.parquet")))
    return Loaded(server, rc, log, idle_error, after, parquet)


# -- the clients -----------------------------------------------------------------------------------


def _dicts(names: list[str], rows: list[Any]) -> list[dict[str, Any]]:
    return [dict(zip(names, row)) for row in rows]


class Clients:
    """One connection per driver, opened lazily and shared by the module's tests."""

    def __init__(self, srv: TimeFusionServer) -> None:
        self.srv = srv
        self.loop = asyncio.new_event_loop()
        self._psycopg: psycopg.Connection | None = None
        self._psycopg2: Any = None
        self._asyncpg: asyncpg.Connection | None = None
        self._pg8000: pg8000.native.Connection | None = None

    @property
    def psycopg(self) -> psycopg.Connection:
        if self._psycopg is None:
            self._psycopg = self.srv.connect()
        return self._psycopg

    @property
    def psycopg2(self) -> Any:
        if self._psycopg2 is None:
            self._psycopg2 = psycopg2.connect(self.srv.dsn)
            self._psycopg2.autocommit = True
        return self._psycopg2

    @property
    def asyncpg(self) -> asyncpg.Connection:
        if self._asyncpg is None:
            self._asyncpg = self.run(asyncpg.connect(self.srv.url))
        return self._asyncpg

    @property
    def pg8000(self) -> pg8000.native.Connection:
        if self._pg8000 is None:
            self._pg8000 = pg8000.native.Connection(
                self.srv.user, host="127.0.0.1", port=self.srv.port, password=self.srv.password
            )
        return self._pg8000

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    def close(self) -> None:
        for conn in (self._psycopg, self._psycopg2, self._pg8000):
            if conn is not None:
                conn.close()
        if self._asyncpg is not None:
            self.run(self._asyncpg.close())
        self.loop.close()


@pytest.fixture(scope="module")
def clients(loaded: Loaded) -> Iterator[Clients]:
    c = Clients(loaded.server)
    yield c
    c.close()


def run_psycopg_text(c: Clients, q: RefQuery) -> list[dict[str, Any]]:
    cur = c.psycopg.execute(q.literal())
    return _dicts([d.name for d in cur.description], cur.fetchall())


def run_psycopg_binary(c: Clients, q: RefQuery) -> list[dict[str, Any]]:
    cur = c.psycopg.cursor(binary=True)
    cur.execute(q.literal())
    assert all(d.type_code for d in cur.description)
    assert cur.pgresult is not None and cur.pgresult.fformat(0) == 1  # really binary
    return _dicts([d.name for d in cur.description], cur.fetchall())


def run_psycopg_params(c: Clients, q: RefQuery) -> list[dict[str, Any]]:
    cur = c.psycopg.execute(q.pyformat(), q.values)
    return _dicts([d.name for d in cur.description], cur.fetchall())


def run_psycopg_prepared(c: Clients, q: RefQuery) -> list[dict[str, Any]]:
    cur = c.psycopg.execute(q.pyformat(), q.values, prepare=True)
    q.check(_dicts([d.name for d in cur.description], cur.fetchall()))
    # the second run binds and executes the named prepared statement again
    cur = c.psycopg.execute(q.pyformat(), q.values, prepare=True)
    return _dicts([d.name for d in cur.description], cur.fetchall())


def run_psycopg2(c: Clients, q: RefQuery) -> list[dict[str, Any]]:
    cur = c.psycopg2.cursor()
    cur.execute(q.pyformat(), q.values)
    return _dicts([d.name for d in cur.description], cur.fetchall())


def run_asyncpg(c: Clients, q: RefQuery) -> list[dict[str, Any]]:
    return [dict(r) for r in c.run(c.asyncpg.fetch(q.literal()))]


def run_asyncpg_prepared(c: Clients, q: RefQuery) -> list[dict[str, Any]]:
    sql, args = q.numbered()

    async def go() -> list[dict[str, Any]]:
        stmt = await c.asyncpg.prepare(sql)
        q.check([dict(r) for r in await stmt.fetch(*args)])
        return [dict(r) for r in await stmt.fetch(*args)]

    return c.run(go())


def run_pg8000(c: Clients, q: RefQuery) -> list[dict[str, Any]]:
    rows = c.pg8000.run(q.named(), **q.values)
    return _dicts([col["name"] for col in c.pg8000.columns], rows)


RUNNERS = {
    "psycopg-text": run_psycopg_text,
    "psycopg-binary": run_psycopg_binary,
    "psycopg-params": run_psycopg_params,
    "psycopg-prepared": run_psycopg_prepared,
    "psycopg2": run_psycopg2,
    "asyncpg-binary": run_asyncpg,
    "asyncpg-prepared": run_asyncpg_prepared,
    "pg8000-native": run_pg8000,
}


@pytest.mark.parametrize("query", [pytest.param(q, id=q.name) for q in QUERIES])
@pytest.mark.parametrize("client", list(RUNNERS))
def test_reference_query(clients: Clients, client: str, query: RefQuery) -> None:
    got = RUNNERS[client](clients, query)
    assert got, "the data set must give every reference query some rows"
    query.check(got)


def test_numeric_average_rounding(clients: Clients) -> None:
    conn = clients.psycopg
    assert conn.execute("SELECT AVG(x)::INT FROM (VALUES (2505.0), (2506.0)) t(x)").fetchall() == [(2506,)]
    assert conn.execute(
        "SELECT AVG(x) OVER (ORDER BY i ROWS BETWEEN 2 PRECEDING AND CURRENT ROW)::INT "
        "FROM (VALUES (1, 2526.0), (2, 2503.0), (3, 2487.5)) t(i, x) ORDER BY i"
    ).fetchall() == [(2526,), (2515,), (2506,)]


def test_data_set_spans_delta_and_memory(loaded: Loaded) -> None:
    assert loaded.restart_rc == 0, loaded.restart_log
    assert f"flushed {len(FIRST)} rows of {T}" in loaded.restart_log
    assert loaded.parquet_files > 0
    assert loaded.first_half_after_restart == len(FIRST)
    with loaded.server.connect() as conn:
        (total,) = conn.execute(f"SELECT count(*) FROM {T} WHERE project_id IN ('{P}', '{OTHER}')").fetchone()
        (mine,) = conn.execute(f"SELECT count(*) FROM {T} WHERE project_id = %s", [OTHER]).fetchone()
    assert total == len(ROWS)
    assert mine == sum(1 for r in ROWS if r["project_id"] == OTHER)


# -- INSERT through every client -------------------------------------------------------------------

README_INSERT = (
    "INSERT INTO otel_logs_and_spans (name, id, project_id, timestamp, date, hashes)\n"
    "VALUES ('api.request', '550e8400-e29b-41d4-a716-446655440000', '{project}', '2025-01-17 14:25:00', "
    "'2025-01-17', ARRAY[]::text[])"
)


def test_readme_insert_through_every_client(clients: Clients) -> None:
    tags = {}
    cur = clients.psycopg.execute(README_INSERT.format(project="readme-psycopg"))
    tags["readme-psycopg"] = (cur.statusmessage, cur.rowcount)
    cur2 = clients.psycopg2.cursor()
    cur2.execute(README_INSERT.format(project="readme-psycopg2"))
    tags["readme-psycopg2"] = (cur2.statusmessage, cur2.rowcount)
    status = clients.run(clients.asyncpg.execute(README_INSERT.format(project="readme-asyncpg")))
    tags["readme-asyncpg"] = (status, 1)
    clients.pg8000.run(README_INSERT.format(project="readme-pg8000"))
    tags["readme-pg8000"] = ("INSERT 0 1", clients.pg8000.row_count)
    assert tags == {k: ("INSERT 0 1", 1) for k in tags}
    rows = clients.psycopg.execute(
        f"SELECT project_id, name, id, timestamp, date, hashes FROM {T} "
        "WHERE project_id LIKE 'readme-%' ORDER BY project_id"
    ).fetchall()
    assert rows == [
        (
            p,
            "api.request",
            "550e8400-e29b-41d4-a716-446655440000",
            ts("2025-01-17 14:25:00"),
            dt.date(2025, 1, 17),
            [],
        )
        for p in sorted(tags)
    ]


def test_insert_text_format_array_parameter(clients: Clients) -> None:
    cur = clients.psycopg.execute(
        f"INSERT INTO {T} (id, project_id, timestamp, hashes) VALUES (%s, 'arr-param', '2025-01-17 14:00:00', %s)",
        ["arr-1", ["x", "y"]],
    )
    assert cur.rowcount == 1
    rows = clients.psycopg.execute(f"SELECT hashes FROM {T} WHERE project_id = 'arr-param'").fetchall()
    assert rows == [(["x", "y"],)]


def test_text_array_parameter_cast(clients: Clients) -> None:
    assert clients.psycopg.execute("SELECT %s::text[] AS h", [["x", "y"]]).fetchone() == (["x", "y"],)


def test_asyncpg_typed_parameters(clients: Clients) -> None:
    async def go() -> tuple[Any, Any, list[str]]:
        cast = await clients.asyncpg.fetchval("SELECT $1::int + 1", 5)
        stmt = await clients.asyncpg.prepare(
            f"SELECT count(*) FROM {T} WHERE project_id = $1 AND timestamp >= $2 AND timestamp < $3"
        )
        types = [t.name for t in stmt.get_parameters()]
        n = await stmt.fetchval(P, ts("2025-01-17 14:00:00"), ts("2025-01-17 15:00:00"))
        return cast, n, types

    cast, n, types = clients.run(go())
    assert cast == 6
    assert types == ["text", "timestamptz", "timestamptz"]
    assert n == sum(1 for r in ROWS if in_window(r, "2025-01-17 14:00:00", "2025-01-17 15:00:00"))


# -- psql ------------------------------------------------------------------------------------------


def psql(srv: TimeFusionServer, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PGHOST": "127.0.0.1",
        "PGPORT": str(srv.port),
        "PGUSER": srv.user,
        "PGPASSWORD": srv.password,
        "PGDATABASE": "postgres",
        "PGCONNECT_TIMEOUT": "10",
    }
    return subprocess.run(
        ["psql", "-X", "-v", "ON_ERROR_STOP=1", *args], env=env, capture_output=True, text=True, timeout=60
    )


def test_readme_fixture_is_the_readme_verbatim() -> None:
    readme = (HERE.parent / "README.md").read_text()
    section = readme.split("## Example statements", 1)[1]
    block = re.search(r"```sql\n(.*?)```", section, re.S)
    assert block is not None
    assert README_SQL.read_text() == block.group(1)


def test_psql_runs_the_readme_file(fresh_server: TimeFusionServer) -> None:  # noqa: F811
    out = psql(fresh_server, "-f", str(README_SQL))
    assert (out.returncode, out.stderr) == (0, "")
    assert out.stdout == (
        "INSERT 0 1\n"
        "    name     | count \n"
        "-------------+-------\n"
        " api.request |     1\n"
        "(1 row)\n"
        "\n"
        "         bucket         | requests | avg_duration_ms | p95_duration_ms \n"
        "------------------------+----------+-----------------+-----------------\n"
        " 2025-01-17 14:25:00+00 |        1 |                 |                \n"
        "(1 row)\n"
        "\n"
    )


def test_psql_several_statements_in_one_command_with_timing(loaded: Loaded) -> None:
    out = psql(
        loaded.server,
        "-c",
        "\\timing on",
        "-c",
        f"SELECT count(*) AS n FROM {T} WHERE project_id = '{OTHER}'; SELECT 'two' AS b; SHOW server_version",
    )
    assert (out.returncode, out.stderr) == (0, "")
    others = sum(1 for r in ROWS if r["project_id"] == OTHER)
    text = re.sub(r"Time: \d+\.\d+ ms( \(.*\))?\n", "Time: X\n", out.stdout)
    assert text == (
        "Timing is on.\n"
        "  n  \n-----\n" + f" {others:>3}\n" + "(1 row)\n\n"
        "  b  \n-----\n two\n(1 row)\n\n"
        " server_version \n----------------\n 16.4\n(1 row)\n\n"
        "Time: X\n"
    )


def test_psql_error_sets_exit_code(loaded: Loaded) -> None:
    out = psql(loaded.server, "-c", "SELECT * FROM no_such_table")
    assert out.returncode == 1
    assert out.stderr.startswith("ERROR:  ")
    assert "no_such_table" in out.stderr


def test_psql_dt(loaded: Loaded) -> None:
    out = psql(loaded.server, "-c", "\\dt")
    assert (out.returncode, out.stderr) == (0, "")
    assert out.stdout == (
        "                List of relations\n"
        " Schema |        Name         | Type  |  Owner   \n"
        "--------+---------------------+-------+----------\n"
        " public | otel_logs_and_spans | table | postgres\n"
        " public | otel_metrics        | table | postgres\n"
        "(2 rows)\n\n"
    )


def test_psql_describe_table(loaded: Loaded) -> None:
    out = psql(loaded.server, "-c", "\\d otel_logs_and_spans")
    assert (out.returncode, out.stderr) == (0, "")
    assert out.stdout.lstrip().startswith('Table "public.otel_logs_and_spans"')
    for column, pg_type in [
        ("project_id", "text"),
        ("timestamp", "timestamp with time zone"),
        ("date", "date"),
        ("duration", "bigint"),
        ("hashes", "text\\[\\]"),
    ]:
        assert re.search(rf"^ {column} +\| {pg_type} +\|", out.stdout, re.M), column


# -- connection behaviours -------------------------------------------------------------------------


def test_wrong_password_is_28P01(loaded: Loaded) -> None:
    srv = loaded.server
    bad = srv.dsn.replace(f"password={srv.password}", "password=wrong")
    # libpq reports a failed connection without a PGresult, so psycopg's sqlstate is None here even
    # against PostgreSQL; the code itself is checked with the drivers that expose it.
    with pytest.raises(psycopg.OperationalError, match='password authentication failed for user "postgres"'):
        psycopg.connect(bad)

    async def go() -> None:
        await asyncpg.connect(srv.url.replace(srv.password, "wrong"))

    with pytest.raises(asyncpg.InvalidPasswordError) as info:
        asyncio.run(go())
    assert info.value.sqlstate == "28P01"
    with pytest.raises(pg8000.native.DatabaseError) as err:
        pg8000.native.Connection(srv.user, host="127.0.0.1", port=srv.port, password="wrong")
    assert err.value.args[0]["C"] == "28P01"
    with srv.connect() as conn:  # the server is fine afterwards
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_parameter_status_at_startup(loaded: Loaded) -> None:
    with loaded.server.connect() as conn:
        info = conn.info
        assert info.parameter_status("server_version").startswith("16")
        assert info.parameter_status("TimeZone") == "UTC"
        assert info.parameter_status("integer_datetimes") == "on"
        assert info.parameter_status("standard_conforming_strings") == "on"
        assert info.parameter_status("client_encoding") == "UTF8"
        assert info.parameter_status("DateStyle") == "ISO, MDY"
        assert info.server_version >= 160000
        assert info.backend_pid > 0
        assert info.timezone == dt.UTC or str(info.timezone) == "UTC"


def test_set_application_name_is_reported(loaded: Loaded) -> None:
    with loaded.server.connect(application_name="from-startup") as conn:
        assert conn.info.parameter_status("application_name") == "from-startup"
        cur = conn.execute("SET application_name = 'tf-tests'")
        assert cur.statusmessage == "SET"
        assert conn.info.parameter_status("application_name") == "tf-tests"
        assert conn.execute("SHOW application_name").fetchone() == ("tf-tests",)
        conn.execute("RESET application_name")
        assert conn.info.parameter_status("application_name") == ""


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("SHOW server_version", "16.4"),
        ("SELECT version()", re.compile(r"^PostgreSQL 16\.\d+ ")),
        ("SELECT current_database()", "postgres"),
        ("SELECT current_user", "postgres"),
        ("SELECT current_schema()", "public"),
        ("SELECT current_setting('TimeZone')", "UTC"),
        ("SHOW TimeZone", "UTC"),
    ],
)
def test_session_functions(loaded: Loaded, sql: str, expected: str | re.Pattern[str]) -> None:
    with loaded.server.connect() as conn:
        rows = conn.execute(sql).fetchall()
    assert len(rows) == 1 and len(rows[0]) == 1
    if isinstance(expected, re.Pattern):
        assert expected.search(rows[0][0]), rows
    else:
        assert rows[0][0] == expected


def test_show_column_is_the_canonical_setting_name(loaded: Loaded) -> None:
    with loaded.server.connect() as conn:
        assert conn.execute("SHOW timezone").description[0].name == "TimeZone"
        assert conn.execute("SHOW datestyle").description[0].name == "DateStyle"


@pytest.mark.parametrize(
    ("sql", "sqlstate", "words"),
    [
        ("SELEC 1", "42601", ["SELEC"]),
        ("SELECT * FROM no_such_table", "42P01", ["no_such_table"]),
        (f"SELECT no_such_column FROM {T}", "42703", ["no_such_column"]),
        (
            f"INSERT INTO {T} (id, project_id, timestamp, duration) "
            "VALUES ('bad-1', 'bad-values', '2025-01-17 14:00:00', 'abc')",
            "22P02",
            ["duration", "abc"],
        ),
        (
            f"INSERT INTO {T} (id, project_id, timestamp) VALUES ('bad-2', 'bad-values', 'not a time')",
            "22P02",
            ["timestamp", "not a time"],
        ),
    ],
)
def test_errors_keep_the_connection_usable(loaded: Loaded, sql: str, sqlstate: str, words: list[str]) -> None:
    with loaded.server.connect() as conn:
        with pytest.raises(psycopg.Error) as info:
            conn.execute(sql)
        assert info.value.sqlstate == sqlstate, info.value
        message = info.value.diag.message_primary or ""
        for word in words:
            assert word in message
        assert conn.execute("SELECT 1 AS ok").fetchone() == (1,)
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        (n,) = conn.execute(f"SELECT count(*) FROM {T} WHERE project_id = 'bad-values'").fetchone()
        assert n == 0  # a failed INSERT stores nothing


def test_transactions(loaded: Loaded) -> None:
    TS = psycopg.pq.TransactionStatus
    with loaded.server.connect() as conn:
        assert conn.info.transaction_status == TS.IDLE
        assert conn.execute("BEGIN").statusmessage == "BEGIN"
        assert conn.info.transaction_status == TS.INTRANS
        assert conn.execute("SELECT 1").fetchone() == (1,)
        assert conn.execute("COMMIT").statusmessage == "COMMIT"
        assert conn.info.transaction_status == TS.IDLE
        conn.execute("BEGIN")
        assert conn.execute("ROLLBACK").statusmessage == "ROLLBACK"
        assert conn.info.transaction_status == TS.IDLE
        # an error inside a transaction block aborts it until ROLLBACK/COMMIT, as in PostgreSQL
        conn.execute("BEGIN")
        with pytest.raises(psycopg.errors.SyntaxError):
            conn.execute("SELEC 1")
        assert conn.info.transaction_status == TS.INERROR
        with pytest.raises(psycopg.errors.InFailedSqlTransaction):
            conn.execute("SELECT 1")
        assert conn.execute("COMMIT").statusmessage == "ROLLBACK"
        assert conn.info.transaction_status == TS.IDLE
    # psycopg's own transaction handling (autocommit off)
    with loaded.server.connect(autocommit=False) as conn:
        conn.execute("SELECT 1")
        assert conn.info.transaction_status == TS.INTRANS
        conn.commit()
        assert conn.info.transaction_status == TS.IDLE
        with conn.transaction():
            assert conn.execute("SELECT 2").fetchone() == (2,)
        assert conn.info.transaction_status == TS.IDLE


def test_discard_and_deallocate(loaded: Loaded) -> None:
    with loaded.server.connect() as conn:
        for _ in range(2):
            assert conn.execute("SELECT %s::bigint AS v", [7], prepare=True).fetchone() == (7,)
        assert conn.execute("DEALLOCATE ALL").statusmessage == "DEALLOCATE ALL"
        with pytest.raises(psycopg.errors.InvalidSqlStatementName):
            conn.execute("DEALLOCATE no_such_statement")
        assert conn.execute("SELECT 1").fetchone() == (1,)
        conn.execute("SET statement_timeout = '5s'")
        assert conn.execute("DISCARD ALL").statusmessage == "DISCARD ALL"
        assert conn.execute("SHOW statement_timeout").fetchone() == ("0",)
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_deallocate_a_protocol_level_prepared_statement(clients: Clients) -> None:
    async def go() -> None:
        conn = clients.asyncpg
        stmt = await conn.prepare("SELECT 5 AS v")
        assert await stmt.fetchval() == 5
        assert await conn.execute(f"DEALLOCATE {stmt.get_name()}") == "DEALLOCATE"
        with pytest.raises(asyncpg.InvalidSQLStatementNameError):
            await conn.execute(f"DEALLOCATE {stmt.get_name()}")
        assert await conn.fetchval("SELECT 6") == 6

    clients.run(go())


def test_discard_all_reports_reset_settings(loaded: Loaded) -> None:
    with loaded.server.connect() as conn:
        conn.execute("SET application_name = 'before-discard'")
        assert conn.info.parameter_status("application_name") == "before-discard"
        conn.execute("DISCARD ALL")
        assert conn.execute("SHOW application_name").fetchone() == ("",)
        assert conn.info.parameter_status("application_name") == ""


# -- statement timeout and cancellation -----------------------------------------------------------


def test_statement_timeout_covers_the_whole_streamed_statement(loaded: Loaded) -> None:
    # (runs before the tests that leave an abandoned slow query behind in the server)
    with loaded.server.connect() as conn:
        conn.execute("SET statement_timeout = '300ms'")
        n = 0
        with pytest.raises(psycopg.errors.QueryCanceled):
            for _ in conn.cursor().stream("SELECT value FROM generate_series(1, 1000000)", size=20000):
                n += 1
                if n % 100_000 == 0:
                    time.sleep(0.15)  # a reader slower than the socket buffers: ≥ 1.5 s in all
        assert 0 < n < 1_000_000


def test_statement_timeout(loaded: Loaded) -> None:
    with loaded.server.connect() as conn:
        assert conn.execute("SET statement_timeout = '100ms'").statusmessage == "SET"
        with pytest.raises(psycopg.errors.QueryCanceled) as info:
            conn.execute(SLOW)
        assert info.value.sqlstate == "57014"
        assert "statement timeout" in str(info.value)
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        conn.execute("SET statement_timeout = 0")
        assert conn.execute("SHOW statement_timeout").fetchone() == ("0",)
        assert conn.execute("SELECT 1").fetchone() == (1,)


def run_slow_in_thread(conn: psycopg.Connection) -> tuple[threading.Thread, list[Any], threading.Event]:
    outcome: list[Any] = []
    finished = threading.Event()

    def slow() -> None:
        try:
            outcome.append(conn.execute(SLOW).fetchall())
        except BaseException as e:
            outcome.append(e)
        finally:
            finished.set()

    worker = threading.Thread(target=slow)
    worker.start()
    return worker, outcome, finished


def cancel_until_done(conn: psycopg.Connection, worker: threading.Thread) -> None:
    # A cancel that arrives before the statement started is ignored (as in PostgreSQL): repeat it.
    while worker.is_alive():
        conn.cancel()
        worker.join(0.1)


def test_cancel_from_another_thread(loaded: Loaded) -> None:
    with loaded.server.connect() as conn:
        worker, outcome, _ = run_slow_in_thread(conn)
        time.sleep(0.1)
        cancel_until_done(conn, worker)
        (result,) = outcome
        assert isinstance(result, psycopg.errors.QueryCanceled), result
        assert result.sqlstate == "57014"
        assert "user request" in str(result)
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        assert conn.execute("SELECT 42").fetchone() == (42,)


# -- concurrency -----------------------------------------------------------------------------------


def test_many_idle_and_concurrent_connections(loaded: Loaded) -> None:
    srv = loaded.server
    q = QUERIES[0]

    async def go() -> tuple[list[Any], list[Any]]:
        idle = []
        for _ in range(4):  # 200 idle connections, opened 50 at a time
            idle += await asyncio.gather(*(asyncpg.connect(srv.url) for _ in range(50)))

        async def work(i: int) -> Any:
            conn = await asyncpg.connect(srv.url)
            try:
                if i % 2:
                    return [dict(r) for r in await conn.fetch(q.literal())]
                return await conn.fetchval(f"SELECT count(*) FROM {T} WHERE project_id = '{OTHER}'")
            finally:
                await conn.close()

        busy = await asyncio.gather(*(work(i) for i in range(20)))
        alive = await asyncio.gather(*(c.fetchval("SELECT 1") for c in idle))
        await asyncio.gather(*(c.close() for c in idle))
        return busy, alive

    busy, alive = asyncio.run(go())
    assert alive == [1] * 200
    others = sum(1 for r in ROWS if r["project_id"] == OTHER)
    for i, result in enumerate(busy):
        if i % 2:
            q.check(result)
        else:
            assert result == others


def test_slow_query_does_not_block_other_connections(loaded: Loaded) -> None:
    srv = loaded.server
    with srv.connect() as slow_conn, srv.connect() as fast_conn:
        fast_conn.execute("SELECT 1")  # logged in and warm before the slow query starts
        alone = time.monotonic()
        slow_conn.execute(SLOW)
        alone = time.monotonic() - alone  # how long the slow query takes by itself

        worker, outcome, finished = run_slow_in_thread(slow_conn)
        time.sleep(alone * 0.1)  # let it reach the server and start working
        started = time.monotonic()
        answers = [fast_conn.execute("SELECT 1").fetchone() for _ in range(3)]
        waited = time.monotonic() - started
        still_running = not finished.is_set()
        cancel_until_done(slow_conn, worker)  # and it can still be cancelled: it was running
        (result,) = outcome
        assert answers == [(1,)] * 3
        assert still_running
        assert isinstance(result, psycopg.errors.QueryCanceled), result
        # three round trips took a small part of what the slow query needs (no stall behind it)
        assert waited < alone * 0.25, (waited, alone)


# -- streaming -------------------------------------------------------------------------------------

BIG = 300_000


def test_stream_large_result_psycopg(loaded: Loaded) -> None:
    with loaded.server.connect() as conn:
        values = [
            v for (v,) in conn.cursor().stream(f"SELECT value FROM generate_series(1, {BIG}) ORDER BY value")
        ]
        assert values == list(range(1, BIG + 1))
        n = sum(
            1
            for _ in conn.cursor(binary=True).stream(
                f"SELECT value FROM generate_series(1, {BIG})", size=5000
            )
        )
        assert n == BIG


def test_stream_large_result_asyncpg_cursor(loaded: Loaded) -> None:
    async def go() -> tuple[int, bool, list[list[int]], int]:
        conn = await asyncpg.connect(loaded.server.url)
        try:
            async with conn.transaction():
                n, ordered, prev = 0, True, 0
                q = f"SELECT value FROM generate_series(1, {BIG}) ORDER BY value"
                async for r in conn.cursor(q, prefetch=7000):
                    n += 1
                    ordered = ordered and r[0] == prev + 1
                    prev = r[0]
                # fetch(n) is Execute with max_rows: PortalSuspended between the batches
                cur = await conn.cursor("SELECT value FROM generate_series(1, 10) ORDER BY value")
                batches = [[r[0] for r in await cur.fetch(k)] for k in (3, 4, 1, 5, 5)]
                # the rows of the inserted data set, fetched in small batches
                cur = await conn.cursor(f"SELECT id FROM {T} WHERE project_id = '{P}' ORDER BY id")
                ids: list[str] = []
                while chunk := await cur.fetch(37):
                    ids += [r[0] for r in chunk]
                assert ids == sorted(r["id"] for r in ROWS if r["project_id"] == P)
                return n, ordered, batches, len(ids)
        finally:
            await conn.close()

    n, ordered, batches, _ = asyncio.run(go())
    assert (n, ordered) == (BIG, True)
    assert batches == [[1, 2, 3], [4, 5, 6, 7], [8], [9, 10], []]


@pytest.mark.parametrize("driver", ["psycopg", "psycopg2"])
def test_named_cursor_streams_large_result(loaded: Loaded, driver: str) -> None:
    q = f"SELECT value FROM generate_series(1, {BIG}) ORDER BY value"
    if driver == "psycopg":
        with loaded.server.connect(autocommit=False) as conn, conn.cursor(name="big") as cur:
            cur.itersize = 5000
            cur.execute(q)
            values = [v for (v,) in cur]
    else:
        conn2 = psycopg2.connect(loaded.server.dsn)
        try:
            cur2 = conn2.cursor("big")
            cur2.itersize = 5000
            cur2.execute(q)
            values = [v for (v,) in cur2]
        finally:
            conn2.close()
    assert values == list(range(1, BIG + 1))


# -- lifecycle -------------------------------------------------------------------------------------


def test_sigterm_with_idle_connection(loaded: Loaded) -> None:
    """The module's fixture stopped the server with SIGTERM while a psycopg connection sat idle."""
    assert loaded.restart_rc == 0, loaded.restart_log
    err = loaded.idle_error
    assert isinstance(err, psycopg.OperationalError), err
    if err.sqlstate is not None:
        assert err.sqlstate == "57P01"
    assert "stopped" in loaded.restart_log
    assert loaded.first_half_after_restart == len(FIRST)


def test_clean_shutdown_logs_no_errors(loaded: Loaded) -> None:
    assert loaded.restart_rc == 0
    assert " ERROR " not in loaded.restart_log and "Traceback" not in loaded.restart_log, loaded.restart_log
