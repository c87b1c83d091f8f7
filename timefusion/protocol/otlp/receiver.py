"""What the OTLP/HTTP and OTLP/gRPC servers share: bearer-token auth, the tenant, decode → ingest.

`Receiver.export` runs in a worker thread (parsing, column building and the WAL fsync are blocking)
and ends in `TimeFusion.ingest`, the one ingest entry point: it returns only once the rows are
durable in the WAL and visible to queries, so the OTLP response is sent after that. Failures are
`ExportError`s carrying an HTTP status and a gRPC status code, so each transport answers the way the
OTLP specification asks (retryable: 429/503 and RESOURCE_EXHAUSTED/UNAVAILABLE; not: 400 and
INVALID_ARGUMENT).
"""

from __future__ import annotations

import hmac
import logging
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import TYPE_CHECKING

import grpc
import pyarrow as pa
from google.protobuf.message import DecodeError as ProtobufDecodeError
from google.protobuf.message import Message
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from timefusion.protocol.otlp.decode import Decoded, Decoder, OtlpDecodeError
from timefusion.protocol.otlp.workers import DecodePool, decode_body
from timefusion.schema import TableSchema
from timefusion.write.coerce import IngestError
from timefusion.write.ingest import ServerBusyError

if TYPE_CHECKING:
    from timefusion.app import TimeFusion

log = logging.getLogger(__name__)

KINDS = ("traces", "logs", "metrics")
RETRY_AFTER_SECS = 1  # what a client is told to wait when the buffer is full or replay runs


@dataclass
class ExportError(Exception):
    """A request that is not stored; `http_status` / `grpc_code` say how each transport answers."""

    message: str
    http_status: int
    grpc_code: grpc.StatusCode
    retry_after: int | None = None

    def __str__(self) -> str:
        return self.message


def bad_request(message: str) -> ExportError:
    return ExportError(message, 400, grpc.StatusCode.INVALID_ARGUMENT)


class Receiver:
    """Authenticates, decodes and ingests OTLP export requests for both transports."""

    def __init__(
        self,
        schemas: dict[str, TableSchema],
        token: str | None,
        project_header: str,
        project_attribute: str,
        default_project: str,
        pool: DecodePool | None = None,
    ) -> None:
        self.decoder = Decoder(schemas, project_attribute, default_project)
        self.pool = pool  # decoding processes; None: decode in the calling thread
        self._expected = f"Bearer {token}".encode() if token else None
        self.project_header = project_header
        self.db: TimeFusion | None = None

    def attach(self, db: TimeFusion) -> None:
        """Start storing requests (until then, and during WAL replay, clients get 503/UNAVAILABLE)."""
        self.db = db

    def authorized(self, authorization: str | None) -> bool:
        """True when no token is configured or `authorization` is `Bearer <GRPC_TOKEN>` (constant time)."""
        if self._expected is None:
            return True
        if not authorization:
            return False
        return hmac.compare_digest(authorization.encode("utf-8", "surrogateescape"), self._expected)

    def export(self, kind: str, body: bytes, json: bool, project: str | None) -> Decoded:
        """Parse, decode and durably store one request body; returns what was stored and rejected.

        Blocking: call it from a worker thread.
        """
        db = self.db
        if db is None or not db.ready:
            raise ExportError(
                "the database is starting up (replaying its write-ahead log); retry shortly",
                503,
                grpc.StatusCode.UNAVAILABLE,
                RETRY_AFTER_SECS,
            )
        try:
            if self.pool is not None:
                decoded = self.pool.decode(kind, body, json, project)
            else:
                decoded = decode_body(self.decoder, kind, body, json, project)
            batch = decoded.record_batch
        except BrokenProcessPool:
            raise ExportError(
                "a decoding process died; retry", 503, grpc.StatusCode.UNAVAILABLE, RETRY_AFTER_SECS
            ) from None
        except OtlpDecodeError as e:
            raise bad_request(str(e)) from None
        except (ProtobufDecodeError, RuntimeError) as e:
            raise bad_request(f"the body is not a valid OTLP {kind} export request: {e}") from None
        except (pa.ArrowInvalid, OverflowError, ValueError, TypeError) as e:
            raise bad_request(f"the {kind} export request has a value that cannot be stored: {e}") from None
        except Exception as e:  # a bug of ours: say so, keep serving
            log.exception("OTLP %s export could not be decoded", kind)
            message = f"internal error decoding the request: {e}"
            raise ExportError(message, 500, grpc.StatusCode.INTERNAL) from None
        if batch is None:
            return decoded
        try:
            db.ingest(decoded.table, batch)
        except ServerBusyError as e:
            raise ExportError(str(e), 429, grpc.StatusCode.RESOURCE_EXHAUSTED, RETRY_AFTER_SECS) from None
        except IngestError as e:
            if e.sqlstate == "57P03":
                raise ExportError(str(e), 503, grpc.StatusCode.UNAVAILABLE, RETRY_AFTER_SECS) from None
            raise bad_request(str(e)) from None
        except Exception as e:  # the WAL failed (disk full, I/O error): nothing was acknowledged
            log.exception("OTLP %s export could not be stored", kind)
            raise ExportError(
                f"the rows could not be stored: {e}", 503, grpc.StatusCode.UNAVAILABLE, RETRY_AFTER_SECS
            ) from None
        return decoded


_RESPONSES: dict[str, tuple[type[Message], str]] = {
    "traces": (trace_service_pb2.ExportTraceServiceResponse, "rejected_spans"),
    "logs": (logs_service_pb2.ExportLogsServiceResponse, "rejected_log_records"),
    "metrics": (metrics_service_pb2.ExportMetricsServiceResponse, "rejected_data_points"),
}


def export_response(kind: str, decoded: Decoded) -> Message:
    """The OTLP Export*ServiceResponse: empty on full success, else `partial_success` with counts."""
    cls, field = _RESPONSES[kind]
    response = cls()
    if decoded.rejected:
        setattr(response.partial_success, field, decoded.rejected)
        response.partial_success.error_message = decoded.error_message
    return response
