"""Builds the pieces (stores, WAL, buffer, flusher, query engine), starts and stops them.

`TimeFusion` is the in-process database: `ingest()` for Arrow data, `sql()` for queries and
`INSERT`s, `UPDATE`s and `DELETE`s (`query/dml.py`). `open()` replays the WAL into the buffer
(skipping rows and tombstones that Delta already has) before anything is served; `close()` flushes
everything buffered and releases the WAL.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pyarrow as pa

from timefusion.config import Config
from timefusion.query.dml import DmlError, parse_dml
from timefusion.query.engine import QueryEngine, QueryError, QueryResult, query_error
from timefusion.query.insert_values import InsertError, parse_insert
from timefusion.schema import TableSchema, load_tables
from timefusion.storage.cache import ReadCache
from timefusion.storage.delta import DeltaStore
from timefusion.storage.location import table_location
from timefusion.storage.objects import fetcher
from timefusion.storage.recovery import Committed, uncommitted
from timefusion.storage.s3 import BucketError, S3Settings, check_bucket
from timefusion.write.buffer import KEY_COLUMNS, Buffer, dedup_last
from timefusion.write.coerce import IngestError
from timefusion.write.flusher import Flusher
from timefusion.write.ingest import Ingestor, tombstone_table, widen
from timefusion.write.wal import Wal, WalRecord

log = logging.getLogger(__name__)


class StartupError(RuntimeError):
    """The database cannot start; the message says why and what to do."""


class TimeFusion:
    def __init__(self, config: Config, schemas: Mapping[str, TableSchema] | None = None) -> None:
        self.config = config
        self.schemas = dict(schemas or load_tables())
        self.buffer = Buffer(config.bucket_duration_secs, config.buffer_max_memory_mb * 1024 * 1024)
        self.stores: dict[str, DeltaStore] = {}
        self.wal: Wal | None = None
        self.flusher: Flusher | None = None
        self.ingestor: Ingestor | None = None
        self.query: QueryEngine | None = None
        self.cache: ReadCache | None = None
        self.replay_stats: dict[str, Any] = {}
        self.ready = False
        self._dml_lock = threading.Lock()  # one UPDATE/DELETE at a time (read, then write)

    # -- lifecycle ---------------------------------------------------------------------------------
    def open(self) -> TimeFusion:
        started = time.monotonic()
        cfg = self.config
        self.cache = self._open_object_storage()
        self.wal = Wal(
            cfg.wal_path,
            fsync_mode=cfg.wal_fsync_mode,
            fsync_interval_ms=cfg.wal_fsync_ms,
            segment_bytes=cfg.wal_segment_mb * 1024 * 1024,
            apply=self._apply,
        )
        try:
            for name, schema in self.schemas.items():
                self.stores[name] = DeltaStore(schema, table_location(cfg, name), cache=self.cache)
            self.buffer.overlaps_delta = self._overlaps_delta
            self._replay()
        except BaseException:
            self.wal.close()
            if self.cache is not None:
                self.cache.close()
            raise
        self.flusher = Flusher(
            self.buffer,
            self.stores,
            self.wal.wal_id,
            self.wal.release_up_to,
            cfg.flush_interval_secs,
            cfg.buffer_retention_mins * 60.0,
        )
        self.ingestor = Ingestor(
            self.schemas, self.buffer, self.wal, self.flusher.trigger, cfg.buffer_busy_wait_ms / 1000.0
        )
        self.query = QueryEngine(
            self.schemas,
            self.stores,
            self.buffer,
            resolve_files=self.cache.local_paths if self.cache is not None else None,
        )
        self.flusher.start()
        self.ready = True
        log.info("TimeFusion ready in %.2f s", time.monotonic() - started)
        return self

    def _open_object_storage(self) -> ReadCache | None:
        """With AWS_S3_BUCKET set: check the bucket is reachable and writable, open the read cache.

        Fails with `StartupError` naming the cause; never falls back to the local directory.
        """
        cfg = self.config
        if not cfg.s3_bucket:
            return None
        try:
            s3 = S3Settings.from_config(cfg)
            check_bucket(s3)
        except BucketError as e:
            raise StartupError(str(e)) from None
        log.info("tables are in %s", s3.table_uri("<table>"))
        try:
            return ReadCache(
                cfg.cache_path,
                fetcher(s3),
                memory_bytes=cfg.foyer_memory_mb * 1024 * 1024,
                disk_bytes=int(cfg.foyer_disk_gb * 1024**3),
                ttl_secs=cfg.foyer_ttl_seconds,
            )
        except OSError as e:
            raise StartupError(str(e)) from None

    def _replay(self) -> None:
        assert self.wal is not None
        t0 = time.monotonic()
        committed: dict[str, Committed] | None = None
        records = rows = kept = 0
        for rec in self.wal.replay():
            if committed is None:  # the first record is the oldest LSN still in the WAL
                committed = {
                    name: store.committed_wal_keys(self.wal.wal_id, rec.lsn)
                    for name, store in self.stores.items()
                }
            deleted_from = tombstone_table(rec.table)
            table = deleted_from or rec.table
            if table not in self.schemas:
                raise StartupError(
                    f"the WAL in {self.config.wal_path} holds rows for table {table!r}, which has no "
                    f"schema file; restore its schema so these acknowledged rows can be stored"
                )
            records += 1
            rows += rec.batch.num_rows
            batch = rec.batch if deleted_from is not None else widen(self.schemas[table], rec.batch)
            pending = uncommitted(batch, rec.lsn, committed[table])
            if deleted_from is not None:
                if pending.num_rows:
                    self.buffer.delete(table, rec.lsn, pending)
            else:
                kept += self.buffer.insert(table, rec.lsn, pending)
        secs = time.monotonic() - t0
        self.replay_stats = {"records": records, "rows": rows, "rows_restored": kept, "seconds": secs}
        log.info("WAL replay: %d records, %d rows (%d not yet in Delta) in %.3f s", records, rows, kept, secs)

    def _apply(self, rec: WalRecord) -> None:
        deleted_from = tombstone_table(rec.table)
        if deleted_from is not None:
            self.buffer.delete(deleted_from, rec.lsn, rec.batch)
        else:
            self.buffer.insert(rec.table, rec.lsn, rec.batch)

    def _overlaps_delta(self, table: str, project: str, ts_min_us: int, ts_max_us: int) -> bool:
        store = self.stores.get(table)
        return store is not None and store.may_contain(project, ts_min_us, ts_max_us)

    def close(self, flush: bool = True) -> None:
        """Flush everything buffered (unless `flush=False`, which simulates a crash) and stop."""
        self.ready = False
        if self.flusher is not None:
            try:
                self.flusher.stop(flush=flush)
            finally:
                self.flusher = None
        if self.wal is not None:
            self.wal.close()
            self.wal = None
        if self.cache is not None:
            self.cache.close()

    def __enter__(self) -> TimeFusion:
        return self.open() if not self.ready else self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- data --------------------------------------------------------------------------------------
    def ingest(self, table: str, data: pa.RecordBatch | pa.Table) -> int:
        """Durably store Arrow rows; returns once they are in the WAL and visible to queries."""
        if self.ingestor is None:
            raise IngestError("the database is not open", "57P03")
        return self.ingestor.ingest(table, data)

    def flush(self) -> int:
        """Commit everything buffered to Delta now; returns rows committed."""
        assert self.flusher is not None
        return self.flusher.flush(everything=True)

    def sql(
        self,
        text: str,
        params: Sequence[object] | None = None,
        projects: frozenset[str] | None = None,
        finalize: Callable[[str], str] | None = None,
    ) -> QueryResult:
        """Run one statement: a query, or an INSERT (VALUES or SELECT) through the ingest path."""
        if self.query is None:
            raise QueryError("the database system is starting up", "57P03")
        try:
            dml = parse_dml(text, self.schemas)
        except DmlError as e:
            raise QueryError(str(e), e.sqlstate) from None
        if dml is not None:
            return self._dml(dml.kind, dml.table, dml.select_sql, params, projects, finalize)
        try:
            parsed = parse_insert(text, self.schemas, params)
        except InsertError as e:
            raise QueryError(str(e), e.sqlstate) from None
        if parsed is None:
            return self.query.execute(text, params, projects, finalize)
        schema = self.schemas[parsed.table]
        if not parsed.fallback and parsed.data is not None:  # plain literals: no planner needed
            data = parsed.data
            names = list(parsed.columns or data.column_names)
        else:  # INSERT … SELECT, or values that are expressions: DataFusion evaluates the source
            data = self.query.execute(parsed.source_sql or "", params, projects, finalize).to_table()
            names = (
                list(parsed.columns)
                if parsed.columns
                else [c.name for c in schema.columns[: data.num_columns]]
            )
        if len(names) != data.num_columns:
            raise QueryError(
                f"INSERT has {data.num_columns} expressions but {len(names)} target columns", "42601"
            )
        data = data.rename_columns(names)
        if projects is not None and data.num_rows and "project_id" in names:
            seen = set(data.column("project_id").to_pylist())
            if not seen <= projects:
                raise QueryError("permission denied: INSERT into a project outside this session", "42501")
        try:
            n = self.ingest(parsed.table, data)
        except IngestError:
            raise
        except Exception as e:
            raise query_error(e) from None
        return QueryResult(pa.schema([]), None, command="INSERT", rowcount=n)

    def _dml(
        self,
        kind: str,
        table: str,
        select_sql: str,
        params: Sequence[object] | None,
        projects: frozenset[str] | None,
        finalize: Callable[[str], str] | None,
    ) -> QueryResult:
        """UPDATE: ingest the new versions of the matching rows; DELETE: log tombstones for their
        keys (see query/dml.py). The tag counts distinct rows (project_id, timestamp, id)."""
        assert self.query is not None
        with self._dml_lock:
            found = self.query.execute(select_sql, params, projects, finalize).to_table()
            found = dedup_last(found, KEY_COLUMNS)
            # the engine already scopes the rows to the session's projects; be explicit anyway
            if projects is not None and not set(found.column("project_id").to_pylist()) <= projects:
                raise QueryError(f"permission denied: {kind} of a project outside this session", "42501")
            if found.num_rows == 0:
                return QueryResult(pa.schema([]), None, command=kind, rowcount=0)
            if self.ingestor is None:
                raise QueryError("the database is not open", "57P03")
            try:
                if kind == "UPDATE":
                    n = self.ingestor.ingest(table, found)
                else:
                    n = self.ingestor.delete(table, found)
            except IngestError:
                raise
            except Exception as e:
                raise query_error(e) from None
        return QueryResult(pa.schema([]), None, command=kind, rowcount=n)
