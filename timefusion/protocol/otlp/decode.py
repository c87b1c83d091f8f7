"""Whole OTLP export requests → Arrow columns of `otel_logs_and_spans` / `otel_metrics`.

Why column-wise: a request of 1000 spans is walked once, appending each field to one Python list per
column (sparse attribute columns are pre-sized lists filled by row index), and every list becomes one
Arrow array at the end. Per-resource values (the resource JSON, its flattened columns, the tenant) are
computed once per resource and spread to its rows with one `take`. No per-row objects are built.

Items that cannot be stored (a span without a valid 16-byte trace id and 8-byte span id or without a
start time, a data point without a time, a metric without data) are skipped and counted: the caller
answers with OTLP's partial success (`rejected_spans`, … plus the first reasons) and stores the rest.

`parse_json` accepts OTLP/JSON bodies. protobuf's JSON parser reads `bytes` fields as base64, while
OTLP/JSON spells trace and span ids as hex, so the ids are converted to base64 first.
"""

from __future__ import annotations

import base64
import hashlib
import operator
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
from google.protobuf import json_format
from google.protobuf.message import DecodeError as ProtobufDecodeError
from google.protobuf.message import Message
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from timefusion.protocol.otlp.fastproto import AttributeCache, RawLogsRequest, RawTraceRequest
from timefusion.protocol.otlp.mapping import (
    SPAN_KINDS,
    STATUS_CODES,
    TEMPORALITY,
    Templates,
    any_value,
    flat_columns,
    key_values,
    nest,
    severity_text,
)
from timefusion.schema import TableSchema

LOGS_AND_SPANS = "otel_logs_and_spans"
METRICS = "otel_metrics"
TIMESTAMP = pa.timestamp("us", tz="UTC")
MAX_NS = 2**63 - 1
MAX_REASONS = 5
_ITEM = [operator.itemgetter(i) for i in range(4)]
_TIMESTAMP_NS = pa.timestamp("ns", tz="UTC")
_ZERO16 = bytes(16)
_ZERO8 = bytes(8)  # rejection reasons quoted in a partial-success error message

_dumps = orjson.dumps
_SORTED = orjson.OPT_SORT_KEYS


class OtlpDecodeError(ValueError):
    """The request body is not a valid OTLP message (the client gets 400 / INVALID_ARGUMENT)."""


@dataclass
class Decoded:
    """One table's rows decoded from a request, and the items that were rejected."""

    table: str
    columns: dict[str, pa.Array]
    rows: int
    rejected: int = 0
    reasons: list[str] = field(default_factory=list)
    record_batch: pa.RecordBatch | None = None  # the columns as one batch (see workers.decode_body)

    def reject(self, reason: str) -> None:
        self.rejected += 1
        if len(self.reasons) < MAX_REASONS:
            self.reasons.append(reason)

    @property
    def error_message(self) -> str:
        more = self.rejected - len(self.reasons)
        return "; ".join(self.reasons) + (f" (and {more} more)" if more > 0 else "")

    def batch(self) -> pa.RecordBatch:
        return pa.RecordBatch.from_pydict(self.columns)


# -- request bodies --------------------------------------------------------------------------------

REQUESTS: dict[str, type[Message]] = {
    "traces": ExportTraceServiceRequest,
    "logs": ExportLogsServiceRequest,
    "metrics": ExportMetricsServiceRequest,
}
# What the decoder reads: attributes of spans and log records stay encoded (see fastproto.py).
RAW_REQUESTS: dict[str, type[Message]] = {
    "traces": RawTraceRequest,
    "logs": RawLogsRequest,
    "metrics": ExportMetricsServiceRequest,
}

_ID_KEYS = frozenset({"traceId", "trace_id", "spanId", "span_id", "parentSpanId", "parent_span_id"})


def _hex_ids_to_base64(node: Any) -> None:
    """Rewrite every trace/span id in a parsed OTLP/JSON document from hex to base64, in place."""
    if isinstance(node, dict):
        for key, val in node.items():
            if key in _ID_KEYS and isinstance(val, str):
                try:
                    raw = bytes.fromhex(val)
                except ValueError:
                    raise OtlpDecodeError(f"{key} {val[:64]!r} is not hexadecimal") from None
                node[key] = base64.b64encode(raw).decode("ascii")
            elif isinstance(val, dict | list):
                _hex_ids_to_base64(val)
    elif isinstance(node, list):
        for item in node:
            if isinstance(item, dict | list):
                _hex_ids_to_base64(item)


