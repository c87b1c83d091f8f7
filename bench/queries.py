"""The reference queries through `TimeFusion.sql` vs raw DataFusion over the same Parquet files.

Data: `--rows` span rows (bench/datagen.py) of one project over 2025-01-17, ingested in 100k-row
batches. Two variants:

- `delta`:  everything flushed to Delta (`db.flush()`);
- `mixed`:  every 5th row (20 %, spread over the whole day) ingested after the flush in 10k-row
            batches and left in the buffer; the rest in Delta.
- `mixed-small` (not run by default): as `mixed`, but the buffered rows arrive as 100-row batches.

Each query runs warm (1 warm-up, then the median of `--runs` runs) end to end: `db.sql(text)` plus
collecting the result (`.to_table()`), which includes rewriting, pruning, per-query session setup and
execution. The baseline is one long-lived `datafusion.SessionContext` (same session settings as the
engine) in which every Parquet file of the Delta snapshot is registered with `register_parquet` and
joined in a `UNION ALL` view with the partition columns as literals (plus, for `mixed`, the buffered
rows as an in-memory table), queried with the PostgreSQL-equivalent DataFusion SQL (`time_bucket` →
`date_bin`, `::INT` → `ROUND` then cast). Results are compared (row count, then values with a small
float tolerance, ignoring order among ties) and a WARNING line is printed on a difference.

Run from the repo root: `.venv/bin/python bench/queries.py [--quick] [--rows N] [--out FILE]`.
"""

from __future__ import annotations

import argparse
import cProfile
import datetime as dt
import io
import math
import pstats
import shutil
import statistics
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.compute as pc  # noqa: E402
from datafusion import SessionConfig, SessionContext  # noqa: E402

from bench.common import Progress, compact, print_table, save_json  # noqa: E402
from bench.datagen import as_table, generate_spans  # noqa: E402
from timefusion.app import TimeFusion  # noqa: E402
from timefusion.config import Config  # noqa: E402
from timefusion.schema import load_tables  # noqa: E402
from timefusion.write.coerce import coerce  # noqa: E402

TABLE = "otel_logs_and_spans"
SCHEMA = load_tables()[TABLE]
PROJECT = "prod-api-001"


def _sql(text: str) -> str:
    """One line, single spaces (no string literal here contains a run of blanks)."""
    return " ".join(text.split())


_HOUR = "timestamp >= '2025-01-17 14:00:00' AND timestamp < '2025-01-17 15:00:00'"
_HALF_HOUR = "timestamp >= '2025-01-17 14:30:00' AND timestamp < '2025-01-17 15:00:00'"
_WHERE_HOUR = f"project_id = 'prod-api-001' AND {_HOUR}"
_ERRORS = "COUNT(*) FILTER (WHERE attributes___http___response___status_code >= 400)"
_Q3 = f"""SELECT name AS endpoint, date_trunc('hour', timestamp) AS hour, COUNT(*) AS total_requests,
    {_ERRORS} AS errors, ROUND(100.0 * {_ERRORS} / COUNT(*), 2) AS error_rate
    FROM otel_logs_and_spans WHERE project_id = 'prod-api-001' AND timestamp >= '2025-01-16 15:00:00'
    AND timestamp < '2025-01-17 15:00:00' GROUP BY name, date_trunc('hour', timestamp)
    ORDER BY hour DESC, error_rate DESC"""
_EPOCH = "TIMESTAMP '1970-01-01T00:00:00Z'"

