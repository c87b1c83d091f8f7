"""`timefusion serve` over the PostgreSQL wire protocol against PostgreSQL 15, same machine, same run.

Both servers run side by side for the whole run, fed the same data and the same client code:

- TimeFusion: `python -m timefusion.cli serve` as a subprocess (scrubbed environment: no inherited
  PGWIRE_* / TIMEFUSION_* / AWS_* / GRPC_*; SCRAM password; otherwise default settings, so
  `TIMEFUSION_WAL_FSYNC_MODE=sync_each`) on a data directory filled beforehand in process:
  `--small` and `--large` span rows (bench/datagen.py, all 92 columns) of projects `bench-small` /
  `bench-large` go through `TimeFusion.ingest`, and `close()` flushes them to Delta, so queries read
  Parquet, not the buffer.
- PostgreSQL: a throwaway cluster (tests/pg_server.py's `PgServer`, but started with PostgreSQL's
  default settings: fsync, full_page_writes and synchronous_commit on, shared_buffers 128MB; trust
  auth) with tables `spans_small` / `spans_large` holding the same rows' 6 selected columns, loaded by
  COPY (while TimeFusion loads), then `PRIMARY KEY (id)`, an index on `timestamp`, VACUUM ANALYZE.

Measurements, for both servers; times are client-side wall time. Server CPU (user + system time of
the TimeFusion process; of postmaster + backends + helper processes for PostgreSQL) is recorded for
each one too, as the machine may be shared and the client runs on it as well.

1. `SELECT 1` round trip, `--iterations` times after 100 warm-ups, one connection: psycopg simple
   protocol (`conn.execute(sql, prepare=False)`), psycopg extended with a prepared statement
   (`prepare=True`: Bind/Execute/Sync), asyncpg (`fetchval`, prepared, binary). p50 and p99.
2. Fetch N rows × 6 columns (int8, float8, text, timestamptz, bool, text[]) with psycopg (text,
   simple protocol, `cursor.execute` + `fetchall`) and asyncpg (binary, `conn.fetch`); the servers
   take turns (TF, PG, PG, TF, …); best of `--runs` after one warm-up each (`--large`: best of at
   most 2, no warm-up); Python's GC paused while timing (client-side noise, the same for both):
   - table: TimeFusion `SELECT id, duration, CAST(duration AS DOUBLE PRECISION), timestamp,
     context___is_remote, hashes FROM otel_logs_and_spans WHERE project_id = '…'` (6 of the 92
     columns, from Delta) vs PostgreSQL `SELECT … FROM spans_…` (a 6-column heap table);
   - series: the same `generate_series` query text on both.
   Results are compared between the servers (all rows of the small cases, sorted; count and column
   sums of the large ones); a WARNING is printed on a difference.
3. 8 clients (threads, one psycopg connection each, psycopg's default auto-prepare after 5
   executions) for `--seconds` each: `SELECT 1`; a point lookup by `id` among the small set's ids
   (PostgreSQL uses its primary key; TimeFusion has no index and scans the project's files); a
   1-minute-window aggregate (count/avg/max of duration) over the large set (PostgreSQL uses the
   timestamp index; TimeFusion prunes on timestamp statistics). Queries/s and p50/p99.
4. Ingest: 8 writers × 500-row `INSERT INTO otel_logs_and_spans (8 columns) VALUES (…),(…)…` with
   literal values (timestamps near now, unique ids), simple protocol, for `--ingest-seconds` each.
   PostgreSQL's `otel_logs_and_spans` has the same 8 columns and no indexes. Rows/s and ack p50/p99;
   afterwards the stored row counts are checked against the acknowledged ones on both sides.

Printed: progress on stderr, then a table of every measurement with both numbers, the ratio (>1 =
TimeFusion better), both servers' CPU and the target where there is one. `--profile PY_SPY` records
each TimeFusion phase with `py-spy record --native --format raw` (collapsed stacks) into a kept temp
directory; py-spy pauses the server for every sample, so a profiled run's numbers are not comparable.

Run from the repo root: `.venv/bin/python bench/pgwire.py [--quick] [--out FILE]` (a default run
takes about 4-5 minutes; results go to bench/results/pgwire.json unless --quick).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import gc
import math
import os
import random
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
for p in (ROOT, ROOT / "tests"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

import asyncpg  # noqa: E402
import pg_server  # noqa: E402  (tests/pg_server.py)
import psycopg  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.compute as pc  # noqa: E402
import pyarrow.csv as pacsv  # noqa: E402

from bench.common import fmt_num, percentile_ms, print_table, save_json  # noqa: E402
from bench.datagen import generate_spans  # noqa: E402
from timefusion.app import TimeFusion  # noqa: E402
from timefusion.config import Config  # noqa: E402

TABLE = "otel_logs_and_spans"
SMALL_PROJECT, LARGE_PROJECT, INGEST_PROJECT = "bench-small", "bench-large", "bench-ingest"
TF, PG = "timefusion", "postgresql"
USER, PASSWORD = "postgres", "bench-" + secrets.token_hex(8)
FETCH_COLUMNS = ("id", "duration", "duration_f", "timestamp", "context___is_remote", "hashes")
INGEST_COLUMNS = ("project_id", "timestamp", "id", "name", "kind", "status_code", "duration", "hashes")
CLIENTS = 8
WRITERS = 8
INGEST_BATCH = 500

STOP = threading.Event()  # set on Ctrl-C / error: worker threads stop at their next query


def note(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _proc_stat(pid: int | str) -> list[str]:
    text = Path(f"/proc/{pid}/stat").read_text()
    return text[text.rindex(")") + 2 :].split()  # fields from `state` on (field 3)


def cpu_seconds(pid: int, tree: bool = False) -> float:
    """CPU time (user + system) of process `pid` (all its threads); with `tree`, plus its direct
    children, live (from /proc) and exited (`cutime`/`cstime`): PostgreSQL's backends and helpers."""
    f = _proc_stat(pid)
    ticks = int(f[11]) + int(f[12])
    if tree:
        ticks += int(f[13]) + int(f[14])
        for entry in os.scandir("/proc"):
            if entry.name.isdigit():
                try:
                    c = _proc_stat(entry.name)
                except (OSError, ValueError):
                    continue  # exited meanwhile
                if c[1] == str(pid):
                    ticks += int(c[11]) + int(c[12]) + int(c[13]) + int(c[14])
    return ticks / os.sysconf("SC_CLK_TCK")


