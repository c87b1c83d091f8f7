"""Bulk ingest into `timefusion serve`: Arrow Flight DoPut and COPY FROM STDIN, against multi-row INSERT
and PostgreSQL 15's COPY of the same rows, in one run on the same machine.

What runs (each case acknowledged durable: TimeFusion with `TIMEFUSION_WAL_FSYNC_MODE=sync_each`,
PostgreSQL with its default fsync/synchronous_commit on):

- Flight DoPut, 10,000-row batches, 1 and 4 streams (threads of this process, one FlightClient each).
  Each stream pipelines up to 4 unacknowledged batches; ack latency is the time from `write_batch` to
  the PutResult for that batch. Two row shapes: *narrow* (the 8 columns of bench/pgwire.py's ingest:
  project_id, timestamp, id, name, kind, status_code, duration, hashes) and *wide* (all 92 columns of
  bench/datagen.py's spans).
- COPY FROM STDIN with psycopg (`cursor.copy()`, data pre-rendered so the client does not format
  values), text and binary format, 100,000 rows per COPY statement, 1 and 4 connections, into
  TimeFusion's `otel_logs_and_spans` and into a PostgreSQL table with the same 8 columns and no
  indexes. Ack latency = the time of one COPY statement (100k rows). The binary data is what
  PostgreSQL itself produces for those rows (`COPY … TO STDOUT (FORMAT binary)`).
- Multi-row INSERT (500 rows per statement, literal values, 4 connections) into both, as the
  baseline.

Printed: a table of every case (rows, seconds, rows/s, ack p50/p99, server CPU seconds) and the ratios
against the targets of issue 5: Flight ≥ 1M rows/s durable, COPY ≥ 2× PostgreSQL's COPY. The client
runs on the same 2 cores as the server, so every number includes the client's CPU competing with it.

Run from the repo root: `.venv/bin/python bench/flight_copy.py [--rows N] [--wide-rows N] [--quick]`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
for p in (ROOT, ROOT / "tests"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

import psycopg  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.csv as pacsv  # noqa: E402
import pyarrow.flight as fl  # noqa: E402

from bench.common import compact, fmt_num, percentile_ms, print_table, save_json  # noqa: E402
from bench.datagen import generate_spans  # noqa: E402
from bench.pgwire import (  # noqa: E402
    INGEST_COLUMNS,
    INGEST_PROJECT,
    Postgres,
    cpu_seconds,
    insert_templates,
    note,
    pg_array_text,
)

TABLE = "otel_logs_and_spans"
PASSWORD = "bench-" + secrets.token_hex(8)
TOKEN = secrets.token_hex(16)
BATCH = 10_000
WINDOW = 4  # unacknowledged DoPut batches per stream
COPY_ROWS = 100_000  # rows per COPY statement
BLOCK = 1 << 20  # bytes per copy.write()


class Server:
    """`timefusion serve` with Flight on, as a subprocess with a scrubbed environment."""

    def __init__(self, data_dir: Path, log_path: Path) -> None:
        self.data_dir, self.log_path = data_dir, log_path
        self.port = self.grpc_port = 0
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Server:
        from pgwire_server import free_port

        self.port, self.grpc_port = free_port(), free_port()
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("PGWIRE_", "TIMEFUSION_", "AWS_", "GRPC_"))
        }
        env.update(
            TIMEFUSION_DATA_DIR=str(self.data_dir),
            PGWIRE_PORT=str(self.port),
            TIMEFUSION_PGWIRE_HOST="127.0.0.1",
            PGWIRE_PASSWORD=PASSWORD,
            GRPC_PORT=str(self.grpc_port),
            GRPC_TOKEN=TOKEN,
            TIMEFUSION_GRPC_HOST="127.0.0.1",
            TIMEFUSION_OTLP_ENABLED="false",
            TIMEFUSION_FLUSH_INTERVAL_SECS="3600",  # measure the durable ingest path, not Delta commits
            TIMEFUSION_BUFFER_MAX_MEMORY_MB="6000",
        )
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "timefusion.cli", "serve"],
                env=env,
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + 120
        while True:
            try:
                with psycopg.connect(**self.dsn(), connect_timeout=2) as conn:
                    conn.execute("SELECT 1")
                return self
            except psycopg.Error:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(self.log_path.read_text(errors="replace")[-3000:]) from None
                time.sleep(0.1)

    def dsn(self) -> dict[str, Any]:
        return {
            "host": "127.0.0.1",
            "port": self.port,
            "user": "postgres",
            "password": PASSWORD,
            "dbname": "postgres",
        }

    def cpu(self) -> float:
        assert self.proc is not None
        return cpu_seconds(self.proc.pid)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=300)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


# -- data -------------------------------------------------------------------------------------------


def make_data(rows: int, wide_rows: int) -> tuple[list[pa.RecordBatch], list[pa.RecordBatch], bytes]:
    """Narrow and wide 10k-row batches (timestamps within the last hour) and the narrow rows as COPY
    text."""
    start = dt.datetime.now(dt.UTC).replace(tzinfo=None) - dt.timedelta(hours=1)
    span = dt.timedelta(hours=1)
    wide = [
        compact(b)
        for b in generate_spans(
            wide_rows, project_id=INGEST_PROJECT, start=start, span=span, batch_size=BATCH
        )
    ]
    narrow_src = pa.Table.from_batches(
        list(
            generate_spans(rows, project_id=INGEST_PROJECT, start=start, span=span, batch_size=BATCH, seed=7)
        )
    ).select(list(INGEST_COLUMNS))
    narrow = [compact(b) for b in narrow_src.to_batches(max_chunksize=BATCH)]
    text_cols = narrow_src.set_column(
        narrow_src.schema.get_field_index("hashes"), "hashes", pg_array_text(narrow_src.column("hashes"))
    )
    sink = pa.BufferOutputStream()
    pacsv.write_csv(
        text_cols,
        sink,
        pacsv.WriteOptions(include_header=False, delimiter="\t", quoting_style="none"),
    )
    text = sink.getvalue().to_pybytes()
    if b"\\" in text:
        raise ValueError("generated rows contain backslashes: the COPY text would need escaping")
    return narrow, wide, text


def copy_pieces(text: bytes, rows_per_copy: int) -> list[bytes]:
    """The COPY text cut into pieces of `rows_per_copy` lines."""
    lines = text.split(b"\n")[:-1]
    return [b"\n".join(lines[i : i + rows_per_copy]) + b"\n" for i in range(0, len(lines), rows_per_copy)]


def binary_pieces(pg: Postgres, rows_per_copy: int, total: int) -> list[bytes]:
    """PostgreSQL's own binary COPY of the loaded rows, in pieces of `rows_per_copy` rows."""
    out = []
    with psycopg.connect(**pg.dsn(), autocommit=True) as conn:
        for off in range(0, total, rows_per_copy):
            buf = bytearray()
            sql = (
                f"COPY (SELECT {', '.join(INGEST_COLUMNS)} FROM copy_src ORDER BY n OFFSET {off} LIMIT {rows_per_copy}) "
                "TO STDOUT (FORMAT binary)"
            )
            with conn.cursor() as cur, cur.copy(sql) as copy:
                for block in copy:
                    buf += block
            out.append(bytes(buf))
    return out


