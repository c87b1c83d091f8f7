"""JSON operators and substring search over 1M span rows: TimeFusion's vectorised UDFs vs baselines.

Run: `.venv/bin/python bench/json_functions.py [--rows 1000000]`

The rows come from bench/datagen.py (nested `attributes` JSON of about 290 bytes a row, with the same
values in flattened `attributes___*` columns). Each query is planned the way the server does it
(`prepare()` rewrites the PostgreSQL operators onto the `tf_json_*` UDFs, registered with
`register_functions`) over the rows registered as one in-memory table, and timed best of 3 (after
one warm-up run, which also loads the compiled numba kernels). Baselines, run in the same process:

- the same filter on the flattened column (what `->>` would cost if it were free),
- a per-row Python UDF (`json.loads` per row: the approach DESIGN.md measured at ~1 s/M with orjson),
- for search: case-sensitive LIKE, strpos, ILIKE and the regex operators (DataFusion's own kernels).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import pyarrow as pa
from datafusion import SessionConfig, SessionContext
from datafusion.user_defined import ScalarUDF

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import datagen

from timefusion.query.functions import register_functions
from timefusion.query.rewrite import prepare
from timefusion.schema import load_tables

T = "otel_logs_and_spans"
CASES: list[tuple[str, list[tuple[str, str]]]] = [
    (
        "->> filter (nested path)",
        [
            (
                "ours: attributes->'http'->'request'->>'method' = 'GET'",
                f"SELECT count(*) FROM {T} WHERE attributes->'http'->'request'->>'method' = 'GET'",
            ),
            (
                "baseline: flattened column",
                f"SELECT count(*) FROM {T} WHERE attributes___http___request___method = 'GET'",
            ),
            (
                "baseline: per-row Python json.loads UDF",
                f"SELECT count(*) FROM {T} WHERE py_json_method(attributes) = 'GET'",
            ),
        ],
    ),
    (
        "->> group by",
        [
            (
                "ours: #>> '{http,response,status_code}'",
                f"SELECT attributes#>>'{{http,response,status_code}}' AS s, count(*) FROM {T} GROUP BY 1",
            ),
            (
                "baseline: flattened column",
                f"SELECT attributes___http___response___status_code AS s, count(*) FROM {T} GROUP BY 1",
            ),
        ],
    ),
    (
        "@> containment",
        [
            (
                'ours: attributes @> \'{"http":{"request":{"method":"POST"}}}\'',
                f'SELECT count(*) FROM {T} WHERE attributes @> \'{{"http":{{"request":{{"method":"POST"}}}}}}\'',
            ),
            (
                "baseline: flattened column",
                f"SELECT count(*) FROM {T} WHERE attributes___http___request___method = 'POST'",
            ),
        ],
    ),
    (
        "substring search (search box)",
        [
            (
                "ours/recommended: attributes ILIKE '%laptop%'",
                f"SELECT count(*) FROM {T} WHERE attributes ILIKE '%laptop%'",
            ),
            (
                "baseline: LIKE '%laptop%' (case-sensitive)",
                f"SELECT count(*) FROM {T} WHERE attributes LIKE '%laptop%'",
            ),
            (
                "strpos(attributes, 'laptop') > 0",
                f"SELECT count(*) FROM {T} WHERE strpos(attributes, 'laptop') > 0",
            ),
            ("attributes ~* 'laptop'", f"SELECT count(*) FROM {T} WHERE attributes ~* 'laptop'"),
            ("name ILIKE '%users%' (short column)", f"SELECT count(*) FROM {T} WHERE name ILIKE '%users%'"),
        ],
    ),
]


def _py_json_method(values: pa.Array) -> pa.Array:
    out = []
    for text in values.to_pylist():
        try:
            out.append(
                ((json.loads(text).get("http") or {}).get("request") or {}).get("method") if text else None
            )
        except (ValueError, AttributeError):
            out.append(None)
    return pa.array(out, pa.string())


def context(table: pa.Table) -> SessionContext:
    cfg = SessionConfig().set("datafusion.execution.time_zone", "+00:00")
    ctx = SessionContext(cfg)
    register_functions(ctx)
    ctx.register_udf(
        ScalarUDF(
            "py_json_method",
            _py_json_method,
            [pa.field("a", pa.string())],
            pa.field("r", pa.string()),
            "immutable",
        )
    )
    ctx.register_record_batches(T, [table.to_batches(max_chunksize=65_536)])
    return ctx


def timed(ctx: SessionContext, sql: str, repeat: int) -> tuple[float, list]:
    rows = ctx.sql(sql).to_pylist()  # warm-up (numba kernels load from cache or compile)
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        rows = ctx.sql(sql).to_pylist()
        best = min(best, time.perf_counter() - started)
    return best, rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    schemas = load_tables()
    table = pa.Table.from_batches(list(datagen.generate_spans(args.rows)))
    print(f"{args.rows:,} rows, attributes {table.column('attributes').nbytes / 1e6:.0f} MB of JSON text")
    ctx = context(table)
    for title, variants in CASES:
        print(f"\n{title}")
        base = None
        for label, sql in variants:
            text = prepare(sql, None, schemas).sql
            seconds, rows = timed(ctx, text, 1 if "per-row" in label else args.repeat)
            if label.startswith(("ours", "ours/")):
                ours = seconds
            elif base is None:
                base = seconds
            result = rows[0] if len(rows) == 1 else f"{len(rows)} groups"
            print(f"  {label:<66} {seconds * 1000:9.1f} ms   {result}")
        if base:
            print(f"  ratio ours / first baseline: {ours / base:.2f}×")


if __name__ == "__main__":
    main()