# -- servers ----------------------------------------------------------------------------------------


class Postgres(pg_server.PgServer):
    """tests/pg_server.py's throwaway cluster, but with PostgreSQL's default (durable) settings.

    The test helper starts postgres with fsync, full_page_writes and synchronous_commit off,
    shared_buffers=32MB and max_connections=10 (fine for byte comparisons, wrong for a benchmark);
    its `start` has no way to change that, so this override repeats it with only
    `listen_addresses` and the socket directory set. initdb, the OS user switch, `stop` and the
    readiness probe (`RawClient`) are the helper's.
    """

    def start(self, timeout: float = 60.0) -> Postgres:
        self._tmp = Path(tempfile.mkdtemp(prefix="tf-bench-pg-"))
        data, sock = self._tmp / "data", self._tmp / "sock"
        data.mkdir()
        sock.mkdir()
        as_user = self._user_kwargs()
        if as_user:
            for p in (self._tmp, data, sock):
                os.chown(p, as_user["user"], as_user["group"])  # type: ignore[arg-type]
        initdb = [str(self.bin_dir / "initdb"), "-D", str(data), "-A", "trust", "-U", USER, "-E", "UTF8"]
        initdb += ["--locale=C", "--no-sync", "--no-instructions"]
        subprocess.run(initdb, check=True, capture_output=True, cwd=self._tmp, **as_user)  # type: ignore[arg-type]
        self.port = pg_server._free_port()
        self.log_path = self._tmp / "postgres.log"
        log = open(self.log_path, "wb")  # noqa: SIM115  (the child holds it; closed below)
        cmd = [str(self.bin_dir / "postgres"), "-D", str(data), "-p", str(self.port), "-k", str(sock)]
        cmd += ["-c", "listen_addresses=127.0.0.1"]
        self._proc = subprocess.Popen(
            cmd,
            stdout=subprocess.DEVNULL,
            stderr=log,
            cwd=self._tmp,
            start_new_session=True,  # Ctrl-C reaches only us; we stop it
            **as_user,  # type: ignore[arg-type]
        )
        log.close()
        deadline = time.monotonic() + timeout
        while True:
            try:
                pg_server.RawClient(self.port).close()
                return self
            except (OSError, pg_server.PgError):
                if self._proc.poll() is not None:
                    err = self.log_path.read_text(errors="replace")
                    self.stop()
                    raise RuntimeError(f"postgres exited during start: {err}") from None
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError("postgres did not accept connections in time") from None
                time.sleep(0.05)

    @property
    def pid(self) -> int:
        assert self._proc is not None
        return self._proc.pid

    def cpu(self) -> float:
        return cpu_seconds(self.pid, tree=True)

    def dsn(self) -> dict[str, Any]:
        return {"host": "127.0.0.1", "port": self.port, "user": USER, "dbname": "postgres"}


class TimeFusionServer:
    """`python -m timefusion.cli serve` on `data_dir`, a free port and a password, as a subprocess."""

    def __init__(self, data_dir: Path, log_path: Path) -> None:
        self.data_dir = data_dir
        self.log_path = log_path
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 120.0) -> TimeFusionServer:
        self.port = pg_server._free_port()
        scrub = ("PGWIRE_", "TIMEFUSION_", "AWS_", "GRPC_")
        env = {k: v for k, v in os.environ.items() if not k.startswith(scrub)}
        env.update(
            TIMEFUSION_DATA_DIR=str(self.data_dir),
            PGWIRE_PORT=str(self.port),
            TIMEFUSION_PGWIRE_HOST="127.0.0.1",
            PGWIRE_PASSWORD=PASSWORD,
        )
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "timefusion.cli", "serve"],
                env=env,
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C reaches only us; we stop it with SIGTERM
            )
        deadline = time.monotonic() + timeout
        while True:
            try:
                with psycopg.connect(**self.dsn(), connect_timeout=2, autocommit=True) as conn:
                    conn.execute("SELECT 1")
                return self
            except psycopg.Error:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"timefusion serve exited during start:\n{self.log_tail()}") from None
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"timefusion serve not ready in {timeout:.0f} s:\n{self.log_tail()}"
                    ) from None
                time.sleep(0.1)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def cpu(self) -> float:
        return cpu_seconds(self.pid)

    def dsn(self) -> dict[str, Any]:
        return {
            "host": "127.0.0.1",
            "port": self.port,
            "user": USER,
            "password": PASSWORD,
            "dbname": "postgres",
        }

    def stop(self, timeout: float = 120.0) -> float | None:
        """SIGTERM (drain, flush the buffer to Delta, exit); SIGKILL after `timeout`. Returns secs."""
        if self.proc is None:
            return None
        t0 = time.perf_counter()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                note(f"timefusion serve did not exit {timeout:.0f} s after SIGTERM: killing it")
                self.proc.kill()
                self.proc.wait()
        code = self.proc.returncode
        self.proc = None
        if code != 0:
            note(f"WARNING: timefusion serve exited with {code}:\n{self.log_tail()}")
        return time.perf_counter() - t0