# (short name, our SQL = the README's reference query, raw DataFusion SQL with PostgreSQL's semantics)
QUERIES: list[tuple[str, str, str]] = [
    (
        "count by name (day)",
        """SELECT name, COUNT(*) AS count FROM otel_logs_and_spans WHERE project_id = 'prod-api-001'
        AND date = '2025-01-17' GROUP BY name ORDER BY count DESC""",
        """SELECT name, COUNT(*) AS count FROM otel_logs_and_spans WHERE project_id = 'prod-api-001'
        AND date = '2025-01-17' GROUP BY name ORDER BY count DESC""",
    ),
    (
        "slow endpoints (1 h)",
        f"""SELECT name AS endpoint, COUNT(*) AS request_count,
        AVG(duration / 1000000)::INT AS avg_duration_ms, MAX(duration / 1000000)::INT AS max_duration_ms
        FROM otel_logs_and_spans WHERE {_WHERE_HOUR}
        AND duration > 1000000000 GROUP BY name ORDER BY avg_duration_ms DESC""",
        f"""SELECT name AS endpoint, COUNT(*) AS request_count,
        CAST(ROUND(AVG(duration / 1000000)) AS INT) AS avg_duration_ms,
        CAST(MAX(duration / 1000000) AS INT) AS max_duration_ms FROM otel_logs_and_spans WHERE {_WHERE_HOUR}
        AND duration > 1000000000 GROUP BY name ORDER BY avg_duration_ms DESC""",
    ),
    ("error rate by hour (24 h)", _Q3, _Q3),
    (
        "trace lookup (1 h)",
        f"""SELECT id AS trace_id, name AS endpoint, timestamp, (duration / 1000000)::INT AS duration_ms,
        attributes___error___type AS error_type FROM otel_logs_and_spans
        WHERE project_id = 'prod-api-001' AND 'trace_124' = ANY(hashes) AND {_HOUR}""",
        f"""SELECT id AS trace_id, name AS endpoint, timestamp,
        CAST(duration / 1000000 AS INT) AS duration_ms, attributes___error___type AS error_type
        FROM otel_logs_and_spans
        WHERE project_id = 'prod-api-001' AND array_has(hashes, 'trace_124') AND {_HOUR}""",
    ),
    (
        "p95 per 5 min (1 h)",
        f"""SELECT time_bucket(INTERVAL '5 minutes', timestamp) AS bucket, COUNT(*) AS requests,
        AVG(duration / 1000000)::INT AS avg_duration_ms,
        PERCENTILE_CONT(0.95) WITHIN GROUP (ORDER BY duration / 1000000) AS p95_duration_ms
        FROM otel_logs_and_spans WHERE {_WHERE_HOUR} GROUP BY bucket ORDER BY bucket DESC""",
        f"""SELECT date_bin(INTERVAL '5 minutes', timestamp, {_EPOCH}) AS bucket, COUNT(*) AS requests,
        CAST(ROUND(AVG(duration / 1000000)) AS INT) AS avg_duration_ms,
        PERCENTILE_CONT(0.95) WITHIN GROUP (ORDER BY duration / 1000000) AS p95_duration_ms
        FROM otel_logs_and_spans WHERE {_WHERE_HOUR} GROUP BY bucket ORDER BY bucket DESC""",
    ),
    (
        "moving avg per minute (30 min)",
        f"""WITH ts AS (SELECT time_bucket(INTERVAL '1 minute', timestamp) AS minute, name AS endpoint,
        AVG(duration / 1000000) AS avg_duration_ms FROM otel_logs_and_spans
        WHERE project_id = 'prod-api-001' AND {_HALF_HOUR} GROUP BY minute, endpoint)
        SELECT minute, endpoint, avg_duration_ms::INT, AVG(avg_duration_ms) OVER (PARTITION BY endpoint
        ORDER BY minute ROWS BETWEEN 2 PRECEDING AND CURRENT ROW)::INT AS moving_avg FROM ts
        ORDER BY endpoint, minute DESC""",
        f"""WITH ts AS (SELECT date_bin(INTERVAL '1 minute', timestamp, {_EPOCH}) AS minute,
        name AS endpoint, AVG(duration / 1000000) AS avg_duration_ms FROM otel_logs_and_spans
        WHERE project_id = 'prod-api-001' AND {_HALF_HOUR} GROUP BY minute, endpoint)
        SELECT minute, endpoint, CAST(ROUND(avg_duration_ms) AS INT) AS avg_duration_ms,
        CAST(ROUND(AVG(avg_duration_ms) OVER (PARTITION BY endpoint ORDER BY minute
        ROWS BETWEEN 2 PRECEDING AND CURRENT ROW)) AS INT) AS moving_avg FROM ts
        ORDER BY endpoint, minute DESC""",
    ),
]
QUERIES = [(name, _sql(ours), _sql(raw)) for name, ours, raw in QUERIES]

