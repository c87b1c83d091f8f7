"""OTLP receivers end to end: real OpenTelemetry SDK exporters (HTTP protobuf, gRPC) and OTLP/JSON
bodies sent to the real `timefusion serve`, then SQL over pgwire (psycopg) finds the rows.

Each test tags its data with its own tenant (`x-project-id`) or service name, so the tests share one
server and never see each other's rows.
"""

from __future__ import annotations

import gzip
import json
import logging
import os
import secrets
import signal
import time
from pathlib import Path

import grpc
import pytest
import requests
from google.rpc import status_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from pgwire_server import TimeFusionServer, free_port

TOKEN = "otlp-" + secrets.token_hex(8)
AUTH = {"authorization": f"Bearer {TOKEN}"}
T0 = 1_764_000_000_000_000_000  # 2025-11-24T16:00:00Z in Unix nanoseconds


@pytest.fixture(scope="module")
def otlp_server():
    srv = TimeFusionServer(
        env={
            "TIMEFUSION_OTLP_ENABLED": "true",
            "TIMEFUSION_OTLP_HOST": "127.0.0.1",
            "TIMEFUSION_OTLP_HTTP_PORT": str(free_port()),
            "TIMEFUSION_OTLP_GRPC_PORT": str(free_port()),
            "GRPC_TOKEN": TOKEN,
        }
    )
    srv.start()
    try:
        yield srv
        rc, log = srv.stop()  # SIGTERM: the receivers and their decoding processes stop cleanly
        assert rc == 0, log
        assert "OTLP receivers stopped" in log
    finally:
        srv.close()


def http_url(srv: TimeFusionServer, kind: str) -> str:
    return f"http://127.0.0.1:{srv.extra_env['TIMEFUSION_OTLP_HTTP_PORT']}/v1/{kind}"


def grpc_target(srv: TimeFusionServer) -> str:
    return f"127.0.0.1:{srv.extra_env['TIMEFUSION_OTLP_GRPC_PORT']}"


def query(srv: TimeFusionServer, sql: str, *params: object) -> list[tuple]:
    with srv.connect() as conn:
        return conn.execute(sql, params or None).fetchall()


def kv(key: str, **value: object) -> KeyValue:
    return KeyValue(key=key, value=AnyValue(**value))


def span_request(
    project_attr: str | None = None, **span: object
) -> trace_service_pb2.ExportTraceServiceRequest:
    req = trace_service_pb2.ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    rs.resource.attributes.append(kv("service.name", string_value="raw-client"))
    if project_attr:
        rs.resource.attributes.append(kv("timefusion.project_id", string_value=project_attr))
    rs.scope_spans.add().spans.add(**span)
    return req


# -- real SDK exporters ----------------------------------------------------------------------------


