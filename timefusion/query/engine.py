"""Run SQL with DataFusion over buffer ∪ Delta, pruned before DataFusion sees a file.

Per query: the SQL is rewritten to PostgreSQL semantics and its predicates on `project_id`, `date`
and `timestamp` are extracted (`query.rewrite`); under the buffer lock we take the buffer's batches
and the Delta snapshot together (so a row being flushed is seen exactly once); the snapshot's files
are pruned by partition values and timestamp stats; then, in a fresh SessionContext (about 0.2 ms),
each table name is bound to a view `buffer UNION ALL file_1 UNION ALL …`. DataFusion pushes the
query's filters into every branch. Registering each referenced file (not listing directories) is
what keeps files that Delta no longer references out of results (DESIGN.md §3).

Idempotent ingest and UPDATE/DELETE (`write/buffer.py`): the buffer side holds the newest row per
key, and when buffered rows replace or delete rows already in Delta (rare: a retried batch after a
flush, UPDATE, DELETE), the Delta files that can hold those keys are anti-joined with the keys, so
each key appears once. Append-only data never pays for this: the buffer reports no such keys.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import reduce

import pyarrow as pa
from datafusion import DataFrame, SessionConfig, SessionContext, col, lit
from datafusion import functions as F

from timefusion.query.catalog import SessionInfo, needs_catalog, register_catalog, rewrite_catalog_sql
from timefusion.query.functions import register_functions
from timefusion.query.rewrite import Prepared, PruneSpec, RewriteError, prepare
from timefusion.schema import TableSchema
from timefusion.storage.delta import DeltaStore, prune_files
from timefusion.write.buffer import Buffer, BufferView


class QueryError(Exception):
    """A query failed; `sqlstate` is the PostgreSQL error code for clients."""

    def __init__(self, message: str, sqlstate: str = "XX000") -> None:
        super().__init__(message)
        self.sqlstate = sqlstate


_ERROR_CODES: tuple[tuple[str, str], ...] = (
    (r"ParserError|SQL error|sql parser error|Expected", "42601"),
    (r"table '.*' not found|No table named|table .* not found", "42P01"),
    (r"No field named|Schema error: No field|column .* not found", "42703"),
    (r"invalid input syntax for type json|malformed array literal", "22P02"),
    (r"must appear in the GROUP BY clause|GROUP BY clause or be used in an aggregate", "42803"),
    (r"regex parse error|Invalid regex", "2201B"),
    (r"not an approx_count_distinct sketch|not a percentile_agg sketch|cannot merge percentile", "42883"),
    (r"percentile value .* is not between 0 and 1", "22003"),
    (r"Cast error|Cannot cast|cannot be cast|Failed to parse|Parser error: Error parsing", "22P02"),
    (r"Divide by zero|divide by zero", "22012"),
    (r"Arithmetic overflow|Overflow", "22003"),
    (r"This feature is not implemented|NotImplemented|not supported", "0A000"),
    (
        r"Invalid function|Invalid argument|No function matches|does not support|Error during planning",
        "42883",
    ),
    (r"Resources exhausted|ResourcesExhausted", "53200"),
)


def _sqlstate(message: str) -> str:
    for pattern, code in _ERROR_CODES:
        if re.search(pattern, message):
            return code
    return "XX000"


def query_error(exc: BaseException) -> QueryError:
    text = str(exc)
    # DataFusion prefixes messages with its error class; keep the part a user can act on.
    message = re.sub(r"^(DataFusion error: )?(Execution error: |Error during planning: )?", "", text)
    return QueryError(message.strip() or type(exc).__name__, _sqlstate(text))


@dataclass(frozen=True)
class ScanStats:
    files_total: int
    files_scanned: int
    buffer_batches: int
    delta_version: int


@dataclass
class QueryResult:
    """A running query: its schema and a stream of record batches (pulled lazily)."""

    schema: pa.Schema
    _frame: DataFrame | None
    scans: dict[str, ScanStats] = field(default_factory=dict)
    command: str = "SELECT"
    rowcount: int | None = None

    def __iter__(self) -> Iterator[pa.RecordBatch]:
        if self._frame is None:
            return
        try:
            for batch in self._frame.execute_stream():
                rb = batch.to_pyarrow()
                if rb.num_rows:
                    # PostgreSQL's output names (DataFusion needs them unique; clients do not)
                    yield pa.RecordBatch.from_arrays(rb.columns, schema=self.schema)
        except Exception as e:
            raise query_error(e) from None

    def to_table(self) -> pa.Table:
        return pa.Table.from_batches(list(self), schema=self.schema)


def _allowed(spec: PruneSpec, projects: frozenset[str] | None) -> frozenset[str] | None:
    """Projects a table reference may read: what the query asks for, within the session's set."""
    if projects is None:
        return spec.projects
    return projects if spec.projects is None else spec.projects & projects


