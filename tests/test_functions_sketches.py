"""Sketches merge exactly and estimate within their accuracy (query/functions/sketches.py).

Merging is what lets a sketch be split between the buffer, Delta files, partitions and groups: the
sketch of A ∪ B must be the merge of the sketches of A and B, whatever the split.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from timefusion.query.functions.sketches import (
    DistinctAgg,
    DistinctSketch,
    PercentileAgg,
    PercentileSketch,
    Rollup,
    approx_percentile,
    distinct_count,
    hash_values,
)

FLOATS = st.floats(-1e9, 1e9, allow_nan=False)


@settings(max_examples=200, deadline=None)
@given(values=st.lists(FLOATS, max_size=200), cut=st.integers(0, 200))
def test_percentile_merge_equals_whole(values: list[float], cut: int) -> None:
    whole, left, right = PercentileSketch(), PercentileSketch(), PercentileSketch()
    whole.add(np.array(values, np.float64))
    left.add(np.array(values[:cut], np.float64))
    right.add(np.array(values[cut:], np.float64))
    left.merge(PercentileSketch.unpack(right.pack()))
    assert left.pack() == whole.pack()


@settings(max_examples=100, deadline=None)
@given(values=st.lists(st.floats(1e-6, 1e9), min_size=1, max_size=300), q=st.floats(0, 1))
def test_percentile_within_relative_accuracy(values: list[float], q: float) -> None:
    sketch = PercentileSketch()
    sketch.add(np.array(values))
    ordered = sorted(values)
    want = ordered[int(q * (len(values) - 1))]  # the value at the rank the sketch walks to
    got = sketch.quantile(q)
    assert got is not None
    assert abs(got - want) <= 0.0101 * want


def test_percentile_signs_zeros_and_empty() -> None:
    sketch = PercentileSketch()
    assert sketch.quantile(0.5) is None
    sketch.add(np.array([-100.0, -1.0, 0.0, 0.0, 1.0, 100.0, np.nan]))
    assert sketch.count == 6
    assert sketch.quantile(0) == -100.0 and sketch.quantile(1) == 100.0
    assert sketch.quantile(0.5) == 0.0
    assert abs(sketch.quantile(0.2) + 1.0) <= 0.0101


@settings(max_examples=50, deadline=None)
@given(n=st.integers(0, 20_000), cut=st.integers(0, 20_000))
def test_distinct_merge_and_accuracy(n: int, cut: int) -> None:
    values = pa.array(np.arange(n, dtype=np.int64))
    whole, left, right = DistinctSketch(), DistinctSketch(), DistinctSketch()
    whole.add(hash_values(values))
    left.add(hash_values(values[: min(cut, n)]))
    right.add(hash_values(values[min(cut, n) :]))
    left.merge(DistinctSketch.unpack(right.pack()))
    assert np.array_equal(left.registers, whole.registers)
    assert abs(whole.estimate() - n) <= max(2, 0.03 * n)


def test_distinct_text_duplicates_and_nulls() -> None:
    sketch = DistinctSketch()
    sketch.add(hash_values(pa.array(["a", "b", None, "a", "c", "b"])))
    sketch.add(hash_values(pa.array(["c", "d"])))
    assert sketch.estimate() == 4


def test_accumulators_roll_up_across_groups() -> None:
    """Per-group sketches (as a GROUP BY makes them), rolled up, equal one sketch of all rows."""
    rng = np.random.default_rng(7)
    groups = [rng.lognormal(3, 1, 500) for _ in range(5)]
    states = []
    for g in groups:
        acc = PercentileAgg()
        acc.update(pa.array(g))
        states.append(acc.evaluate().as_py())
    rolled = Rollup()
    rolled.update(pa.array(states, pa.binary()))
    whole = PercentileAgg()
    whole.update(pa.array(np.concatenate(groups)))
    assert rolled.evaluate().as_py() == whole.evaluate().as_py()
    got = approx_percentile(pa.array([0.5]), pa.array([rolled.evaluate().as_py()], pa.binary())).to_pylist()[
        0
    ]
    exact = float(np.sort(np.concatenate(groups))[int(0.5 * 2499)])
    assert abs(got - exact) <= 0.0101 * exact

    d1, d2 = DistinctAgg(), DistinctAgg()
    d1.update(pa.array(["x", "y"]))
    d2.update(pa.array(["y", "z"]))
    merged = DistinctAgg()
    merged.merge([pa.array([d1.evaluate().as_py(), None, d2.evaluate().as_py()], pa.binary())])
    assert distinct_count(pa.array([merged.evaluate().as_py(), None], pa.binary())).to_pylist() == [3, None]