def test_sdk_http_protobuf_spans(otlp_server):
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    provider = TracerProvider(
        resource=Resource.create(
            {"service.name": "checkout", "service.version": "2.1.0", "host.name": "web-1"}
        )
    )
    exporter = OTLPSpanExporter(
        endpoint=http_url(otlp_server, "traces"), headers={**AUTH, "x-project-id": "p_http"}
    )
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("tests.otlp")
    start = T0 + 5_000_000_000
    root = tracer.start_span(
        "GET /api/users/{id}",
        kind=trace.SpanKind.SERVER,
        start_time=start,
        attributes={
            "http.request.method": "GET",
            "http.response.status_code": 503,
            "url.path": "/api/users/7",
            "server.port": 8443,
            "app.tier": "gold",
            "app.retries": [1, 2],
        },
    )
    root.add_event(
        "exception", {"exception.type": "TimeoutError", "exception.message": "db slow"}, start + 10
    )
    root.set_status(trace.Status(trace.StatusCode.ERROR, "upstream timed out"))
    ctx = trace.set_span_in_context(root)
    child = tracer.start_span(
        "SELECT users", context=ctx, kind=trace.SpanKind.CLIENT, start_time=start + 1000
    )
    child.set_attribute("db.system.name", "postgresql")
    child.end(end_time=start + 2_500_000)
    root.end(end_time=start + 123_456_789)
    provider.shutdown()

    r, c = root.get_span_context(), child.get_span_context()
    rows = query(
        otlp_server,
        "SELECT name, kind, context___trace_id, context___span_id, parent_id, timestamp, start_time, end_time, "
        "duration, status_code, status_message, attributes___http___request___method, "
        "attributes___http___response___status_code, attributes___url___path, attributes___server___port, "
        "resource___service___name, resource___service___version, attributes, resource, events, errors, "
        "context, id FROM otel_logs_and_spans WHERE project_id = 'p_http' ORDER BY start_time",
    )
    assert len(rows) == 2
    root_row, child_row = rows
    assert root_row[0:5] == ("GET /api/users/{id}", "SERVER", f"{r.trace_id:032x}", f"{r.span_id:016x}", None)
    assert root_row[5] == root_row[6]
    assert root_row[5].isoformat() == "2025-11-24T16:00:05+00:00"
    assert root_row[8] == 123_456_789  # nanoseconds, exact
    assert (root_row[7] - root_row[6]).total_seconds() == pytest.approx(0.123456, abs=1e-6)
    assert root_row[9:11] == ("ERROR", "upstream timed out")
    assert root_row[11:15] == ("GET", 503, "/api/users/7", 8443)
    assert root_row[15:17] == ("checkout", "2.1.0")
    attributes = root_row[17]
    assert attributes["app"] == {"tier": "gold", "retries": [1, 2]}
    assert attributes["http"]["response"]["status_code"] == 503
    assert root_row[18]["host"] == {"name": "web-1"}
    assert root_row[19] == [
        {
            "name": "exception",
            "time_unix_nano": start + 10,
            "attributes": {"exception": {"type": "TimeoutError", "message": "db slow"}},
        }
    ]
    assert root_row[20] == [{"type": "TimeoutError", "message": "db slow"}]
    # the Python SDK sends only the is_remote bits of the span flags (parent not remote)
    assert root_row[21] == {
        "trace_id": f"{r.trace_id:032x}",
        "span_id": f"{r.span_id:016x}",
        "trace_state": "",
        "trace_flags": "00",
        "is_remote": False,
    }
    assert len(root_row[22]) == 36 and root_row[22].count("-") == 4  # UUID-shaped row id

    assert child_row[1:5] == ("CLIENT", f"{c.trace_id:032x}", f"{c.span_id:016x}", f"{r.span_id:016x}")
    assert child_row[8] == 2_499_000
    assert child_row[9] == "UNSET"
    assert child_row[17] == {"db": {"system": {"name": "postgresql"}}}
    (db_system,) = query(
        otlp_server,
        "SELECT attributes___db___system___name FROM otel_logs_and_spans WHERE context___span_id = %s",
        f"{c.span_id:016x}",
    )[0]
    assert db_system == "postgresql"