def _us(value: dt.datetime | None) -> int | None:
    if value is None:
        return None
    return (value - _EPOCH) // dt.timedelta(microseconds=1)


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def _shadow_ranges(keys: pa.Table | None) -> dict[str, tuple[dt.datetime, dt.datetime]]:
    """project → (min, max) timestamp of the keys the buffer replaces or deletes."""
    if keys is None or keys.num_rows == 0:
        return {}
    spans = keys.group_by("project_id").aggregate([("timestamp", "min"), ("timestamp", "max")])
    return {
        p: (lo, hi)
        for p, lo, hi in zip(
            spans.column("project_id").to_pylist(),
            spans.column("timestamp_min").to_pylist(),
            spans.column("timestamp_max").to_pylist(),
        )
    }


class QueryEngine:
    def __init__(
        self,
        schemas: Mapping[str, TableSchema],
        stores: Mapping[str, DeltaStore],
        buffer: Buffer,
        resolve_files: Callable[[list[str]], list[str]] | None = None,
    ) -> None:
        self.schemas = schemas
        self.stores = stores
        self.buffer = buffer
        # Object storage: data-file URIs → local paths in the read cache (storage/cache.py), so
        # DataFusion reads local files whichever way the tables are stored.
        self.resolve_files = resolve_files
        self._file_schemas: dict[str, pa.Schema] = {}
        self._config = (
            SessionConfig()
            .with_information_schema(True)
            .set("datafusion.execution.parquet.schema_force_view_types", "false")
            .set("datafusion.execution.time_zone", "+00:00")
        )

    def new_context(self) -> SessionContext:
        ctx = SessionContext(self._config)
        register_functions(ctx)  # TimeFusion's JSON/SQL functions (query/functions)
        return ctx

    def prepare(self, sql: str, params: Sequence[object] | None = None) -> Prepared:
        try:
            return prepare(sql, params, self.schemas, dt.datetime.now(dt.UTC))
        except RewriteError as e:
            raise QueryError(str(e), getattr(e, "sqlstate", "42601")) from None

    def execute(
        self,
        sql: str,
        params: Sequence[object] | None = None,
        projects: frozenset[str] | None = None,
        finalize: Callable[[str], str] | None = None,
        session: SessionInfo | None = None,
    ) -> QueryResult:
        """Plan `sql` (a query); `projects`, when given, is the set of tenants this caller may see.

        `finalize` gets the rewritten SQL last (the wire layer binds session values there);
        `session` describes the client for the `pg_catalog` emulation.
        """
        catalog = needs_catalog(sql)
        if catalog:
            sql = rewrite_catalog_sql(sql)
        prepared = self.prepare(sql, params)
        ctx = self.new_context()
        if catalog:
            register_catalog(ctx, self.schemas, session or SessionInfo(user="postgres", database="postgres"))
        scans = self.bind_tables(ctx, prepared.tables, projects)
        text = finalize(prepared.sql) if finalize else prepared.sql
        try:
            frame = ctx.sql(text)
            schema = frame.schema()
        except Exception as e:
            raise query_error(e) from None
        names = prepared.column_names
        if names and len(names) == len(schema) and list(names) != schema.names:
            schema = pa.schema([f.with_name(n) for f, n in zip(schema, names)], metadata=schema.metadata)
        return QueryResult(schema, frame, scans)

    def bind_tables(
        self, ctx: SessionContext, tables: Mapping[str, PruneSpec], projects: frozenset[str] | None
    ) -> dict[str, ScanStats]:
        """Register each referenced table in `ctx` as buffer ∪ pruned Delta files."""
        for name in tables:
            if name in self.stores:  # settle suspected key overlaps with Delta (outside the lock)
                self.buffer.resolve(name, self.stores[name].key_fingerprints)
        with self.buffer.lock:  # one consistent cut of memory and Delta
            cut = {
                name: (
                    self.stores[name].snapshot,
                    self.buffer.view(
                        name,
                        _allowed(tables[name], projects),
                        _us(tables[name].ts_min),
                        _us(tables[name].ts_max),
                    ),
                )
                for name in tables
                if name in self.stores
            }
        scans: dict[str, ScanStats] = {}
        for name, (snapshot, view) in cut.items():
            spec = tables[name]
            allowed = _allowed(spec, projects)
            date_min, date_max = spec.date_min, spec.date_max
            if spec.ts_min is not None:
                date_min = max(date_min or spec.ts_min.date(), spec.ts_min.date())
            if spec.ts_max is not None:
                date_max = min(date_max or spec.ts_max.date(), spec.ts_max.date())
            files = prune_files(snapshot.files, allowed, spec.ts_min, spec.ts_max, date_min, date_max)
            self._register(ctx, self.schemas[name], view, files, projects)
            scans[name] = ScanStats(snapshot.num_files, files.num_rows, len(view.batches), snapshot.version)
        return scans

    def _register(
        self,
        ctx: SessionContext,
        schema: TableSchema,
        view: BufferView,
        files: pa.Table,
        projects: frozenset[str] | None,
    ) -> None:
        arrow_schema = schema.arrow_schema
        buffer_name = f"__tf_buffer_{schema.name}"
        batches = view.batches or [pa.RecordBatch.from_pylist([], schema=arrow_schema)]
        ctx.register_record_batches(buffer_name, [[b] for b in batches])
        parts: list[DataFrame] = [ctx.table(buffer_name)]
        paths = files.column("path").to_pylist()
        local = paths
        if self.resolve_files is not None and paths:
            try:
                local = self.resolve_files(paths)
            except Exception as e:  # 58030 io_error: the bucket did not give us a data file
                raise QueryError(f"cannot read data files from object storage: {e}", "58030") from None
        shadowed = _shadow_ranges(view.shadow_keys)
        shadow_frame: DataFrame | None = None
        n = files.num_rows
        lows = files.column("ts_min").to_pylist() if shadowed else [None] * n
        highs = files.column("ts_max").to_pylist() if shadowed else [None] * n
        for path, local_path, project, date, lo, hi in zip(
            paths,
            local,
            files.column("project_id").to_pylist(),
            files.column("date").to_pylist(),
            lows,
            highs,
        ):
            frame = self._file_frame(ctx, schema, path, project, date, local_path)
            span = shadowed.get(project)
            if span is not None and (lo is None or lo <= span[1]) and (hi is None or hi >= span[0]):
                if shadow_frame is None:  # keys newer in the buffer, or deleted: hide Delta's rows
                    assert view.shadow_keys is not None
                    shadow_name = f"__tf_shadow_{schema.name}"
                    ctx.register_record_batches(shadow_name, [view.shadow_keys.to_batches()])
                    shadow_frame = ctx.table(shadow_name).select(
                        col("project_id").alias("__s_p"),
                        col("timestamp").alias("__s_t"),
                        col("id").alias("__s_i"),
                    )
                frame = frame.join(
                    shadow_frame,
                    how="anti",
                    left_on=["project_id", "timestamp", "id"],
                    right_on=["__s_p", "__s_t", "__s_i"],
                )
            parts.append(frame)
        frame = reduce(lambda a, b: a.union(b), parts)
        if projects is not None:
            frame = frame.filter(F.in_list(col("project_id"), [lit(p) for p in sorted(projects)]))
        ctx.register_view(schema.name, frame)

    def _file_frame(
        self,
        ctx: SessionContext,
        schema: TableSchema,
        path: str,
        project: str | None,
        date: dt.date | None,
        local_path: str | None = None,
    ) -> DataFrame:
        # Data files are immutable: their schema is read once (passing it skips DataFusion's
        # footer inference, and knowing it lets us skip casts that would do nothing).
        file_schema = self._file_schemas.get(path)
        frame = ctx.read_parquet(local_path or path, schema=file_schema)
        if file_schema is None:
            file_schema = frame.schema()
            if len(self._file_schemas) > 100_000:
                self._file_schemas.clear()
            self._file_schemas[path] = file_schema
        exprs = []
        for c in schema.columns:
            if c.name == "project_id":
                exprs.append(lit(pa.scalar(project, pa.string())).alias(c.name))
            elif c.name == "date":
                exprs.append(lit(pa.scalar(date, pa.date32())).alias(c.name))
            elif c.name not in file_schema.names:  # a column added after this file was written
                exprs.append(lit(pa.scalar(None, c.arrow_type)).alias(c.name))
            elif file_schema.field(c.name).type == c.arrow_type:
                exprs.append(col(c.name))
            else:
                exprs.append(col(c.name).cast(c.arrow_type).alias(c.name))
        return frame.select(*exprs)
