"""Small helpers shared by the benchmark scripts: timing, percentiles, tables, progress, results."""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

ROOT = Path(__file__).resolve().parent.parent


def percentile_ms(seconds: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(seconds), q) * 1000.0) if len(seconds) else float("nan")


def compact(batch: pa.RecordBatch) -> pa.RecordBatch:
    """A copy of `batch` that owns exactly its rows (as if it had arrived over the network)."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, batch.schema) as w:
        w.write_batch(batch)
    return pa.ipc.open_stream(sink.getvalue()).read_next_batch()


def fmt_num(x: float | int | None, digits: int = 1) -> str:
    if x is None or (isinstance(x, float) and not np.isfinite(x)):
        return "-"
    if isinstance(x, int) or (abs(x) >= 1000 and digits <= 1):
        return f"{x:,.0f}"
    return f"{x:,.{digits}f}"


def print_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], align: str | None = None) -> None:
    """A plain fixed-width table; `align` is one of 'l'/'r' per column (default: first left)."""
    cells = [[str(c) for c in r] for r in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]
    align = align or "l" + "r" * (len(headers) - 1)

    def line(values: Sequence[str]) -> str:
        return "  ".join(v.ljust(w) if a == "l" else v.rjust(w) for v, w, a in zip(values, widths, align))

    print(line(headers))
    print("  ".join("-" * w for w in widths))
    for r in cells:
        print(line(r))


class Progress:
    """Prints `label: …` progress to stderr at most every `every` seconds."""

    def __init__(self, label: str, every: float = 2.0) -> None:
        self.label = label
        self.every = every
        self.t0 = time.perf_counter()
        self.last = self.t0

    def update(self, message: str, force: bool = False) -> None:
        now = time.perf_counter()
        if force or now - self.last >= self.every:
            self.last = now
            print(f"  [{now - self.t0:6.1f}s] {self.label}: {message}", file=sys.stderr, flush=True)


def environment() -> dict[str, Any]:
    import datafusion
    import deltalake

    return {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "pyarrow": pa.__version__,
        "datafusion": datafusion.__version__,
        "deltalake": deltalake.__version__,
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def save_json(path: str | None, payload: dict[str, Any]) -> None:
    if not path:
        return
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"environment": environment(), **payload}, indent=2, default=str) + "\n")
    print(f"\nresults saved to {out}")
