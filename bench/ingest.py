"""Ingest throughput and ack latency of `TimeFusion.ingest` with an fsync'd WAL, against baselines.

For each batch size (100 / 10,000 / 100,000 rows) and writer count (1 and 4 threads) the same
pre-generated span batches (bench/datagen.py; compact copies, as if they came off the network) go
through `db.ingest("otel_logs_and_spans", batch)` with `wal_fsync_mode=sync_each` until a time
budget or a row cap is reached (the batch pool is cycled). Baselines, measured in the same run:

- floor: the same batches, already coerced to the table schema, appended as Arrow IPC to one file
  with an fsync per batch (what the WAL alone must cost; no coercion, no buffer);
- delta/batch: `write_deltalake` of each batch as its own Delta commit (what writing straight to
  Delta without a WAL + buffer would give);
- flush: `db.flush()` of 1M buffered rows vs `write_deltalake` of the same rows in one commit with
  the same writer properties (what the flusher adds: dedup, sort, snapshot).

Run from the repo root: `.venv/bin/python bench/ingest.py [--quick] [--rows N] [--out FILE]`.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import pyarrow as pa  # noqa: E402
from deltalake import DeltaTable, WriterProperties, write_deltalake  # noqa: E402

from bench.common import Progress, compact, fmt_num, percentile_ms, print_table, save_json  # noqa: E402
from bench.datagen import as_table, generate_spans  # noqa: E402
from timefusion.app import TimeFusion  # noqa: E402
from timefusion.config import Config  # noqa: E402
from timefusion.schema import load_tables  # noqa: E402
from timefusion.write.coerce import coerce  # noqa: E402

TABLE = "otel_logs_and_spans"
SCHEMA = load_tables()[TABLE]


def make_db(data_dir: Path) -> TimeFusion:
    return TimeFusion(
        Config(
            data_dir=data_dir, wal_fsync_mode="sync_each", flush_interval_secs=3600, bucket_duration_secs=300
        )
    ).open()


def run_engine(
    batches: list[pa.RecordBatch], threads: int, budget: float, max_rows: int, tmp: Path, label: str
) -> dict[str, Any]:
    """Feed `batches` (cycled) to db.ingest from `threads` threads until `budget` s or `max_rows`."""
    data_dir = Path(tempfile.mkdtemp(prefix="ingest-", dir=tmp))
    db = make_db(data_dir)
    lock = threading.Lock()
    state = {"next": 0, "rows": 0}
    latencies: list[list[float]] = [[] for _ in range(threads)]
    errors: list[BaseException] = []
    progress = Progress(label)
    t0 = time.perf_counter()
    deadline = t0 + budget

    def worker(k: int) -> None:
        lat = latencies[k]
        try:
            while True:
                with lock:
                    if state["rows"] >= max_rows or time.perf_counter() >= deadline:
                        return
                    i = state["next"]
                    state["next"] += 1
                    batch = batches[i % len(batches)]
                    state["rows"] += batch.num_rows
                s = time.perf_counter()
                db.ingest(TABLE, batch)
                lat.append(time.perf_counter() - s)
                if k == 0:
                    progress.update(f"{state['rows']:,} rows")
        except BaseException as e:  # report, do not hang the other threads
            errors.append(e)
            state["rows"] = max_rows

    pool = [threading.Thread(target=worker, args=(k,)) for k in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    elapsed = time.perf_counter() - t0
    buffered = db.buffer.stats()["rows"]
    db.close(flush=False)  # the rows are not needed in Delta; this is a crash-style stop
    shutil.rmtree(data_dir, ignore_errors=True)
    if errors:
        raise errors[0]
    lat = [x for part in latencies for x in part]
    rows = state["rows"]
    if buffered != rows:
        print(f"WARNING: {label}: {rows:,} rows acked but {buffered:,} in the buffer", file=sys.stderr)
    return {
        "rows": rows,
        "batches": len(lat),
        "secs": elapsed,
        "rows_per_s": rows / elapsed,
        "p50_ms": percentile_ms(lat, 50),
        "p99_ms": percentile_ms(lat, 99),
    }


def run_ipc_floor(batches: list[pa.RecordBatch], count: int, budget: float, tmp: Path) -> dict[str, Any]:
    """Arrow IPC append + fsync per batch, one thread: the floor for a durable ack."""
    path = tmp / "floor.arrows"
    lat: list[float] = []
    rows = 0
    with open(path, "wb") as f:
        sink = pa.PythonFile(f, mode="w")
        writer = pa.ipc.new_stream(sink, batches[0].schema)
        t0 = time.perf_counter()
        for i in range(count):
            s = time.perf_counter()
            batch = batches[i % len(batches)]
            writer.write_batch(batch)
            f.flush()
            os.fsync(f.fileno())
            lat.append(time.perf_counter() - s)
            rows += batch.num_rows
            if time.perf_counter() - t0 >= budget:
                break
        elapsed = time.perf_counter() - t0
        writer.close()
    path.unlink()
    return {
        "rows": rows,
        "batches": len(lat),
        "secs": elapsed,
        "rows_per_s": rows / elapsed,
        "p50_ms": percentile_ms(lat, 50),
        "p99_ms": percentile_ms(lat, 99),
    }


WRITER = WriterProperties(compression="ZSTD", compression_level=3, max_row_group_size=131072)


def run_delta_per_batch(
    batches: list[pa.RecordBatch], budget: float, max_rows: int, tmp: Path
) -> dict[str, Any]:
    """`write_deltalake` of each (coerced) batch as one commit through a long-lived DeltaTable."""
    path = tmp / "delta-per-batch"
    DeltaTable.create(str(path), schema=SCHEMA.arrow_schema, partition_by=list(SCHEMA.partition_by))
    dt = DeltaTable(str(path))
    lat: list[float] = []
    rows = 0
    t0 = time.perf_counter()
    i = 0
    while time.perf_counter() - t0 < budget and rows < max_rows:
        batch = batches[i % len(batches)]
        i += 1
        s = time.perf_counter()
        write_deltalake(
            dt, batch, mode="append", partition_by=list(SCHEMA.partition_by), writer_properties=WRITER
        )
        lat.append(time.perf_counter() - s)
        rows += batch.num_rows
    elapsed = time.perf_counter() - t0
    shutil.rmtree(path, ignore_errors=True)
    return {
        "rows": rows,
        "batches": len(lat),
        "secs": elapsed,
        "rows_per_s": rows / elapsed,
        "p50_ms": percentile_ms(lat, 50),
        "p99_ms": percentile_ms(lat, 99),
    }


def run_flush(rows: int, tmp: Path) -> dict[str, Any]:
    """db.flush() of `rows` buffered rows vs write_deltalake of the same rows (one commit)."""
    progress = Progress("flush")
    data = as_table(generate_spans(rows, batch_size=100_000))
    batches = [compact(b) for b in data.to_batches(max_chunksize=100_000)]
    data_dir = Path(tempfile.mkdtemp(prefix="flush-", dir=tmp))
    db = make_db(data_dir)
    t0 = time.perf_counter()
    for b in batches:
        db.ingest(TABLE, b)
    ingest_secs = time.perf_counter() - t0
    progress.update(f"{rows:,} rows ingested in {ingest_secs:.1f} s; flushing", force=True)
    t0 = time.perf_counter()
    flushed = db.flush()
    flush_secs = time.perf_counter() - t0
    snapshot = db.stores[TABLE].snapshot
    files = snapshot.num_files
    db.close(flush=False)
    shutil.rmtree(data_dir, ignore_errors=True)
    if flushed != rows:
        print(f"WARNING: flush committed {flushed:,} rows, expected {rows:,}", file=sys.stderr)

    progress.update("write_deltalake baseline", force=True)
    coerced = pa.Table.from_batches([coerce(SCHEMA, b) for b in batches])
    path = tmp / "delta-baseline"
    DeltaTable.create(str(path), schema=SCHEMA.arrow_schema, partition_by=list(SCHEMA.partition_by))
    dt = DeltaTable(str(path))
    t0 = time.perf_counter()
    write_deltalake(
        dt, coerced, mode="append", partition_by=list(SCHEMA.partition_by), writer_properties=WRITER
    )
    delta_secs = time.perf_counter() - t0
    shutil.rmtree(path, ignore_errors=True)
    return {
        "rows": rows,
        "ingest_secs": ingest_secs,
        "flush_secs": flush_secs,
        "flush_rows_per_s": rows / flush_secs,
        "files": files,
        "write_deltalake_secs": delta_secs,
        "write_deltalake_rows_per_s": rows / delta_secs,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000, help="max rows per ingest case (default 1M)")
    ap.add_argument("--seconds", type=float, default=8.0, help="time budget per ingest case (default 8)")
    ap.add_argument("--sizes", default="100,10000,100000", help="batch sizes (comma separated)")
    ap.add_argument("--threads", default="1,4", help="writer thread counts (comma separated)")
    ap.add_argument("--flush-rows", type=int, default=1_000_000, help="rows buffered for the flush test")
    ap.add_argument("--quick", action="store_true", help="2 s per case, 200k rows max, 200k-row flush")
    ap.add_argument("--out", help="save the numbers as JSON (e.g. bench/results/ingest.json)")
    args = ap.parse_args(argv)
    if args.quick:
        args.seconds, args.rows, args.flush_rows = 2.0, min(args.rows, 200_000), min(args.flush_rows, 200_000)
    sizes = [int(s) for s in args.sizes.split(",")]
    thread_counts = [int(t) for t in args.threads.split(",")]
    tmp = Path(tempfile.mkdtemp(prefix="tf-bench-ingest-"))
    started = time.perf_counter()
    print(
        f"TimeFusion ingest benchmark: table {TABLE} ({len(SCHEMA.columns)} columns), "
        "wal_fsync_mode=sync_each, "
        f"{args.seconds:g} s or {args.rows:,} rows per case, {os.cpu_count()} CPUs, data in {tmp}"
    )
    pool_rows = min(max(args.rows, max(sizes)), 400_000)
    t0 = time.perf_counter()
    pool = as_table(generate_spans(pool_rows, batch_size=100_000))
    print(
        f"generated a pool of {pool_rows:,} span rows in {time.perf_counter() - t0:.1f} s (cycled per case)\n"
    )

    results: dict[str, Any] = {"cases": []}
    try:
        for size in sizes:
            batches = [compact(b) for b in pool.to_batches(max_chunksize=size) if b.num_rows == size]
            coerced = [coerce(SCHEMA, b) for b in batches]
            mb_per_row = sum(b.nbytes for b in coerced) / sum(b.num_rows for b in coerced) / 1e6
            case: dict[str, Any] = {"batch_size": size, "bytes_per_row": mb_per_row * 1e6}
            for threads in thread_counts:
                label = f"batch={size:,} writers={threads}"
                r = run_engine(batches, threads, args.seconds, args.rows, tmp, label)
                case[f"engine_{threads}"] = r
                print(
                    f"  {label}: {fmt_num(r['rows_per_s'])} rows/s, p50 {r['p50_ms']:.2f} ms, "
                    f"p99 {r['p99_ms']:.2f} ms ({r['batches']:,} batches)",
                    file=sys.stderr,
                )
            count = max(case[f"engine_{t}"]["batches"] for t in thread_counts)
            case["floor"] = run_ipc_floor(coerced, count, args.seconds, tmp)
            case["delta_per_batch"] = run_delta_per_batch(coerced, min(args.seconds, 5.0), args.rows, tmp)
            results["cases"].append(case)
        print("  flush test…", file=sys.stderr)
        results["flush"] = run_flush(args.flush_rows, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    print("== db.ingest (coerce → WAL append + fsync, group commit → buffer) vs baselines ==")
    rows_out = []
    for case in results["cases"]:
        size = case["batch_size"]
        floor = case["floor"]["rows_per_s"]
        for key, what in [
            *((f"engine_{t}", f"db.ingest, {t} writer{'s' if t > 1 else ''}") for t in thread_counts),
            ("floor", "floor: IPC append + fsync/batch"),
            ("delta_per_batch", "write_deltalake per batch"),
        ]:
            r = case[key]
            rows_out.append(
                [
                    f"{size:,}",
                    what,
                    fmt_num(r["rows"]),
                    f"{r['secs']:.1f}",
                    fmt_num(r["rows_per_s"]),
                    f"{r['rows_per_s'] * case['bytes_per_row'] / 1e6:.0f}",
                    f"{r['p50_ms']:.2f}",
                    f"{r['p99_ms']:.2f}",
                    f"{r['rows_per_s'] / floor:.2f}x",
                ]
            )
    print_table(
        ["batch", "path", "rows", "secs", "rows/s", "MB/s", "p50 ms", "p99 ms", "vs floor"],
        rows_out,
        "rlrrrrrrr",
    )
    print("(MB/s = Arrow bytes of the coerced rows; 'vs floor' = rows/s ÷ IPC+fsync floor rows/s)")
    f = results["flush"]
    print("\n== flush: buffered rows → Delta ==")
    print_table(
        ["what", "rows", "secs", "rows/s"],
        [
            [
                f"db.flush() ({f['files']} files written)",
                fmt_num(f["rows"]),
                f"{f['flush_secs']:.2f}",
                fmt_num(f["flush_rows_per_s"]),
            ],
            [
                "write_deltalake, same rows, 1 commit",
                fmt_num(f["rows"]),
                f"{f['write_deltalake_secs']:.2f}",
                fmt_num(f["write_deltalake_rows_per_s"]),
            ],
        ],
        "lrrr",
    )
    print(
        f"flush / write_deltalake time ratio: {f['flush_secs'] / f['write_deltalake_secs']:.2f}x "
        f"(ingest of those rows in 100k batches took {f['ingest_secs']:.1f} s)"
    )
    print(f"\ntotal benchmark time {time.perf_counter() - started:.0f} s")
    save_json(args.out, {"args": vars(args), **results})
    return 0


if __name__ == "__main__":
    sys.exit(main())
