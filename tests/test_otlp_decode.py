"""OTLP decoding and the receivers' error paths, in process.

The mapping rules (flattened column names, nested JSON, ids, rejections) are checked on the decoder;
the retryable answers (503 during WAL replay, 429 / RESOURCE_EXHAUSTED with Retry-After / RetryInfo
when the buffer is full) on the real HTTP and gRPC servers with a stand-in database, since a full
buffer cannot be produced on demand in the real one.
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import json
import random

import grpc
import orjson
import pyarrow as pa
import pytest
import requests
from google.rpc import error_details_pb2, status_pb2
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue, KeyValueList

from timefusion.protocol.otlp.decode import Decoder, OtlpDecodeError, parse_json, parse_protobuf
from timefusion.protocol.otlp.fastproto import AttributeCache, short_key_value
from timefusion.protocol.otlp.grpc import OtlpGrpcServer
from timefusion.protocol.otlp.http import OtlpHttpServer, gunzip
from timefusion.protocol.otlp.mapping import (
    any_value,
    column_key,
    compile_template,
    flat_columns,
    nest,
    severity_text,
)
from timefusion.protocol.otlp.receiver import ExportError, Receiver
from timefusion.protocol.otlp.workers import DecodePool, decode_body
from timefusion.schema import load_tables
from timefusion.write.coerce import IngestError, coerce
from timefusion.write.ingest import ServerBusyError

SCHEMAS = dict(load_tables())
T0 = 1_764_000_000_000_000_000


def kv(key: str, **value: object) -> KeyValue:
    return KeyValue(key=key, value=AnyValue(**value))


def decode(kind: str, request: object, project: str | None = None):
    out = Decoder(SCHEMAS).decode(kind, parse_protobuf(kind, request.SerializeToString()), project)
    if out.rows:  # whatever the decoder produces, the one ingest path must accept unchanged
        coerce(SCHEMAS[out.table], out.batch())
    return out


def col(out, name: str) -> list:
    return out.columns[name].to_pylist()


# -- mapping ---------------------------------------------------------------------------------------


def test_flattened_column_names_map_back_to_attribute_keys():
    assert (
        column_key("attributes___http___response___status_code", "attributes") == "http.response.status_code"
    )
    assert column_key("attributes___network___local__address", "attributes") == "network.local.address"
    assert column_key("attributes___log__record___uid", "attributes") == "log.record.uid"
    assert column_key("attributes___user_agent___original", "attributes") == "user_agent.original"
    for table in SCHEMAS.values():
        for prefix in ("attributes", "resource"):
            known = flat_columns(table, prefix)
            flattened = [c.name for c in table.columns if c.name.startswith(prefix + "___")]
            assert sorted(name for name, _check, _typ in known.values()) == sorted(flattened)


def test_nest_keeps_every_value():
    assert nest([("http.method", "GET"), ("http.route", "/x"), ("a", 1)]) == {
        "http": {"method": "GET", "route": "/x"},
        "a": 1,
    }
    assert nest([("a", 1), ("a.b", 2)]) == {"a": {"": 1, "b": 2}}
    assert nest([("a.b", 2), ("a", 1)]) == {"a": {"b": 2, "": 1}}


@pytest.mark.parametrize(
    "keys",
    [
        ("http.method", "http.route", "a"),
        ("a.x", "b", "a.y", "a.z.q", "c"),  # regrouping changes the fill order
        ("a", "a.b"),  # a prefix of another key: no template, nest() decides
        ("k", "k"),
        ("100%", "x.%s", 'q"uote'),
    ],
)
def test_templates_spell_the_same_json_as_nest(keys):
    values = list(range(len(keys)))
    expected = orjson.dumps(nest(list(zip(keys, values)))).decode()
    tpl = compile_template(keys)
    if tpl is None:
        assert len(set(keys)) < len(keys) or any(a != b and b.startswith(a + ".") for a in keys for b in keys)
        return
    texts = tuple(orjson.dumps(v).decode() for v in values)
    assert tpl[0] % (texts if tpl[1] is None else tpl[1](texts)) == expected


def test_any_value_types():
    assert any_value(AnyValue(bytes_value=b"\x00\xff")) == base64.b64encode(b"\x00\xff").decode()
    assert any_value(AnyValue()) is None
    arr = AnyValue(array_value=ArrayValue(values=[AnyValue(int_value=1), AnyValue(string_value="x")]))
    assert any_value(arr) == [1, "x"]
    kvl = AnyValue(kvlist_value=KeyValueList(values=[kv("k.x", bool_value=True)]))
    assert any_value(kvl) == {"k.x": True}
    assert [severity_text(n) for n in (0, 1, 5, 9, 13, 17, 21, 24)] == [
        None,
        "TRACE",
        "DEBUG",
        "INFO",
        "WARN",
        "ERROR",
        "FATAL",
        "FATAL",
    ]


def test_attribute_cache_caches_scalars_only_and_stays_bounded():
    cache = AttributeCache(flat_columns(SCHEMAS["otel_logs_and_spans"], "attributes"), limit=2)
    status = kv("http.response.status_code", int_value=200).SerializeToString()
    key, value, column, text = cache.decode(status)
    assert (key, value, text) == ("http.response.status_code", 200, "200")
    assert cache.columns[column] == ("attributes___http___response___status_code", pa.int32())
    assert status in cache.entries
    mismatch = kv("http.response.status_code", string_value="200").SerializeToString()
    assert cache.decode(mismatch)[2:] == (-1, '"200"')  # wrong type: JSON only
    listed = kv("x", array_value=ArrayValue(values=[AnyValue(int_value=1)])).SerializeToString()
    assert cache.decode(listed)[1] == [1] and listed not in cache.entries
    for i in range(5):
        cache.decode(kv(f"k{i}", int_value=i).SerializeToString())
    assert len(cache.entries) <= 2


# -- traces ----------------------------------------------------------------------------------------


def test_spans_rejections_ids_flags_and_links():
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    rs.resource.attributes.append(kv("service.name", string_value="svc"))
    spans = rs.scope_spans.add().spans
    good = spans.add(
        trace_id=bytes.fromhex("0af7651916cd43dd8448eb211c80319c"),
        span_id=bytes.fromhex("b7ad6b7169203331"),
        start_time_unix_nano=T0,
        name="ok",
        flags=0x301,  # sampled, has is_remote, is remote
        trace_state="k=v",
    )
    good.links.add(trace_id=b"\x01" * 16, span_id=b"\x02" * 8, attributes=[kv("l.a", int_value=1)])
    spans.add(trace_id=b"\x00" * 16, span_id=b"\x01" * 8, start_time_unix_nano=T0, name="zero trace")
    spans.add(trace_id=b"\x01" * 16, span_id=b"\x01" * 7, start_time_unix_nano=T0, name="short span id")
    spans.add(trace_id=b"\x01" * 16, span_id=b"\x01" * 8, name="no start")
    out = decode("traces", req)
    assert (out.rows, out.rejected) == (1, 3)
    assert "zero trace" in out.error_message and "no start" in out.error_message
    assert col(out, "context___trace_id") == ["0af7651916cd43dd8448eb211c80319c"]
    assert col(out, "id") == ["b7ad6b71-6920-3331-8448-eb211c80319c"]  # deterministic: retries dedup
    assert col(out, "context___trace_flags") == ["01"]
    assert col(out, "context___is_remote") == [True]
    assert col(out, "context___trace_state") == ["k=v"]
    assert col(out, "duration") == [None] and col(out, "end_time") == [None]
    assert json.loads(col(out, "links")[0]) == [
        {"trace_id": "01" * 16, "span_id": "02" * 8, "attributes": {"l": {"a": 1}}}
    ]
    assert col(out, "project_id") == ["default"]


def test_many_resources_spread_their_columns_to_their_own_rows():
    req = ExportTraceServiceRequest()
    for i in range(3):
        rs = req.resource_spans.add()
        if i != 1:
            rs.resource.attributes.append(kv("service.name", string_value=f"svc{i}"))
        rs.resource.attributes.append(kv("timefusion.project_id", string_value=f"p{i}"))
        for j in range(i + 1):
            rs.scope_spans.add().spans.add(
                trace_id=bytes([i + 1]) * 16, span_id=bytes([j + 1]) * 8, start_time_unix_nano=T0 + j
            )
    out = decode("traces", req)
    assert col(out, "resource___service___name") == ["svc0", None, None, "svc2", "svc2", "svc2"]
    assert col(out, "project_id") == ["p0", "p1", "p1", "p2", "p2", "p2"]
    assert col(decode("traces", req, project="hdr"), "project_id") == ["hdr"] * 6


# -- logs ------------------------------------------------------------------------------------------


def test_logs_times_severity_and_bodies():
    req = ExportLogsServiceRequest()
    records = req.resource_logs.add().scope_logs.add().log_records
    records.add(observed_time_unix_nano=T0 + 5_000, severity_number=17, body=AnyValue(string_value="boom"))
    records.add(time_unix_nano=T0, severity_text="Warning", body=AnyValue(int_value=3), event_name="app.evt")
    records.add(time_unix_nano=T0, body=AnyValue(array_value=ArrayValue(values=[AnyValue(bool_value=False)])))
    out = decode("logs", req)
    assert out.rows == 3 and out.rejected == 0
    ts = col(out, "timestamp")
    assert ts[0].isoformat() == "2025-11-24T16:00:00.000005+00:00"  # time unset: the observed time
    assert col(out, "level") == ["ERROR", "Warning", None]
    assert col(out, "severity___severity_number") == [17, None, None]
    assert col(out, "body") == ['"boom"', "3", "[false]"]
    assert col(out, "name") == [None, "app.evt", None]
    assert "duration" not in out.columns  # logs have no duration (NULL): that tells them from spans


# -- metrics ---------------------------------------------------------------------------------------


def test_metric_series_ignore_attribute_order_and_ids_are_deterministic():
    def request(attrs: list[KeyValue]) -> ExportMetricsServiceRequest:
        req = ExportMetricsServiceRequest()
        m = req.resource_metrics.add().scope_metrics.add().metrics.add(name="m", unit="s")
        m.gauge.data_points.add(time_unix_nano=T0, as_double=1.5, attributes=attrs)
        m.gauge.data_points.add(as_int=1)  # no time: rejected
        return req

    a = decode("metrics", request([kv("x", int_value=1), kv("y", int_value=2)]))
    b = decode("metrics", request([kv("y", int_value=2), kv("x", int_value=1)]))
    assert (a.rows, a.rejected) == (1, 1)
    assert col(a, "series_id") == col(b, "series_id")
    assert col(a, "id") == col(b, "id")
    assert col(a, "value") == [1.5] and col(a, "value_double") == [1.5] and "value_int" not in a.columns


# -- OTLP/JSON -------------------------------------------------------------------------------------


def test_json_hex_ids_and_errors():
    body = {
        "resourceSpans": [
            {
                "scopeSpans": [
                    {
                        "spans": [
                            {
                                "traceId": "0AF7651916CD43DD8448EB211C80319C",
                                "spanId": "b7ad6b7169203331",
                                "startTimeUnixNano": str(T0),
                                "unknownField": 1,
                            }
                        ]
                    }
                ]
            }
        ]
    }
    msg = parse_json("traces", json.dumps(body).encode())
    out = Decoder(SCHEMAS).traces(msg)
    assert col(out, "context___trace_id") == ["0af7651916cd43dd8448eb211c80319c"]
    with pytest.raises(OtlpDecodeError, match="not hexadecimal"):
        parse_json("traces", b'{"resourceSpans":[{"scopeSpans":[{"spans":[{"spanId":"xyz"}]}]}]}')
    with pytest.raises(OtlpDecodeError, match="JSON object"):
        parse_json("logs", b"[]")
    with pytest.raises(OtlpDecodeError, match="not a valid OTLP/JSON"):
        parse_json("logs", b'{"resourceLogs": 5}')


def test_gunzip_limits():
    assert gunzip(gzip.compress(b"abc")) == b"abc"
    with pytest.raises(ExportError) as err:
        gunzip(gzip.compress(b"\0" * 10_000), limit=1000)
    assert err.value.http_status == 413
    with pytest.raises(ExportError) as err:
        gunzip(gzip.compress(b"abc" * 1000)[:20])
    assert err.value.http_status == 400


# -- retryable answers over the real transports ----------------------------------------------------


class FakeDb:
    """Stands in for TimeFusion: `ingest` raises what the test asks for."""

    ready = True

    def __init__(self, error: Exception | None) -> None:
        self.error = error
        self.ingested: list[tuple[str, pa.RecordBatch]] = []

    def ingest(self, table: str, batch: pa.RecordBatch) -> int:
        if self.error is not None:
            raise self.error
        self.ingested.append((table, batch))
        return batch.num_rows


def _span_body() -> bytes:
    req = ExportTraceServiceRequest()
    req.resource_spans.add().scope_spans.add().spans.add(
        trace_id=b"\x01" * 16, span_id=b"\x02" * 8, start_time_unix_nano=T0, name="s"
    )
    return req.SerializeToString()


def test_retryable_answers_over_http_and_grpc():
    receiver = Receiver(SCHEMAS, "tok", "x-project-id", "timefusion.project_id", "default")
    results: dict[str, object] = {}

    def client(http_port: int, grpc_port: int) -> None:
        url = f"http://127.0.0.1:{http_port}/v1/traces"
        headers = {"content-type": "application/x-protobuf", "authorization": "Bearer tok"}
        stub = trace_service_pb2_grpc.TraceServiceStub(grpc.insecure_channel(f"127.0.0.1:{grpc_port}"))
        request = ExportTraceServiceRequest.FromString(_span_body())
        md = (("authorization", "Bearer tok"),)
        for state, db in (
            ("replaying", None),
            ("busy", FakeDb(ServerBusyError("server busy: buffer full"))),
            ("bad", FakeDb(IngestError("invalid value", "22P02"))),
            ("ok", FakeDb(None)),
        ):
            receiver.db = db  # type: ignore[assignment]
            resp = requests.post(url, data=_span_body(), headers=headers, timeout=30)
            try:
                stub.Export(request, metadata=md, timeout=30)
                code, details = grpc.StatusCode.OK, None
            except grpc.RpcError as e:
                code = e.code()
                details = dict(e.trailing_metadata() or ()).get("grpc-status-details-bin")
            results[state] = (resp.status_code, resp.headers.get("Retry-After"), code, details)
            if state == "ok":
                results["ingested"] = [t for t, _ in db.ingested]  # type: ignore[union-attr]

    async def main() -> None:
        http = OtlpHttpServer(receiver, "127.0.0.1", 0)
        grpc_server = OtlpGrpcServer(receiver, "127.0.0.1", 0)
        await http.start()
        await grpc_server.start()
        try:
            await asyncio.to_thread(client, http.port, grpc_server.port)
        finally:
            await grpc_server.stop(0)
            await http.stop(0)

    asyncio.run(main())
    assert results["replaying"][:3] == (503, "1", grpc.StatusCode.UNAVAILABLE)
    status, retry_after, code, details = results["busy"]
    assert (status, retry_after, code) == (429, "1", grpc.StatusCode.RESOURCE_EXHAUSTED)
    info = error_details_pb2.RetryInfo()
    assert status_pb2.Status.FromString(details).details[0].Unpack(info)
    assert info.retry_delay.seconds == 1
    assert results["bad"][:3] == (400, None, grpc.StatusCode.INVALID_ARGUMENT)
    assert results["ok"][:3] == (200, None, grpc.StatusCode.OK)
    assert results["ingested"] == ["otel_logs_and_spans", "otel_logs_and_spans"]


def test_short_key_value_agrees_with_protobuf_even_on_corrupt_bytes():
    rnd = random.Random(7)
    taken = 0
    for _ in range(5000):
        key = rnd.choice(["a", "http.route", "x" * 127, "x" * 128, "é.ü", ""])
        value = rnd.choice(
            [
                AnyValue(string_value=rnd.choice(["", "abc", "y" * 126, "z" * 200, "ö" * 40])),
                AnyValue(int_value=rnd.choice([0, 1, 127, 128, 2**40, 2**56 - 1, 2**56, 2**63 - 1, -1])),
                AnyValue(bool_value=rnd.random() < 0.5),
                AnyValue(double_value=rnd.random()),
                AnyValue(array_value=ArrayValue(values=[AnyValue(int_value=1)])),
                AnyValue(),
            ]
        )
        raw = KeyValue(key=key, value=value).SerializeToString()
        for data in (raw, *(_flip(raw, rnd) for _ in range(3))):
            got = short_key_value(data)
            if got is None:
                continue
            taken += 1
            parsed = KeyValue.FromString(data)  # must not raise: the fast path accepted it
            assert got == (parsed.key, any_value(parsed.value))
    assert taken > 2000  # the common shapes do take the fast path


def _flip(raw: bytes, rnd: random.Random) -> bytes:
    b = bytearray(raw)
    b[rnd.randrange(len(b))] = rnd.randrange(256)
    return bytes(b)


def test_repeated_or_mistyped_resource_keys_keep_columns_aligned():
    req = ExportTraceServiceRequest()
    for i, attrs in enumerate(
        [
            [kv("service.name", string_value="a"), kv("service.name", string_value="b")],
            [kv("service.name", int_value=3), kv("service.version", string_value="v")],
            [],
        ]
    ):
        rs = req.resource_spans.add()
        rs.resource.attributes.extend(attrs)
        rs.scope_spans.add().spans.add(
            trace_id=b"\x01" * 16, span_id=bytes([i + 1]) * 8, start_time_unix_nano=T0
        )
    out = decode("traces", req)
    assert col(out, "resource___service___name") == ["b", None, None]
    assert col(out, "resource___service___version") == [None, "v", None]
    assert json.loads(col(out, "resource")[1]) == {"service": {"name": 3, "version": "v"}}


def test_decode_pool_matches_in_process_decoding_and_reports_bad_bodies():
    pool = DecodePool(1, "timefusion.project_id", "default")
    try:
        body = _span_body()
        remote = pool.decode("traces", body, False, "p1")
        local = decode_body(Decoder(SCHEMAS), "traces", body, False, "p1")
        assert remote.record_batch.equals(local.record_batch)
        assert (remote.rows, remote.rejected) == (1, 0)
        with pytest.raises(OtlpDecodeError, match="not valid JSON"):
            pool.decode("logs", b"{", True, None)
    finally:
        pool.close()


def _init_then_wait(server_pid: int) -> None:
    import time

    from timefusion.protocol.otlp.workers import _init

    _init(server_pid, "timefusion.project_id", "default")
    time.sleep(120)  # a pool worker would now block on its task queue


def test_a_worker_orphaned_before_its_initializer_ran_exits() -> None:
    """A decoding process still importing when the server is killed is already orphaned when its
    initializer runs; it is given the server's pid, sees a different parent and ends at once."""
    import multiprocessing
    import os

    ctx = multiprocessing.get_context("spawn")
    server_pid = os.getppid()  # not the worker's parent (that is this process): as if orphaned
    proc = ctx.Process(target=_init_then_wait, args=(server_pid,))
    proc.start()
    proc.join(timeout=60)
    if proc.exitcode is None:
        proc.kill()
    assert proc.exitcode == 0
