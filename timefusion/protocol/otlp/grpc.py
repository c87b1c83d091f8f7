"""OTLP/gRPC receiver: the three collector services' `Export` on TIMEFUSION_OTLP_GRPC_PORT.

Built on grpcio's asyncio server (`grpc.aio`), the reference gRPC implementation for Python, so it
shares the event loop with the other listeners. The services are registered as generic handlers whose
request deserializer keeps the raw bytes: the body is parsed in the worker thread by the same code as
OTLP/HTTP (`Receiver.export`), so a malformed message gets a clear INVALID_ARGUMENT from us and
decoding never blocks the event loop. gzip request compression is handled by grpcio itself.

Status codes follow the OTLP specification: INVALID_ARGUMENT for bad data (not retryable),
UNAUTHENTICATED for a missing/wrong bearer token, UNAVAILABLE while the WAL replays (retryable), and
RESOURCE_EXHAUSTED with a `google.rpc.RetryInfo` detail when the buffer is full (the RetryInfo is
what tells an OTLP exporter that the condition is temporary and the export may be retried).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import error_details_pb2, status_pb2

from timefusion.protocol.otlp.http import MAX_BODY_BYTES
from timefusion.protocol.otlp.receiver import ExportError, Receiver, export_response

log = logging.getLogger(__name__)

SERVICES = {
    "traces": "opentelemetry.proto.collector.trace.v1.TraceService",
    "logs": "opentelemetry.proto.collector.logs.v1.LogsService",
    "metrics": "opentelemetry.proto.collector.metrics.v1.MetricsService",
}


def _keep_bytes(raw: bytes) -> bytes:
    return raw


def _retry_details(code: grpc.StatusCode, message: str, seconds: int) -> tuple[tuple[str, bytes], ...]:
    """`grpc-status-details-bin` trailer: a google.rpc.Status with a RetryInfo detail."""
    info = error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(seconds=seconds))
    detail = any_pb2.Any()
    detail.Pack(info)
    status = status_pb2.Status(code=code.value[0], message=message, details=[detail])
    return (("grpc-status-details-bin", status.SerializeToString()),)


class OtlpGrpcServer:
    """The OTLP/gRPC listener; `start()` binds, `stop()` lets running exports finish, then closes."""

    def __init__(self, receiver: Receiver, host: str, port: int) -> None:
        self.receiver = receiver
        self.host = host
        self.port = port
        self._server: grpc.aio.Server | None = None

    async def start(self) -> None:
        server = grpc.aio.server(
            options=[
                ("grpc.max_receive_message_length", MAX_BODY_BYTES),
                ("grpc.so_reuseport", 0),
            ]
        )
        handlers = []
        for kind, service in SERVICES.items():
            handler = grpc.unary_unary_rpc_method_handler(
                self._handler(kind),
                request_deserializer=_keep_bytes,
                response_serializer=lambda m: m.SerializeToString(),
            )
            handlers.append(grpc.method_handlers_generic_handler(service, {"Export": handler}))
        server.add_generic_rpc_handlers(tuple(handlers))
        address = f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"
        try:
            bound = server.add_insecure_port(address)
        except RuntimeError as e:
            raise OSError(f"cannot listen on {address}: {e}") from None
        if not bound:
            raise OSError(f"cannot listen on {address}")
        self.port = bound
        await server.start()
        self._server = server

    async def stop(self, grace_secs: float = 5.0) -> None:
        if self._server is not None:
            await self._server.stop(grace_secs)
            self._server = None

    def _handler(self, kind: str) -> Callable[..., Awaitable[Any]]:
        async def export(body: bytes, context: grpc.aio.ServicerContext) -> Any:
            return await self._export(kind, body, context)

        return export

    async def _export(self, kind: str, body: bytes, context: grpc.aio.ServicerContext) -> Any:
        receiver = self.receiver
        metadata = {k: v for k, v in context.invocation_metadata() or () if isinstance(v, str)}
        if not receiver.authorized(metadata.get("authorization")):
            await context.abort(
                grpc.StatusCode.UNAUTHENTICATED,
                "missing or invalid bearer token (authorization: Bearer <token>)",
            )
        project = metadata.get(receiver.project_header) if receiver.project_header else None
        try:
            decoded = await asyncio.to_thread(receiver.export, kind, body, False, project)
        except ExportError as e:
            trailers: tuple[tuple[str, bytes], ...] = ()
            if e.retry_after is not None:
                log.warning("OTLP/gRPC %s export refused: %s", kind, e.message)
                trailers = _retry_details(e.grpc_code, e.message, e.retry_after)
            await context.abort(e.grpc_code, e.message, trailing_metadata=trailers)
        return export_response(kind, decoded)
