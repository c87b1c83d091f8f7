"""PostgreSQL protocol v3 framing: reading frontend messages, building backend messages.

Nothing above this module touches bytes of the protocol framing; the connection state machine
works with (type, payload) pairs and the builders below.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Sequence

from timefusion.protocol.pgwire.errors import PROTOCOL_VIOLATION, PgError

PROTOCOL_3_0 = 196608
SSL_REQUEST = 80877103
GSSENC_REQUEST = 80877104
CANCEL_REQUEST = 80877102

MAX_STARTUP_LENGTH = 10_000
MAX_MESSAGE_LENGTH = 1 << 30  # PostgreSQL's own limit for a message

_I16 = struct.Struct("!h")
_I32 = struct.Struct("!i")
_HEADER = struct.Struct("!ci")


class ProtocolError(Exception):
    """The peer broke the protocol; the connection is closed after telling it so."""


async def read_startup(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """A startup-phase packet: (code, rest). Code is the protocol version or a request code."""
    head = await reader.readexactly(4)
    (length,) = _I32.unpack(head)
    if length < 8 or length > MAX_STARTUP_LENGTH:
        raise ProtocolError(f"invalid startup packet length {length}")
    body = await reader.readexactly(length - 4)
    (code,) = _I32.unpack_from(body)
    return code, body[4:]


FRONTEND_TYPES = frozenset(b"QPBDECSHXdcfp")
_EMPTY_BODY = frozenset(b"SHXc")  # Sync, Flush, Terminate, CopyDone carry no body


async def read_message(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    """One frontend message; the type and length are checked before the body is read, so a bad
    header ends the connection at once instead of buffering up to the declared length."""
    head = await reader.readexactly(5)
    kind, length = _HEADER.unpack(head)
    if kind[0] not in FRONTEND_TYPES:
        raise ProtocolError(f"invalid frontend message type {kind!r}")
    if length < 4 or length > MAX_MESSAGE_LENGTH or (kind[0] in _EMPTY_BODY and length != 4):
        raise ProtocolError(f"invalid message length {length} for message type {kind!r}")
    return kind, await reader.readexactly(length - 4)


class Payload:
    """Cursor over a message body with bounds checks (a bad message is a ProtocolError)."""

    __slots__ = ("data", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def _need(self, n: int) -> None:
        if n < 0 or self.pos + n > len(self.data):
            raise ProtocolError("message is shorter than its contents say")

    def int16(self) -> int:
        self._need(2)
        (v,) = _I16.unpack_from(self.data, self.pos)
        self.pos += 2
        return v

    def int32(self) -> int:
        self._need(4)
        (v,) = _I32.unpack_from(self.data, self.pos)
        self.pos += 4
        return v

    def cstring(self) -> str:
        end = self.data.find(b"\0", self.pos)
        if end < 0:
            raise ProtocolError("string is not NUL-terminated")
        raw = self.data[self.pos : end]
        self.pos = end + 1
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise PgError("22021", 'invalid byte sequence for encoding "UTF8"') from None

    def bytes(self, n: int) -> bytes:
        self._need(n)
        v = self.data[self.pos : self.pos + n]
        self.pos += n
        return v

    def byte(self) -> bytes:
        return self.bytes(1)

    def rest(self) -> bytes:
        v = self.data[self.pos :]
        self.pos = len(self.data)
        return v


def startup_parameters(body: bytes) -> dict[str, str]:
    p = Payload(body)
    params: dict[str, str] = {}
    while p.pos < len(body):
        key = p.cstring()
        if not key:
            break
        params[key] = p.cstring()
    return params


# -- backend messages -------------------------------------------------------------------------


def message(kind: bytes, body: bytes = b"") -> bytes:
    return kind + _I32.pack(len(body) + 4) + body


def cstr(text: str) -> bytes:
    return text.encode("utf-8") + b"\0"


def auth_ok() -> bytes:
    return message(b"R", _I32.pack(0))


def auth_cleartext() -> bytes:
    return message(b"R", _I32.pack(3))


def auth_sasl(mechanisms: Sequence[str]) -> bytes:
    return message(b"R", _I32.pack(10) + b"".join(cstr(m) for m in mechanisms) + b"\0")


def auth_sasl_continue(data: bytes) -> bytes:
    return message(b"R", _I32.pack(11) + data)


def auth_sasl_final(data: bytes) -> bytes:
    return message(b"R", _I32.pack(12) + data)


def parameter_status(name: str, value: str) -> bytes:
    return message(b"S", cstr(name) + cstr(value))


def backend_key_data(pid: int, key: int) -> bytes:
    return message(b"K", _I32.pack(pid) + _I32.pack(key))


def ready_for_query(status: bytes) -> bytes:
    return message(b"Z", status)


def command_complete(tag: str) -> bytes:
    return message(b"C", cstr(tag))


def empty_query_response() -> bytes:
    return message(b"I")


def parse_complete() -> bytes:
    return message(b"1")


def bind_complete() -> bytes:
    return message(b"2")


def close_complete() -> bytes:
    return message(b"3")


def no_data() -> bytes:
    return message(b"n")


def portal_suspended() -> bytes:
    return message(b"s")


def parameter_description(oids: Sequence[int]) -> bytes:
    return message(b"t", _I16.pack(len(oids)) + b"".join(_I32.pack(o) for o in oids))


def negotiate_protocol_version(minor: int, unrecognized: Sequence[str]) -> bytes:
    return message(
        b"v", _I32.pack(minor) + _I32.pack(len(unrecognized)) + b"".join(cstr(o) for o in unrecognized)
    )


def _fields(err: PgError) -> bytes:
    parts = [b"S" + cstr(err.severity), b"V" + cstr(err.severity), b"C" + cstr(err.sqlstate)]
    parts.append(b"M" + cstr(err.message))
    if err.detail:
        parts.append(b"D" + cstr(err.detail))
    if err.hint:
        parts.append(b"H" + cstr(err.hint))
    if err.position:
        parts.append(b"P" + cstr(str(err.position)))
    return b"".join(parts) + b"\0"


def error_response(err: PgError) -> bytes:
    return message(b"E", _fields(err))


def notice_response(err: PgError) -> bytes:
    return message(b"N", _fields(err))


def protocol_violation(text: str) -> PgError:
    return PgError(PROTOCOL_VIOLATION, text, severity="FATAL")