# Absolute float tolerance per query where raw DataFusion is known to be less exact than PostgreSQL:
# DataFusion 55's percentile_cont truncates the interpolation fraction to six decimals (the engine
# computes it exactly), so raw differs by up to 1e-6 × the gap between neighbouring values.
FLOAT_TOLERANCE = {"p95 per 5 min (1 h)": 1e-2}


# -- the two sides ------------------------------------------------------------------------------


def raw_context(db: TimeFusion, buffered: pa.Table | None) -> SessionContext:
    """A plain DataFusion session over the snapshot's Parquet files (+ the buffered rows)."""
    ctx = SessionContext(
        SessionConfig()
        .set("datafusion.execution.parquet.schema_force_view_types", "false")
        .set("datafusion.execution.time_zone", "+00:00")
    )
    files = db.stores[TABLE].snapshot.files
    branches = []
    for i, (path, project, date) in enumerate(
        zip(
            files.column("path").to_pylist(),
            files.column("project_id").to_pylist(),
            files.column("date").to_pylist(),
        )
    ):
        ctx.register_parquet(f"f{i}", path.removeprefix("file://"))
        present = set(ctx.table(f"f{i}").schema().names)
        cols = []
        for c in SCHEMA.columns:
            if c.name == "project_id":
                cols.append(f"'{project}' AS project_id")
            elif c.name == "date":
                cols.append(f"DATE '{date.isoformat()}' AS date")
            elif c.name in present:
                cols.append(f'"{c.name}"')
            else:
                cols.append(f'CAST(NULL AS {_sql_type(c.arrow_type)}) AS "{c.name}"')
        branches.append(f"SELECT {', '.join(cols)} FROM f{i}")
    if buffered is not None and buffered.num_rows:
        ctx.register_record_batches("buffered", [buffered.to_batches()])
        branches.append("SELECT * FROM buffered")
    ctx.sql(f"CREATE VIEW {TABLE} AS {' UNION ALL '.join(branches)}")
    return ctx


def _sql_type(t: pa.DataType) -> str:
    return {pa.string(): "VARCHAR", pa.int32(): "INT", pa.int64(): "BIGINT", pa.bool_(): "BOOLEAN"}.get(
        t, "VARCHAR"
    )


def timed_pair(ours: Any, raw: Any, runs: int) -> tuple[list[float], Any, list[float], Any]:
    """1 warm-up each, then `runs` rounds alternating ours/raw (so machine noise hits both alike).

    Returns (our times, our last result, raw times, raw last result), in seconds.
    """
    ours_result, raw_result = ours(), raw()
    ours_times, raw_times = [], []
    for _ in range(runs):
        t0 = time.perf_counter()
        ours_result = ours()
        t1 = time.perf_counter()
        raw_result = raw()
        t2 = time.perf_counter()
        ours_times.append(t1 - t0)
        raw_times.append(t2 - t1)
    return ours_times, ours_result, raw_times, raw_result


# -- comparing results --------------------------------------------------------------------------


def _norm_value(v: Any) -> Any:
    if isinstance(v, Decimal):
        return float(v)
    if isinstance(v, dt.datetime):
        return v.astimezone(dt.UTC) if v.tzinfo else v.replace(tzinfo=dt.UTC)
    return v


def _norm_table(t: pa.Table) -> list[tuple]:
    cols = []
    for c in t.columns:
        if pa.types.is_timestamp(c.type):
            c = c.cast(pa.timestamp("us", tz="UTC"))
        cols.append([_norm_value(v) for v in c.to_pylist()])
    return list(zip(*cols)) if cols else []


def _close(a: Any, b: Any, tol: float) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        if a is None or b is None:
            return a is b
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=tol)
    return a == b