# -- cases ------------------------------------------------------------------------------------------


def run_threads(n: int, work: Callable[[int], list[float]]) -> tuple[float, list[float]]:
    latencies: list[list[float]] = [[] for _ in range(n)]
    errors: list[BaseException] = []

    def one(k: int) -> None:
        try:
            latencies[k] = work(k)
        except BaseException as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=one, args=(k,)) for k in range(n)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    secs = time.perf_counter() - t0
    if errors:
        raise errors[0]
    return secs, [x for lat in latencies for x in lat]


def flight_case(server: Server, batches: list[pa.RecordBatch], streams: int) -> dict[str, Any]:
    streams = min(streams, len(batches))
    share = [batches[k::streams] for k in range(streams)]
    options = fl.FlightCallOptions(headers=[(b"authorization", f"Bearer {TOKEN}".encode())])

    def work(k: int) -> list[float]:
        client = fl.connect(f"grpc://127.0.0.1:{server.grpc_port}")
        mine = share[k]
        writer, reader = client.do_put(fl.FlightDescriptor.for_path(TABLE), mine[0].schema, options=options)
        sent: list[float] = []
        lat: list[float] = []
        for b in mine:
            writer.write_batch(b)
            sent.append(time.perf_counter())
            if len(sent) - len(lat) >= WINDOW:
                json.loads(reader.read().to_pybytes())
                lat.append(time.perf_counter() - sent[len(lat)])
        writer.done_writing()
        while len(lat) < len(sent):
            reader.read()
            lat.append(time.perf_counter() - sent[len(lat)])
        writer.close()
        client.close()
        return lat

    cpu0 = server.cpu()
    secs, lat = run_threads(streams, work)
    rows = sum(b.num_rows for b in batches)
    return summary(rows, secs, lat, server.cpu() - cpu0)