def connect(target: str, servers: dict[str, Any], **kw: Any) -> psycopg.Connection[Any]:
    return psycopg.connect(**servers[target].dsn(), autocommit=True, **kw)


async def aconnect(target: str, servers: dict[str, Any]) -> asyncpg.Connection:
    d = servers[target].dsn()
    return await asyncpg.connect(
        host=d["host"], port=d["port"], user=d["user"], password=d.get("password"), database=d["dbname"]
    )


# -- data -------------------------------------------------------------------------------------------


def generate(rows_small: int, rows_large: int) -> dict[str, pa.Table]:
    out = {}
    for project, n in ((SMALL_PROJECT, rows_small), (LARGE_PROJECT, rows_large)):
        out[project] = pa.Table.from_batches(list(generate_spans(n, project_id=project, batch_size=100_000)))
    return out


def load_timefusion(data_dir: Path, data: dict[str, pa.Table]) -> None:
    """Ingest in process and flush to Delta (close), so the server reads Parquet files."""
    db = TimeFusion(Config(data_dir=data_dir, flush_interval_secs=3600)).open()
    try:
        for table in data.values():
            for batch in table.to_batches(max_chunksize=100_000):
                db.ingest(TABLE, batch)
    finally:
        db.close()


def pg_array_text(hashes: pa.ChunkedArray) -> pa.ChunkedArray:
    """list<utf8> → PostgreSQL array literal text ('{a,b}'); the values need no quoting (checked)."""
    flat = pc.list_flatten(hashes)
    if pc.any(pc.match_substring_regex(flat, r'[{},"\\\s]|^$|^(?i:null)$')).as_py():
        raise ValueError("hashes hold values that need quoting in an array literal")
    return pc.binary_join_element_wise("{", pc.binary_join(hashes, ","), "}", "")


def load_postgres(pg: Postgres, data: dict[str, pa.Table]) -> None:
    with connect(PG, {PG: pg}) as conn:
        conn.execute(
            f"CREATE TABLE {TABLE} (project_id text, timestamp timestamptz, id text, name text, kind text, "
            "status_code text, duration int8, hashes text[])"  # the ingest target: no indexes
        )
        for project, table in data.items():
            name = "spans_small" if project == SMALL_PROJECT else "spans_large"
            conn.execute(
                f"CREATE TABLE {name} (id text, duration int8, duration_f float8, timestamp timestamptz, "
                "context___is_remote bool, hashes text[])"
            )
            six = pa.table(
                {
                    "id": table.column("id"),
                    "duration": table.column("duration"),
                    "duration_f": pc.cast(table.column("duration"), pa.float64()),
                    "timestamp": table.column("timestamp"),
                    "context___is_remote": table.column("context___is_remote"),
                    "hashes": pg_array_text(table.column("hashes")),
                }
            )
            sink = pa.BufferOutputStream()
            pacsv.write_csv(six, sink, pacsv.WriteOptions(include_header=False))
            buf = sink.getvalue()
            with conn.cursor() as cur, cur.copy(f"COPY {name} FROM STDIN (FORMAT csv)") as copy:
                view = memoryview(buf)
                for i in range(0, len(view), 8 << 20):
                    copy.write(view[i : i + (8 << 20)])
            conn.execute(f"ALTER TABLE {name} ADD PRIMARY KEY (id)")
            conn.execute(f"CREATE INDEX ON {name} (timestamp)")
            conn.execute(f"VACUUM ANALYZE {name}")
        conn.execute("CHECKPOINT")


# -- 1. SELECT 1 latency ----------------------------------------------------------------------------


def select1_latency(target: str, servers: dict[str, Any], iterations: int) -> dict[str, Any]:
    server = servers[target]
    out: dict[str, Any] = {}

    def summary(lat: list[float], cpu: float) -> dict[str, float]:
        return {
            "p50_ms": percentile_ms(lat, 50),
            "p99_ms": percentile_ms(lat, 99),
            "mean_ms": statistics.fmean(lat) * 1000,
            "server_cpu_ms_per_query": cpu / len(lat) * 1000,
        }

    with connect(target, servers) as conn:
        for mode, prepare in (("simple", False), ("prepared", True)):
            for _ in range(100):
                conn.execute("SELECT 1", prepare=prepare)
            lat = []
            cpu0 = server.cpu()
            for _ in range(iterations):
                t0 = time.perf_counter()
                conn.execute("SELECT 1", prepare=prepare).fetchone()
                lat.append(time.perf_counter() - t0)
            out[f"psycopg_{mode}"] = summary(lat, server.cpu() - cpu0)

    async def run() -> tuple[list[float], float]:
        conn = await aconnect(target, servers)
        try:
            for _ in range(100):
                await conn.fetchval("SELECT 1")
            lat = []
            cpu0 = server.cpu()
            for _ in range(iterations):
                t0 = time.perf_counter()
                await conn.fetchval("SELECT 1")
                lat.append(time.perf_counter() - t0)
            return lat, server.cpu() - cpu0
        finally:
            await conn.close()

    out["asyncpg"] = summary(*asyncio.run(run()))
    return out