def compare(ours: pa.Table, raw: pa.Table, tol: float = 1e-6) -> str | None:
    """None when equal (up to order among ties and float noise), else what differs."""
    if ours.num_rows != raw.num_rows:
        return f"row count {ours.num_rows} vs raw {raw.num_rows}"
    if ours.num_columns != raw.num_columns:
        return f"column count {ours.num_columns} vs raw {raw.num_columns}"
    a, b = _norm_table(ours), _norm_table(raw)

    def key(r: tuple) -> tuple:
        return tuple((x is None, round(x, 6) if isinstance(x, float) else x) for x in r)

    try:
        a, b = sorted(a, key=key), sorted(b, key=key)
    except TypeError:
        a, b = sorted(a, key=repr), sorted(b, key=repr)
    for i, (ra, rb) in enumerate(zip(a, b)):
        if not all(_close(x, y, tol) for x, y in zip(ra, rb)):
            return f"values differ, e.g. {ra} vs raw {rb} (row {i} after sorting)"
    return None


# -- one variant ---------------------------------------------------------------------------------


def run_variant(
    name: str, db: TimeFusion, buffered: pa.Table | None, runs: int, profile: bool
) -> list[dict[str, Any]]:
    ctx = raw_context(db, buffered)
    progress = Progress(f"queries[{name}]", every=0)
    out = []
    for qname, ours_sql, raw_sql in QUERIES:
        ours_all, ours_t, raw_all, raw_t = timed_pair(
            lambda q=ours_sql: db.sql(q).to_table(), lambda q=raw_sql: ctx.sql(q).to_arrow_table(), runs
        )
        ours_s, raw_s = statistics.median(ours_all), statistics.median(raw_all)
        scan = db.sql(ours_sql).scans.get(TABLE)
        problem = compare(ours_t, raw_t, FLOAT_TOLERANCE.get(qname, 1e-6))
        ratio = ours_s / raw_s if raw_s else float("nan")
        progress.update(f"{qname}: {ours_s * 1000:.1f} ms vs raw {raw_s * 1000:.1f} ms", force=True)
        row = {
            "variant": name,
            "query": qname,
            "rows": ours_t.num_rows,
            "raw_rows": raw_t.num_rows,
            "ours_ms": ours_s * 1000,
            "raw_ms": raw_s * 1000,
            "ratio": ratio,
            "ours_runs_ms": [x * 1000 for x in ours_all],
            "raw_runs_ms": [x * 1000 for x in raw_all],
            "files_total": scan.files_total if scan else None,
            "files_scanned": scan.files_scanned if scan else None,
            "buffer_batches": scan.buffer_batches if scan else None,
            "mismatch": problem,
        }
        if profile and ratio > 1.5 and ours_s - raw_s > 0.005:
            row["profile"] = profile_query(db, ours_sql)
        out.append(row)
    return out


def profile_query(db: TimeFusion, sql: str, top: int = 18) -> str:
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(3):
        db.sql(sql).to_table()
    prof.disable()
    buf = io.StringIO()
    pstats.Stats(prof, stream=buf).sort_stats("cumulative").print_stats(top)
    return buf.getvalue()


def make_db(data_dir: Path) -> TimeFusion:
    return TimeFusion(
        Config(
            data_dir=data_dir, wal_fsync_mode="sync_each", flush_interval_secs=3600, bucket_duration_secs=300
        )
    ).open()


