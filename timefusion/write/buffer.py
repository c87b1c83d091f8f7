"""The in-memory buffer: acknowledged rows not yet committed to Delta, grouped into buckets.

A bucket is (table, project_id, time bucket of `bucket_secs`). Rows arrive in WAL order (the WAL
writer thread applies records one at a time), so every bucket knows the LSN range it holds. The
flusher *seals* buckets (new rows for the same key start a fresh bucket), commits them, then
*releases* them; queries see active and sealed buckets until the release. Because rows of one key
are always appended in LSN order and a seal takes everything of that key, "all rows of key K with
LSN ≤ L are in Delta" is exactly what a commit records — which makes WAL replay idempotent.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from timefusion.write.recovery import bucket_starts

BucketKey = tuple[str, str, int]  # (table, project_id, bucket start in microseconds since epoch)


@dataclass
class Bucket:
    key: BucketKey
    batches: list[pa.RecordBatch] = field(default_factory=list)
    rows: int = 0
    nbytes: int = 0
    min_lsn: int = 0
    max_lsn: int = 0
    created: float = field(default_factory=time.monotonic)

    def add(self, lsn: int, batch: pa.RecordBatch, size: int) -> None:
        if not self.batches:
            self.min_lsn = lsn
        self.batches.append(batch)
        self.rows += batch.num_rows
        self.nbytes += size
        self.max_lsn = lsn

    def compacted(self) -> list[pa.RecordBatch]:
        """The bucket's batches, merged into one once there are many small ones (queries pay a
        fixed cost per registered batch, so hundreds of 100-row batches made queries slow)."""
        if len(self.batches) > 8:
            self.batches = [pa.concat_batches(self.batches)]
        return self.batches

    def overlaps(self, bucket_us: int, ts_min_us: int | None, ts_max_us: int | None) -> bool:
        start = self.key[2]
        return (ts_max_us is None or start <= ts_max_us) and (
            ts_min_us is None or start + bucket_us > ts_min_us
        )

    def end_us(self, bucket_us: int) -> int:
        return self.key[2] + bucket_us


def key_runs(keys: pa.Table) -> tuple[pa.Array, np.ndarray, np.ndarray]:
    """Rows grouped by equal key columns: (stable sort order, run starts, run ends) into that order.

    The sort is stable, so within a run the rows keep their arrival order.
    """
    order = pc.sort_indices(keys, [(name, "ascending") for name in keys.column_names])
    n = len(order)
    change = np.zeros(n, dtype=bool)
    change[0] = True
    for name in keys.column_names:
        sorted_col = pc.take(keys.column(name), order)
        diff = pc.not_equal(sorted_col.slice(1), sorted_col.slice(0, n - 1))
        change[1:] |= pc.fill_null(diff, True).to_numpy(zero_copy_only=False)
    starts = np.flatnonzero(change)
    ends = np.append(starts[1:], n)
    return order, starts, ends


class Buffer:
    """Thread-safe; `lock` is also taken by the engine to snapshot buffer and Delta together."""

    def __init__(self, bucket_secs: int, max_bytes: int) -> None:
        self.bucket_us = bucket_secs * 1_000_000
        self.max_bytes = max_bytes
        self.lock = threading.RLock()
        self.space = threading.Condition(self.lock)  # notified when memory is released
        self._active: dict[BucketKey, Bucket] = {}
        self._sealed: list[Bucket] = []
        self._nbytes = 0
        self.max_applied_lsn = 0

    # -- writes ------------------------------------------------------------------------------------
    def split(self, table: str, batch: pa.RecordBatch) -> list[tuple[BucketKey, pa.RecordBatch, int]]:
        """Split a coerced batch into per-bucket batches, with the bytes each one holds.

        A slice shares its parent's buffers, so it is counted by its own range (.nbytes, which is
        slice-aware but costs ~0.2 ms on 92 columns); whole batches and copies by buffer totals.
        """
        if batch.num_rows == 0:
            return []
        start = bucket_starts(batch.column(batch.schema.get_field_index("timestamp")), self.bucket_us)
        projects = batch.column(batch.schema.get_field_index("project_id"))
        pmin, pmax = pc.min_max(projects).values()
        smin, smax = pc.min_max(start).values()
        if pmin == pmax and smin == smax:
            return [((table, pmin.as_py(), smin.as_py()), batch, batch.get_total_buffer_size())]
        order, starts, ends = key_runs(pa.table({"p": projects, "s": start}))
        order_np = order.to_numpy()
        out = []
        for a, b in zip(starts.tolist(), ends.tolist()):
            first = int(order_np[a])
            key = (table, projects[first].as_py(), start[first].as_py())
            if int(order_np[b - 1]) - first == b - a - 1:
                # rows of the key are contiguous (time-ordered input): a zero-copy slice
                part = batch.slice(first, b - a)
                out.append((key, part, part.nbytes))
            else:
                part = batch.take(order.slice(a, b - a))
                out.append((key, part, part.get_total_buffer_size()))
        return out

    def insert(self, table: str, lsn: int, batch: pa.RecordBatch) -> int:
        """Add one WAL record's rows (callers apply records in LSN order)."""
        parts = self.split(table, batch)
        added = 0
        with self.lock:
            for key, part, size in parts:
                bucket = self._active.get(key)
                if bucket is None:
                    bucket = self._active[key] = Bucket(key)
                before = bucket.nbytes
                bucket.add(lsn, part, size)
                self._nbytes += bucket.nbytes - before
                added += part.num_rows
            self.max_applied_lsn = max(self.max_applied_lsn, lsn)
        return added

    # -- memory ------------------------------------------------------------------------------------
    @property
    def nbytes(self) -> int:
        return self._nbytes

    def wait_for_space(self, incoming: int, timeout: float) -> bool:
        """Block until `incoming` more bytes fit under the limit, or the timeout passes."""
        deadline = time.monotonic() + timeout
        with self.space:
            while self._nbytes + incoming > self.max_bytes:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self.space.wait(remaining)
            return True

    # -- reads -------------------------------------------------------------------------------------
    def snapshot(
        self,
        table: str,
        projects: frozenset[str] | None = None,
        ts_min_us: int | None = None,
        ts_max_us: int | None = None,
    ) -> list[pa.RecordBatch]:
        """The buffered batches of `table` in buckets that can hold rows of these projects and
        times (call with `lock` held to pair it with a Delta snapshot)."""
        with self.lock:
            out: list[pa.RecordBatch] = []
            for b in (*self._sealed, *self._active.values()):
                if (
                    b.key[0] == table
                    and (projects is None or b.key[1] in projects)
                    and b.overlaps(self.bucket_us, ts_min_us, ts_max_us)
                ):
                    out.extend(b.compacted())
            return out

    def stats(self) -> dict[str, int]:
        with self.lock:
            return {
                "buckets": len(self._active),
                "sealed": len(self._sealed),
                "rows": sum(b.rows for b in (*self._active.values(), *self._sealed)),
                "bytes": self._nbytes,
            }

    # -- flushing ----------------------------------------------------------------------------------
    def seal(self, table: str, now_us: int | None, max_age_secs: float | None = None) -> list[Bucket]:
        """Seal the buckets of `table` that are complete at `now_us` (None: all of them)."""
        with self.lock:
            chosen = []
            for key, b in list(self._active.items()):
                if key[0] != table:
                    continue
                complete = now_us is None or b.end_us(self.bucket_us) <= now_us
                too_old = max_age_secs is not None and time.monotonic() - b.created >= max_age_secs
                if complete or too_old:
                    chosen.append(self._active.pop(key))
            self._sealed.extend(chosen)
            return chosen

    def release(self, buckets: list[Bucket]) -> None:
        """The buckets are committed and visible in Delta: forget them."""
        with self.lock:
            ids = {id(b) for b in buckets}
            self._sealed = [b for b in self._sealed if id(b) not in ids]
            self._nbytes -= sum(b.nbytes for b in buckets)
            self.space.notify_all()

    def unseal(self, buckets: list[Bucket]) -> None:
        """A flush failed: put the rows back in front of any newer rows of the same key."""
        with self.lock:
            ids = {id(b) for b in buckets}
            self._sealed = [b for b in self._sealed if id(b) not in ids]
            for b in buckets:
                newer = self._active.get(b.key)
                if newer is not None:
                    b.batches.extend(newer.batches)
                    b.rows += newer.rows
                    b.nbytes += newer.nbytes
                    b.max_lsn = newer.max_lsn
                self._active[b.key] = b

    def release_watermark(self) -> int:
        """Lowest LSN whose rows may still be only in the WAL (records below it are in Delta)."""
        with self.lock:
            lsns = [b.min_lsn for b in (*self._active.values(), *self._sealed)]
            return min([*lsns, self.max_applied_lsn + 1])