@pytest.mark.filterwarnings("ignore:`LoggingHandler` in `opentelemetry-sdk` is deprecated")
def test_sdk_grpc_spans_and_logs(otlp_server):
    from grpc import Compression
    from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
    from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    resource = Resource.create({"service.name": "billing", "timefusion.project_id": "p_grpc"})
    headers = tuple(AUTH.items())
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(
        SimpleSpanProcessor(
            OTLPSpanExporter(
                endpoint=grpc_target(otlp_server),
                insecure=True,
                headers=headers,
                compression=Compression.Gzip,
            )
        )
    )
    logger_provider = LoggerProvider(resource=resource)
    logger_provider.add_log_record_processor(
        SimpleLogRecordProcessor(
            OTLPLogExporter(endpoint=grpc_target(otlp_server), insecure=True, headers=headers)
        )
    )
    logger = logging.getLogger("tests.otlp.grpc")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    handler = LoggingHandler(level=logging.DEBUG, logger_provider=logger_provider)
    logger.addHandler(handler)
    try:
        tracer = tracer_provider.get_tracer("tests.otlp")
        with tracer.start_as_current_span("charge card", attributes={"user.id": "u-42"}) as span:
            logger.warning("card declined for %s", "u-42", extra={"payment.amount": 12.5})
            logger.error("second failure")
        sc = span.get_span_context()
    finally:
        logger.removeHandler(handler)
        tracer_provider.shutdown()
        logger_provider.shutdown()

    spans = query(
        otlp_server,
        "SELECT name, attributes___user___id, resource___service___name, context___trace_id FROM "
        "otel_logs_and_spans WHERE project_id = 'p_grpc' AND duration IS NOT NULL",
    )
    assert spans == [("charge card", "u-42", "billing", f"{sc.trace_id:032x}")]
    logs = query(
        otlp_server,
        "SELECT body, level, severity___severity_text, severity___severity_number, severity, "
        "context___trace_id, context___span_id, attributes, observed_timestamp IS NOT NULL "
        "FROM otel_logs_and_spans WHERE project_id = 'p_grpc' AND duration IS NULL ORDER BY severity___severity_number",
    )
    assert len(logs) == 2
    body, level, text, number, severity, trace_id, span_id, attrs, observed = logs[0]
    assert body == "card declined for u-42"
    assert (level, text, number) == ("WARN", "WARN", 13)
    assert severity == {"severity_text": "WARN", "severity_number": 13}
    assert (trace_id, span_id) == (f"{sc.trace_id:032x}", f"{sc.span_id:016x}")
    assert attrs["payment"] == {"amount": 12.5}
    assert observed is True
    assert logs[1][0:4] == ("second failure", "ERROR", "ERROR", 17)


def test_sdk_http_metrics(otlp_server):
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.resources import Resource

    exporter = OTLPMetricExporter(
        endpoint=http_url(otlp_server, "metrics"), headers={**AUTH, "x-project-id": "p_metrics"}
    )
    reader = PeriodicExportingMetricReader(exporter, export_interval_millis=3_600_000)
    provider = MeterProvider(metric_readers=[reader], resource=Resource.create({"service.name": "api"}))
    meter = provider.get_meter("tests.otlp")
    requests_total = meter.create_counter("http.server.requests", unit="1", description="requests served")
    requests_total.add(3, {"http.request.method": "GET", "http.response.status_code": 200})
    requests_total.add(2, {"http.request.method": "GET", "http.response.status_code": 200})
    requests_total.add(1, {"http.request.method": "POST", "http.response.status_code": 500})
    latency = meter.create_histogram("http.server.duration", unit="ms")
    for v in (5.0, 20.0, 300.0):
        latency.record(v, {"http.route": "/a"})
    temperature = meter.create_gauge("room.temperature", unit="Cel")
    temperature.set(21.5)
    provider.shutdown()  # exports once

    sums = query(
        otlp_server,
        "SELECT metric_type, value, value_int, is_monotonic, aggregation_temporality, metric_unit, "
        "metric_description, attributes___http___request___method, attributes___http___response___status_code, "
        "resource___service___name, series_id, scope_name FROM otel_metrics WHERE project_id = 'p_metrics' "
        "AND metric_name = 'http.server.requests' ORDER BY value",
    )
    assert [r[:10] for r in sums] == [
        ("sum", 1.0, 1, True, "CUMULATIVE", "1", "requests served", "POST", 500, "api"),
        ("sum", 5.0, 5, True, "CUMULATIVE", "1", "requests served", "GET", 200, "api"),
    ]
    assert sums[0][10] != sums[1][10]  # different attributes: different series
    assert sums[0][11] == "tests.otlp"
    (hist,) = query(
        otlp_server,
        "SELECT metric_type, distribution_count, distribution_sum, distribution_min, distribution_max, "
        "hist_explicit_bounds, hist_bucket_counts, attributes___http___route, start_timestamp <= timestamp "
        "FROM otel_metrics WHERE project_id = 'p_metrics' AND metric_name = 'http.server.duration'",
    )
    assert hist[:5] == ("histogram", 3, 325.0, 5.0, 300.0)
    assert len(hist[6]) == len(hist[5]) + 1 and sum(hist[6]) == 3
    assert hist[7] == "/a" and hist[8] is True
    (gauge,) = query(
        otlp_server,
        "SELECT metric_type, value, value_double, value_int, metric_unit FROM otel_metrics "
        "WHERE project_id = 'p_metrics' AND metric_name = 'room.temperature'",
    )
    assert gauge == ("gauge", 21.5, 21.5, None, "Cel")