def ingest(db: TimeFusion, data: pa.Table, batch_size: int, label: str) -> float:
    progress = Progress(label)
    t0 = time.perf_counter()
    done = 0
    for b in data.to_batches(max_chunksize=batch_size):
        db.ingest(TABLE, compact(b))
        done += b.num_rows
        progress.update(f"{done:,}/{data.num_rows:,} rows")
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000, help="span rows of the day (default 1M)")
    ap.add_argument("--quick", action="store_true", help="100k rows")
    ap.add_argument("--runs", type=int, default=5, help="timed runs per query (median reported)")
    ap.add_argument(
        "--variants",
        default="delta,mixed",
        help="delta, mixed, mixed-small (comma separated; default delta,mixed)",
    )
    ap.add_argument("--profile", action="store_true", help="cProfile queries much slower than raw")
    ap.add_argument("--out", help="save the numbers as JSON (e.g. bench/results/queries.json)")
    args = ap.parse_args(argv)
    if args.quick:
        args.rows = min(args.rows, 100_000)
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    started = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix="tf-bench-queries-"))
    print(f"TimeFusion query benchmark: {args.rows:,} span rows of {PROJECT} on 2025-01-17, data in {tmp}")
    t0 = time.perf_counter()
    data = as_table(generate_spans(args.rows, project_id=PROJECT, batch_size=100_000))
    print(
        f"generated in {time.perf_counter() - t0:.1f} s; "
        f"warm timings: 1 warm-up + median of {args.runs} runs\n"
    )

    results: list[dict[str, Any]] = []
    setup: dict[str, Any] = {}
    try:
        for variant in variants:
            db = make_db(tmp / variant)
            try:
                if variant == "delta":
                    in_delta, buffered = data, None
                elif variant in ("mixed", "mixed-small"):
                    keep = pa.array(np.arange(data.num_rows) % 5 != 4)  # every 5th row → buffer
                    in_delta, buffered = data.filter(keep), data.filter(pc.invert(keep))
                else:
                    raise SystemExit(f"unknown variant {variant!r}")
                secs = ingest(db, in_delta, 100_000, f"{variant}: ingest")
                t0 = time.perf_counter()
                flushed = db.flush()
                flush_secs = time.perf_counter() - t0
                buf_secs = 0.0
                if buffered is not None:
                    size = 100 if variant == "mixed-small" else 10_000
                    buf_secs = ingest(db, buffered, size, f"{variant}: ingest (buffer only)")
                    buffered = pa.Table.from_batches([coerce(SCHEMA, b) for b in buffered.to_batches()])
                snap = db.stores[TABLE].snapshot
                setup[variant] = {
                    "rows_in_delta": flushed,
                    "rows_in_buffer": 0 if buffered is None else buffered.num_rows,
                    "delta_files": snap.num_files,
                    "ingest_secs": secs + buf_secs,
                    "flush_secs": flush_secs,
                }
                print(
                    f"[{variant}] {flushed:,} rows in Delta ({snap.num_files} files, "
                    f"flush {flush_secs:.1f} s), "
                    f"{setup[variant]['rows_in_buffer']:,} rows in the buffer; "
                    f"ingest took {secs + buf_secs:.1f} s",
                    flush=True,
                )
                results += run_variant(variant, db, buffered, args.runs, args.profile)
            finally:
                db.close(flush=False)
                shutil.rmtree(tmp / variant, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    print()
    table = []
    for r in results:
        table.append(
            [
                r["variant"],
                r["query"],
                f"{r['rows']}",
                f"{r['ours_ms']:.1f}",
                f"{r['raw_ms']:.1f}",
                f"{r['ratio']:.2f}x",
                f"{r['files_scanned']}/{r['files_total']}",
                f"{r['buffer_batches']}",
                "ok" if r["mismatch"] is None else "DIFF",
            ]
        )
    print_table(
        [
            "variant",
            "query",
            "rows",
            "ours ms",
            "raw DF ms",
            "ours/raw",
            "files scanned/total",
            "buf batches",
            "same",
        ],
        table,
        "llrrrrrrl",
    )
    for r in results:
        if r["mismatch"] is not None:
            print(
                f"WARNING: [{r['variant']}] {r['query']}: result differs from raw DataFusion: {r['mismatch']}"
            )
    for v in variants:
        rs = [r["ratio"] for r in results if r["variant"] == v]
        if rs:
            print(f"[{v}] geometric mean ours/raw: {statistics.geometric_mean(rs):.2f}x")
    for r in results:
        if "profile" in r:
            print(f"\n-- cProfile, [{r['variant']}] {r['query']} (3 runs) --\n{r['profile']}")
    print(f"\ntotal benchmark time {time.perf_counter() - started:.0f} s")
    save_json(args.out, {"args": vars(args), "setup": setup, "results": results})
    return 0


if __name__ == "__main__":
    sys.exit(main())
