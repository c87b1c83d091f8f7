"""Appends to a Delta table in object storage: upload first, commit second, verify when unsure.

Order of an append (`ObjectWriter.append`):

1. Encode each partition (`project_id`, `date`) of the batch as one Parquet file, in memory.
2. Upload the files with create-only puts (`If-None-Match: *`; names are random UUIDs, so a
   clash means a bug, never an overwrite) — concurrently and *outside* the table lock, so other
   flushes and queries never wait on the network. If an upload fails, the files already uploaded
   are deleted and nothing was committed: no half-visible commit is possible, because Delta readers
   only see files that a log entry adds.
3. Put the files into the read cache (`ReadCache.put`): the first query after the flush reads them
   locally.
4. Under the table lock, commit one log entry with delta-rs (`create_write_transaction`), which
   writes `_delta_log/<version>.json` with a conditional put and retries on version conflicts;
   conflicts that outlast its retries are retried here after re-reading the log.
5. When the commit fails with anything but a conflict (timeout, connection lost, endpoint down) its
   outcome is unknown: the log is re-read and searched for this commit's id
   (`timefusion.commit_id` in the commit metadata). Found → success. Not found → the uploaded files
   are deleted and the error re-raised (the flusher keeps the rows in memory and WAL and retries).
   The log cannot be read either → `CommitUnknownError`, and the files are left in place (an
   unreferenced file is harmless; vacuum removes it). The commit is remembered: the next append
   first settles it (blocking further commits while the log stays unreadable); if it did land, the
   rows it carried (by dedup keys) are dropped from the new batch, so the flusher's retry of the
   same buffered rows cannot store them twice.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import obstore
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from deltalake import CommitProperties
from deltalake.exceptions import CommitFailedError
from deltalake.transaction import AddAction

from timefusion.storage.s3 import S3Settings, split_uri

if TYPE_CHECKING:
    from timefusion.storage.delta import DeltaStore, Snapshot

log = logging.getLogger(__name__)

META_COMMIT_ID = "timefusion.commit_id"
NULL_PARTITION = "__HIVE_DEFAULT_PARTITION__"
_PLAIN = re.compile(r"[A-Za-z0-9._\-]+")


class CommitUnknownError(RuntimeError):
    """A commit may or may not have landed, and the log could not be read to find out."""


@dataclass(frozen=True)
class DataFile:
    key: str  # object key relative to the table root (also the Delta `add.path`)
    data: bytes
    partition_values: dict[str, str | None]
    stats: str  # Delta statistics JSON


def _partition_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)


def _path_segment(name: str, text: str | None) -> str:
    if text is None:
        return f"{name}={NULL_PARTITION}"
    return f"{name}={text if _PLAIN.fullmatch(text) else quote(text, safe='')}"


def _ts_text(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class _Unresolved:
    """A commit whose outcome could not be established."""

    commit_id: str
    before: int  # table version before it
    keys: pa.Table  # the dedup-key columns of the rows it carried
    files: list[str]


class ObjectWriter:
    """The object-storage half of `DeltaStore.append` (see the module docstring)."""

    def __init__(self, store: DeltaStore, s3: S3Settings, upload_threads: int = 4) -> None:
        self.delta = store
        self.s3 = s3
        _, self.table_key = split_uri(store.location.uri)
        self.client = s3.store(prefix=self.table_key)
        self._pool = ThreadPoolExecutor(upload_threads, thread_name_prefix="timefusion-upload")
        self._unresolved: _Unresolved | None = None

    # -- encoding ----------------------------------------------------------------------------------
    def encode(self, data: pa.Table) -> list[DataFile]:
        """One Parquet file per partition of `data` (row order kept), without partition columns."""
        parts = list(self.delta.schema.partition_by)
        if data.num_rows == 0:
            return []
        groups = data.select(parts).group_by(parts, use_threads=False).aggregate([]).to_pylist()
        files = []
        for values in groups:
            mask = None
            for name in parts:
                column = data.column(name)
                cond = pc.is_null(column) if values[name] is None else pc.equal(column, values[name])
                cond = pc.fill_null(cond, False)
                mask = cond if mask is None else pc.and_(mask, cond)
            sub = data.filter(mask) if len(groups) > 1 else data
            files.append(self._encode_one(sub.drop_columns(parts), {n: values[n] for n in parts}))
        return files

    def _encode_one(self, table: pa.Table, partition: dict[str, Any]) -> DataFile:
        sink = pa.BufferOutputStream()
        pq.write_table(
            table,
            sink,
            compression="zstd",
            compression_level=3,
            row_group_size=131072,
            write_statistics=True,
            # page index (column/offset index), as delta-rs's writer does: DataFusion skips pages
            # outside a timestamp range with it (trace lookup over 1M rows: 1.47x slower without)
            write_page_index=True,
            max_rows_per_page=20_000,  # arrow-rs's default page row limit: finer page pruning
        )
        texts = {name: _partition_text(v) for name, v in partition.items()}
        key = "/".join(_path_segment(n, t) for n, t in texts.items())
        key = f"{key}/part-00000-{uuid.uuid4()}-c000.zstd.parquet"
        stats: dict[str, Any] = {
            "numRecords": table.num_rows,
            "minValues": {},
            "maxValues": {},
            "nullCount": {},
        }
        if "timestamp" in table.column_names and table.num_rows:
            ts = table.column("timestamp")
            mm = pc.min_max(ts).as_py()
            stats["nullCount"]["timestamp"] = ts.null_count
            if mm["min"] is not None:
                stats["minValues"]["timestamp"] = _ts_text(mm["min"])
                stats["maxValues"]["timestamp"] = _ts_text(mm["max"])
        return DataFile(key, sink.getvalue().to_pybytes(), texts, json.dumps(stats))

    # -- uploading ---------------------------------------------------------------------------------
    def upload(self, files: list[DataFile]) -> None:
        """Create every file in the bucket, or none (the ones already created are deleted)."""

        def put(f: DataFile) -> str:
            obstore.put(self.client, f.key, f.data, mode="create")
            return f.key

        futures = [self._pool.submit(put, f) for f in files]
        done, error = [], None
        for fut in futures:
            try:
                done.append(fut.result())
            except Exception as e:
                error = error or e
        if error is not None:
            self.delete(done)
            raise error

    def delete(self, keys: list[str]) -> None:
        for key in keys:
            try:
                obstore.delete(self.client, key)
            except Exception as e:  # an orphan file is harmless (vacuum removes it)
                log.warning("could not delete uncommitted file %s: %s", key, e)

    # -- committing --------------------------------------------------------------------------------
    def _settle(self, data: pa.Table) -> pa.Table:
        """Settle an earlier commit of unknown outcome; returns `data` less what it stored."""
        pending = self._unresolved
        if pending is None:
            return data
        found = self.find_commit(pending.commit_id, pending.before)
        if found is None:
            raise CommitUnknownError(
                f"an earlier commit to {self.delta.schema.name} still cannot be checked (the Delta log is "
                "unreadable); no further commits until it can"
            )
        self._unresolved = None
        if not found:
            self.delete(pending.files)
            return data
        keys = list(pending.keys.column_names)
        log.warning(
            "an earlier commit to %s of unknown outcome did land; not storing its %d rows again",
            self.delta.schema.name,
            pending.keys.num_rows,
        )
        if not keys or data.num_rows == 0:
            return data
        indexed = data.select(keys).append_column("__row", pa.array(range(data.num_rows), pa.int64()))
        kept = indexed.join(pending.keys, keys=keys, join_type="left anti").column("__row").combine_chunks()
        return data.take(pc.take(kept, pc.array_sort_indices(kept)))  # in the original (sorted) order

    def append(self, data: pa.Table, metadata: dict[str, Any]) -> Snapshot:
        if self._unresolved is not None:
            with self.delta._lock:
                data = self._settle(data)
        files = self.encode(data)
        if not files:
            with self.delta._lock:
                return self.delta._build_snapshot()
        self.upload(files)
        cache = self.delta.cache
        if cache is not None:
            root = self.delta.location.uri.rstrip("/")
            for f in files:
                cache.put(f"{root}/{f.key}", f.data)
        commit_id = uuid.uuid4().hex
        custom = {k: v if isinstance(v, str) else json.dumps(v) for k, v in metadata.items()}
        custom[META_COMMIT_ID] = commit_id
        props = CommitProperties(custom_metadata=custom, max_commit_retries=self.delta.max_commit_retries)
        now_ms = int(time.time() * 1000)
        actions = [
            AddAction(quote(f.key, safe="/=%"), len(f.data), f.partition_values, now_ms, True, f.stats)
            for f in files
        ]
        keys = [f.key for f in files]
        table_name = self.delta.schema.name
        with self.delta._lock:
            table = self.delta._table
            before = table.version()
            delay = 0.05
            for attempt in range(1, 7):
                try:
                    table.create_write_transaction(
                        actions,
                        mode="append",
                        schema=table.schema(),
                        partition_by=list(self.delta.schema.partition_by),
                        commit_properties=props,
                    )
                    break
                except CommitFailedError:
                    # a conflict beyond delta-rs's own retries: nothing was written; re-read, retry
                    if attempt == 6:
                        self.delete(keys)
                        raise
                    log.warning("commit to %s conflicted (attempt %d); retrying", table_name, attempt)
                    time.sleep(delay)
                    delay *= 2
                    self._update(table)
                except Exception as e:
                    found = self.find_commit(commit_id, before)
                    if found:
                        log.warning("commit to %s reported %s but is in the log", self.delta.schema.name, e)
                        break
                    if found is None:
                        dedup = [k for k in self.delta.schema.dedup_keys if k in data.column_names]
                        self._unresolved = _Unresolved(commit_id, before, data.select(dedup), keys)
                        raise CommitUnknownError(
                            f"commit to {self.delta.schema.name} failed ({e}) and the Delta log could not "
                            f"be read to check whether it landed; its files stay in the bucket"
                        ) from e
                    self.delete(keys)
                    raise
            self._update(table)
            return self.delta._build_snapshot()

    @staticmethod
    def _update(table: Any) -> None:
        table.update_incremental()

    def commit_infos(self) -> Iterator[dict[str, Any]]:
        """The `commitInfo` of each log entry, newest first, until an entry is missing (cleaned up)."""
        for version in range(self.delta._table.version(), -1, -1):
            try:
                raw = bytes(obstore.get(self.client, f"_delta_log/{version:020d}.json").bytes())
            except FileNotFoundError:
                return
            for line in raw.decode().splitlines():
                info = json.loads(line).get("commitInfo") if line.strip() else None
                if info is not None:
                    yield info
                    break

    def find_commit(self, commit_id: str, before: int, attempts: int = 3) -> bool | None:
        """Whether a commit with `commit_id` exists after version `before`; None if unreadable."""
        table = self.delta._table
        table_name = self.delta.schema.name
        delay = 0.5
        for attempt in range(attempts):
            try:
                table.update_incremental()
                # read the new log entries directly: `DeltaTable.history()` holds the GIL while it
                # waits on the network (measured: 4 s of a stalled endpoint froze every thread)
                for version in range(before + 1, table.version() + 1):
                    entry = bytes(obstore.get(self.client, f"_delta_log/{version:020d}.json").bytes())
                    for line in entry.decode().splitlines():
                        info = json.loads(line).get("commitInfo") if line.strip() else None
                        if info is not None and info.get(META_COMMIT_ID) == commit_id:
                            return True
                return False
            except Exception as e:
                log.warning("cannot read the Delta log of %s to verify a commit: %s", table_name, e)
                if attempt + 1 < attempts:
                    time.sleep(delay)
                    delay *= 2
        return None


def fetcher(s3: S3Settings) -> Any:
    """`fetch(uri) -> bytes` for the read cache: a GET of the whole object."""
    client = s3.store(prefix="")

    def fetch(uri: str) -> bytes:
        bucket, key = split_uri(uri)
        if bucket != s3.bucket:
            raise ValueError(f"{uri} is outside the configured bucket {s3.bucket!r}")
        return bytes(obstore.get(client, key).bytes())

    return fetch
