"""Mergeable sketches kept as values: TimescaleDB's `percentile_agg` / `rollup` / `approx_percentile`
and `approx_count_distinct` / `distinct_count`, as DataFusion UDAFs with numpy state.

When a sketch is consumed in the same expression (`approx_percentile(0.95, percentile_agg(x))`) the
rewrite (query/rewrite/sketches.py) uses DataFusion's native t-digest / HyperLogLog instead: faster,
and merged in Rust. These UDAFs are for sketches stored or passed on: `SELECT percentile_agg(x) AS s
… GROUP BY minute` in a subquery, then `approx_percentile(0.5, rollup(s))` per hour outside.

- Percentiles: a DDSketch-style log histogram with 1 % relative accuracy (bucket i holds values in
  (γ^(i-1), γ^i], γ = 1.01/0.99), separately for negative values, plus zeros, the count, min and max.
  Merging adds bucket counts, so the result does not depend on how rows were split between the buffer,
  Delta files, partitions or groups.
- Distinct counts: a HyperLogLog with 2^14 registers (about 0.8 % standard error); merging takes the
  register-wise maximum. Numbers are hashed with splitmix64 on their bits, other values (text) with
  blake2b over the distinct values of each batch.

A sketch is `bytea` on the wire (a small versioned binary format, see `_pack`).
"""

from __future__ import annotations

import hashlib
import math
import struct

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

ALPHA = 0.01
GAMMA = (1 + ALPHA) / (1 - ALPHA)
_LOG_GAMMA = math.log(GAMMA)
_TINY = 1e-300  # |x| below this counts as zero
_MAGIC_P, _MAGIC_D = b"TFP1", b"TFH1"
_HEADER = struct.Struct("<4sqddqqq")
P = 14
M = 1 << P