# -- OTLP/JSON (the Python SDK has no JSON exporter: bodies written per the OTLP/JSON spec) ---------


def test_json_traces_logs_and_metrics(otlp_server):
    headers = {**AUTH, "x-project-id": "p_json", "content-type": "application/json"}
    trace_id, span_id, parent = "5b8efff798038103d269b633813fc60c", "eee19b7ec3c1b174", "eee19b7ec3c1b173"
    traces = {
        "resourceSpans": [
            {
                "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "json-svc"}}]},
                "scopeSpans": [
                    {
                        "scope": {"name": "manual"},
                        "spans": [
                            {
                                "traceId": trace_id.upper(),
                                "spanId": span_id,
                                "parentSpanId": parent,
                                "name": "I'm a server span",
                                "kind": 2,
                                "startTimeUnixNano": str(T0),
                                "endTimeUnixNano": str(T0 + 1_000_000_001),
                                "attributes": [
                                    {"key": "http.response.status_code", "value": {"intValue": "404"}},
                                    {"key": "flag", "value": {"boolValue": True}},
                                    {"key": "ratio", "value": {"doubleValue": 0.25}},
                                ],
                                "links": [{"traceId": trace_id, "spanId": parent}],
                                "status": {"code": 2, "message": "not found"},
                                "someFutureField": {"ignored": True},
                            }
                        ],
                    }
                ],
            }
        ]
    }
    resp = requests.post(
        http_url(otlp_server, "traces"), data=json.dumps(traces), headers=headers, timeout=30
    )
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith("application/json")
    assert resp.json() == {}
    row = query(
        otlp_server,
        "SELECT context___trace_id, context___span_id, parent_id, duration, attributes___http___response___status_code, "
        "attributes, links, status_code, kind FROM otel_logs_and_spans WHERE project_id = 'p_json' AND name = %s",
        "I'm a server span",
    )[0]
    assert row[0:5] == (trace_id, span_id, parent, 1_000_000_001, 404)
    assert row[5] == {"http": {"response": {"status_code": 404}}, "flag": True, "ratio": 0.25}
    assert json.loads(row[6]) == [{"trace_id": trace_id, "span_id": parent}]
    assert row[7:9] == ("ERROR", "SERVER")

    logs = {
        "resourceLogs": [
            {
                "resource": {},
                "scopeLogs": [
                    {
                        "logRecords": [
                            {
                                "timeUnixNano": str(T0 + 7),
                                "severityNumber": 9,
                                "body": {
                                    "kvlistValue": {
                                        "values": [{"key": "msg", "value": {"stringValue": "hi"}}]
                                    }
                                },
                                "traceId": trace_id,
                                "spanId": span_id,
                                "attributes": [{"key": "log.record.uid", "value": {"stringValue": "uid-1"}}],
                            }
                        ]
                    }
                ],
            }
        ]
    }
    resp = requests.post(
        http_url(otlp_server, "logs"),
        data=gzip.compress(json.dumps(logs).encode()),
        headers={**headers, "content-encoding": "gzip"},
        timeout=30,
    )
    assert resp.status_code == 200, resp.text
    row = query(
        otlp_server,
        "SELECT body, level, severity___severity_number, context___span_id, attributes___log__record___uid "
        "FROM otel_logs_and_spans WHERE project_id = 'p_json' AND duration IS NULL",
    )[0]
    assert row == ({"msg": "hi"}, "INFO", 9, span_id, "uid-1")

    point = {
        "timeUnixNano": str(T0 + 60_000_000_000),
        "attributes": [{"key": "q", "value": {"stringValue": "x"}}],
    }
    metrics = {
        "resourceMetrics": [
            {
                "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "json-svc"}}]},
                "scopeMetrics": [
                    {
                        "metrics": [
                            {
                                "name": "rpc.latency",
                                "summary": {
                                    "dataPoints": [
                                        {
                                            **point,
                                            "count": "4",
                                            "sum": 10.0,
                                            "quantileValues": [
                                                {"quantile": 0.5, "value": 2.0},
                                                {"quantile": 0.99, "value": 4.0},
                                            ],
                                        }
                                    ]
                                },
                            },
                            {
                                "name": "payload.size",
                                "exponentialHistogram": {
                                    "aggregationTemporality": 1,
                                    "dataPoints": [
                                        {
                                            **point,
                                            "count": "3",
                                            "sum": 7.0,
                                            "scale": 2,
                                            "zeroCount": "1",
                                            "positive": {"offset": 3, "bucketCounts": ["1", "1"]},
                                            "exemplars": [
                                                {
                                                    "timeUnixNano": str(T0),
                                                    "asDouble": 3.5,
                                                    "traceId": trace_id,
                                                    "spanId": span_id,
                                                }
                                            ],
                                        }
                                    ],
                                },
                            },
                            {"name": "empty.metric"},
                        ]
                    }
                ],
            }
        ]
    }
    resp = requests.post(
        http_url(otlp_server, "metrics"), data=json.dumps(metrics), headers=headers, timeout=30
    )
    assert resp.status_code == 200, resp.text
    partial = resp.json()["partialSuccess"]
    assert partial["rejectedDataPoints"] == "1" and "empty.metric" in partial["errorMessage"]
    rows = query(
        otlp_server,
        "SELECT metric_name, metric_type, distribution_count, distribution_sum, summary_quantiles, summary_values, "
        "exp_hist_scale, exp_hist_zero_count, exp_hist_pos_offset, exp_hist_pos_buckets, aggregation_temporality, "
        "exemplars FROM otel_metrics WHERE project_id = 'p_json' ORDER BY metric_name",
    )
    assert rows[0][:11] == (
        "payload.size",
        "exponential_histogram",
        3,
        7.0,
        None,
        None,
        2,
        1,
        3,
        [1, 1],
        "DELTA",
    )
    assert rows[0][11] == [{"time_unix_nano": T0, "value": 3.5, "trace_id": trace_id, "span_id": span_id}]
    assert rows[1][:6] == ("rpc.latency", "summary", 4, 10.0, [0.5, 0.99], [2.0, 4.0])


