"""The in-memory buffer: acknowledged rows not yet committed to Delta, grouped into buckets.

A bucket is (table, project_id, time bucket of `bucket_secs`). Rows arrive in WAL order (the WAL
writer thread applies records one at a time), so every bucket knows the LSN range it holds. The
flusher *seals* buckets (new rows for the same key start a fresh bucket), commits them, then
*releases* them; queries see active and sealed buckets until the release. Because rows of one key
are always appended in LSN order and a seal takes everything of that key, "all rows of key K with
LSN ≤ L are in Delta" is exactly what a commit records — which makes WAL replay idempotent.

Idempotent ingest and DML (see also `query/dml.py`): a row's identity is (project_id, timestamp,
id) and its version is the WAL LSN it arrived with, so within a bucket key later rows win, and
every buffered row is newer than any Delta row of the same key (a key's rows reach Delta bucket by
bucket, in LSN order). Each bucket keeps 64-bit fingerprints of its keys (`keys.KeyIndex`; an
insert only appends its fingerprints, computed in the ingesting thread, and they are checked in bulk
by `_settle` when a query, flush or release next needs the answer), which tells cheaply whether
rows may repeat a key:

- `dup`: the bucket (or an older sealed bucket of the same key) may hold a key twice; queries and
  the flusher then keep only the newest row per key (`dedup_last`, exact on the key columns);
- `shadows`: rows may replace rows already in Delta. Set to MAYBE when a part's time range
  overlaps the min/max stats of a Delta file of its project (the `overlaps_delta` callback: the
  append-only path of fresh data never overlaps), to YES once verified against Delta's keys (or
  when a flush published rows of the same key meanwhile). Queries hide Delta rows whose key a
  shadowing bucket holds; the flusher commits such buckets with a MERGE;
- `tombstones`: keys deleted at some LSN (DELETE). Older buffered rows of the key are dropped at
  once; the tombstone hides Delta's row until the flusher deletes it there.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from timefusion.storage.keys import KeyIndex, key_hashes
from timefusion.storage.recovery import bucket_starts

BucketKey = tuple[str, str, int]  # (table, project_id, bucket start in microseconds since epoch)
KEY_COLUMNS = ("project_id", "timestamp", "id")
KEY_SCHEMA = pa.schema(
    [("project_id", pa.string()), ("timestamp", pa.timestamp("us", tz="UTC")), ("id", pa.string())]
)

NO, MAYBE, YES = 0, 1, 2  # Bucket.shadows


@dataclass
class Bucket:
    key: BucketKey
    batches: list[pa.RecordBatch] = field(default_factory=list)
    rows: int = 0
    nbytes: int = 0
    min_lsn: int = 0
    max_lsn: int = 0
    created: float = field(default_factory=time.monotonic)
    index: KeyIndex = field(default_factory=KeyIndex)
    pending: list[np.ndarray] = field(default_factory=list)  # fingerprints not yet in `index`
    dup: bool = False
    shadows: int = NO
    maybe_epoch: int = 0  # bumped by every insert that may overlap Delta (see Buffer.resolve)
    tombstones: list[pa.RecordBatch] = field(default_factory=list)  # KEY_COLUMNS batches

    def touch(self, lsn: int) -> None:
        if not self.min_lsn:
            self.min_lsn = lsn
        self.max_lsn = max(self.max_lsn, lsn)

    def add(self, lsn: int, batch: pa.RecordBatch, size: int) -> None:
        self.touch(lsn)
        self.batches.append(batch)
        self.rows += batch.num_rows
        self.nbytes += size

    @property
    def mutated(self) -> bool:
        """Flushing needs a MERGE (rows replace Delta rows, or Delta rows are deleted)."""
        return self.shadows != NO or bool(self.tombstones)

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


@dataclass(frozen=True)
class BufferView:
    """Buffered rows (newest per key) and the keys (KEY_COLUMNS) whose Delta rows they replace
    or delete (None: no Delta row is affected, the common case)."""

    batches: list[pa.RecordBatch]
    shadow_keys: pa.Table | None


def dedup_last(data: pa.Table, keys: tuple[str, ...]) -> pa.Table:
    """Keep the last row (in arrival order) of every distinct `keys` combination."""
    if not keys or data.num_rows < 2:
        return data
    order, _, ends = key_runs(data.select(list(keys)).combine_chunks())
    if len(ends) == data.num_rows:
        return data
    last = np.sort(order.to_numpy()[ends - 1])  # the last arrival of each key, in arrival order
    return data.take(pa.array(last))


def _key_strings(data: pa.Table | pa.RecordBatch) -> pa.Array:
    """One exact string per row key (project_id, timestamp, id), for set membership."""
    ts = data.column("timestamp")
    us = ts.cast(pa.int64()).cast(pa.string())
    out = pc.binary_join_element_wise(data.column("project_id"), us, data.column("id"), "\x1f")
    return out.combine_chunks() if isinstance(out, pa.ChunkedArray) else out


def _any_in(values: np.ndarray, sorted_found: np.ndarray) -> bool:
    """Does any of `values` occur in the sorted array `sorted_found`?"""
    pos = np.searchsorted(sorted_found, values)
    pos[pos == len(sorted_found)] = len(sorted_found) - 1
    return bool(np.any(sorted_found[pos] == values))


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
        # (table, project, ts_min µs, ts_max µs) → may Delta hold rows of that project and time?
        self.overlaps_delta: Callable[[str, str, int, int], bool] | None = None
        self._prehashed: dict[int, tuple[pa.RecordBatch, np.ndarray]] = {}

    # -- writes ------------------------------------------------------------------------------------
    def split(self, table: str, batch: pa.RecordBatch) -> list[tuple[BucketKey, pa.RecordBatch, int]]:
        """Split a coerced batch into per-bucket batches, with the bytes each one holds.

        A slice shares its parent's buffers, so it is counted by its own range (.nbytes, which is
        slice-aware but costs ~0.2 ms on 92 columns); whole batches and copies by buffer totals.
        """
        return [(key, part, size) for key, part, size, _ in self._split(table, batch)]

    def _split(
        self, table: str, batch: pa.RecordBatch
    ) -> list[tuple[BucketKey, pa.RecordBatch, int, slice | np.ndarray]]:
        """`split`, plus which rows of `batch` each part holds (a slice or an index array)."""
        if batch.num_rows == 0:
            return []
        start = bucket_starts(batch.column(batch.schema.get_field_index("timestamp")), self.bucket_us)
        projects = batch.column(batch.schema.get_field_index("project_id"))
        pmin, pmax = pc.min_max(projects).values()
        smin, smax = pc.min_max(start).values()
        if pmin == pmax and smin == smax:
            everything = slice(0, batch.num_rows)
            return [((table, pmin.as_py(), smin.as_py()), batch, batch.get_total_buffer_size(), everything)]
        order, starts, ends = key_runs(pa.table({"p": projects, "s": start}))
        order_np = order.to_numpy()
        out: list[tuple[BucketKey, pa.RecordBatch, int, slice | np.ndarray]] = []
        for a, b in zip(starts.tolist(), ends.tolist()):
            first = int(order_np[a])
            key = (table, projects[first].as_py(), start[first].as_py())
            if int(order_np[b - 1]) - first == b - a - 1:
                # rows of the key are contiguous (time-ordered input): a zero-copy slice
                part = batch.slice(first, b - a)
                out.append((key, part, part.nbytes, slice(first, first + b - a)))
            else:
                part = batch.take(order.slice(a, b - a))
                out.append((key, part, part.get_total_buffer_size(), order_np[a:b]))
        return out

    def prehash(self, batch: pa.RecordBatch) -> None:
        """Fingerprint `batch`'s keys now, in the ingesting thread, so that `insert` (run by the
        single WAL writer thread) need not; `forget` drops them if the batch is never inserted."""
        ts = batch.column(batch.schema.get_field_index("timestamp"))
        self._prehashed[id(batch)] = (batch, key_hashes(ts, batch.column(batch.schema.get_field_index("id"))))

    def forget(self, batch: pa.RecordBatch) -> None:
        self._prehashed.pop(id(batch), None)

    def insert(self, table: str, lsn: int, batch: pa.RecordBatch) -> int:
        """Add one WAL record's rows (callers apply records in LSN order)."""
        known = self._prehashed.pop(id(batch), None)
        if known is not None and known[0] is batch:
            all_hashes = known[1]
        else:
            all_hashes = key_hashes(
                batch.column(batch.schema.get_field_index("timestamp")),
                batch.column(batch.schema.get_field_index("id")),
            )
        ts = batch.column(batch.schema.get_field_index("timestamp"))
        us = np.frombuffer(ts.buffers()[1], np.int64, len(ts), ts.offset * 8) if len(ts) else None
        prepared = []
        for key, part, size, rows in self._split(table, batch):
            hashes = all_hashes[rows]
            assert us is not None
            part_us = us[rows]
            prepared.append((key, part, size, hashes, int(part_us.min()), int(part_us.max())))
        added = 0
        with self.lock:  # the Delta check too: a flush publishes and releases under this lock
            for key, part, size, hashes, lo, hi in prepared:
                overlap = self.overlaps_delta is not None and self.overlaps_delta(table, key[1], lo, hi)
                bucket = self._active.get(key)
                if bucket is None:
                    bucket = self._active[key] = Bucket(key)
                before = bucket.nbytes
                bucket.add(lsn, part, size + hashes.nbytes)  # the fingerprints count as memory
                self._nbytes += bucket.nbytes - before
                bucket.pending.append(hashes)  # checked for repeats lazily: see _settle
                if overlap and bucket.shadows != YES:  # (again) unverified: a running check is void
                    bucket.shadows = MAYBE
                    bucket.maybe_epoch += 1
                added += part.num_rows
            self.max_applied_lsn = max(self.max_applied_lsn, lsn)
        return added

    def delete(self, table: str, lsn: int, keys: pa.RecordBatch) -> int:
        """Apply one WAL tombstone record: `keys` (KEY_COLUMNS) are deleted as of `lsn`.

        Older buffered rows of those keys are dropped now; the tombstones go to the active bucket
        of their key (never to a sealed one, whose flush may already be under way) so that they
        hide and, at the next flush, delete the key's row in Delta. Returns buffered rows dropped.
        """
        dropped = 0
        with self.lock:
            for key, part, size in self.split(table, keys):
                wanted = _key_strings(part)
                for b in (*self._sealed, *self._active.values()):
                    if b.key == key and b.rows:
                        dropped += self._drop_keys(b, wanted)
                bucket = self._active.get(key)
                if bucket is None:
                    bucket = self._active[key] = Bucket(key)
                bucket.touch(lsn)
                bucket.tombstones.append(part.select(list(KEY_COLUMNS)).cast(KEY_SCHEMA))
                bucket.nbytes += size
                self._nbytes += size
            self.max_applied_lsn = max(self.max_applied_lsn, lsn)
        return dropped

    def _settle(self, bucket: Bucket) -> None:
        """Move `bucket`'s pending fingerprints into its index, flagging `dup` if a key repeats
        (within the bucket, or one of an older sealed bucket of the same key). Lazy, so the WAL
        writer thread only appends an array per record and the sorting happens in large chunks
        when a query, a flush or a DELETE needs the answer (call with `lock` held)."""
        if not bucket.pending:
            return
        hashes = bucket.pending[0] if len(bucket.pending) == 1 else np.concatenate(bucket.pending)
        bucket.pending = []
        repeated = bucket.index.add(hashes)
        if not repeated and bucket.key in self._active and self._active[bucket.key] is bucket:
            for older in self._sealed:
                if older.key == bucket.key:
                    self._settle(older)
                    repeated = repeated or older.index.contains_any(hashes)
        if repeated:
            bucket.dup = True

    def _drop_keys(self, b: Bucket, wanted: pa.Array) -> int:
        data = pa.Table.from_batches(b.batches)
        keep = pc.invert(pc.is_in(_key_strings(data), value_set=wanted))
        kept = data.filter(keep)
        dropped = data.num_rows - kept.num_rows
        if dropped:
            batch = kept.combine_chunks().to_batches()
            b.batches = batch or []
            size = sum(x.get_total_buffer_size() for x in b.batches) + 8 * len(b.index)
            self._nbytes += size - b.nbytes
            b.nbytes = size
            b.rows = kept.num_rows
        return dropped

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
        """The buffered batches of `table` (newest row per key) in buckets that can hold rows of
        these projects and times (call with `lock` held to pair it with a Delta snapshot)."""
        return self.view(table, projects, ts_min_us, ts_max_us).batches

    def view(
        self,
        table: str,
        projects: frozenset[str] | None = None,
        ts_min_us: int | None = None,
        ts_max_us: int | None = None,
    ) -> BufferView:
        """`snapshot` plus the keys whose Delta rows the buffer replaces or deletes."""
        with self.lock:
            groups: dict[BucketKey, list[Bucket]] = {}
            for b in (*self._sealed, *self._active.values()):  # sealed (older) first
                if (
                    b.key[0] == table
                    and (projects is None or b.key[1] in projects)
                    and b.overlaps(self.bucket_us, ts_min_us, ts_max_us)
                ):
                    groups.setdefault(b.key, []).append(b)
            out: list[pa.RecordBatch] = []
            shadow: list[pa.RecordBatch] = []
            for members in groups.values():
                for b in members:
                    self._settle(b)
                if any(b.dup for b in members):
                    if len(members) == 1:
                        self._dedup_in_place(members[0])
                        out.extend(members[0].batches)
                    else:  # rows of one key in a sealed and an active bucket: the newest wins
                        rows = [x for b in members for x in b.batches]
                        if rows:
                            merged = dedup_last(pa.Table.from_batches(rows), KEY_COLUMNS[1:])
                            out.extend(merged.combine_chunks().to_batches())
                else:
                    for b in members:
                        out.extend(b.compacted())
                for b in members:
                    if b.shadows != NO:
                        shadow.extend(x.select(list(KEY_COLUMNS)).cast(KEY_SCHEMA) for x in b.batches)
                    shadow.extend(b.tombstones)
            keys = pa.Table.from_batches(shadow, KEY_SCHEMA).combine_chunks() if shadow else None
            return BufferView([x for x in out if x.num_rows], keys)

    def _dedup_in_place(self, b: Bucket) -> None:
        """Keep the newest row of every key in `b` (exact, on the key columns); frees memory."""
        if not b.batches:
            b.dup = False
            return
        data = dedup_last(pa.Table.from_batches(b.batches), KEY_COLUMNS[1:])
        b.batches = data.combine_chunks().to_batches() or []
        size = sum(x.get_total_buffer_size() for x in b.batches) + 8 * len(b.index)
        self._nbytes += size - b.nbytes
        b.nbytes = size
        b.rows = data.num_rows
        b.dup = False

    # -- shadow verification -----------------------------------------------------------------------
    def resolve(self, table: str, fingerprints: Callable[[str, int, int], np.ndarray]) -> None:
        """Settle every MAYBE bucket of `table`: does it really repeat a key that Delta holds?

        `fingerprints(project, ts_min, ts_max)` returns the sorted key fingerprints of Delta's rows
        of that project and time range (one read per project, outside the lock). A bucket that
        received rows meanwhile stays MAYBE (it is treated as shadowing until the next call).
        """
        with self.lock:
            pending = []
            for b in (*self._sealed, *self._active.values()):
                if b.key[0] == table and b.shadows == MAYBE:
                    self._settle(b)
                    pending.append((b, b.maybe_epoch, list(b.index.runs)))  # runs are never modified
        if not pending:
            return
        by_project: dict[str, list[tuple[Bucket, int, list[np.ndarray]]]] = {}
        for item in pending:
            by_project.setdefault(item[0].key[1], []).append(item)
        for project, items in by_project.items():
            lo = min(b.key[2] for b, _, _ in items)
            hi = max(b.end_us(self.bucket_us) for b, _, _ in items) - 1
            found = fingerprints(project, lo, hi)
            for b, epoch, runs in items:
                hit = len(found) > 0 and any(_any_in(run, found) for run in runs)
                with self.lock:
                    if b.shadows == MAYBE and b.maybe_epoch == epoch:
                        b.shadows = YES if hit else NO

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
        """The buckets are committed and visible in Delta: forget them.

        Rows that arrived for the same keys meanwhile were checked against the Delta snapshot
        of before this commit; those that repeat a key just committed now replace a Delta row.
        """
        with self.lock:
            ids = {id(b) for b in buckets}
            self._sealed = [b for b in self._sealed if id(b) not in ids]
            self._nbytes -= sum(b.nbytes for b in buckets)
            for b in buckets:
                newer = self._active.get(b.key)
                if newer is None or newer.shadows == YES:
                    continue
                self._settle(b)
                self._settle(newer)
                if not newer.index.runs:
                    continue
                if any(b.index.contains_any(run) for run in newer.index.runs):
                    newer.shadows = YES
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
                    b.index.runs.extend(newer.index.runs)
                    b.pending.extend(newer.pending)
                    b.dup = b.dup or newer.dup
                    b.shadows = max(b.shadows, newer.shadows)
                    b.maybe_epoch += newer.maybe_epoch + 1
                    b.tombstones.extend(newer.tombstones)
                self._active[b.key] = b

    def release_watermark(self) -> int:
        """Lowest LSN whose rows may still be only in the WAL (records below it are in Delta)."""
        with self.lock:
            lsns = [b.min_lsn for b in (*self._active.values(), *self._sealed)]
            return min([*lsns, self.max_applied_lsn + 1])
