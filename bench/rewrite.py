"""What every statement pays for the SQL rewrite: `prepare()` against DataFusion's own planning.

For each reference query (the ones tests/test_rewrite_datafusion.py checks), the median over
`--runs` of `prepare()` (sqlglot parse, our rewrites, pruning spec) and, as the baseline in the same
run, of `SessionContext.sql(rewritten).schema()` — DataFusion parsing and planning the rewritten
statement over empty tables. Prints both and their ratio; the aim is that the rewrite costs no more
than planning does (ratio ≤ 1) and a few milliseconds at most.

Run from the repo root: `.venv/bin/python bench/rewrite.py [--runs N]`.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from test_rewrite_datafusion import EMPTY, NOW, REFERENCE_QUERIES, SCHEMAS

from timefusion.query.rewrite import prepare, split_insert


def median_ms(fn, runs: int) -> float:  # type: ignore[no-untyped-def]
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50)
    args = parser.parse_args()
    print(f"{'query':<6} {'prepare ms':>11} {'DataFusion plan ms':>19} {'ratio':>6}")
    ratios = []
    for i, sql in enumerate(REFERENCE_QUERIES, 1):
        insert = split_insert(sql)
        text = insert[2] if insert else sql
        rewritten = prepare(text, None, SCHEMAS, NOW).sql
        ours = median_ms(lambda t=text: prepare(t, None, SCHEMAS, NOW), args.runs)
        base = median_ms(lambda r=rewritten: EMPTY.sql(r).schema(), args.runs)
        ratios.append(ours / base)
        print(f"ref{i:<3} {ours:>11.2f} {base:>19.2f} {ours / base:>6.2f}", flush=True)
    print(f"geometric mean prepare / DataFusion planning: {statistics.geometric_mean(ratios):.2f}")


if __name__ == "__main__":
    main()
