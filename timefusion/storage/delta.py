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

Rows that replace or delete rows already in Delta (a retried batch, UPDATE, DELETE: see
`write/buffer.py`) are committed with `merge`, one MERGE commit that deletes, updates and inserts
by key, so Delta itself never holds two rows of one key. `may_contain` (min/max stats per project)
and `key_fingerprints` (the keys of one project and time range) tell the write path cheaply whether
such a MERGE is needed at all.
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

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
from deltalake import CommitProperties, DeltaTable, WriterProperties, write_deltalake
from deltalake.exceptions import CommitFailedError, DeltaError, TableNotFoundError

from timefusion.schema import TableSchema
from timefusion.storage.cache import ReadCache
from timefusion.storage.keys import key_hashes
from timefusion.storage.location import TableLocation
from timefusion.storage.recovery import Committed, merge

OP_COLUMN = "__tf_op"  # in a MERGE source: 'u' = upsert the row, 'd' = delete the key

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

    def ranges(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """project → (ts_min µs, ts_max µs) of its files (missing stats: unbounded)."""
        cached = self.__dict__.get("_ranges")
        if cached is not None:
            return cached
        out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        if self.files.num_rows:
            lo = pc.fill_null(self.files["ts_min"].cast(pa.int64()), np.iinfo(np.int64).min).to_numpy()
            hi = pc.fill_null(self.files["ts_max"].cast(pa.int64()), np.iinfo(np.int64).max).to_numpy()
            projects = self.files["project_id"].to_pylist()
            groups: dict[str, list[int]] = {}
            for i, p in enumerate(projects):
                groups.setdefault(p, []).append(i)
            for p, idx in groups.items():
                out[p] = (lo[idx], hi[idx])
        object.__setattr__(self, "_ranges", out)
        return out


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
        self._fingerprints: dict[tuple[int, str, int, int], np.ndarray] = {}

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
        """Pick up commits made by other writers (their rows are in no buffer of ours, so
        publishing them at once duplicates nothing)."""
        with self._lock:
            before = self._table.version()
            self._table.update_incremental()
            if self._table.version() != before:
                snapshot = self._build_snapshot()
                if snapshot.version > self._snapshot.version:
                    self._snapshot = snapshot
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

    def merge(self, rows: pa.Table, deletes: pa.Table | None, metadata: dict[str, Any]) -> Snapshot:
        """One commit that upserts `rows` and deletes the keys in `deletes` (project_id, timestamp,
        id) — a key present in both is upserted. Rows must be unique per key. Returns the new
        snapshot without publishing it (see `publish`)."""
        schema = self.schema.arrow_schema
        loose = pa.schema([f.with_nullable(True) for f in schema] + [pa.field(OP_COLUMN, pa.string())])
        parts = [
            rows.select(schema.names)
            .cast(pa.schema(list(loose)[:-1]))
            .append_column(OP_COLUMN, pa.array(["u"] * rows.num_rows, pa.string()))
        ]
        if deletes is not None and deletes.num_rows:
            if rows.num_rows:
                upserted = _keys(rows)
                deletes = deletes.filter(pc.invert(pc.is_in(_keys(deletes), value_set=upserted)))
            n = deletes.num_rows
            cols = {f.name: pa.nulls(n, f.type) for f in loose}
            for name in ("project_id", "timestamp", "id"):
                cols[name] = deletes.column(name).cast(loose.field(name).type)
            cols["date"] = deletes.column("timestamp").cast(pa.date32())
            cols[OP_COLUMN] = pa.array(["d"] * n, pa.string())
            parts.append(pa.table(cols, schema=loose))
        source = pa.concat_tables(parts).combine_chunks()
        projects = sorted(set(source.column("project_id").to_pylist()))
        dates = sorted({d.isoformat() for d in source.column("date").to_pylist()})
        quoted = ", ".join("'" + p.replace("'", "''") + "'" for p in projects)
        predicate = (
            f"t.project_id IN ({quoted}) AND t.date IN ({', '.join(repr(d) for d in dates)}) "
            "AND t.project_id = s.project_id AND t.date = s.date AND t.timestamp = s.timestamp "
            "AND t.id = s.id"
        )
        props = CommitProperties(
            custom_metadata={k: v if isinstance(v, str) else json.dumps(v) for k, v in metadata.items()},
            max_commit_retries=self.max_commit_retries,
        )
        writer = WriterProperties(compression="ZSTD", compression_level=3, max_row_group_size=131072)
        with self._lock:
            for attempt in range(1, 6):
                try:
                    (
                        self._table.merge(
                            source,
                            predicate,
                            source_alias="s",
                            target_alias="t",
                            writer_properties=writer,
                            commit_properties=props,
                        )
                        .when_matched_delete(predicate=f"s.{OP_COLUMN} = 'd'")
                        .when_matched_update_all(except_cols=[OP_COLUMN])
                        .when_not_matched_insert_all(
                            predicate=f"s.{OP_COLUMN} = 'u'", except_cols=[OP_COLUMN]
                        )
                        .execute()
                    )
                    break
                except CommitFailedError:
                    if attempt == 5:
                        raise
                    log.warning("merge into %s failed (attempt %d); retrying", self.schema.name, attempt)
                    time.sleep(0.05 * 2**attempt)
                    self._table.update_incremental()
            return self._build_snapshot()

    # -- what Delta holds --------------------------------------------------------------------------
    def may_contain(self, project: str, ts_min_us: int, ts_max_us: int) -> bool:
        """Could the published snapshot hold rows of `project` in [ts_min, ts_max]? (file stats)"""
        found = self._snapshot.ranges().get(project)
        if found is None:
            return False
        lo, hi = found
        return bool(np.any((lo <= ts_max_us) & (hi >= ts_min_us)))

    def key_fingerprints(self, project: str, ts_min_us: int, ts_max_us: int) -> np.ndarray:
        """Sorted fingerprints (`keys.key_hashes`) of the published snapshot's rows of `project`
        with timestamp in [ts_min, ts_max]: reads only the key columns of the overlapping files."""
        snapshot = self._snapshot
        cache_key = (snapshot.version, project, ts_min_us, ts_max_us)
        cached = self._fingerprints.get(cache_key)
        if cached is not None:
            return cached
        ts_type = pa.timestamp("us", tz="UTC")
        lo, hi = pa.scalar(ts_min_us, ts_type), pa.scalar(ts_max_us, ts_type)
        files = prune_files(snapshot.files, frozenset([project]), lo, hi, None, None)
        if files.num_rows == 0:
            out = np.empty(0, np.uint64)
        else:
            # The snapshot's own file list (never a directory listing: compaction leaves unreferenced
            # files behind); on S3 through the read cache, so the key columns are read locally.
            paths = files["path"].to_pylist()
            if self.cache is not None:
                paths = self.cache.local_paths(paths)
            arrow = self.schema.arrow_schema  # delta-rs files may declare string_view: read as ours
            key_schema = pa.schema([arrow.field("timestamp"), arrow.field("id")])
            dataset = ds.dataset([_local_path(p) for p in paths], schema=key_schema, format="parquet")
            keys = dataset.to_table(
                columns=["timestamp", "id"],
                filter=(ds.field("timestamp") >= lo) & (ds.field("timestamp") <= hi),
            )
            out = np.sort(key_hashes(keys["timestamp"], keys["id"]))
        if len(self._fingerprints) > 256:
            self._fingerprints.clear()
        self._fingerprints[cache_key] = out
        return out

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


def _local_path(path: str) -> str:
    return unquote(path[len("file://") :]) if path.startswith("file://") else path


def _keys(data: pa.Table) -> pa.Array:
    us = data.column("timestamp").cast(pa.int64()).cast(pa.string())
    out = pc.binary_join_element_wise(data.column("project_id"), us, data.column("id"), "\x1f")
    return out.combine_chunks() if isinstance(out, pa.ChunkedArray) else out


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
