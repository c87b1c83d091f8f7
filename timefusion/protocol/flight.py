"""Arrow Flight (gRPC) server: bulk ingest with DoPut, Arrow-native query results with DoGet.

Why: agents and pipelines that already hold Arrow data should not pay for SQL text. A `DoPut` whose
descriptor is a path naming the table (`FlightDescriptor.for_path("otel_logs_and_spans")`) streams
record batches; each batch goes through the one ingest entry point (`TimeFusion.ingest`: coerce →
WAL fsync → buffer) and is acknowledged with a `PutResult` only after `ingest` returned, i.e. once the
rows are durable and visible. A client can therefore pipeline: write batches without waiting and
count the acks. A batch that fails (unknown table, a column that cannot be coerced, an empty or
corrupt payload, a full buffer) ends the stream with a gRPC error status and nothing of that batch is
stored; batches acknowledged before it stay stored.

`GetFlightInfo`/`DoGet` take SQL (a command descriptor, or a ticket holding the SQL text as UTF-8)
and stream the result as Arrow record batches through the same query engine and project scoping
as the PostgreSQL port. A path descriptor naming a table describes `SELECT * FROM table`.

gRPC status codes (what a client should do):

- UNAUTHENTICATED: missing or wrong `authorization: Bearer <GRPC_TOKEN>` header.
- NOT_FOUND: the table does not exist.
- INVALID_ARGUMENT: bad descriptor, empty or corrupt batch, a value or column that cannot be coerced
  to the table schema (the message says which column and row, with the SQLSTATE), a bad SQL query.
- UNAVAILABLE: the server is starting up (WAL replay), shutting down, or busy (the write buffer is
  full; SQLSTATE 53200). Retry later. pyarrow's Flight server cannot send RESOURCE_EXHAUSTED (Arrow's
  status mapping has no path to it), so "busy" is UNAVAILABLE with a `google.rpc.Status` carrying
  code RESOURCE_EXHAUSTED in the `grpc-status-details-bin` trailer, and the message starts with
  "server busy".
- INTERNAL: anything else (logged on the server).
"""

from __future__ import annotations

import contextlib
import hmac
import json
import logging
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.flight as flight

from timefusion.write.coerce import IngestError
from timefusion.write.ingest import ServerBusyError

if TYPE_CHECKING:
    from timefusion.app import TimeFusion

log = logging.getLogger(__name__)

_RESOURCE_EXHAUSTED = 8  # google.rpc.Code
_INVALID_INPUT_STATES = ("22", "23", "42")  # SQLSTATE classes: data, constraint, syntax/name errors


def _rpc_status(code: int, message: str) -> bytes:
    """A serialised `google.rpc.Status{code, message}` (two protobuf fields, encoded by hand so no
    protobuf dependency is needed) for the `grpc-status-details-bin` trailer."""

    def varint(n: int) -> bytes:
        out = bytearray()
        while True:
            byte = n & 0x7F
            n >>= 7
            if n:
                out.append(byte | 0x80)
            else:
                out.append(byte)
                return bytes(out)

    text = message.encode("utf-8")
    return b"\x08" + varint(code) + b"\x12" + varint(len(text)) + text


class BearerTokenMiddlewareFactory(flight.ServerMiddlewareFactory):
    """Rejects every call whose `authorization` header is not `Bearer <token>` (constant-time)."""

    def __init__(self, token: str) -> None:
        super().__init__()
        self._expected = f"Bearer {token}".encode()

    def start_call(self, info: flight.CallInfo, headers: dict[str, list[str]]) -> None:
        values = headers.get("authorization") or headers.get("Authorization") or []
        supplied = values[0].encode() if values else b""
        if not hmac.compare_digest(supplied, self._expected):
            raise flight.FlightUnauthenticatedError(
                "missing or invalid bearer token: send the header 'authorization: Bearer <GRPC_TOKEN>'"
            )
        return None