# -- 2. large fetches -------------------------------------------------------------------------------


def table_query(target: str, project: str) -> str:
    if target == TF:
        return (
            "SELECT id, duration, CAST(duration AS DOUBLE PRECISION) AS duration_f, timestamp, "
            f"context___is_remote, hashes FROM {TABLE} WHERE project_id = '{project}'"
        )
    name = "spans_small" if project == SMALL_PROJECT else "spans_large"
    return f"SELECT {', '.join(FETCH_COLUMNS)} FROM {name}"


def series_query(n: int) -> str:
    return (
        "SELECT CAST(i AS BIGINT) AS n, CAST(i AS DOUBLE PRECISION) / 7 AS f, 'row-' || CAST(i AS TEXT) AS t, "
        "to_timestamp(1737072000 + i) AS ts, i % 2 = 0 AS b, "
        "ARRAY['trace_' || CAST(i % 1000 AS TEXT), 'sess'] AS arr "
        f"FROM generate_series(1, {n}) AS s(i)"
    )


@contextlib.contextmanager
def no_gc() -> Iterator[None]:
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def fetch_case(
    driver: str, servers: dict[str, Any], sqls: dict[str, str], runs: int, warmup: bool, full_digest: bool
) -> dict[str, Any]:
    """Time `runs` fetches of `sqls[target]` per server, alternating servers (TF, PG, PG, TF, …) so
    that a change in machine load hits both alike; server CPU per run; digest of the last run."""
    order = [(TF, PG) if i % 2 == 0 else (PG, TF) for i in range(runs)]
    times: dict[str, list[float]] = {TF: [], PG: []}
    cpu: dict[str, list[float]] = {TF: [], PG: []}
    digests: dict[str, Any] = {}
    counts: dict[str, int] = {}

    def record(target: str, i: int, elapsed: float, cpu_s: float, rows: list) -> None:
        times[target].append(elapsed)
        cpu[target].append(cpu_s)
        if i == runs - 1:
            digests[target] = digest(rows, full_digest)
            counts[target] = len(rows)

    if driver == "psycopg":
        conns = {t: connect(t, servers) for t in (TF, PG)}
        try:
            curs = {t: conns[t].cursor() for t in (TF, PG)}
            if warmup:
                for t in (TF, PG):
                    curs[t].execute(sqls[t], prepare=False)
                    curs[t].fetchall()
            for i, pair in enumerate(order):
                for t in pair:
                    if STOP.is_set():
                        raise KeyboardInterrupt
                    rows: list = []
                    cpu0 = servers[t].cpu()
                    with no_gc():
                        t0 = time.perf_counter()
                        curs[t].execute(sqls[t], prepare=False)
                        rows = curs[t].fetchall()
                        elapsed = time.perf_counter() - t0
                    record(t, i, elapsed, servers[t].cpu() - cpu0, rows)
                    del rows
        finally:
            for c in conns.values():
                c.close()
    else:

        async def run() -> None:
            conns = {t: await aconnect(t, servers) for t in (TF, PG)}
            try:
                if warmup:
                    for t in (TF, PG):
                        await conns[t].fetch(sqls[t])
                for i, pair in enumerate(order):
                    for t in pair:
                        if STOP.is_set():
                            raise KeyboardInterrupt
                        rows: list = []
                        cpu0 = servers[t].cpu()
                        with no_gc():
                            t0 = time.perf_counter()
                            rows = await conns[t].fetch(sqls[t])
                            elapsed = time.perf_counter() - t0
                        record(t, i, elapsed, servers[t].cpu() - cpu0, [tuple(r) for r in rows])
                        del rows
            finally:
                for c in conns.values():
                    await c.close()

        asyncio.run(run())
    out: dict[str, Any] = {}
    for t in (TF, PG):
        out[t] = {
            "best_s": min(times[t]),
            "median_s": statistics.median(times[t]),
            "runs_s": times[t],
            "server_cpu_s": statistics.fmean(cpu[t]),
            "rows": counts[t],
        }
    out["digests"] = digests
    return out


def digest(rows: list, full: bool) -> Any:
    """What must be equal between the servers: all rows (sorted) or count and column sums."""
    if full:
        return sorted(rows, key=lambda r: r[0])
    if not rows:
        return (0,)
    numeric = [i for i, v in enumerate(rows[0]) if isinstance(v, int | float) and not isinstance(v, bool)]
    return len(rows), *(math.fsum(r[i] for r in rows) for i in numeric)


