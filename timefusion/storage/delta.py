"""One Delta Lake table: create, append with commit metadata and retries, snapshot of its files.

A `DeltaStore` keeps one long-lived `DeltaTable` object per table (re-opening the table per commit
re-reads the log and halved append speed in a measurement, DESIGN.md §3). Snapshots are the file
list of one committed version with partition values and per-file timestamp stats, which the query
engine prunes before DataFusion sees a single file.

On object storage (`location.s3` set) an append is split in two (`timefusion.storage.objects`):
the Parquet files are written here, uploaded with create-only puts and added to the read cache
*outside* the table lock; only the Delta commit (a conditional put of the next log entry, made by
delta-rs, retried on conflicts) runs under it. A commit whose outcome is unknown (timeout, lost
connection) is looked up in the log by its commit id before anything is cleaned up.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

import pyarrow as pa
import pyarrow.compute as pc
from deltalake import CommitProperties, DeltaTable, WriterProperties, write_deltalake
from deltalake.exceptions import CommitFailedError, DeltaError, TableNotFoundError

from timefusion.schema import TableSchema
from timefusion.storage.cache import ReadCache
from timefusion.storage.location import TableLocation
from timefusion.write.recovery import Committed, merge

log = logging.getLogger(__name__)

META_WAL_ID = "timefusion.wal_id"
META_MAX_LSN = "timefusion.max_lsn"
META_KEYS = "timefusion.wal_keys"
META_BUCKET_US = "timefusion.bucket_us"


@dataclass(frozen=True)
class Snapshot:
    """The data files of one committed table version, with what pruning needs."""

    version: int
    files: pa.Table  # path (absolute uri), project_id, date, ts_min, ts_max, num_records, size_bytes

    @property
    def num_files(self) -> int:
        return self.files.num_rows


_FILES_SCHEMA = pa.schema(
    [
        ("path", pa.string()),
        ("project_id", pa.string()),
        ("date", pa.date32()),
        ("ts_min", pa.timestamp("us", tz="UTC")),
        ("ts_max", pa.timestamp("us", tz="UTC")),
        ("num_records", pa.int64()),
        ("size_bytes", pa.int64()),
    ]
)


def _ceil_ms(ts_max: pa.Array) -> pa.Array:
    """delta-rs truncates timestamp statistics to milliseconds (a file whose newest row is
    12:00:00.999999 records 12:00:00.999), so a stored maximum can lie below the true one; widen it
    to the end of its millisecond so pruning never skips a file that holds a matching row."""
    return pc.add(ts_max, pa.scalar(999, pa.duration("us")))


class DeltaStore:
    """Owns the `DeltaTable` of one table; appends are serialised by the caller (the flusher)."""

    def __init__(
        self,
        schema: TableSchema,
        location: TableLocation,
        max_commit_retries: int = 10,
        cache: ReadCache | None = None,
    ) -> None:
        self.schema = schema
        self.location = location
        self.max_commit_retries = max_commit_retries
        self.cache = cache
        self._lock = threading.Lock()
        self._objects = None
        if location.s3 is not None:
            from timefusion.storage.objects import ObjectWriter

            self._objects = ObjectWriter(self, location.s3)
        self._table = self._open_or_create()
        self._snapshot = self._build_snapshot()

    # -- opening -----------------------------------------------------------------------------------
    def _open_or_create(self) -> DeltaTable:
        uri, opts = self.location.uri, self.location.storage_options
        try:
            return DeltaTable(uri, storage_options=opts)
        except TableNotFoundError:
            pass
        self.location.prepare()
        try:
            return DeltaTable.create(
                uri,
                schema=self.schema.arrow_schema,
                partition_by=list(self.schema.partition_by),
                name=self.schema.name,
                description=self.schema.description or None,
                storage_options=opts,
                mode="ignore",
            )
        except DeltaError:
            # another process created it between our check and our create
            return DeltaTable(uri, storage_options=opts)

    # -- snapshots ---------------------------------------------------------------------------------
    def _build_snapshot(self) -> Snapshot:
        actions = pa.table(self._table.get_add_actions(flatten=True))
        n = actions.num_rows
        if n == 0:
            return Snapshot(self._table.version(), _FILES_SCHEMA.empty_table())
        root = self.location.uri.rstrip("/")
        paths = [f"{root}/{unquote(p)}" for p in actions.column("path").to_pylist()]

        def column(name: str, typ: pa.DataType) -> pa.Array:
            if name in actions.column_names:
                return actions.column(name).cast(typ)
            return pa.nulls(n, typ)

        files = pa.table(
            [
                pa.array(paths, pa.string()),
                column("partition.project_id", pa.string()),
                column("partition.date", pa.date32()),
                column("min.timestamp", _FILES_SCHEMA.field("ts_min").type),
                _ceil_ms(column("max.timestamp", _FILES_SCHEMA.field("ts_max").type)),
                column("num_records", pa.int64()),
                column("size_bytes", pa.int64()),
            ],
            schema=_FILES_SCHEMA,
        )
        return Snapshot(self._table.version(), files)

    @property
    def snapshot(self) -> Snapshot:
        return self._snapshot

    def refresh(self) -> Snapshot:
        """Pick up commits made by other writers."""
        with self._lock:
            self._table.update_incremental()
            self._snapshot = self._build_snapshot()
            return self._snapshot

    # -- writing -----------------------------------------------------------------------------------
    def append(self, data: pa.Table, metadata: dict[str, Any]) -> Snapshot:
        """Commit `data` (deduplicated, sorted) as one Delta version, retried on conflicts.

        Returns the new snapshot without publishing it: see `publish`.
        """
        if self._objects is not None:
            return self._objects.append(data, metadata)
        props = CommitProperties(
            custom_metadata={k: v if isinstance(v, str) else json.dumps(v) for k, v in metadata.items()},
            max_commit_retries=self.max_commit_retries,
        )
        writer = WriterProperties(compression="ZSTD", compression_level=3, max_row_group_size=131072)
        delay = 0.05
        with self._lock:
            for attempt in range(1, 6):
                try:
                    write_deltalake(
                        self._table,
                        data,
                        mode="append",
                        partition_by=list(self.schema.partition_by),
                        writer_properties=writer,
                        commit_properties=props,
                    )
                    break
                except CommitFailedError:
                    # Conflicts are retried inside delta-rs; this is a last resort after those.
                    if attempt == 5:
                        raise
                    log.warning("commit to %s failed (attempt %d); retrying", self.schema.name, attempt)
                    time.sleep(delay)
                    delay *= 2
                    self._table.update_incremental()
            return self._build_snapshot()

    def publish(self, snapshot: Snapshot) -> None:
        """Make `snapshot` the one queries see (the flusher does this under the buffer lock)."""
        if snapshot.version >= self._snapshot.version:
            self._snapshot = snapshot

    # -- recovery ----------------------------------------------------------------------------------
    def committed_wal_keys(self, wal_id: str, oldest_lsn: int) -> Committed:
        """For commits made from WAL `wal_id`: bucket width → bucket key → highest LSN committed.

        Reads commit metadata newest first and stops at the first of our commits whose LSN
        high-water mark is below `oldest_lsn`: that mark never decreases from one commit to the
        next, so no older commit can hold a record the WAL still has.
        """
        result: Committed = {}
        for entry in self._history_newest_first():
            if entry.get(META_WAL_ID) != wal_id:
                continue
            max_lsn = int(entry.get(META_MAX_LSN, 0))
            if max_lsn < oldest_lsn:
                return result
            width = int(entry.get(META_BUCKET_US, 0))
            merge(result, width, {k: int(v) for k, v in json.loads(entry.get(META_KEYS, "{}")).items()})
        return result

    def _history_newest_first(self) -> Iterator[dict[str, Any]]:
        """Commit info of each version, newest first, read lazily."""
        if self._objects is not None:
            # on object storage read the log entries ourselves: `DeltaTable.history()` holds the
            # GIL while it waits on the network, which would freeze the server during replay
            yield from self._objects.commit_infos()
            return
        limit = 64
        seen = 0
        while True:
            history = self._table.history(limit)
            yield from history[seen:]
            if len(history) < limit:
                return
            seen = len(history)
            limit *= 4


def prune_files(
    files: pa.Table,
    projects: frozenset[str] | None,
    ts_min: Any,
    ts_max: Any,
    date_min: Any,
    date_max: Any,
) -> pa.Table:
    """The files that can hold rows inside the given bounds (None = unbounded); stats-less files stay."""
    if files.num_rows == 0:
        return files
    mask = pa.array([True] * files.num_rows)

    def keep(cond: pa.Array) -> None:
        nonlocal mask
        mask = pc.and_(mask, pc.fill_null(cond, True))

    if projects is not None:
        keep(pc.is_in(files["project_id"], pa.array(sorted(projects), pa.string())))
    if date_min is not None:
        keep(pc.greater_equal(files["date"], pa.scalar(date_min, pa.date32())))
    if date_max is not None:
        keep(pc.less_equal(files["date"], pa.scalar(date_max, pa.date32())))
    ts_type = files.schema.field("ts_min").type
    if ts_min is not None:
        keep(pc.greater_equal(files["ts_max"], pa.scalar(ts_min, ts_type)))
    if ts_max is not None:
        keep(pc.less_equal(files["ts_min"], pa.scalar(ts_max, ts_type)))
    return files.filter(mask)