def _merge_counts(idx: np.ndarray, cnt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    keys, inverse = np.unique(idx, return_inverse=True)
    return keys.astype(np.int32), np.bincount(inverse, weights=cnt, minlength=len(keys)).astype(np.int64)


class PercentileSketch:
    """A log-bucket histogram (see the module docstring)."""

    def __init__(self) -> None:
        self.count = 0
        self.zeros = 0
        self.min = math.inf
        self.max = -math.inf
        self.pos = (np.zeros(0, np.int32), np.zeros(0, np.int64))
        self.neg = (np.zeros(0, np.int32), np.zeros(0, np.int64))

    def add(self, values: np.ndarray) -> None:
        values = values[~np.isnan(values)]
        if not len(values):
            return
        self.count += len(values)
        self.min = min(self.min, float(values.min()))
        self.max = max(self.max, float(values.max()))
        magnitude = np.abs(values)
        zero = magnitude < _TINY
        self.zeros += int(zero.sum())
        for sign, attr in ((values > 0) & ~zero, "pos"), ((values < 0) & ~zero, "neg"):
            if sign.any():
                idx = np.ceil(np.log(magnitude[sign]) / _LOG_GAMMA).astype(np.int32)
                old_idx, old_cnt = getattr(self, attr)
                setattr(
                    self,
                    attr,
                    _merge_counts(
                        np.concatenate([old_idx, idx]), np.concatenate([old_cnt, np.ones(len(idx), np.int64)])
                    ),
                )

    def merge(self, other: PercentileSketch) -> None:
        if not other.count:
            return
        self.count += other.count
        self.zeros += other.zeros
        self.min = min(self.min, other.min)
        self.max = max(self.max, other.max)
        for attr in ("pos", "neg"):
            a, b = getattr(self, attr), getattr(other, attr)
            setattr(self, attr, _merge_counts(np.concatenate([a[0], b[0]]), np.concatenate([a[1], b[1]])))

    def quantile(self, q: float) -> float | None:
        if not self.count:
            return None
        if q <= 0:
            return self.min
        if q >= 1:
            return self.max
        rank = q * (self.count - 1)
        seen = 0
        # ascending values: negatives by decreasing magnitude, zeros, positives by increasing magnitude
        neg_idx, neg_cnt = self.neg
        for i, c in zip(neg_idx[::-1].tolist(), neg_cnt[::-1].tolist()):
            seen += c
            if seen > rank:
                return min(self.max, max(self.min, -2 * GAMMA**i / (GAMMA + 1)))
        seen += self.zeros
        if seen > rank:
            return 0.0
        for i, c in zip(*(a.tolist() for a in self.pos)):
            seen += c
            if seen > rank:
                return max(self.min, min(self.max, 2 * GAMMA**i / (GAMMA + 1)))
        return self.max

    def pack(self) -> bytes:
        header = _HEADER.pack(
            _MAGIC_P, self.count, self.min, self.max, self.zeros, len(self.pos[0]), len(self.neg[0])
        )
        parts = [
            header,
            self.pos[0].tobytes(),
            self.pos[1].tobytes(),
            self.neg[0].tobytes(),
            self.neg[1].tobytes(),
        ]
        return b"".join(parts)

    @classmethod
    def unpack(cls, data: bytes) -> PercentileSketch:
        magic, count, lo, hi, zeros, npos, nneg = _HEADER.unpack_from(data)
        if magic != _MAGIC_P:
            raise ValueError("not a percentile_agg sketch")
        s = cls()
        s.count, s.min, s.max, s.zeros = count, lo, hi, zeros
        off = _HEADER.size
        for attr, n in (("pos", npos), ("neg", nneg)):
            idx = np.frombuffer(data, np.int32, n, off)
            off += 4 * n
            cnt = np.frombuffer(data, np.int64, n, off)
            off += 8 * n
            setattr(s, attr, (idx, cnt))
        return s


def _splitmix64(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.uint64, copy=True)
    with np.errstate(over="ignore"):
        x += np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def hash_values(values: pa.Array) -> np.ndarray:
    """64-bit hashes of the non-null values of an array."""
    values = values.drop_null()
    if isinstance(values.type, pa.BaseExtensionType):
        values = values.storage
    t = values.type
    if pa.types.is_integer(t) or pa.types.is_boolean(t) or pa.types.is_timestamp(t) or pa.types.is_date(t):
        return _splitmix64(values.cast(pa.int64()).to_numpy(zero_copy_only=False).view(np.uint64))
    if pa.types.is_floating(t):
        floats = values.cast(pa.float64()).to_numpy(zero_copy_only=False) + 0.0  # -0.0 == 0.0
        return _splitmix64(floats.view(np.uint64))
    unique = pc.unique(values.cast(pa.string()) if not pa.types.is_binary(t) else values)
    return np.fromiter(
        (
            int.from_bytes(
                hashlib.blake2b(v.encode() if isinstance(v, str) else v, digest_size=8).digest(), "little"
            )
            for v in unique.to_pylist()
        ),
        dtype=np.uint64,
        count=len(unique),
    )


class DistinctSketch:
    """A HyperLogLog of 2^14 one-byte registers."""

    def __init__(self, registers: np.ndarray | None = None) -> None:
        self.registers = registers if registers is not None else np.zeros(M, np.uint8)

    def add(self, hashes: np.ndarray) -> None:
        if not len(hashes):
            return
        idx = (hashes >> np.uint64(64 - P)).astype(np.int64)
        rest = (hashes << np.uint64(P)) | np.uint64(1 << (P - 1))  # a stop bit bounds the rank
        rank = np.ones(len(hashes), np.uint8)
        for bits in (32, 16, 8, 4, 2, 1):  # leading zeros, by halving
            empty = (rest >> np.uint64(64 - bits)) == 0
            rank += np.where(empty, bits, 0).astype(np.uint8)
            rest = np.where(empty, rest << np.uint64(bits), rest)
        registers = self.registers.copy()
        np.maximum.at(registers, idx, rank)
        self.registers = registers

    def merge(self, other: DistinctSketch) -> None:
        self.registers = np.maximum(self.registers, other.registers)

    def estimate(self) -> int:
        regs = self.registers.astype(np.float64)
        alpha = 0.7213 / (1 + 1.079 / M)
        raw = alpha * M * M / np.sum(np.power(2.0, -regs))
        zeros = int((self.registers == 0).sum())
        if raw <= 2.5 * M and zeros:
            return round(M * math.log(M / zeros))
        return round(raw)

    def pack(self) -> bytes:
        return _MAGIC_D + self.registers.tobytes()

    @classmethod
    def unpack(cls, data: bytes) -> DistinctSketch:
        if data[:4] != _MAGIC_D or len(data) != 4 + M:
            raise ValueError("not an approx_count_distinct sketch")
        return cls(np.frombuffer(data, np.uint8, M, 4).copy())


# -- DataFusion aggregate and scalar functions ---------------------------------------------------------


def _binaries(array: pa.Array) -> list[bytes]:
    return [v for v in array.to_pylist() if v is not None]


class PercentileAgg:
    """`percentile_agg(x)`: a PercentileSketch of the group's non-NULL values."""

    def __init__(self) -> None:
        self.sketch = PercentileSketch()

    def update(self, values: pa.Array) -> None:
        self.sketch.add(values.drop_null().cast(pa.float64()).to_numpy(zero_copy_only=False))

    def merge(self, states: list[pa.Array]) -> None:
        for data in _binaries(states[0]):
            self.sketch.merge(PercentileSketch.unpack(data))

    def state(self) -> list[pa.Scalar]:
        return [pa.scalar(self.sketch.pack(), pa.binary())]

    def evaluate(self) -> pa.Scalar:
        return pa.scalar(self.sketch.pack(), pa.binary())


class DistinctAgg:
    """`approx_count_distinct(x)` kept as a value: a HyperLogLog of the group's non-NULL values."""

    def __init__(self) -> None:
        self.sketch = DistinctSketch()

    def update(self, values: pa.Array) -> None:
        self.sketch.add(hash_values(values))

    def merge(self, states: list[pa.Array]) -> None:
        for data in _binaries(states[0]):
            self.sketch.merge(DistinctSketch.unpack(data))

    def state(self) -> list[pa.Scalar]:
        return [pa.scalar(self.sketch.pack(), pa.binary())]

    def evaluate(self) -> pa.Scalar:
        return pa.scalar(self.sketch.pack(), pa.binary())


class Rollup:
    """`rollup(sketch)`: merges sketches of either kind (they must not be mixed)."""

    def __init__(self) -> None:
        self.sketch: PercentileSketch | DistinctSketch | None = None

    def _add(self, data: bytes) -> None:
        other: PercentileSketch | DistinctSketch = (
            PercentileSketch.unpack(data) if data[:4] == _MAGIC_P else DistinctSketch.unpack(data)
        )
        if self.sketch is None:
            self.sketch = other
        elif type(self.sketch) is not type(other):
            raise ValueError("rollup() cannot merge percentile and distinct-count sketches")
        else:
            self.sketch.merge(other)  # type: ignore[arg-type]

    def update(self, values: pa.Array) -> None:
        for data in _binaries(values):
            self._add(data)

    def merge(self, states: list[pa.Array]) -> None:
        for data in _binaries(states[0]):
            self._add(data)

    def state(self) -> list[pa.Scalar]:
        return [pa.scalar(self.sketch.pack() if self.sketch is not None else None, pa.binary())]

    def evaluate(self) -> pa.Scalar:
        return self.state()[0]


def approx_percentile(q: pa.Array, sketches: pa.Array) -> pa.Array:
    """`approx_percentile(q, sketch)`: one value per row (a row per group: few rows)."""
    out = []
    for fraction, data in zip(q.to_pylist(), sketches.to_pylist()):
        if fraction is None or data is None:
            out.append(None)
            continue
        if not 0 <= fraction <= 1:
            raise ValueError(f"percentile value {fraction} is not between 0 and 1")
        out.append(PercentileSketch.unpack(data).quantile(fraction))
    return pa.array(out, pa.float64())


def distinct_count(sketches: pa.Array) -> pa.Array:
    """`distinct_count(sketch)`."""
    return pa.array(
        [None if d is None else DistinctSketch.unpack(d).estimate() for d in sketches.to_pylist()], pa.int64()
    )