def copy_case(target: Any, pieces: list[bytes], clients: int, sql: str) -> dict[str, Any]:
    share = [pieces[k::clients] for k in range(clients)]
    counts: list[int] = [0] * clients

    def work(k: int) -> list[float]:
        lat = []
        with psycopg.connect(**target.dsn(), autocommit=True) as conn, conn.cursor() as cur:
            for data in share[k]:
                t0 = time.perf_counter()
                with cur.copy(sql) as copy:
                    view = memoryview(data)
                    for i in range(0, len(view), BLOCK):
                        copy.write(view[i : i + BLOCK])
                lat.append(time.perf_counter() - t0)
                counts[k] += cur.rowcount
        return lat

    cpu0 = target.cpu()
    secs, lat = run_threads(clients, work)
    return summary(sum(counts), secs, lat, target.cpu() - cpu0)


def insert_case(target: Any, templates: list[list[str]]) -> dict[str, Any]:
    counts = [0] * len(templates)

    def work(k: int) -> list[float]:
        lat = []
        with psycopg.connect(**target.dsn(), autocommit=True) as conn:
            for n, stmt in enumerate(templates[k]):
                t0 = time.perf_counter()
                cur = conn.execute(stmt.replace("@@B@@", f"{n:07d}"), prepare=False)
                lat.append(time.perf_counter() - t0)
                counts[k] += cur.rowcount
        return lat

    cpu0 = target.cpu()
    secs, lat = run_threads(len(templates), work)
    return summary(sum(counts), secs, lat, target.cpu() - cpu0)