# -- errors, auth, partial success, tenants, type mismatches ---------------------------------------


def test_bad_bodies_get_4xx_with_status(otlp_server):
    url = http_url(otlp_server, "traces")
    proto = {**AUTH, "content-type": "application/x-protobuf"}
    resp = requests.post(url, data=b"\xff\xff\xff not protobuf", headers=proto, timeout=30)
    assert resp.status_code == 400
    status = status_pb2.Status.FromString(resp.content)
    assert status.code == 3 and "not a valid OTLP" in status.message

    resp = requests.post(
        url, data=b"{not json", headers={**AUTH, "content-type": "application/json"}, timeout=30
    )
    assert resp.status_code == 400 and "not valid JSON" in resp.json()["message"]

    bad_hex = {"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "zz", "spanId": "00"}]}]}]}
    resp = requests.post(url, json=bad_hex, headers=AUTH, timeout=30)
    assert resp.status_code == 400 and "not hexadecimal" in resp.json()["message"]

    resp = requests.post(url, data=b"x", headers={**AUTH, "content-type": "text/plain"}, timeout=30)
    assert resp.status_code == 415 and "application/x-protobuf" in resp.json()["message"]

    resp = requests.post(url, data=b"not gzip", headers={**proto, "content-encoding": "gzip"}, timeout=30)
    assert resp.status_code == 400 and "gzip" in status_pb2.Status.FromString(resp.content).message

    bomb = gzip.compress(b"\0" * (40 * 1024 * 1024))  # 40 KiB that inflate to 40 MiB
    resp = requests.post(url, data=bomb, headers={**proto, "content-encoding": "gzip"}, timeout=30)
    assert resp.status_code == 413 and "larger than" in status_pb2.Status.FromString(resp.content).message

    resp = requests.post(url, data=b"x", headers={**proto, "content-encoding": "br"}, timeout=30)
    assert resp.status_code == 415

    resp = requests.get(url, timeout=30)
    assert resp.status_code == 405
    # the server is still healthy
    assert query(otlp_server, "SELECT 1") == [(1,)]


def test_gzip_protobuf_and_partial_success(otlp_server):
    req = span_request(
        project_attr="p_partial",
        trace_id=bytes.fromhex("0af7651916cd43dd8448eb211c80319c"),
        span_id=bytes.fromhex("b7ad6b7169203331"),
        name="kept",
        start_time_unix_nano=T0,
        end_time_unix_nano=T0 + 42,
    )
    bad = (
        req.resource_spans[0]
        .scope_spans[0]
        .spans.add(name="bad id", trace_id=b"\x01\x02", span_id=b"\x00" * 8)
    )
    bad.start_time_unix_nano = T0
    req.resource_spans[0].scope_spans[0].spans.add(
        name="no start", trace_id=b"\x01" * 16, span_id=b"\x02" * 8
    )
    resp = requests.post(
        http_url(otlp_server, "traces"),
        data=gzip.compress(req.SerializeToString()),
        headers={**AUTH, "content-type": "application/x-protobuf", "content-encoding": "gzip"},
        timeout=30,
    )
    assert resp.status_code == 200
    assert resp.headers["content-type"] == "application/x-protobuf"
    out = trace_service_pb2.ExportTraceServiceResponse.FromString(resp.content)
    assert out.partial_success.rejected_spans == 2
    assert "bad id" in out.partial_success.error_message and "no start" in out.partial_success.error_message
    rows = query(otlp_server, "SELECT name, duration FROM otel_logs_and_spans WHERE project_id = 'p_partial'")
    assert rows == [("kept", 42)]


def test_type_mismatched_attributes_go_to_json(otlp_server):
    req = span_request(
        project_attr="p_types",
        trace_id=b"\x11" * 16,
        span_id=b"\x22" * 8,
        name="mismatch",
        start_time_unix_nano=T0,
        attributes=[
            kv("http.response.status_code", string_value="200"),  # int32 column, text value
            kv("server.port", int_value=2**40),  # int32 column, value out of range
            kv("url.path", int_value=5),  # text column, int value
            kv("http.request.method", string_value="PUT"),
        ],
    )
    resp = requests.post(
        http_url(otlp_server, "traces"),
        data=req.SerializeToString(),
        headers={**AUTH, "content-type": "application/x-protobuf"},
        timeout=30,
    )
    assert resp.status_code == 200
    assert (
        trace_service_pb2.ExportTraceServiceResponse.FromString(resp.content).HasField("partial_success")
        is False
    )
    row = query(
        otlp_server,
        "SELECT attributes___http___response___status_code, attributes___server___port, attributes___url___path, "
        "attributes___http___request___method, attributes, resource___service___name FROM otel_logs_and_spans "
        "WHERE project_id = 'p_types'",
    )[0]
    assert row[:4] == (None, None, None, "PUT")
    assert row[4] == {
        "http": {"response": {"status_code": "200"}, "request": {"method": "PUT"}},
        "server": {"port": 2**40},
        "url": {"path": 5},
    }
    assert row[5] == "raw-client"


def test_tenant_header_wins_over_resource_attribute_then_default(otlp_server):
    common = {"content-type": "application/x-protobuf", **AUTH}
    for header, attr, span in (
        (None, "p_attr", b"\x31"),
        ("p_header", "p_attr2", b"\x32"),
        (None, None, b"\x33"),
    ):
        req = span_request(
            project_attr=attr, trace_id=b"\x44" * 16, span_id=span * 8, name="tenant", start_time_unix_nano=T0
        )
        headers = {**common, "x-project-id": header} if header else common
        resp = requests.post(
            http_url(otlp_server, "traces"), data=req.SerializeToString(), headers=headers, timeout=30
        )
        assert resp.status_code == 200
    rows = query(
        otlp_server,
        "SELECT context___span_id, project_id FROM otel_logs_and_spans WHERE name = 'tenant' ORDER BY 1",
    )
    assert rows == [("31" * 8, "p_attr"), ("32" * 8, "p_header"), ("33" * 8, "default")]


def test_auth_is_required(otlp_server):
    body = span_request(trace_id=b"\x55" * 16, span_id=b"\x66" * 8, name="no", start_time_unix_nano=T0)
    for headers in ({}, {"authorization": "Bearer wrong"}, {"authorization": TOKEN}):
        resp = requests.post(
            http_url(otlp_server, "traces"),
            data=body.SerializeToString(),
            headers={"content-type": "application/x-protobuf", **headers},
            timeout=30,
        )
        assert resp.status_code == 401
        assert status_pb2.Status.FromString(resp.content).code == 16  # UNAUTHENTICATED
    with grpc.insecure_channel(grpc_target(otlp_server)) as channel:
        stub = trace_service_pb2_grpc.TraceServiceStub(channel)
        with pytest.raises(grpc.RpcError) as err:
            stub.Export(body, metadata=(("authorization", "Bearer wrong"),), timeout=30)
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
        with pytest.raises(grpc.RpcError) as err:
            stub.Export(trace_service_pb2.ExportTraceServiceRequest(), timeout=30)
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
        # a malformed message over gRPC: INVALID_ARGUMENT, not a crash
        raw = channel.unary_unary(
            "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
            request_serializer=lambda b: b,
            response_deserializer=lambda b: b,
        )
        with pytest.raises(grpc.RpcError) as err:
            raw(b"\xff\xff\xff", metadata=tuple(AUTH.items()), timeout=30)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        ok = stub.Export(body, metadata=tuple(AUTH.items()), timeout=30)
        assert not ok.HasField("partial_success")
    assert query(otlp_server, "SELECT count(*) FROM otel_logs_and_spans WHERE name = 'no'") == [(1,)]


def test_receivers_stay_off_without_a_token():
    srv = TimeFusionServer(
        env={
            "TIMEFUSION_OTLP_ENABLED": "true",
            "TIMEFUSION_OTLP_HOST": "127.0.0.1",
            "TIMEFUSION_OTLP_HTTP_PORT": str(free_port()),
            "TIMEFUSION_OTLP_GRPC_PORT": str(free_port()),
        }
    )
    try:
        srv.start()
        with pytest.raises(requests.ConnectionError):
            requests.post(http_url(srv, "traces"), data=b"", timeout=5)
        rc, log = srv.stop()
    finally:
        srv.close()
    assert rc == 0
    assert "OTLP receivers disabled: GRPC_TOKEN is not set" in log


def test_a_killed_server_leaves_no_decoding_processes():
    srv = TimeFusionServer(
        env={
            "TIMEFUSION_OTLP_ENABLED": "true",
            "TIMEFUSION_OTLP_HOST": "127.0.0.1",
            "TIMEFUSION_OTLP_HTTP_PORT": str(free_port()),
            "TIMEFUSION_OTLP_GRPC_PORT": str(free_port()),
            "TIMEFUSION_ALLOW_INSECURE_AUTH": "true",
        }
    )
    try:
        srv.start()
        body = span_request(trace_id=b"\x77" * 16, span_id=b"\x78" * 8, name="k", start_time_unix_nano=T0)
        resp = requests.post(
            http_url(srv, "traces"),
            data=body.SerializeToString(),
            headers={"content-type": "application/x-protobuf"},
            timeout=60,
        )
        assert resp.status_code == 200  # the decoding processes are up
        children = _children(srv.proc.pid)
        assert children
        srv.stop(signal.SIGKILL)
        deadline = time.monotonic() + 60
        while any(_alive(pid) for pid in children) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not [pid for pid in children if _alive(pid)]
    finally:
        srv.close()


def _children(pid: int) -> list[int]:
    out = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                stat = Path(f"/proc/{entry.name}/stat").read_text()
            except OSError:
                continue
            if stat.rsplit(")", 1)[1].split()[1] == str(pid):
                out.append(int(entry.name))
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"
