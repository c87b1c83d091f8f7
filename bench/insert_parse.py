"""How fast a 500-row `INSERT … VALUES` becomes Arrow: our scanner vs DataFusion's planner vs sqlglot.

Statements: realistic span rows (bench/datagen.py) for `otel_logs_and_spans`, rendered as a client
driver would send them: strings quoted with `''` escapes (JSON attributes included), integers and
booleans bare, timestamps as quoted text, NULLs, and `ARRAY['…', …]` of text (`ARRAY[]::text[]` when
empty). Two shapes: 500 rows × 30 columns (about 1 KB a row) and 500 rows × 8 columns.

Measured in the same run, each warm, median and minimum over `--runs`:

- `parse_insert`: `timefusion.query.insert_values.parse_insert` → typed Arrow table (wall time and
  this thread's CPU time, since the benchmark machines are shared);
- `parse+coerce`: the above plus `coerce()` to the full table schema (what ingest needs);
- `datafusion`: `SessionContext().sql("VALUES …")` + `collect()` over the same VALUES text (what the
  INSERT path cost before: DataFusion plans and evaluates the literals);
- `sqlglot`: `sqlglot.parse_one(sql, read="postgres")` (a parse only, no conversion to Arrow).

Run from the repo root: `.venv/bin/python bench/insert_parse.py [--rows N] [--runs N] [--out FILE]`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import pyarrow as pa  # noqa: E402
import sqlglot  # noqa: E402
from datafusion import SessionContext  # noqa: E402

from bench.common import fmt_num, print_table, save_json  # noqa: E402
from bench.datagen import generate_spans  # noqa: E402
from timefusion.query.insert_values import parse_insert  # noqa: E402
from timefusion.schema import load_tables  # noqa: E402
from timefusion.write.coerce import coerce  # noqa: E402

COLUMNS_30 = [
    "timestamp",
    "observed_timestamp",
    "id",
    "parent_id",
    "hashes",
    "name",
    "kind",
    "status_code",
    "status_message",
    "level",
    "severity___severity_text",
    "severity___severity_number",
    "duration",
    "start_time",
    "end_time",
    "context___trace_id",
    "context___span_id",
    "context___is_remote",
    "attributes",
    "attributes___client___address",
    "attributes___server___address",
    "attributes___server___port",
    "attributes___url___path",
    "attributes___http___request___method",
    "attributes___http___response___status_code",
    "resource",
    "resource___service___name",
    "project_id",
    "summary",
    "errors",
]
COLUMNS_8 = ["timestamp", "id", "project_id", "name", "kind", "status_code", "duration", "hashes"]


def span_rows(n: int, columns: list[str]) -> pa.Table:
    """`n` generated span rows, only `columns`, typed like the table."""
    batches = list(generate_spans(n, batch_size=n))
    return pa.Table.from_batches(batches).select(columns)


def _literal(value: object) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, dt.datetime):
        return "'" + value.strftime("%Y-%m-%d %H:%M:%S.%f") + "'"
    if isinstance(value, dt.date):
        return f"'{value.isoformat()}'"
    if isinstance(value, list):
        return "ARRAY[" + ", ".join(_literal(v) for v in value) + "]" if value else "ARRAY[]::text[]"
    return "'" + str(value).replace("'", "''") + "'"


def render_values(batch: pa.Table) -> str:
    """`VALUES (…), (…)` with one row per line."""
    names = batch.column_names
    lines = ("(" + ", ".join(_literal(row[c]) for c in names) + ")" for row in batch.to_pylist())
    return "VALUES\n" + ",\n".join(lines)


def render_insert(table: str, batch: pa.Table) -> str:
    return f"INSERT INTO {table} ({', '.join(batch.column_names)}) {render_values(batch)};"


def _timed(fn: Callable[[], object], runs: int) -> dict[str, float]:
    fn()  # warm-up
    wall, cpu = [], []
    for _ in range(runs):
        c0, w0 = time.thread_time(), time.perf_counter()
        fn()
        wall.append(time.perf_counter() - w0)
        cpu.append(time.thread_time() - c0)
    return {
        "median_ms": statistics.median(wall) * 1000,
        "min_ms": min(wall) * 1000,
        "cpu_median_ms": statistics.median(cpu) * 1000,
    }


def measure(name: str, columns: list[str], rows: int, runs: int, slow_runs: int) -> dict[str, Any]:
    tables = load_tables()
    schema = tables["otel_logs_and_spans"]
    batch = span_rows(rows, columns)
    sql = render_insert("otel_logs_and_spans", batch)
    values_sql = render_values(batch)
    parsed = parse_insert(sql, tables)
    assert parsed is not None and not parsed.fallback and parsed.data is not None
    assert parsed.data.to_pylist() == batch.to_pylist(), "round trip differs"
    df_rows = sum(b.num_rows for b in SessionContext().sql(values_sql).collect())
    assert df_rows == rows

    def parse_and_coerce() -> object:
        result = parse_insert(sql, tables)
        assert result is not None and result.data is not None
        return coerce(schema, result.data)

    results = {
        "parse_insert": _timed(lambda: parse_insert(sql, tables), runs),
        "parse+coerce": _timed(parse_and_coerce, runs),
        "datafusion": _timed(lambda: SessionContext().sql(values_sql).collect(), slow_runs),
        "sqlglot": _timed(lambda: sqlglot.parse_one(sql, read="postgres"), slow_runs),
    }
    ours = results["parse_insert"]["median_ms"]
    for r in results.values():
        r["rows_per_s"] = rows / (r["median_ms"] / 1000)
        r["x_slower_than_ours"] = r["median_ms"] / ours
    return {"name": name, "rows": rows, "columns": len(columns), "sql_bytes": len(sql), "results": results}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=500)
    ap.add_argument("--runs", type=int, default=50, help="timed runs of our parser")
    ap.add_argument("--slow-runs", type=int, default=7, help="timed runs of DataFusion and sqlglot")
    ap.add_argument("--out", default=None, help="write the results as JSON here")
    args = ap.parse_args()

    shapes = []
    for name, columns in (("30 columns", COLUMNS_30), ("8 columns", COLUMNS_8)):
        shape = measure(name, columns, args.rows, args.runs, args.slow_runs)
        shapes.append(shape)
        print(f"\n{args.rows} rows × {shape['columns']} columns ({shape['sql_bytes']:,} bytes of SQL)")
        table = []
        for method, r in shape["results"].items():
            table.append(
                [
                    method,
                    fmt_num(r["median_ms"], 2),
                    fmt_num(r["min_ms"], 2),
                    fmt_num(r["cpu_median_ms"], 2),
                    fmt_num(r["rows_per_s"]),
                    f"{r['x_slower_than_ours']:.1f}×",
                ]
            )
        print_table(["method", "median ms", "min ms", "cpu ms", "rows/s", "vs parse_insert"], table)
    save_json(args.out, {"benchmark": "insert_parse", "shapes": shapes})


if __name__ == "__main__":
    main()
