"""OTLP/HTTP receiver: `POST /v1/traces`, `/v1/logs`, `/v1/metrics` on TIMEFUSION_OTLP_HTTP_PORT.

Why aiohttp: it is the long-maintained asyncio HTTP server of the Python ecosystem (HTTP/1.1
keep-alive, pipelining, chunked bodies, a C-accelerated parser), so it runs in the same event loop as
the PostgreSQL listener with no extra thread or process, and its request-size limit and streaming
reads fit a receiver. We switch its automatic request decompression off and gunzip ourselves, so a
corrupt or oversized (gzip-bomb) body gets a clear 400/413 rather than a generic failure.

Per the OTLP/HTTP specification: bodies are `application/x-protobuf` or `application/json`
(OTLP/JSON), optionally `Content-Encoding: gzip`; success is 200 with the Export*ServiceResponse in
the request's encoding, carrying `partial_success` when some items were rejected; a bad body is 400
with a `google.rpc.Status`; an unknown content type 415; a missing or wrong bearer token 401; a full
buffer 429 and a database still replaying its WAL 503, both with `Retry-After`.
"""

from __future__ import annotations

import asyncio
import logging
import zlib
from collections.abc import Awaitable, Callable

import grpc
from aiohttp import web
from google.protobuf import json_format
from google.protobuf.message import Message
from google.rpc import code_pb2, status_pb2

from timefusion.protocol.otlp.decode import Decoded
from timefusion.protocol.otlp.receiver import KINDS, ExportError, Receiver, bad_request, export_response

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 32 * 1024 * 1024  # per request, before and after gunzip
PROTOBUF = "application/x-protobuf"
JSON = "application/json"

_GRPC_CODES = {400: code_pb2.INVALID_ARGUMENT, 401: code_pb2.UNAUTHENTICATED, 413: code_pb2.INVALID_ARGUMENT}


def _encode(message: Message, json: bool) -> tuple[bytes, str]:
    if json:
        return json_format.MessageToJson(message, indent=None).encode(), JSON
    return message.SerializeToString(), PROTOBUF


def _status(http_status: int, message: str, json: bool, retry_after: int | None = None) -> web.Response:
    code = _GRPC_CODES.get(http_status, code_pb2.UNAVAILABLE if http_status >= 429 else code_pb2.UNKNOWN)
    if http_status == 500:
        code = code_pb2.INTERNAL
    body, content_type = _encode(status_pb2.Status(code=code, message=message), json)
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
    return web.Response(status=http_status, body=body, content_type=content_type, headers=headers)


def gunzip(body: bytes, limit: int = MAX_BODY_BYTES) -> bytes:
    """Decompress a gzip body, refusing more than `limit` bytes of output (gzip bombs)."""
    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = d.decompress(body, limit)
    except zlib.error as e:
        raise bad_request(f"the gzip body is corrupt: {e}") from None
    if d.unconsumed_tail:
        raise ExportError(
            f"the decompressed body is larger than {limit} bytes", 413, grpc.StatusCode.INVALID_ARGUMENT
        )
    if not d.eof:
        raise bad_request("the gzip body is truncated")
    return out


class OtlpHttpServer:
    """The OTLP/HTTP listener; `start()` binds, `stop()` finishes running requests and closes."""

    def __init__(self, receiver: Receiver, host: str, port: int) -> None:
        self.receiver = receiver
        self.host = host
        self.port = port
        app = web.Application(client_max_size=MAX_BODY_BYTES)
        for kind in KINDS:
            app.router.add_post(f"/v1/{kind}", self._handler(kind))
        self._runner = web.AppRunner(app, auto_decompress=False, access_log=None, handle_signals=False)
        self._site: web.TCPSite | None = None

    async def start(self) -> None:
        await self._runner.setup()
        self._site = web.TCPSite(self._runner, self.host, self.port)
        await self._site.start()
        if self.port == 0:  # bound to a free port: report the real one
            server = self._site._server
            self.port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self, grace_secs: float = 5.0) -> None:
        self._runner._shutdown_timeout = grace_secs  # aiohttp sets it only in the constructor
        await self._runner.cleanup()

    def _handler(self, kind: str) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def handle(request: web.Request) -> web.StreamResponse:
            return await self._export(kind, request)

        return handle

    async def _export(self, kind: str, request: web.Request) -> web.StreamResponse:
        content_type = request.content_type
        if content_type not in (PROTOBUF, JSON):
            return _status(
                415,
                f"unsupported Content-Type {content_type!r}: OTLP/HTTP accepts {PROTOBUF} and {JSON}",
                json=True,
            )
        json = content_type == JSON
        receiver = self.receiver
        if not receiver.authorized(request.headers.get("Authorization")):
            return _status(401, "missing or invalid bearer token (authorization: Bearer <token>)", json)
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return _status(413, f"the request body is larger than {MAX_BODY_BYTES} bytes", json)
        encoding = request.headers.get("Content-Encoding", "identity").strip().lower()
        if encoding not in ("gzip", "identity", ""):
            return _status(415, f"unsupported Content-Encoding {encoding!r}: use gzip or none", json)
        project = request.headers.get(receiver.project_header) if receiver.project_header else None

        def export() -> Decoded:  # in a worker thread: gunzip, decode and the WAL fsync block
            raw = gunzip(body) if encoding == "gzip" else body
            return receiver.export(kind, raw, json, project)

        try:
            decoded = await asyncio.to_thread(export)
        except ExportError as e:
            if e.http_status >= 500 or e.http_status == 429:
                log.warning("OTLP/HTTP %s export refused: %s", kind, e.message)
            return _status(e.http_status, e.message, json, e.retry_after)
        payload, response_type = _encode(export_response(kind, decoded), json)
        return web.Response(status=200, body=payload, content_type=response_type)
