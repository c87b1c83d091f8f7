"""Request classes that parse OTLP trace and log exports with attributes left as raw bytes.

Why: with protobuf's upb backend, parsing a request is fast (~1.5 µs per span) but reading it from
Python is not: every `KeyValue` and `AnyValue` read creates wrapper objects, about 2 µs per
attribute, so a span with 10 attributes cost ~20 µs before anything was stored (the ~22k spans/s
that DESIGN.md measured). A repeated message field and a repeated `bytes` field are the same on the
wire, so these mirror classes declare `Span.attributes` and `LogRecord.attributes` as
`repeated bytes`: upb hands over each attribute's encoded `KeyValue`, and `AttributeCache` decodes
each distinct encoding once (`http.request.method=GET` recurs in nearly every span) and reuses it.

Everything else (field names, numbers, other messages) is the official opentelemetry-proto schema,
copied from its descriptors at import time, so a protobuf upgrade carries over.
"""

from __future__ import annotations

from typing import Any

import orjson
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import Message
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.logs.v1 import logs_pb2
from opentelemetry.proto.resource.v1 import resource_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

from timefusion.protocol.otlp.mapping import any_value


def _file(module: Any, raw_attributes_of: str | None = None) -> descriptor_pb2.FileDescriptorProto:
    proto = descriptor_pb2.FileDescriptorProto()
    module.DESCRIPTOR.CopyToProto(proto)
    for msg in proto.message_type:
        if msg.name == raw_attributes_of:
            for f in msg.field:
                if f.name == "attributes":
                    f.type = descriptor_pb2.FieldDescriptorProto.TYPE_BYTES
                    f.ClearField("type_name")
    return proto


_pool = descriptor_pool.DescriptorPool()
_pool.Add(_file(common_pb2))
_pool.Add(_file(resource_pb2))
_pool.Add(_file(trace_pb2, "Span"))
_pool.Add(_file(logs_pb2, "LogRecord"))
_pool.Add(_file(trace_service_pb2))
_pool.Add(_file(logs_service_pb2))

RawTraceRequest: type[Message] = message_factory.GetMessageClass(
    _pool.FindMessageTypeByName("opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest")
)
RawLogsRequest: type[Message] = message_factory.GetMessageClass(
    _pool.FindMessageTypeByName("opentelemetry.proto.collector.logs.v1.ExportLogsServiceRequest")
)
_KeyValue = common_pb2.KeyValue


def short_key_value(raw: bytes) -> tuple[str, Any] | None:
    """Decode the common short `KeyValue` shapes directly; None for anything else.

    Values that recur are served from the cache, so the decoder mostly decodes the ones that do not
    (a URL path, a client port, a user id); building a protobuf message for each costs about 2 µs.
    This reads the canonical encoding of a key shorter than 128 bytes with a string (< 128 bytes),
    non-negative int (< 2^56) or bool value. Anything else, and any byte that does not fit that
    layout exactly, returns None so that protobuf decodes (and validates) it.
    """
    n = len(raw)
    if n < 4 or raw[0] != 0x0A:
        return None
    klen = raw[1]
    p = 2 + klen
    if klen >= 0x80 or p + 2 > n or raw[p] != 0x12 or raw[p + 1] != n - p - 2 or n - p - 2 >= 0x80:
        return None
    try:
        key = raw[2:p].decode()
    except UnicodeDecodeError:
        return None
    p += 2
    if p == n:  # an empty AnyValue
        return key, None
    tag = raw[p]
    if tag == 0x0A:  # string_value
        if p + 1 >= n or raw[p + 1] != n - p - 2:
            return None
        try:
            return key, raw[p + 2 :].decode()
        except UnicodeDecodeError:
            return None
    if tag == 0x18 or tag == 0x10:  # int_value, bool_value: a varint up to 8 bytes (< 2^56)
        value = 0
        shift = 0
        for i in range(p + 1, n):
            b = raw[i]
            value |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                if i != n - 1 or shift > 56:
                    return None
                if tag == 0x10:
                    return (key, value != 0) if value <= 1 else None
                return key, value
        return None
    return None


class AttributeCache:
    """Encoded `KeyValue` → (key, value, flattened column number or -1, value as JSON text).

    Each distinct encoding is decoded once. The column number indexes `columns` (name, Arrow type)
    and is -1 when the key has no flattened column or the value's type does not fit it (the value
    then lives only in the JSON column). Only scalar values are cached (an array or map value is a
    mutable Python object); the cache is emptied when it reaches `limit` entries, so memory stays
    bounded whatever the cardinality of the attribute values.
    """

    def __init__(self, known: dict[str, tuple[str, Any, Any]], limit: int = 200_000) -> None:
        self.columns: list[tuple[str, Any]] = [(name, typ) for name, _check, typ in known.values()]
        self._known = {key: (i, spec[1]) for i, (key, spec) in enumerate(known.items())}
        self.limit = limit
        self.entries: dict[bytes, tuple[Any, ...]] = {}

    def decode(self, raw: bytes) -> tuple[Any, ...]:
        """Decode one encoded `KeyValue` (cache miss path); raises protobuf's DecodeError if bad."""
        pair = short_key_value(raw)
        if pair is None:
            kv = _KeyValue.FromString(raw)
            key = kv.key
            val = any_value(kv.value)
        else:
            key, val = pair
        spec = self._known.get(key)
        col = spec[0] if spec is not None and spec[1](val) else -1
        entry = (key, val, col, orjson.dumps(val).decode())
        if type(val) is not dict and type(val) is not list:
            if len(self.entries) >= self.limit:
                self.entries.clear()
            self.entries[raw] = entry
        return entry
