"""Throughput of the Arrow → PostgreSQL DataRow encoder (timefusion.protocol.pgwire.encode).

Encodes 1M rows × 6 columns (int64, float64, text, timestamptz, bool, text[]; a few percent NULLs in
the float and text columns, some array elements that need quoting) in text and in binary format:

- as one 1M-row batch (``encode_batch`` → the vectorised path),
- as 8,192-row batches (DataFusion's default batch size; what a query stream hands the server),

and prints rows/s for each, plus the ratio against a baseline measured in the same process: the
per-row encoder (``encode_rows``) on 50,000 rows. DESIGN.md §3 measured 1.6–2.0 M rows/s (text) and
2.8 M rows/s (binary) for a similar encoder on these 2-core machines.

Run from the repo root: ``.venv/bin/python bench/encode.py [--rows N] [--repeat K] [--profile]``.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from timefusion.protocol.pgwire import encode as enc
from timefusion.protocol.pgwire.encode import encode_batch, encode_batch_chunks, encode_rows

SERVICES = [f"service-{i:03d}" for i in range(200)]
TAGS = ["env:prod", "env:staging", "region:eu-west-1", "team checkout", "tier:1", "canary", "v2.3.1", ""]


def make_batch(n: int, seed: int = 42) -> pa.RecordBatch:
    """Deterministic rows shaped like span data: ids, durations, service names, times, flags, tags."""
    rng = np.random.default_rng(seed)
    ints = pa.array(rng.integers(-(10**12), 10**12, n))
    scale = 10.0 ** rng.integers(0, 7, n)
    floats = np.round(rng.lognormal(3.0, 1.5, n) * scale) / scale  # 0–6 decimals, like measured durations
    float_nulls = rng.random(n) < 0.02
    text = pa.array(np.array(SERVICES, dtype=object)[rng.integers(0, len(SERVICES), n)])
    text = pc.if_else(pa.array(rng.random(n) < 0.03), pa.scalar(None, pa.string()), text)
    ts = pa.array(1_737_000_000_000_000 + rng.integers(0, 86_400_000_000, n), pa.timestamp("us", tz="UTC"))
    flags = pa.array(rng.random(n) < 0.3)
    counts = rng.integers(0, 5, n)
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)
    tag_values = pa.array(np.array(TAGS, dtype=object)[rng.integers(0, len(TAGS), int(offsets[-1]))])
    tags = pa.ListArray.from_arrays(pa.array(offsets), tag_values)
    return pa.record_batch(
        {
            "id": ints,
            "duration_ms": pa.array(floats, mask=float_nulls),
            "service": text,
            "timestamp": ts,
            "is_error": flags,
            "tags": tags,
        }
    )


def best_of(repeat: int, fn: Callable[[], object]) -> tuple[float, float]:
    """(best wall-clock seconds, CPU seconds of that run) over ``repeat`` runs."""
    runs = []
    for _ in range(repeat):
        c0, t0 = time.process_time(), time.perf_counter()
        fn()
        runs.append((time.perf_counter() - t0, time.process_time() - c0))
    return min(runs)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--profile", action="store_true", help="profile one whole-batch encode per format")
    args = parser.parse_args()

    batch = make_batch(args.rows)
    small = batch.slice(0, min(50_000, args.rows))
    chunks = [batch.slice(i, 8192) for i in range(0, batch.num_rows, 8192)]
    print(
        f"{batch.num_rows:,} rows × {batch.num_columns} columns ({batch.nbytes / 1e6:.0f} MB of Arrow data)"
    )
    print(f"{'format':8} {'path':44} {'rows/s':>11} {'rows/CPU-s':>11} {'MB out':>7} {'× per-row':>9}")
    threads = enc.THREADS

    def report(name: str, label: str, rows: int, fn: Callable[[], object], base: float | None) -> float:
        wall, cpu = best_of(args.repeat, fn)
        rate = rows / wall
        ratio = rate / base if base else 1.0
        print(f"{name:8} {label:44} {rate:11,.0f} {rows / cpu:11,.0f} {'':>7} {ratio:9.2f}")
        return rate

    for fmt, name in ((0, "text"), (1, "binary")):
        encode_batch(batch.slice(0, 1000), [fmt])  # warm up
        base = report(
            name, "per-row (baseline, 50k rows)", small.num_rows, lambda f=fmt: encode_rows(small, [f]), None
        )
        print(f"{name:8} {'(output size)':44} {'':>11} {'':>11} {len(encode_batch(batch, [fmt])) / 1e6:7.1f}")
        for n_threads in sorted({1, threads}):
            enc.THREADS = n_threads
            tag = f"{n_threads} thread{'s' if n_threads > 1 else ''}"
            report(
                name,
                f"one 1M-row batch → bytes, {tag}",
                batch.num_rows,
                lambda f=fmt: encode_batch(batch, [f]),
                base,
            )
            report(
                name,
                f"one 1M-row batch → chunks (no copy), {tag}",
                batch.num_rows,
                lambda f=fmt: encode_batch_chunks(batch, [f]),
                base,
            )
        enc.THREADS = threads
        report(
            name,
            "8,192-row batches → bytes",
            batch.num_rows,
            lambda f=fmt: [encode_batch(c, [f]) for c in chunks],
            base,
        )
    if args.profile:
        for fmt in (0, 1):
            prof = cProfile.Profile()
            prof.enable()
            encode_batch(batch, [fmt])
            prof.disable()
            print(f"\n--- profile, format {fmt} ---")
            pstats.Stats(prof).sort_stats("tottime").print_stats(15)


if __name__ == "__main__":
    main()