def parse_protobuf(kind: str, body: bytes) -> Message:
    """Parse an OTLP protobuf body into the message the decoder reads (`RAW_REQUESTS`)."""
    msg = RAW_REQUESTS[kind]()
    try:
        msg.ParseFromString(body)
    except (ProtobufDecodeError, RuntimeError, ValueError) as e:
        raise OtlpDecodeError(f"the body is not a valid OTLP protobuf {msg.DESCRIPTOR.name}: {e}") from None
    return msg


def parse_json(kind: str, body: bytes) -> Message:
    """Parse an OTLP/JSON body (hex ids, unknown fields ignored) into the message the decoder reads."""
    msg = REQUESTS[kind]()
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as e:
        raise OtlpDecodeError(f"the body is not valid JSON: {e}") from None
    if not isinstance(doc, dict):
        raise OtlpDecodeError(f"an OTLP/JSON {msg.DESCRIPTOR.name} must be a JSON object")
    _hex_ids_to_base64(doc)
    try:
        json_format.ParseDict(doc, msg, ignore_unknown_fields=True)
    except (json_format.ParseError, ValueError, TypeError) as e:
        raise OtlpDecodeError(f"the body is not a valid OTLP/JSON {msg.DESCRIPTOR.name}: {e}") from None
    if kind == "metrics":
        return msg
    return RAW_REQUESTS[kind].FromString(msg.SerializeToString())


# -- helpers ---------------------------------------------------------------------------------------


# Per request, the fixed cost matters as much as the per-span cost (SDKs export 512 spans at a
# time): each pyarrow compute call costs tens of µs here, so columns are built with few of them.


