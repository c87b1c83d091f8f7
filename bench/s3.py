"""Reference dashboard queries on S3 (moto's HTTP server): cold, warm, and local disk, in one run.

Data: `--rows` span rows (bench/datagen.py) of one project over 2025-01-17, ingested in 100k-row
batches and flushed, once into a local data directory and once into a bucket on a moto server
started here (tests/s3_server.py: real HTTP on 127.0.0.1, requests counted from its log).

For each reference query (bench/queries.py):

- **cold**: a fresh TimeFusion on the bucket with an empty read-cache directory (Delta log already
  read at open, which is not timed); the first run, which downloads the data files it needs;
- **warm**: the same instance again (1 warm-up, then the median of `--runs` runs) — served from
  the read cache;
- **local**: the same query on the local-directory instance (median of `--runs`, alternating with
  the warm S3 runs so machine noise hits both alike).

Printed per query: the three times, warm/local and cold/local ratios, S3 GET requests (data files
and Delta log) of the cold run and of all warm runs together, and whether the results of S3 and
local are the same. Target: warm S3 within 1.2× of local disk.

Run from the repo root: `.venv/bin/python bench/s3.py [--rows N] [--runs N] [--out FILE]`.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
for p in (ROOT, ROOT / "tests"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

from s3_server import S3Endpoint, running_endpoint  # noqa: E402

from bench.common import Progress, compact, print_table, save_json  # noqa: E402
from bench.datagen import as_table, generate_spans  # noqa: E402
from bench.queries import FLOAT_TOLERANCE, PROJECT, QUERIES, TABLE, compare  # noqa: E402
from timefusion.app import TimeFusion  # noqa: E402
from timefusion.config import Config  # noqa: E402


def make_db(data_dir: Path, **s3: Any) -> TimeFusion:
    return TimeFusion(
        Config(
            data_dir=data_dir,
            wal_fsync_mode="none",
            flush_interval_secs=3600,
            bucket_duration_secs=300,
            **s3,
        )
    ).open()


def load(db: TimeFusion, data: Any, label: str) -> float:
    progress = Progress(label)
    done = 0
    for b in data.to_batches(max_chunksize=100_000):
        db.ingest(TABLE, compact(b))
        done += b.num_rows
        progress.update(f"{done:,}/{data.num_rows:,} rows")
    t0 = time.perf_counter()
    db.flush()
    return time.perf_counter() - t0


def gets(ep: S3Endpoint, bucket: str) -> tuple[int, int]:
    """(data-file GETs, Delta-log GETs and LISTs) answered so far for `bucket`."""
    reqs = ep.requests("GET", f"/{bucket}")
    data = sum(1 for r in reqs if ".parquet" in r)
    return data, len(reqs) - data


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000, help="span rows of the day (default 1M)")
    ap.add_argument("--runs", type=int, default=5, help="timed warm runs per query (median reported)")
    ap.add_argument("--out", help="save the numbers as JSON")
    args = ap.parse_args(argv)
    started = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix="tf-bench-s3-"))
    print(f"TimeFusion S3 benchmark: {args.rows:,} span rows of {PROJECT} on 2025-01-17, in {tmp}")
    data = as_table(generate_spans(args.rows, project_id=PROJECT, batch_size=100_000))
    results: list[dict[str, Any]] = []
    try:
        with running_endpoint() as ep:
            bucket = ep.create_bucket("tf-bench")
            s3 = ep.config_overrides(bucket)
            s3["s3_request_timeout_secs"] = 60.0
            local = make_db(tmp / "local")
            local_flush = load(local, data, "local: ingest")
            writer = make_db(tmp / "writer", **s3)
            s3_flush = load(writer, data, "s3: ingest")
            files = writer.stores[TABLE].snapshot.num_files
            writer.close(flush=False)
            print(
                f"flushed {args.rows:,} rows: local {local_flush:.1f} s, S3 {s3_flush:.1f} s ({files} files)"
            )
            for i, (qname, sql, _) in enumerate(QUERIES):
                reader = make_db(tmp / f"reader-{i}", **s3)  # empty read cache: a cold start
                try:
                    before = gets(ep, bucket)
                    t0 = time.perf_counter()
                    cold_result = reader.sql(sql).to_table()
                    cold_s = time.perf_counter() - t0
                    after_cold = gets(ep, bucket)
                    reader.sql(sql).to_table()
                    local.sql(sql).to_table()
                    warm, loc = [], []
                    for _ in range(args.runs):
                        t0 = time.perf_counter()
                        warm_result = reader.sql(sql).to_table()
                        t1 = time.perf_counter()
                        local_result = local.sql(sql).to_table()
                        t2 = time.perf_counter()
                        warm.append(t1 - t0)
                        loc.append(t2 - t1)
                    after_warm = gets(ep, bucket)
                    scan = reader.sql(sql).scans[TABLE]
                    tol = FLOAT_TOLERANCE.get(qname, 1e-6)
                    problem = compare(warm_result, local_result, tol) or compare(
                        cold_result, local_result, tol
                    )
                    stats = reader.cache.stats()  # type: ignore[union-attr]
                finally:
                    reader.close(flush=False)
                warm_s, local_s = statistics.median(warm), statistics.median(loc)
                row = {
                    "query": qname,
                    "rows": local_result.num_rows,
                    "files": f"{scan.files_scanned}/{scan.files_total}",
                    "cold_ms": cold_s * 1000,
                    "warm_ms": warm_s * 1000,
                    "local_ms": local_s * 1000,
                    "warm_vs_local": warm_s / local_s,
                    "cold_vs_local": cold_s / local_s,
                    "cold_data_gets": after_cold[0] - before[0],
                    "cold_log_gets": after_cold[1] - before[1],
                    "warm_data_gets": after_warm[0] - after_cold[0],
                    "warm_log_gets": after_warm[1] - after_cold[1],
                    "mb_downloaded": stats["bytes_downloaded"] / 1e6,
                    "mismatch": problem,
                }
                results.append(row)
                print(
                    f"  {qname}: cold {row['cold_ms']:.0f} ms, warm {row['warm_ms']:.1f} ms, "
                    f"local {row['local_ms']:.1f} ms",
                    flush=True,
                )
            local.close(flush=False)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    print()
    print_table(
        [
            "query",
            "rows",
            "files",
            "cold ms",
            "warm ms",
            "local ms",
            "warm/local",
            "cold/local",
            "cold GETs data+log",
            f"warm GETs ({args.runs + 1} runs)",
            "MB down",
            "same",
        ],
        [
            [
                r["query"],
                str(r["rows"]),
                r["files"],
                f"{r['cold_ms']:.0f}",
                f"{r['warm_ms']:.1f}",
                f"{r['local_ms']:.1f}",
                f"{r['warm_vs_local']:.2f}x",
                f"{r['cold_vs_local']:.1f}x",
                f"{r['cold_data_gets']}+{r['cold_log_gets']}",
                f"{r['warm_data_gets']}+{r['warm_log_gets']}",
                f"{r['mb_downloaded']:.1f}",
                "ok" if r["mismatch"] is None else "DIFF",
            ]
            for r in results
        ],
        "lllrrrrrrrrl",
    )
    for r in results:
        if r["mismatch"] is not None:
            print(f"WARNING: {r['query']}: S3 and local results differ: {r['mismatch']}")
    ratios = [r["warm_vs_local"] for r in results]
    print(
        f"\nwarm S3 / local: geometric mean {statistics.geometric_mean(ratios):.2f}x, "
        f"worst {max(ratios):.2f}x (target <= 1.2x)"
    )
    print(f"total benchmark time {time.perf_counter() - started:.0f} s")
    save_json(args.out, {"args": vars(args), "results": results})
    return 0


if __name__ == "__main__":
    sys.exit(main())