def compare(label: str, a: Any, b: Any) -> bool:
    if a == b:
        return True
    if isinstance(a, list) and isinstance(b, list):
        diff = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
        detail = f"{len(a):,} vs {len(b):,} rows; first difference at {diff}: " + (
            f"{a[diff]!r} vs {b[diff]!r}" if diff < min(len(a), len(b)) else "(length)"
        )
    else:
        detail = f"{a!r} vs {b!r}"
    note(f"WARNING: {label}: TimeFusion and PostgreSQL results differ: {detail}")
    return False


# -- 3. concurrent small queries --------------------------------------------------------------------


def run_clients(
    n: int, seconds: float, make: Callable[[int], Callable[[], Any]], label: str, cpu: Callable[[], float]
) -> dict[str, Any]:
    """`n` threads each call their `make(k)()` in a loop for `seconds`; queries/s, latency and the
    server's CPU time per query."""
    lat: list[list[float]] = [[] for _ in range(n)]
    errors: list[BaseException] = []
    deadline = [0.0]
    cpu0 = [0.0]

    def go() -> None:  # runs once, in the last thread to arrive, before any is released
        cpu0[0] = cpu()
        deadline[0] = time.perf_counter() + seconds

    barrier = threading.Barrier(n + 1, action=go)

    def worker(k: int) -> None:
        try:
            call = make(k)
            try:
                call()  # warm-up (connection, plan caches)
            finally:
                barrier.wait()
            mine = lat[k]
            while not STOP.is_set():
                t0 = time.perf_counter()
                if t0 >= deadline[0]:
                    break
                call()
                mine.append(time.perf_counter() - t0)
        except threading.BrokenBarrierError:
            pass
        except BaseException as e:
            errors.append(e)
            barrier.abort()

    pool = [threading.Thread(target=worker, args=(k,), daemon=True) for k in range(n)]
    for t in pool:
        t.start()
    try:
        barrier.wait()
    except threading.BrokenBarrierError:
        pass
    t0 = deadline[0] - seconds
    for t in pool:
        t.join()
    elapsed = time.perf_counter() - t0
    cpu_s = cpu() - cpu0[0]
    if errors:
        raise RuntimeError(f"{label}: {errors[0]!r}") from errors[0]
    flat = [x for part in lat for x in part]
    return {
        "queries": len(flat),
        "secs": elapsed,
        "qps": len(flat) / elapsed,
        "p50_ms": percentile_ms(flat, 50),
        "p99_ms": percentile_ms(flat, 99),
        "server_cpu_s": cpu_s,
        "server_cpu_ms_per_query": cpu_s / max(len(flat), 1) * 1000,
    }


def concurrency(
    target: str, servers: dict[str, Any], seconds: float, ids: list[str], day0: dt.datetime
) -> dict[str, Any]:
    out = {}
    conns: list[psycopg.Connection[Any]] = []
    lock = threading.Lock()

    def conn_for() -> psycopg.Connection[Any]:
        c = connect(target, servers)
        with lock:
            conns.append(c)
        return c

    if target == TF:
        lookup = (
            f"SELECT id, duration, timestamp FROM {TABLE} WHERE project_id = '{SMALL_PROJECT}' AND id = %s"
        )
        window = (
            f"SELECT count(*), avg(duration), max(duration) FROM {TABLE} "
            f"WHERE project_id = '{LARGE_PROJECT}' AND timestamp >= %s AND timestamp < %s"
        )
    else:
        lookup = "SELECT id, duration, timestamp FROM spans_small WHERE id = %s"
        window = "SELECT count(*), avg(duration), max(duration) FROM spans_large WHERE timestamp >= %s AND timestamp < %s"

    def make_select1(k: int) -> Callable[[], Any]:
        c = conn_for()
        return lambda: c.execute("SELECT 1").fetchall()

    def make_lookup(k: int) -> Callable[[], Any]:
        c = conn_for()
        rnd = random.Random(k)

        def call() -> None:
            rows = c.execute(lookup, (rnd.choice(ids),)).fetchall()
            if len(rows) != 1:
                raise AssertionError(f"point lookup returned {len(rows)} rows")

        return call

    def make_window(k: int) -> Callable[[], Any]:
        c = conn_for()
        rnd = random.Random(100 + k)

        def call() -> None:
            start = day0 + dt.timedelta(seconds=rnd.randrange(0, 86_400 - 60))
            c.execute(window, (start, start + dt.timedelta(minutes=1))).fetchall()

        return call

    try:
        for name, make in (
            ("select1", make_select1),
            ("point_lookup", make_lookup),
            ("window_agg", make_window),
        ):
            note(f"  {target}: {CLIENTS} clients × {name} for {seconds:g} s")
            out[name] = run_clients(CLIENTS, seconds, make, f"{target} {name}", servers[target].cpu)
            for c in conns:
                c.close()
            conns.clear()
    finally:
        for c in conns:
            c.close()
    return out


# -- 4. INSERT ingest -------------------------------------------------------------------------------