class FlightServer(flight.FlightServerBase):
    """The Flight service. It listens as soon as it is constructed; `attach(db)` makes it serve
    (until then every call is UNAVAILABLE, like pgwire's 57P03 during WAL replay); `stop()` ends it."""

    def __init__(
        self,
        host: str,
        port: int,
        token: str | None,
        projects: frozenset[str] | None = None,
    ) -> None:
        middleware = {"auth": BearerTokenMiddlewareFactory(token)} if token else None
        super().__init__(location=f"grpc://{host}:{port}", middleware=middleware)
        self.host = host
        self.projects = projects
        self.db: TimeFusion | None = None
        self.stopping = False
        self._active = 0
        self._lock = threading.Lock()

    # -- lifecycle ---------------------------------------------------------------------------------
    def attach(self, db: TimeFusion) -> None:
        """The database finished WAL replay: serve it."""
        self.db = db

    def stop(self, grace_secs: float) -> bool:
        """Refuse new calls, let running ones end within `grace_secs`, shut the gRPC server down.

        Returns False when a call was still running at the deadline (e.g. an idle DoPut stream whose
        client sends nothing): the shutdown then continues in the background; nothing that call
        sends afterwards is acknowledged, because the caller closes the database next.
        """
        self.stopping = True
        done = threading.Event()

        def shutdown() -> None:
            try:
                self.shutdown()
            finally:
                done.set()

        threading.Thread(target=shutdown, name="flight-shutdown", daemon=True).start()
        finished = done.wait(grace_secs)
        if not finished:
            log.warning(
                "Arrow Flight: %d call(s) still running after %.0f s; closing anyway",
                self._active,
                grace_secs,
            )
        return finished

    def _db(self) -> TimeFusion:
        if self.stopping:
            raise flight.FlightUnavailableError("the database system is shutting down")
        db = self.db
        if db is None or not db.ready:
            raise flight.FlightUnavailableError(
                "the database system is starting up (WAL replay); retry shortly"
            )
        return db

    # -- ingest ------------------------------------------------------------------------------------
    def do_put(
        self,
        context: flight.ServerCallContext,
        descriptor: flight.FlightDescriptor,
        reader: flight.MetadataRecordBatchReader,
        writer: flight.FlightMetadataWriter,
    ) -> None:
        with self._lock:
            self._active += 1
        try:
            with _call_errors():
                db = self._db()
                self._put_stream(db, self._table_name(descriptor, db), reader, writer)
        finally:
            with self._lock:
                self._active -= 1

    def _put_stream(
        self,
        db: TimeFusion,
        table: str,
        reader: flight.MetadataRecordBatchReader,
        writer: flight.FlightMetadataWriter,
    ) -> None:
        index = 0
        while True:
            if self.stopping:
                raise flight.FlightUnavailableError(
                    f"the database system is shutting down; {index} batch(es) of this stream were "
                    "stored and acknowledged, send the rest again after the restart"
                )
            try:
                chunk = reader.read_chunk()
            except StopIteration:
                break
            except (pa.ArrowInvalid, pa.ArrowIOError, pa.ArrowNotImplementedError, pa.ArrowTypeError) as e:
                raise pa.ArrowInvalid(
                    f"batch {index}: corrupt or unreadable Arrow IPC payload: {_first_line(e)}"
                ) from None
            batch = chunk.data
            if batch is None:  # metadata-only message: nothing to store
                continue
            if batch.num_rows == 0:
                raise pa.ArrowInvalid(f"batch {index}: empty record batch (0 rows); nothing was stored")
            self._check_projects(batch, index)
            try:
                rows = db.ingest(table, batch)
            except ServerBusyError as e:
                message = f"server busy (SQLSTATE 53200) at batch {index}: {e}"
                raise flight.FlightUnavailableError(
                    message, _rpc_status(_RESOURCE_EXHAUSTED, message)
                ) from None
            except IngestError as e:
                raise _ingest_error(e, index) from None
            except OSError as e:
                log.error("Arrow Flight: WAL append failed: %s", e)
                raise flight.FlightInternalError(
                    f"batch {index}: the write-ahead log failed ({e}); nothing of this batch is acknowledged"
                ) from None
            writer.write(pa.py_buffer(json.dumps({"batch": index, "rows": rows}).encode()))
            index += 1
        if index == 0:
            raise pa.ArrowInvalid("the DoPut stream carried no record batches; nothing was stored")

    def _table_name(self, descriptor: flight.FlightDescriptor, db: TimeFusion) -> str:
        if descriptor.descriptor_type != flight.DescriptorType.PATH or len(descriptor.path or []) != 1:
            raise pa.ArrowInvalid(
                "DoPut needs a path descriptor naming one table, e.g. "
                "FlightDescriptor.for_path('otel_logs_and_spans')"
            )
        raw = descriptor.path[0]
        name = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
        if name not in db.schemas:
            known = ", ".join(sorted(db.schemas))
            raise pa.ArrowKeyError(f'relation "{name}" does not exist (tables: {known})')
        return name

    def _check_projects(self, batch: pa.RecordBatch, index: int) -> None:
        if self.projects is None or "project_id" not in batch.schema.names:
            return
        seen = set(batch.column("project_id").unique().to_pylist())
        if not seen <= self.projects:
            raise flight.FlightUnauthorizedError(
                f"batch {index}: rows for a project outside this server's set"
            )

    # -- queries -----------------------------------------------------------------------------------
    def get_flight_info(
        self, context: flight.ServerCallContext, descriptor: flight.FlightDescriptor
    ) -> flight.FlightInfo:
        with _call_errors():
            db = self._db()
            sql = self._descriptor_sql(descriptor, db)
            result = self._plan(db, sql)
        endpoint = flight.FlightEndpoint(sql.encode("utf-8"), [])
        return flight.FlightInfo(result.schema, descriptor, [endpoint], -1, -1)

    def do_get(self, context: flight.ServerCallContext, ticket: flight.Ticket) -> flight.FlightDataStream:
        with _call_errors():
            db = self._db()
            try:
                sql = ticket.ticket.decode("utf-8")
            except UnicodeDecodeError:
                raise pa.ArrowInvalid("the ticket must be SQL text in UTF-8") from None
            if not sql.strip():
                raise pa.ArrowInvalid("the ticket is empty; it must hold a SQL query")
            result = self._plan(db, sql)

        def batches() -> Iterator[pa.RecordBatch]:
            try:
                yield from result
            except Exception as e:
                raise _query_error(e) from None

        return flight.GeneratorStream(result.schema, batches())

    def list_flights(self, context: flight.ServerCallContext, criteria: bytes) -> Iterator[flight.FlightInfo]:
        db = self._db()
        for name, schema in sorted(db.schemas.items()):
            descriptor = flight.FlightDescriptor.for_path(name)
            ticket = flight.FlightEndpoint(f"SELECT * FROM {name}".encode(), [])
            yield flight.FlightInfo(schema.arrow_schema, descriptor, [ticket], -1, -1)

    def _descriptor_sql(self, descriptor: flight.FlightDescriptor, db: TimeFusion) -> str:
        if descriptor.descriptor_type == flight.DescriptorType.CMD:
            try:
                sql = descriptor.command.decode("utf-8")
            except UnicodeDecodeError:
                raise pa.ArrowInvalid("the command must be SQL text in UTF-8") from None
            if not sql.strip():
                raise pa.ArrowInvalid("the command is empty; it must hold a SQL query")
            return sql
        return f"SELECT * FROM {self._table_name(descriptor, db)}"

    def _plan(self, db: TimeFusion, sql: str) -> Any:
        if db.query is None:
            raise flight.FlightUnavailableError("the database system is starting up")
        try:
            return db.query.execute(sql, None, self.projects)
        except Exception as e:
            raise _query_error(e) from None