def _ts(ns: Sequence[int]) -> pa.Array:
    """Unix nanoseconds (0 = NULL) → timestamp[us, UTC]."""
    if 0 not in ns:
        return pa.array(ns, _TIMESTAMP_NS).cast(TIMESTAMP, safe=False)  # drops sub-µs digits
    arr = np.array(ns, dtype=np.int64)
    return pa.array(arr // 1000, pa.int64(), mask=arr == 0).cast(TIMESTAMP)


def _uuids(span_ids: Sequence[str], trace_ids: Sequence[str]) -> pa.Array:
    """Span row ids: the 8-byte span id + the low 8 bytes of the trace id, spelled as a UUID.

    Deterministic, so a retried export deduplicates (the dedup key is `timestamp, id`).
    """
    return pa.array(
        [f"{s[:8]}-{s[8:12]}-{s[12:]}-{t[16:20]}-{t[20:]}" for s, t in zip(span_ids, trace_ids)], pa.string()
    )


def _spread(values: list[Any], index: list[int], typ: pa.DataType) -> pa.Array:
    """Per-resource values → one per row (`index` = resource number per row)."""
    if len(values) == 1:
        return pa.repeat(pa.scalar(values[0], typ), len(index))
    return pa.array([values[i] for i in index], typ)


class _Resources:
    """Per-resource values computed once: JSON, flattened columns, tenant; spread to rows later."""

    def __init__(self, known: Mapping[str, Any], project: str | None, attribute: str, default: str) -> None:
        self.known = known
        self.header_project = project
        self.attribute = attribute
        self.default = default
        self.json: list[str | None] = []
        self.project: list[str] = []
        self.flat: dict[str, list[Any]] = {}
        self.index: list[int] = []  # resource number per row

    def add(self, resource: Any, sort_keys: bool = False) -> int:
        """Record one resource; returns its number (what `index` holds for each of its rows)."""
        pairs = key_values(resource.attributes)
        i = len(self.json)
        project = self.header_project
        found: dict[str, Any] = {}  # a repeated key: the last value wins, as in the JSON
        for key, val in pairs:
            spec = self.known.get(key)
            if spec is not None:
                found[spec[0]] = val if spec[1](val) else None
            if key == self.attribute and self.header_project is None and type(val) is str and val:
                project = val
        for name in found:
            if name not in self.flat:
                self.flat[name] = [None] * i
        for name, col in self.flat.items():
            col.append(found.get(name))
        self.project.append(project or self.default)
        self.json.append(_dumps(nest(pairs), option=_SORTED if sort_keys else 0).decode() if pairs else None)
        return i

    def columns(self, out: dict[str, pa.Array]) -> None:
        idx = self.index
        out["project_id"] = _spread(self.project, idx, pa.string())
        out["resource"] = _spread(self.json, idx, pa.string())
        for name, values in self.flat.items():
            out[name] = _spread(values, idx, self.known_type(name))

    def known_type(self, column: str) -> pa.DataType:
        for name, _check, typ in self.known.values():
            if name == column:
                return typ
        raise KeyError(column)


def _attribute_columns(
    cache: AttributeCache,
    templates: Templates,
    raws: list[bytes],
    counts: list[int],
    out: dict[str, pa.Array],
) -> pa.Array:
    """Every item's attributes at once: the flattened columns into `out`, the JSON column returned.

    `raws` holds the encoded attributes of all items back to back, `counts` how many each item has.
    Lookups run in one pass over the request; the flattened columns are located with numpy (one
    mask per column present) and filled by row; the JSON of each item is its key set's template
    filled with the cached value texts.
    """
    rows = len(counts)
    if not raws:
        return pa.nulls(rows, pa.string())
    cached = cache.entries.get
    decode = cache.decode
    entries = [cached(raw) or decode(raw) for raw in raws]
    keys, values, cols, texts = (tuple(map(_ITEM[i], entries)) for i in range(4))
    template = templates.get
    attributes: list[str | None] = []
    add = attributes.append
    pos = 0
    for n in counts:
        if not n:
            add(None)
            continue
        end = pos + n
        tpl = template(keys[pos:end])
        if tpl is None:
            add(_dumps(nest(list(zip(keys[pos:end], values[pos:end])))).decode())
        else:
            t = texts[pos:end]
            add(tpl[0] % (t if tpl[1] is None else tpl[1](t)))
        pos = end
    col_of = np.array(cols, dtype=np.int32)
    present = np.unique(col_of)
    if present[-1] >= 0:
        row_of = np.repeat(np.arange(rows, dtype=np.int64), counts)
        for c in present.tolist():
            if c < 0:
                continue
            at = np.flatnonzero(col_of == c)
            name, typ = cache.columns[c]
            full: list[Any] = [None] * rows
            for r, j in zip(row_of[at].tolist(), at.tolist()):
                full[r] = values[j]  # a repeated key: the last wins
            out[name] = pa.array(full, typ)
    return pa.array(attributes, pa.string())


def _events_json(events: Any) -> tuple[str, str | None]:
    """A span's events as JSON, and the `errors` JSON of its `exception` events (or None)."""
    out = []
    errors = []
    for e in events:
        pairs = key_values(e.attributes)
        ev: dict[str, Any] = {"name": e.name, "time_unix_nano": e.time_unix_nano}
        if pairs:
            ev["attributes"] = nest(pairs)
        if e.dropped_attributes_count:
            ev["dropped_attributes_count"] = e.dropped_attributes_count
        out.append(ev)
        if e.name == "exception":
            flat = dict(pairs)
            err = {
                "type": flat.get("exception.type"),
                "message": flat.get("exception.message"),
                "stacktrace": flat.get("exception.stacktrace"),
            }
            errors.append({k: v for k, v in err.items() if v is not None})
    return _dumps(out).decode(), (_dumps(errors).decode() if errors else None)


def _links_json(links: Any) -> str:
    out = []
    for link in links:
        d: dict[str, Any] = {"trace_id": link.trace_id.hex(), "span_id": link.span_id.hex()}
        if link.trace_state:
            d["trace_state"] = link.trace_state
        pairs = key_values(link.attributes)
        if pairs:
            d["attributes"] = nest(pairs)
        out.append(d)
    return _dumps(out).decode()


# -- the decoder -----------------------------------------------------------------------------------


class Decoder:
    """Maps decoded OTLP requests onto the table schemas (built once, reused for every request)."""

    def __init__(
        self,
        schemas: Mapping[str, TableSchema],
        project_attribute: str = "timefusion.project_id",
        default_project: str = "default",
    ) -> None:
        logs = schemas[LOGS_AND_SPANS]
        metrics = schemas[METRICS]
        self.span_attrs = flat_columns(logs, "attributes")
        self.span_resource = flat_columns(logs, "resource")
        self.metric_attrs = flat_columns(metrics, "attributes")
        self.metric_resource = flat_columns(metrics, "resource")
        self.span_cache = AttributeCache(self.span_attrs)
        self.templates = Templates()
        self.project_attribute = project_attribute
        self.default_project = default_project

    def decode(self, kind: str, request: Message, project: str | None = None) -> Decoded:
        if kind == "traces":
            return self.traces(request, project)  # type: ignore[arg-type]
        if kind == "logs":
            return self.logs(request, project)  # type: ignore[arg-type]
        return self.metrics(request, project)  # type: ignore[arg-type]

    def _resources(self, known: Mapping[str, Any], project: str | None) -> _Resources:
        return _Resources(known, project or None, self.project_attribute, self.default_project)

    # -- traces ------------------------------------------------------------------------------------
    def traces(self, request: ExportTraceServiceRequest, project: str | None = None) -> Decoded:
        res = self._resources(self.span_resource, project)
        # One tuple per span (one append instead of twenty), transposed into columns at the end.
        rows: list[tuple[Any, ...]] = []
        add_row = rows.append
        raws_all: list[bytes] = []
        add_raws = raws_all.extend
        counts: list[int] = []
        add_count = counts.append
        extras: list[tuple[int, str | None, str | None, str | None]] = []  # (row, events, errors, links)
        out = Decoded(LOGS_AND_SPANS, {}, 0)
        row = 0
        res_index = res.index
        span_kinds = SPAN_KINDS
        status_names = STATUS_CODES
        dumps = _dumps
        for rs in request.resource_spans:
            r = res.add(rs.resource)
            for ss in rs.scope_spans:
                for span in ss.spans:
                    tid = span.trace_id
                    sid = span.span_id
                    t0 = span.start_time_unix_nano
                    if len(tid) != 16 or len(sid) != 8 or tid == _ZERO16 or sid == _ZERO8:
                        out.reject(f"span {span.name!r}: trace_id must be 16 bytes and span_id 8 bytes")
                        continue
                    if not 0 < t0 <= MAX_NS:
                        out.reject(f"span {span.name!r}: start_time_unix_nano is missing or out of range")
                        continue
                    t1 = span.end_time_unix_nano
                    if t1 > MAX_NS:
                        t1 = 0
                    pid = span.parent_span_id
                    th = tid.hex()
                    sh = sid.hex()
                    flags = span.flags
                    tf = f"{flags & 0xFF:02x}"
                    is_remote = bool(flags & 0x200) if flags & 0x100 else None
                    ts = span.trace_state
                    st = span.status
                    if ts:
                        context = dumps(
                            {
                                "trace_id": th,
                                "span_id": sh,
                                "trace_state": ts,
                                "trace_flags": tf,
                                "is_remote": is_remote,
                            }
                        ).decode()
                    else:  # nothing to escape: format directly
                        remote_json = "null" if is_remote is None else ("true" if is_remote else "false")
                        context = (
                            f'{{"trace_id":"{th}","span_id":"{sh}","trace_state":"","trace_flags":"{tf}",'
                            f'"is_remote":{remote_json}}}'
                        )
                    add_row(
                        (
                            t0,
                            t1,
                            th,
                            sh,
                            pid.hex() if pid else None,
                            span.name,
                            span_kinds.get(span.kind),
                            status_names.get(st.code, "UNSET"),
                            st.message or None,
                            context,
                            ts or None,
                            tf,
                            is_remote,
                        )
                    )
                    raws = span.attributes
                    add_count(len(raws))
                    add_raws(raws)
                    if span.events or span.links:
                        ev, err = _events_json(span.events) if span.events else (None, None)
                        extras.append((row, ev, err, _links_json(span.links) if span.links else None))
                    res_index.append(r)
                    row += 1
        out.rows = row
        if row == 0:
            return out
        (start, end, trace_ids, span_ids, parents, names, kinds, status_codes, status_msgs, contexts,
         trace_states, trace_flags, remote) = zip(*rows)  # fmt: skip
        cols = out.columns
        start_ts = _ts(start)
        end_np = np.array(end, dtype=np.int64)
        start_np = np.array(start, dtype=np.int64)
        cols["timestamp"] = start_ts
        cols["start_time"] = start_ts
        cols["end_time"] = _ts(end)
        cols["duration"] = pa.array(end_np - start_np, pa.int64(), mask=end_np == 0)
        span_hex = pa.array(span_ids, pa.string())
        trace_hex = pa.array(trace_ids, pa.string())
        cols["id"] = _uuids(span_ids, trace_ids)
        cols["parent_id"] = pa.array(parents, pa.string())
        cols["name"] = pa.array(names, pa.string())
        cols["kind"] = pa.array(kinds, pa.string())
        cols["status_code"] = pa.array(status_codes, pa.string())
        cols["status_message"] = pa.array(status_msgs, pa.string())
        cols["context"] = pa.array(contexts, pa.string())
        cols["context___trace_id"] = trace_hex
        cols["context___span_id"] = span_hex
        cols["context___trace_state"] = pa.array(trace_states, pa.string())
        cols["context___trace_flags"] = pa.array(trace_flags, pa.string())
        cols["context___is_remote"] = pa.array(remote, pa.bool_())
        if extras:
            events: list[str | None] = [None] * row
            errors: list[str | None] = [None] * row
            links: list[str | None] = [None] * row
            for i, ev, err, link in extras:
                events[i] = ev
                errors[i] = err
                links[i] = link
            cols["events"] = pa.array(events, pa.string())
            cols["errors"] = pa.array(errors, pa.string())
            cols["links"] = pa.array(links, pa.string())
        cols["attributes"] = _attribute_columns(self.span_cache, self.templates, raws_all, counts, cols)
        res.columns(cols)
        return out

    # -- logs --------------------------------------------------------------------------------------
    def logs(self, request: ExportLogsServiceRequest, project: str | None = None) -> Decoded:
        res = self._resources(self.span_resource, project)
        raws_all: list[bytes] = []
        counts: list[int] = []
        times: list[int] = []
        observed: list[int] = []
        names: list[str | None] = []
        levels: list[str | None] = []
        severities: list[str | None] = []
        sev_numbers: list[int | None] = []
        bodies: list[str | None] = []
        trace_ids: list[str | None] = []
        span_ids: list[str | None] = []
        contexts: list[str | None] = []
        trace_flags: list[str | None] = []
        out = Decoded(LOGS_AND_SPANS, {}, 0)
        now_ns = _now_ns()
        row = 0
        dumps = _dumps
        for rl in request.resource_logs:
            r = res.add(rl.resource)
            for sl in rl.scope_logs:
                for rec in sl.log_records:
                    t = rec.time_unix_nano
                    o = rec.observed_time_unix_nano
                    if t > MAX_NS or o > MAX_NS:
                        out.reject("log record: time_unix_nano is out of range")
                        continue
                    times.append(t or o or now_ns)  # the spec: use the observed time when time is unset
                    observed.append(o)
                    names.append(rec.event_name or None)
                    number = rec.severity_number
                    text = rec.severity_text or severity_text(number)
                    levels.append(text)
                    sev_numbers.append(number or None)
                    severities.append(
                        dumps({"severity_text": text, "severity_number": number}).decode()
                        if text or number
                        else None
                    )
                    body = rec.body
                    which = body.WhichOneof("value")
                    if which is None:
                        bodies.append(None)
                    elif which == "string_value":
                        bodies.append(dumps(body.string_value).decode())
                    else:
                        bodies.append(dumps(any_value(body)).decode())
                    raws = rec.attributes
                    counts.append(len(raws))
                    raws_all.extend(raws)
                    tid = rec.trace_id
                    sid = rec.span_id
                    th = tid.hex() if tid else None
                    sh = sid.hex() if sid else None
                    trace_ids.append(th)
                    span_ids.append(sh)
                    tf = f"{rec.flags & 0xFF:02x}" if (tid or rec.flags) else None
                    trace_flags.append(tf)
                    contexts.append(
                        dumps({"trace_id": th, "span_id": sh, "trace_flags": tf}).decode()
                        if th or sh
                        else None
                    )
                    res.index.append(r)
                    row += 1
        out.rows = row
        if row == 0:
            return out
        cols = out.columns
        cols["timestamp"] = _ts(times)
        cols["observed_timestamp"] = _ts(observed)
        cols["name"] = pa.array(names, pa.string())
        cols["level"] = pa.array(levels, pa.string())
        cols["severity"] = pa.array(severities, pa.string())
        cols["severity___severity_text"] = cols["level"]
        cols["severity___severity_number"] = pa.array(sev_numbers, pa.int32())
        cols["body"] = pa.array(bodies, pa.string())
        cols["attributes"] = _attribute_columns(self.span_cache, self.templates, raws_all, counts, cols)
        cols["context"] = pa.array(contexts, pa.string())
        cols["context___trace_id"] = pa.array(trace_ids, pa.string())
        cols["context___span_id"] = pa.array(span_ids, pa.string())
        cols["context___trace_flags"] = pa.array(trace_flags, pa.string())
        res.columns(cols)
        return out

    # -- metrics -----------------------------------------------------------------------------------
    def metrics(self, request: ExportMetricsServiceRequest, project: str | None = None) -> Decoded:
        res = self._resources(self.metric_resource, project)
        known = self.metric_attrs
        out = Decoded(METRICS, {}, 0)
        rows: list[dict[str, Any]] = []  # one small dict per data point: metrics are few per request
        for rm in request.resource_metrics:
            r = res.add(rm.resource, sort_keys=True)
            for sm in rm.scope_metrics:
                scope = sm.scope
                scope_cols = {
                    "scope_name": scope.name or None,
                    "scope_version": scope.version or None,
                    "scope_schema_url": sm.schema_url or None,
                    "resource_schema_url": rm.schema_url or None,
                }
                for metric in sm.metrics:
                    for point in self._points(metric, out):
                        point.update(scope_cols)
                        attrs_json = point.get("attributes") or ""
                        series_key = "\0".join(
                            (metric.name, point["metric_type"], metric.unit, res.json[r] or "", attrs_json)
                        )
                        series = hashlib.blake2b(series_key.encode(), digest_size=16).hexdigest()
                        point["series_id"] = series
                        point["id"] = f"{series}-{point.pop('_time'):x}"
                        for key, val in point.pop("_attrs"):
                            spec = known.get(key)
                            if spec is not None and spec[1](val):
                                point[spec[0]] = val
                        rows.append(point)
                        res.index.append(r)
        out.rows = len(rows)
        if not rows:
            return out
        cols = out.columns
        types = {name: typ for name, _c, typ in known.values()} | _METRIC_TYPES
        names = sorted({k for p in rows for k in p})
        for name in names:
            values = [p.get(name) for p in rows]
            typ = types[name]
            cols[name] = _ts(values) if typ == TIMESTAMP else pa.array(values, typ)
        res.columns(cols)
        return out

    def _points(self, metric: Any, out: Decoded) -> Iterable[dict[str, Any]]:
        which = metric.WhichOneof("data")
        if which is None:
            out.reject(f"metric {metric.name!r} has no data points")
            return
        data = getattr(metric, which)
        base: dict[str, Any] = {
            "metric_name": metric.name,
            "metric_description": metric.description or None,
            "metric_unit": metric.unit,
            "metric_type": which,
        }
        if which in ("sum", "histogram", "exponential_histogram"):
            base["aggregation_temporality"] = TEMPORALITY.get(data.aggregation_temporality)
        if which == "sum":
            base["is_monotonic"] = data.is_monotonic
        for dp in data.data_points:
            t = dp.time_unix_nano
            if not 0 < t <= MAX_NS:
                out.reject(f"metric {metric.name!r}: a data point has no time_unix_nano")
                continue
            p = dict(base)
            pairs = key_values(dp.attributes)
            p["_attrs"] = pairs
            p["_time"] = t
            p["attributes"] = _dumps(nest(pairs), option=_SORTED).decode() if pairs else None
            p["timestamp"] = t
            s = dp.start_time_unix_nano
            p["start_timestamp"] = s if s <= MAX_NS else 0
            p["flags"] = dp.flags
            p["message_size_bytes"] = dp.ByteSize()
            if which in ("gauge", "sum"):
                kind = dp.WhichOneof("value")
                if kind == "as_int":
                    p["value_int"] = dp.as_int
                    p["value"] = float(dp.as_int)
                elif kind == "as_double":
                    p["value_double"] = dp.as_double
                    p["value"] = dp.as_double
            elif which == "summary":
                p["distribution_count"] = dp.count
                p["distribution_sum"] = dp.sum
                p["summary_quantiles"] = [q.quantile for q in dp.quantile_values]
                p["summary_values"] = [q.value for q in dp.quantile_values]
            else:
                p["distribution_count"] = dp.count
                for f, col in (
                    ("sum", "distribution_sum"),
                    ("min", "distribution_min"),
                    ("max", "distribution_max"),
                ):
                    if dp.HasField(f):
                        p[col] = getattr(dp, f)
                if which == "histogram":
                    p["hist_bucket_counts"] = list(dp.bucket_counts)
                    p["hist_explicit_bounds"] = list(dp.explicit_bounds)
                else:
                    p["exp_hist_scale"] = dp.scale
                    p["exp_hist_zero_count"] = dp.zero_count
                    p["exp_hist_zero_threshold"] = dp.zero_threshold
                    p["exp_hist_pos_offset"] = dp.positive.offset
                    p["exp_hist_pos_buckets"] = list(dp.positive.bucket_counts)
                    p["exp_hist_neg_offset"] = dp.negative.offset
                    p["exp_hist_neg_buckets"] = list(dp.negative.bucket_counts)
            if which != "summary" and dp.exemplars:
                p["exemplars"] = _dumps([_exemplar(e) for e in dp.exemplars]).decode()
            yield p


def _exemplar(e: Any) -> dict[str, Any]:
    d: dict[str, Any] = {"time_unix_nano": e.time_unix_nano}
    kind = e.WhichOneof("value")
    if kind is not None:
        d["value"] = getattr(e, kind)
    if e.trace_id:
        d["trace_id"] = e.trace_id.hex()
    if e.span_id:
        d["span_id"] = e.span_id.hex()
    pairs = key_values(e.filtered_attributes)
    if pairs:
        d["filtered_attributes"] = nest(pairs)
    return d


_METRIC_TYPES: dict[str, pa.DataType] = {
    "timestamp": TIMESTAMP,
    "start_timestamp": TIMESTAMP,
    "id": pa.string(),
    "series_id": pa.string(),
    "metric_name": pa.string(),
    "metric_description": pa.string(),
    "metric_unit": pa.string(),
    "metric_type": pa.string(),
    "aggregation_temporality": pa.string(),
    "is_monotonic": pa.bool_(),
    "flags": pa.int64(),
    "scope_name": pa.string(),
    "scope_version": pa.string(),
    "scope_schema_url": pa.string(),
    "resource_schema_url": pa.string(),
    "attributes": pa.string(),
    "exemplars": pa.string(),
    "value": pa.float64(),
    "value_double": pa.float64(),
    "value_int": pa.int64(),
    "distribution_count": pa.int64(),
    "distribution_sum": pa.float64(),
    "distribution_min": pa.float64(),
    "distribution_max": pa.float64(),
    "hist_bucket_counts": pa.list_(pa.int64()),
    "hist_explicit_bounds": pa.list_(pa.float64()),
    "exp_hist_scale": pa.int32(),
    "exp_hist_zero_count": pa.int64(),
    "exp_hist_zero_threshold": pa.float64(),
    "exp_hist_pos_offset": pa.int32(),
    "exp_hist_pos_buckets": pa.list_(pa.int64()),
    "exp_hist_neg_offset": pa.int32(),
    "exp_hist_neg_buckets": pa.list_(pa.int64()),
    "summary_quantiles": pa.list_(pa.float64()),
    "summary_values": pa.list_(pa.float64()),
    "message_size_bytes": pa.int64(),
}


def _now_ns() -> int:
    return time.time_ns()


__all__ = ["Decoded", "Decoder", "OtlpDecodeError", "parse_json", "parse_protobuf"]