def sql_str(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def insert_templates(source: pa.Table, writers: int, per_writer: int, batch: int) -> list[list[str]]:
    """Per writer, `per_writer` 500-row INSERT statements; '@@B@@' in every id is the batch number."""
    now = dt.datetime.now(dt.UTC)
    cols = {
        c: source.column(c).to_pylist() for c in ("id", "name", "kind", "status_code", "duration", "hashes")
    }
    head = f"INSERT INTO {TABLE} ({', '.join(INGEST_COLUMNS)}) VALUES "
    out = []
    src = 0
    for w in range(writers):
        mine = []
        for _ in range(per_writer):
            values = []
            for i in range(batch):
                r = src % source.num_rows
                src += 1
                ts = (now + dt.timedelta(microseconds=src * 7)).strftime("%Y-%m-%d %H:%M:%S.%f+00")
                hashes = cols["hashes"][r]
                arr = (
                    "NULL"
                    if hashes is None
                    else (
                        "ARRAY[" + ", ".join(sql_str(h) for h in hashes) + "]"
                        if hashes
                        else "ARRAY[]::text[]"
                    )
                )
                values.append(
                    f"({sql_str(INGEST_PROJECT)}, '{ts}', 'w{w}-@@B@@-{i:03d}-{cols['id'][r][:18]}', "
                    f"{sql_str(cols['name'][r])}, {sql_str(cols['kind'][r])}, {sql_str(cols['status_code'][r])}, "
                    f"{cols['duration'][r]}, {arr})"
                )
            mine.append(head + ", ".join(values))
        out.append(mine)
    return out


def ingest(
    target: str, servers: dict[str, Any], templates: list[list[str]], seconds: float
) -> dict[str, Any]:
    counters = [0] * len(templates)

    def make(k: int) -> Callable[[], Any]:
        c = connect(target, servers)
        mine = templates[k]

        def call() -> None:
            n = counters[k]
            counters[k] = n + 1
            cur = c.execute(mine[n % len(mine)].replace("@@B@@", f"{n:07d}"), prepare=False)
            if cur.rowcount != INGEST_BATCH:
                raise AssertionError(f"INSERT acknowledged {cur.rowcount} rows: {cur.statusmessage}")

        return call

    r = run_clients(len(templates), seconds, make, f"{target} ingest", servers[target].cpu)
    rows = r["queries"] * INGEST_BATCH
    where = f" WHERE project_id = '{INGEST_PROJECT}'" if target == TF else ""
    with connect(target, servers) as conn:
        stored = conn.execute(f"SELECT count(*) FROM {TABLE}{where}").fetchone()[0]  # type: ignore[index]
    acked = sum(counters) * INGEST_BATCH  # includes each writer's warm-up statement
    if stored != acked:
        note(f"WARNING: {target}: {acked:,} rows acknowledged but {stored:,} stored")
    return {
        "rows": rows,
        "statements": r["queries"],
        "secs": r["secs"],
        "rows_per_s": rows / r["secs"],
        "p50_ms": r["p50_ms"],
        "p99_ms": r["p99_ms"],
        "server_cpu_us_per_row": r["server_cpu_s"] / max(rows, 1) * 1e6,
        "stored_rows": stored,
        "acked_rows": acked,
    }


# -- profiling --------------------------------------------------------------------------------------


class Profiler:
    """Optional py-spy recordings of the TimeFusion server, one file per phase."""

    def __init__(self, py_spy: str | None, out_dir: Path) -> None:
        self.py_spy = py_spy
        self.out_dir = out_dir
        self.files: list[Path] = []

    @contextlib.contextmanager
    def phase(self, name: str, pid: int) -> Iterator[None]:
        if not self.py_spy:
            yield
            return
        out = self.out_dir / f"profile-{name}.txt"
        cmd = [self.py_spy, "record", "--native", "--rate", "100", "--format", "raw", "-o", str(out)]
        proc = subprocess.Popen(
            [*cmd, "--pid", str(pid)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(0.5)
        try:
            yield
        finally:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
            self.files.append(out)


# -- report -----------------------------------------------------------------------------------------


def report(results: dict[str, Any], args: argparse.Namespace) -> None:
    rows: list[list[str]] = []

    def add(
        what: str, unit: str, ours: float, theirs: float, lower_better: bool, cpu: str = "", target: str = ""
    ) -> None:
        ratio = (theirs / ours if lower_better else ours / theirs) if ours and theirs else float("nan")
        rows.append([what, unit, fmt_num(ours, 2), fmt_num(theirs, 2), f"{ratio:.2f}x", cpu, target])

    def cpu_cell(tf: float, pg: float, unit: str, digits: int = 2) -> str:
        return f"{tf:.{digits}f} / {pg:.{digits}f} {unit}"

    s1 = results["select1"]
    for mode, label in (
        ("psycopg_simple", "psycopg simple"),
        ("psycopg_prepared", "psycopg prepared"),
        ("asyncpg", "asyncpg"),
    ):
        tf, pg = s1[TF][mode], s1[PG][mode]
        target = ""
        if mode.startswith("psycopg"):
            target = "p50 < 0.5 ms: " + ("met" if tf["p50_ms"] < 0.5 else "MISSED")
        cpu = cpu_cell(tf["server_cpu_ms_per_query"], pg["server_cpu_ms_per_query"], "ms/q", 3)
        add(f"SELECT 1, {label}, p50", "ms", tf["p50_ms"], pg["p50_ms"], True, cpu, target)
        add(f"SELECT 1, {label}, p99", "ms", tf["p99_ms"], pg["p99_ms"], True)
    for case in results["fetch"]:
        tf, pg = case[TF], case[PG]
        target = ""
        if case["rows"] == args.large and case["source"] == "table":
            target = "no slower than PG: " + ("met" if tf["best_s"] <= pg["best_s"] else "MISSED")
        add(
            f"fetch {case['rows']:,} × 6 {case['source']}, {case['driver']}",
            "s",
            tf["best_s"],
            pg["best_s"],
            True,
            cpu_cell(tf["server_cpu_s"], pg["server_cpu_s"], "s"),
            target,
        )
    for name, label in (
        ("select1", "SELECT 1"),
        ("point_lookup", "point lookup by id"),
        ("window_agg", "1-min window agg"),
    ):
        tf, pg = results["concurrency"][TF][name], results["concurrency"][PG][name]
        cpu = cpu_cell(tf["server_cpu_ms_per_query"], pg["server_cpu_ms_per_query"], "ms/q", 3)
        add(f"{CLIENTS} clients, {label}", "q/s", tf["qps"], pg["qps"], False, cpu)
        add(f"{CLIENTS} clients, {label}, p50", "ms", tf["p50_ms"], pg["p50_ms"], True)
        add(f"{CLIENTS} clients, {label}, p99", "ms", tf["p99_ms"], pg["p99_ms"], True)
    tf, pg = results["ingest"][TF], results["ingest"][PG]
    ratio = tf["rows_per_s"] / pg["rows_per_s"]
    add(
        f"INSERT {WRITERS} writers × {INGEST_BATCH} rows",
        "rows/s",
        tf["rows_per_s"],
        pg["rows_per_s"],
        False,
        cpu_cell(tf["server_cpu_us_per_row"], pg["server_cpu_us_per_row"], "µs/row", 1),
        "≥ PG (aim 2x): " + ("met" if ratio >= 1 else "MISSED"),
    )
    add("INSERT ack p50", "ms", tf["p50_ms"], pg["p50_ms"], True)
    add("INSERT ack p99", "ms", tf["p99_ms"], pg["p99_ms"], True)
    print()
    print_table(
        [
            "measurement",
            "unit",
            "TimeFusion",
            f"PostgreSQL {results['postgres_version']}",
            "TF vs PG",
            "server CPU TF / PG",
            "target",
        ],
        rows,
        "llrrrrl",
    )
    load = results["load_average"]
    print(
        "TF vs PG: >1 means TimeFusion is better (PG time ÷ TF time, or TF rate ÷ PG rate). Fetch: best of "
        f"{args.runs} run(s) after a warm-up ({args.large:,} rows: {min(args.runs, 2)}, no warm-up), servers "
        "alternating, client GC paused. Server CPU: "
        "user+system time of the server process (PostgreSQL: postmaster + backends + helpers) per query, "
        "per fetch or per row.\n"
        "PostgreSQL: default settings (fsync, synchronous_commit, full_page_writes on), trust auth; fetch "
        "tables with primary key (id) and an index on timestamp; INSERT table without indexes.\n"
        f"Machine: {os.cpu_count()} CPUs shared with the client; 1-min load average "
        f"{load['start']:.1f} at start, {load['end']:.1f} at the end."
    )
    for case in results["fetch"]:
        if not case["results_equal"]:
            print(f"WARNING: {case['source']} {case['rows']:,} {case['driver']}: results differ (see stderr)")


# -- main -------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--small", type=int, default=100_000, help="rows of the small fetch (default 100k)")
    ap.add_argument("--large", type=int, default=1_000_000, help="rows of the large fetch (default 1M)")
    ap.add_argument(
        "--runs",
        type=int,
        default=3,
        help="timed runs per small fetch case after a warm-up (default 3); large: at most 2, no warm-up",
    )
    ap.add_argument(
        "--iterations", type=int, default=2000, help="SELECT 1 round trips per mode (default 2000)"
    )
    ap.add_argument("--seconds", type=float, default=10.0, help="per concurrent-query workload (default 10)")
    ap.add_argument("--ingest-seconds", type=float, default=10.0, help="per ingest run (default 10)")
    ap.add_argument("--quick", action="store_true", help="10k/100k rows, 1 run, 300 iterations, 2-3 s phases")
    ap.add_argument("--out", help="JSON results (default bench/results/pgwire.json; none with --quick)")
    ap.add_argument("--profile", metavar="PY_SPY", help="py-spy binary: record each TimeFusion phase")
    args = ap.parse_args(argv)
    if args.quick:
        args.small, args.large, args.runs, args.iterations = 10_000, 100_000, 1, 300
        args.seconds, args.ingest_seconds = 2.0, 3.0
    if args.out is None and not args.quick:
        args.out = str(ROOT / "bench" / "results" / "pgwire.json")

    def interrupted(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupted)
    started = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix="tf-bench-pgwire-"))
    profiler = Profiler(args.profile, Path(tempfile.mkdtemp(prefix="tf-profile-")) if args.profile else tmp)
    pg = Postgres()
    tf = TimeFusionServer(tmp / "data", tmp / "timefusion.log")
    servers: dict[str, Any] = {TF: tf, PG: pg}
    results: dict[str, Any] = {"postgres_version": pg.version, "load_average": {"start": os.getloadavg()[0]}}
    note(f"{os.cpu_count()} CPUs, load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    pg_thread: threading.Thread | None = None
    try:
        note(f"generating {args.small:,} + {args.large:,} span rows")
        data = generate(args.small, args.large)

        def postgres_side() -> None:  # PostgreSQL loads in parallel with TimeFusion's ingest
            pg.start()
            t0 = time.perf_counter()
            load_postgres(pg, data)
            results["postgres_load_s"] = time.perf_counter() - t0

        pg_error: list[BaseException] = []
        pg_thread = threading.Thread(target=lambda: _capture(postgres_side, pg_error), daemon=True)
        pg_thread.start()
        note(f"TimeFusion: in-process ingest + flush to Delta; PostgreSQL {pg.version}: COPY + indexes")
        t0 = time.perf_counter()
        load_timefusion(tmp / "data", data)
        results["timefusion_load_s"] = time.perf_counter() - t0
        pg_thread.join()
        if pg_error:
            raise pg_error[0]
        note(
            f"  loaded: TimeFusion {results['timefusion_load_s']:.1f} s, PostgreSQL "
            f"{results['postgres_load_s']:.1f} s (side by side)"
        )
        tf.start()
        note(f"servers up: timefusion pid {tf.pid} port {tf.port}; postgres pid {pg.pid} port {pg.port}")

        note(f"1. SELECT 1 × {args.iterations}")
        results["select1"] = {}
        for target in (TF, PG):
            with profiler.phase("select1", tf.pid) if target == TF else contextlib.nullcontext():
                results["select1"][target] = r = select1_latency(target, servers, args.iterations)
            note(f"  {target}: " + ", ".join(f"{k} p50 {v['p50_ms']:.3f} ms" for k, v in r.items()))

        results["fetch"] = []
        for source in ("table", "series"):
            for n in (args.small, args.large):
                for driver in ("psycopg", "asyncpg"):
                    project = SMALL_PROJECT if n == args.small else LARGE_PROJECT
                    sqls = {
                        t: table_query(t, project) if source == "table" else series_query(n) for t in (TF, PG)
                    }
                    large = n == args.large
                    with profiler.phase(f"fetch-{source}-{n}-{driver}", tf.pid):
                        r = fetch_case(
                            driver,
                            servers,
                            sqls,
                            min(args.runs, 2) if large else args.runs,
                            warmup=not large,
                            full_digest=n <= 200_000,
                        )
                    digests = r.pop("digests")
                    case = {"source": source, "rows": n, "driver": driver, **r}
                    for t in (TF, PG):
                        if r[t]["rows"] != n:
                            note(f"WARNING: {t} fetch {source} {n:,} {driver}: {r[t]['rows']:,} rows")
                    case["results_equal"] = compare(f"{source} {n:,} {driver}", digests[TF], digests[PG])
                    del digests
                    note(
                        f"2. fetch {n:,} × 6 {source} {driver}: timefusion {case[TF]['best_s']:.3f} s "
                        f"(server CPU {case[TF]['server_cpu_s']:.2f} s), postgresql {case[PG]['best_s']:.3f} s "
                        f"(server CPU {case[PG]['server_cpu_s']:.2f} s)"
                    )
                    results["fetch"].append(case)

        note(f"3. {CLIENTS} concurrent clients, {args.seconds:g} s per workload")
        ids = random.Random(1).sample(data[SMALL_PROJECT].column("id").to_pylist(), 5000)
        day0 = (
            data[LARGE_PROJECT]
            .column("timestamp")[0]
            .as_py()
            .replace(hour=0, minute=0, second=0, microsecond=0)
        )
        results["concurrency"] = {}
        for target in (TF, PG):
            with profiler.phase("concurrency", tf.pid) if target == TF else contextlib.nullcontext():
                results["concurrency"][target] = r = concurrency(target, servers, args.seconds, ids, day0)
            note(f"  {target}: " + ", ".join(f"{k} {v['qps']:,.0f} q/s" for k, v in r.items()))

        note(
            f"4. INSERT ingest: {WRITERS} writers × {INGEST_BATCH}-row statements, {args.ingest_seconds:g} s each"
        )
        templates = insert_templates(data[SMALL_PROJECT], WRITERS, 8, INGEST_BATCH)
        results["ingest"] = {}
        for target in (TF, PG):
            with profiler.phase("ingest", tf.pid) if target == TF else contextlib.nullcontext():
                results["ingest"][target] = r = ingest(target, servers, templates, args.ingest_seconds)
            note(
                f"  {target}: {r['rows_per_s']:,.0f} rows/s, p50 {r['p50_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms"
            )
    except BaseException:
        STOP.set()
        raise
    finally:
        results["load_average"]["end"] = os.getloadavg()[0]
        if pg_thread is not None:
            pg_thread.join(timeout=300)  # still starting/loading after an error: let it finish first
        note("stopping the servers")
        secs = tf.stop()
        if secs is not None:
            note(
                f"  timefusion serve stopped (SIGTERM → drain, flush the ingested rows, exit) in {secs:.1f} s"
            )
            results["timefusion_shutdown_s"] = secs
        pg.stop()
        if args.profile:
            note(f"profiles: {', '.join(str(f) for f in profiler.files)}")
        shutil.rmtree(tmp, ignore_errors=True)

    report(results, args)
    print(f"\ntotal benchmark time {time.perf_counter() - started:.0f} s")
    save_json(args.out, {"args": vars(args), **results})
    return 0


def _capture(fn: Callable[[], None], errors: list[BaseException]) -> None:
    try:
        fn()
    except BaseException as e:
        errors.append(e)


if __name__ == "__main__":
    sys.exit(main())