@contextlib.contextmanager
def _call_errors() -> Iterator[None]:
    """What every Flight call does with an error: Arrow/Flight errors pass on (shallow), anything
    else is a bug that costs this call, never the server, and is logged with its traceback."""
    try:
        yield
    except pa.ArrowException as e:
        raise _shallow(e) from None
    except Exception as e:
        log.exception("Arrow Flight call failed")
        raise flight.FlightInternalError(f"internal error: {_first_line(e)}; see the server log") from None


def _shallow(e: pa.ArrowException) -> Exception:
    """The same error, raised afresh by the handler: pyarrow appends the Python traceback of a
    non-Flight exception to the gRPC message, so a new one keeps that to the handler's own frame."""
    if isinstance(e, flight.FlightError):
        return e
    return type(e)(str(e))


def _first_line(e: BaseException) -> str:
    return (str(e).splitlines() or [type(e).__name__])[0]


def _ingest_error(e: IngestError, index: int) -> Exception:
    message = f"batch {index}: {e} (SQLSTATE {e.sqlstate}); nothing of this batch was stored"
    if e.sqlstate == "42P01":
        return pa.ArrowKeyError(message)
    if e.sqlstate[:2] in _INVALID_INPUT_STATES or e.sqlstate == "54000":
        return pa.ArrowInvalid(message)
    if e.sqlstate == "57P03":
        return flight.FlightUnavailableError(message)
    return flight.FlightInternalError(message)


def _query_error(e: BaseException) -> Exception:
    if isinstance(e, flight.FlightError | pa.ArrowException):
        return e  # type: ignore[return-value]
    code = getattr(e, "sqlstate", None)
    message = f"{_first_line(e)} (SQLSTATE {code})" if code else _first_line(e)
    if code is None or code == "XX000":
        log.exception("Arrow Flight query failed")
        return flight.FlightInternalError(message)
    if code == "57P03":
        return flight.FlightUnavailableError(message)
    if code == "57014":
        return flight.FlightCancelledError(message)
    if code == "42501":
        return flight.FlightUnauthorizedError(message)
    if code == "42P01":
        return pa.ArrowKeyError(message)
    return pa.ArrowInvalid(message)


def start_flight(config: Any, projects: frozenset[str] | None = None) -> FlightServer | None:
    """Start the Flight server per `config`, or return None (logging why) when it must stay off."""
    if not config.flight_enabled:
        log.info("Arrow Flight disabled (TIMEFUSION_FLIGHT_ENABLED=false)")
        return None
    if not config.grpc_token:
        if not config.allow_insecure_auth:
            log.warning(
                "Arrow Flight disabled: GRPC_TOKEN is not set. Set GRPC_TOKEN (clients send "
                "'authorization: Bearer <token>'), or TIMEFUSION_ALLOW_INSECURE_AUTH=true to serve it "
                "without auth"
            )
            return None
        log.warning(
            "TIMEFUSION_ALLOW_INSECURE_AUTH=true and no GRPC_TOKEN: Arrow Flight on %s:%d accepts "
            "unauthenticated clients",
            config.grpc_host,
            config.grpc_port,
        )
    server = FlightServer(config.grpc_host, config.grpc_port, config.grpc_token or None, projects)
    log.info("Arrow Flight listening on %s:%d", config.grpc_host, server.port)
    return server
