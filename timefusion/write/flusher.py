"""Background flush: completed buffer buckets → one Delta commit per table → WAL released.

Each commit records, in its commit metadata, the WAL id and for every bucket key the highest LSN it
covers; recovery reads that back and skips those rows, so a crash between the Delta commit and the
WAL release duplicates nothing. Rows stay queryable from memory until the commit is published,
and buffer release and snapshot publication happen under the buffer lock, so a query sees each
row exactly once.

Buckets whose rows replace rows already in Delta, or that carry DELETE tombstones
(`Bucket.mutated`), go into a second commit made with MERGE (`DeltaStore.merge`), so Delta never
holds two rows of one key; a bucket only *suspected* of that (its times overlap a Delta file's
stats) is first verified against Delta's keys, so late but new rows still take the plain append.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import pyarrow as pa

from timefusion.schema import TableSchema
from timefusion.storage.delta import META_BUCKET_US, META_KEYS, META_MAX_LSN, META_WAL_ID, DeltaStore
from timefusion.storage.recovery import key_string
from timefusion.write.buffer import KEY_SCHEMA, MAYBE, Bucket, Buffer, dedup_last

log = logging.getLogger(__name__)


def prepare_commit(schema: TableSchema, buckets: list[Bucket]) -> pa.Table:
    """The rows of `buckets` deduplicated on the dedup keys and sorted by the sort keys."""
    data = pa.Table.from_batches(
        [b for bucket in buckets for b in bucket.batches], schema=schema.arrow_schema
    )
    keys = tuple(dict.fromkeys(("project_id", *schema.dedup_keys))) if schema.dedup_keys else ()
    data = dedup_last(data, keys)
    order = [(p, "ascending") for p in schema.partition_by]
    order += [(c, "descending" if desc else "ascending") for c, desc in schema.sort_by]
    return data.sort_by(order)


@dataclass
class FlushStats:
    commits: int = 0
    rows: int = 0
    failures: int = 0
    last_error: str | None = None
    last_flush_secs: float = 0.0


class Flusher:
    """Runs `flush()` every `interval` seconds on a thread, or sooner when `trigger()`ed."""

    def __init__(
        self,
        buffer: Buffer,
        stores: dict[str, DeltaStore],
        wal_id: str,
        release_wal: Callable[[int], object],
        interval: float,
        max_age_secs: float,
        pressure_fraction: float = 0.8,
    ) -> None:
        self.buffer = buffer
        self.stores = stores
        self.wal_id = wal_id
        self.release_wal = release_wal
        self.interval = interval
        self.max_age_secs = max_age_secs
        self.pressure_fraction = pressure_fraction
        self.stats = FlushStats()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._flush_lock = threading.Lock()  # one flush at a time (tick, trigger, shutdown)
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="timefusion-flusher", daemon=True)
        self._thread.start()

    def trigger(self) -> None:
        """Flush now, everything (memory pressure)."""
        self._wake.set()

    def under_pressure(self) -> bool:
        return self.buffer.nbytes >= self.pressure_fraction * self.buffer.max_bytes

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.interval)
            if self._stop.is_set():
                break
            forced = self._wake.is_set()
            self._wake.clear()
            try:
                self.flush(everything=forced or self.under_pressure())
            except Exception as e:  # keep the thread alive: the rows are still in WAL and memory
                log.exception("flush failed; will retry: %s", e)

    def stop(self, flush: bool = True) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join()
        if flush:
            self.flush(everything=True)

    def flush(self, everything: bool = False) -> int:
        """Commit completed buckets (all buckets if `everything`); returns rows committed."""
        with self._flush_lock:
            # Other processes may write the same tables: publish their commits first. Under the
            # flush lock, so a commit of ours is never published before its rows leave the buffer.
            for name, store in self.stores.items():
                try:
                    store.refresh()
                except Exception as e:
                    log.warning("cannot read new commits of %s: %s", name, e)
            started = time.monotonic()
            now_us = None if everything else int(time.time() * 1_000_000)
            total = 0
            error: Exception | None = None
            for name, store in self.stores.items():
                buckets = self.buffer.seal(name, now_us, None if everything else self.max_age_secs)
                if not buckets:
                    continue
                high_water = self.buffer.max_applied_lsn  # ≥ every LSN sealed, never decreases
                try:
                    total += self._commit(store, buckets, high_water)
                except Exception as e:
                    self.buffer.unseal(buckets)
                    self.stats.failures += 1
                    self.stats.last_error = f"{type(e).__name__}: {e}"
                    log.error(
                        "flush of %s failed (%d buckets stay in memory and WAL): %s", name, len(buckets), e
                    )
                    error = e
            self.release_wal(self.buffer.release_watermark())
            self.stats.last_flush_secs = time.monotonic() - started
            if error is not None:
                raise error
            return total

    def _commit(self, store: DeltaStore, buckets: list[Bucket], high_water: int) -> int:
        if any(b.shadows == MAYBE for b in buckets):
            self.buffer.resolve(store.schema.name, store.key_fingerprints)
        plain = [b for b in buckets if not b.mutated]
        mutated = [b for b in buckets if b.mutated]
        total = 0
        for group, merge in ((plain, False), (mutated, True)):
            if group:
                total += self._commit_group(store, group, high_water, merge)
        return total

    def _commit_group(self, store: DeltaStore, buckets: list[Bucket], high_water: int, merge: bool) -> int:
        data = prepare_commit(store.schema, buckets)
        keys: dict[str, int] = {}
        for b in buckets:
            k = key_string(b.key[1], b.key[2])
            keys[k] = max(keys.get(k, 0), b.max_lsn)
        meta = {
            META_WAL_ID: self.wal_id,
            META_MAX_LSN: str(high_water),
            META_BUCKET_US: str(self.buffer.bucket_us),
            META_KEYS: keys,
        }
        t0 = time.monotonic()
        if merge:
            tombstones = [t for b in buckets for t in b.tombstones]
            deletes = pa.Table.from_batches(tombstones, KEY_SCHEMA) if tombstones else None
            snapshot = store.merge(data, deletes, meta)
        else:
            snapshot = store.append(data, meta)
        with self.buffer.lock:  # publish the new files and forget the rows in one step
            store.publish(snapshot)
            self.buffer.release(buckets)
        self.stats.commits += 1
        self.stats.rows += data.num_rows
        log.info(
            "flushed %d rows of %s in %d buckets to Delta version %d with %s (%.0f ms)",
            data.num_rows,
            store.schema.name,
            len(buckets),
            snapshot.version,
            "MERGE" if merge else "append",
            (time.monotonic() - t0) * 1000,
        )
        return data.num_rows