def summary(rows: int, secs: float, lat: list[float], cpu: float) -> dict[str, Any]:
    return {
        "rows": rows,
        "secs": secs,
        "rows_per_s": rows / secs,
        "ack_p50_ms": percentile_ms(lat, 50),
        "ack_p99_ms": percentile_ms(lat, 99),
        "server_cpu_s": cpu,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000, help="narrow rows per case")
    ap.add_argument("--wide-rows", type=int, default=300_000, help="92-column rows per Flight case")
    ap.add_argument("--insert-rows", type=int, default=100_000, help="rows per INSERT case")
    ap.add_argument("--quick", action="store_true", help="a tenth of every size")
    ap.add_argument("--out", default=None, help="save the results as JSON")
    args = ap.parse_args()
    if args.quick:
        args.rows, args.wide_rows, args.insert_rows = (
            args.rows // 10,
            args.wide_rows // 10,
            args.insert_rows // 10,
        )
    tmp = Path(tempfile.mkdtemp(prefix="tf-bench-flight-"))
    note(f"generating {args.rows:,} narrow and {args.wide_rows:,} wide rows")
    narrow, wide, text = make_data(args.rows, args.wide_rows)
    pieces = copy_pieces(text, COPY_ROWS)
    pg = Postgres().start()
    tf = Server(tmp / "data", tmp / "server.log").start()
    results: dict[str, dict[str, Any]] = {}
    try:
        with psycopg.connect(**pg.dsn(), autocommit=True) as conn:
            cols = "project_id text, timestamp timestamptz, id text, name text, kind text, status_code text, duration int8, hashes text[]"
            conn.execute(f"CREATE TABLE {TABLE} ({cols})")
            conn.execute(f"CREATE TABLE copy_src ({cols}, n bigserial)")
            with (
                conn.cursor() as cur,
                cur.copy(f"COPY copy_src ({', '.join(INGEST_COLUMNS)}) FROM STDIN") as copy,
            ):
                copy.write(text)
        bin_pieces = binary_pieces(pg, COPY_ROWS, args.rows)
        templates = insert_templates(
            pa.Table.from_batches(narrow[: max(1, args.insert_rows // BATCH)]),
            4,
            max(1, args.insert_rows // 2000),
            500,
        )

        def case(name: str, fn: Callable[[], dict[str, Any]]) -> None:
            note(name)
            results[name] = fn()
            r = results[name]
            note(f"  {fmt_num(r['rows_per_s'])} rows/s, ack p50 {r['ack_p50_ms']:.1f} ms")

        text_sql = f"COPY {TABLE} ({', '.join(INGEST_COLUMNS)}) FROM STDIN"
        bin_sql = text_sql + " (FORMAT binary)"
        case("flight narrow, 1 stream", lambda: flight_case(tf, narrow, 1))
        case("flight narrow, 4 streams", lambda: flight_case(tf, narrow, 4))
        case("flight wide (92 cols), 1 stream", lambda: flight_case(tf, wide, 1))
        case("flight wide (92 cols), 4 streams", lambda: flight_case(tf, wide, 4))
        for fmt, sql, data in (("text", text_sql, pieces), ("binary", bin_sql, bin_pieces)):
            for clients in (1, 4):
                case(
                    f"COPY {fmt}, {clients} conn: timefusion",
                    lambda s=sql, d=data, c=clients: copy_case(tf, d, c, s),
                )
                case(
                    f"COPY {fmt}, {clients} conn: postgresql",
                    lambda s=sql, d=data, c=clients: copy_case(pg, d, c, s),
                )
        case("INSERT 500 rows, 4 conn: timefusion", lambda: insert_case(tf, templates))
        case("INSERT 500 rows, 4 conn: postgresql", lambda: insert_case(pg, templates))
    finally:
        tf.stop()
        pg.stop()

    print()
    print_table(
        ["case", "rows", "secs", "rows/s", "ack p50 ms", "ack p99 ms", "server CPU s", "server CPU µs/row"],
        [
            [
                k,
                fmt_num(r["rows"]),
                f"{r['secs']:.2f}",
                fmt_num(r["rows_per_s"]),
                f"{r['ack_p50_ms']:.1f}",
                f"{r['ack_p99_ms']:.1f}",
                f"{r['server_cpu_s']:.1f}",
                f"{r['server_cpu_s'] / r['rows'] * 1e6:.2f}",
            ]
            for k, r in results.items()
        ],
    )
    print("\nratios (target in brackets):")
    best_flight = max(results[k]["rows_per_s"] for k in results if k.startswith("flight narrow"))
    print(f"  Flight narrow best / 1M rows/s [>= 1]: {best_flight / 1e6:.2f}")
    best_wide = max(results[k]["rows_per_s"] for k in results if k.startswith("flight wide"))
    print(f"  Flight wide best / 1M rows/s [>= 1]: {best_wide / 1e6:.2f}")
    for fmt in ("text", "binary"):
        for clients in (1, 4):
            ours = results[f"COPY {fmt}, {clients} conn: timefusion"]["rows_per_s"]
            theirs = results[f"COPY {fmt}, {clients} conn: postgresql"]["rows_per_s"]
            print(f"  COPY {fmt} {clients} conn, TimeFusion / PostgreSQL [>= 2]: {ours / theirs:.2f}")
    ins = results["INSERT 500 rows, 4 conn: timefusion"]["rows_per_s"]
    best_copy = max(
        results[k]["rows_per_s"] for k in results if k.startswith("COPY") and k.endswith("timefusion")
    )
    print(f"  COPY best / INSERT (TimeFusion): {best_copy / ins:.1f}")
    print(f"  Flight narrow best / INSERT (TimeFusion): {best_flight / ins:.1f}")
    print("  server CPU per row, TimeFusion / PostgreSQL (lower is better; robust on a shared machine):")
    for fmt in ("text", "binary"):
        ours = results[f"COPY {fmt}, 1 conn: timefusion"]
        theirs = results[f"COPY {fmt}, 1 conn: postgresql"]
        ratio = (ours["server_cpu_s"] / ours["rows"]) / max(theirs["server_cpu_s"] / theirs["rows"], 1e-12)
        print(f"    COPY {fmt}: {ratio:.2f}")
    print(f"  load average during the run: {os.getloadavg()[0]:.1f} (2 cores shared with other processes)")
    save_json(args.out, {"args": vars(args), "results": results})
    return 0


if __name__ == "__main__":
    sys.exit(main())
