"""OpenTelemetry OTLP receivers (OTLP/HTTP and OTLP/gRPC) for traces, logs and metrics.

`start_otlp(config)` is what `timefusion serve` calls after the PostgreSQL listener is up. It decides
whether to serve at all (TIMEFUSION_OTLP_ENABLED; a GRPC_TOKEN, or TIMEFUSION_ALLOW_INSECURE_AUTH=true
to serve without one — it logs which and why), warns when protobuf runs without its C (upb) backend
(decoding is ~10× slower then), and binds both ports. Until `attach(db)` — i.e. during WAL replay —
exports are answered 503/UNAVAILABLE so exporters retry.

Modules: `mapping` (OpenTelemetry values → column values), `fastproto` (request classes with raw
attributes), `decode` (whole requests → Arrow columns), `receiver` (auth, tenant, ingest), `http`
and `grpc` (the two transports).
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from timefusion.config import Config

if TYPE_CHECKING:
    from timefusion.app import TimeFusion
    from timefusion.protocol.otlp.grpc import OtlpGrpcServer
    from timefusion.protocol.otlp.http import OtlpHttpServer
    from timefusion.protocol.otlp.receiver import Receiver

log = logging.getLogger(__name__)


def protobuf_backend() -> str:
    from google.protobuf.internal import api_implementation

    return api_implementation.Type()


class OtlpServers:
    """Both OTLP listeners and the receiver they share."""

    def __init__(self, receiver: Receiver, http: OtlpHttpServer, grpc: OtlpGrpcServer) -> None:
        self.receiver = receiver
        self.http = http
        self.grpc = grpc

    def attach(self, db: TimeFusion) -> None:
        self.receiver.attach(db)

    async def stop(self, grace_secs: float = 5.0) -> None:
        """Stop accepting, let running exports finish (up to `grace_secs`), close both ports."""
        await self.grpc.stop(grace_secs)
        await self.http.stop(grace_secs)
        if self.receiver.pool is not None:
            await asyncio.to_thread(self.receiver.pool.close)
        log.info("OTLP receivers stopped")


def _log_warm_failure(future: asyncio.Future[None]) -> None:
    if not future.cancelled() and future.exception() is not None:
        log.error("OTLP decoding processes did not start: %s", future.exception())


async def start_otlp(config: Config) -> OtlpServers | None:
    """Start the OTLP receivers if the configuration allows it; None when they are off (logged).

    Raises OSError when a port cannot be bound.
    """
    if not config.otlp_enabled:
        log.info("OTLP receivers disabled (TIMEFUSION_OTLP_ENABLED=false)")
        return None
    if not config.grpc_token and not config.allow_insecure_auth:
        log.warning(
            "OTLP receivers disabled: GRPC_TOKEN is not set; set it (clients send "
            "'authorization: Bearer <token>') or set TIMEFUSION_ALLOW_INSECURE_AUTH=true to accept "
            "OTLP without authentication"
        )
        return None
    from timefusion.protocol.otlp.grpc import OtlpGrpcServer
    from timefusion.protocol.otlp.http import OtlpHttpServer
    from timefusion.protocol.otlp.receiver import Receiver
    from timefusion.protocol.otlp.workers import DecodePool, default_workers
    from timefusion.schema import load_tables

    backend = protobuf_backend()
    if backend != "upb":
        log.warning(
            "protobuf uses its %r backend, not the C (upb) one: OTLP decoding will be about 10x slower; "
            "install a protobuf wheel for this platform",
            backend,
        )
    if not config.grpc_token:
        log.warning("TIMEFUSION_ALLOW_INSECURE_AUTH=true: OTLP receivers accept data without a token")
    workers = default_workers()
    pool = (
        DecodePool(workers, config.otlp_project_attribute, config.otlp_default_project) if workers else None
    )
    receiver = Receiver(
        dict(load_tables()),
        config.grpc_token,
        config.otlp_project_header,
        config.otlp_project_attribute,
        config.otlp_default_project,
        pool,
    )
    http = OtlpHttpServer(receiver, config.otlp_host, config.otlp_http_port)
    grpc = OtlpGrpcServer(receiver, config.otlp_host, config.otlp_grpc_port)
    await http.start()
    try:
        await grpc.start()
    except BaseException:
        await http.stop(0)
        raise
    if pool is not None:  # start the decoding processes in the background (~1 s each)
        warming = asyncio.get_running_loop().run_in_executor(None, pool.warm)
        warming.add_done_callback(_log_warm_failure)
    log.info(
        "OTLP receivers listening: HTTP on %s:%d (/v1/traces, /v1/logs, /v1/metrics), gRPC on %s:%d; "
        "%d decoding processes",
        config.otlp_host,
        http.port,
        config.otlp_host,
        grpc.port,
        workers,
    )
    return OtlpServers(receiver, http, grpc)


__all__ = ["OtlpServers", "protobuf_backend", "start_otlp"]
