"""The one ingest entry point every protocol calls: coerce → admit → WAL (durable) → buffer → ack.

`Ingestor.ingest` returns only after the rows are in the WAL on disk (per the fsync mode) and in
the buffer, so an acknowledged row is both durable and visible to the next query.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping

import pyarrow as pa

from timefusion.schema import TableSchema
from timefusion.write.buffer import KEY_COLUMNS, KEY_SCHEMA, Buffer
from timefusion.write.coerce import IngestError, coerce
from timefusion.write.wal import Wal

TOMBSTONE_SUFFIX = "#delete"  # WAL record table name `<table>#delete`: the batch holds deleted keys


def tombstone_table(wal_table: str) -> str | None:
    """The table a WAL record of tombstones belongs to, or None for a record of rows."""
    return wal_table[: -len(TOMBSTONE_SUFFIX)] if wal_table.endswith(TOMBSTONE_SUFFIX) else None


def compact(batch: pa.RecordBatch) -> pa.RecordBatch | None:
    """`batch` without its all-NULL columns, for the WAL (None: nothing to drop).

    A coerced batch has every column of its table; rows from Flight, COPY or INSERT usually fill a
    handful of the 92, and an all-NULL string column still costs ~4 bytes a row in Arrow IPC
    (offsets and validity), which made an 8-column row ~490 bytes of WAL. `widen` restores them."""
    n = batch.num_rows
    keep = [i for i, c in enumerate(batch.columns) if c.null_count != n]
    if len(keep) == batch.num_columns:
        return None
    return batch.select(keep)


def widen(schema: TableSchema, batch: pa.RecordBatch) -> pa.RecordBatch:
    """A WAL batch with the columns `compact` dropped put back as NULLs, in the table's order."""
    target = schema.arrow_schema
    if batch.schema.equals(target):
        return batch
    n = batch.num_rows
    names = set(batch.schema.names)
    columns = [batch.column(f.name) if f.name in names else pa.nulls(n, f.type) for f in target]
    return pa.RecordBatch.from_arrays(columns, schema=target)


class ServerBusyError(IngestError):
    """The buffer is full and did not drain in time; the client should retry."""

    def __init__(self, message: str) -> None:
        super().__init__(message, "53200")


class Ingestor:
    def __init__(
        self,
        schemas: Mapping[str, TableSchema],
        buffer: Buffer,
        wal: Wal,
        request_flush: Callable[[], None],
        busy_wait_secs: float,
        pressure_fraction: float = 0.8,
    ) -> None:
        self.schemas = schemas
        self.buffer = buffer
        self.wal = wal
        self.request_flush = request_flush
        self.busy_wait_secs = busy_wait_secs
        self.pressure_fraction = pressure_fraction

    def ingest(self, table: str, data: pa.RecordBatch | pa.Table) -> int:
        """Store `data` in `table`; returns the number of rows once they are durable and visible."""
        schema = self.schemas.get(table)
        if schema is None:
            raise IngestError(f'relation "{table}" does not exist', "42P01")
        batch = coerce(schema, data)
        if batch.num_rows == 0:
            return 0
        size = batch.get_total_buffer_size()
        if size > self.buffer.max_bytes:
            raise IngestError(
                f"batch of {size} bytes is larger than the whole buffer "
                f"(TIMEFUSION_BUFFER_MAX_MEMORY_MB); send smaller batches",
                "54000",
            )
        if self.buffer.nbytes + size >= self.pressure_fraction * self.buffer.max_bytes:
            self.request_flush()
        if not self.buffer.wait_for_space(size, self.busy_wait_secs):
            raise ServerBusyError(
                "server busy: the write buffer is full and is being flushed to storage; retry shortly"
            )
        self.buffer.prehash(batch)  # key fingerprints: here, in parallel, not in the WAL writer thread
        try:
            self.wal.append(table, batch, compact(batch))
        finally:
            self.buffer.forget(batch)
        return batch.num_rows

    def delete(self, table: str, keys: pa.Table) -> int:
        """Durably delete the rows with these keys (project_id, timestamp, id); returns how many
        keys once the tombstone record is in the WAL and applied to the buffer."""
        if table not in self.schemas:
            raise IngestError(f'relation "{table}" does not exist', "42P01")
        if keys.num_rows == 0:
            return 0
        batch = keys.select(list(KEY_COLUMNS)).cast(KEY_SCHEMA).combine_chunks().to_batches()[0]
        self.wal.append(table + TOMBSTONE_SUFFIX, batch)
        return batch.num_rows

    async def ingest_async(self, table: str, data: pa.RecordBatch | pa.Table) -> int:
        return await asyncio.to_thread(self.ingest, table, data)
