"""OTLP/HTTP protobuf ingest: spans/s per request size, decode-only vs end to end, with baselines.

The spans look like an instrumented web service's (per span: 10–14 attributes such as
`http.request.method`, `http.response.status_code`, `url.path` with a unique id, `client.port`,
`user.id`; 4 spans per trace; 1 in 10 an ERROR with an `exception` event; 8 resource attributes).
Every request body is distinct and each case walks the bodies once, so no attribute value is seen
more often than it would be in real traffic. Cases, per request size (default 100 / 1000 / 5000
spans), all in one run:

- parse (baseline): opentelemetry-proto's `ExportTraceServiceRequest.ParseFromString` of the same
  bytes (upb backend): the floor any Python decoder starts from;
- decode: our `parse_protobuf` + `Decoder.traces` (bytes → Arrow columns), in this process;
- HTTP end to end: the real `timefusion serve` (WAL fsync per group, `sync_each`), 1 and 2 client
  threads posting `application/x-protobuf` bodies with keep-alive; an acknowledged request is
  durable and visible;
- INSERT (baseline): the same rows (the columns OTLP fills) as multi-row `INSERT … VALUES` over
  pgwire (psycopg), one statement per request, 1 client.

Target: ≥ 50k spans/s end to end. Run from the repo root:
`.venv/bin/python bench/otlp.py [--spans N] [--sizes 100,1000,5000] [--quick] [--out FILE]`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402
import requests  # noqa: E402
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest  # noqa: E402
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue  # noqa: E402

from bench.common import fmt_num, percentile_ms, print_table, save_json  # noqa: E402
from timefusion.protocol.otlp import protobuf_backend  # noqa: E402
from timefusion.protocol.otlp.decode import Decoder, parse_protobuf  # noqa: E402
from timefusion.schema import load_tables  # noqa: E402

T0 = 1_764_000_000_000_000_000
TOKEN = "bench-" + secrets.token_hex(8)
PASSWORD = "bench"
ENDPOINTS = [
    ("GET /api/users/{id}", "GET", "/api/users/", 2),
    ("POST /api/orders", "POST", "/api/orders/", 2),
    ("SELECT users", None, None, 3),
    ("redis GET", None, None, 3),
    ("POST payments-gateway", "POST", "/v1/charges/", 3),
    ("render_response", None, None, 1),
]


def _kv(key: str, value: object) -> KeyValue:
    if isinstance(value, bool):
        return KeyValue(key=key, value=AnyValue(bool_value=value))
    if isinstance(value, int):
        return KeyValue(key=key, value=AnyValue(int_value=value))
    return KeyValue(key=key, value=AnyValue(string_value=str(value)))


def make_bodies(total: int, size: int, seed: int) -> list[bytes]:
    """`total // size` distinct ExportTraceServiceRequest bodies of `size` spans each."""
    rnd = random.Random(seed)
    bodies = []
    serial = seed * 10_000_000
    for _ in range(max(1, total // size)):
        req = ExportTraceServiceRequest()
        rs = req.resource_spans.add()
        svc = rnd.choice(["checkout", "users", "payments", "search"])
        for k, v in (
            ("service.name", svc),
            ("service.version", "1.4.2"),
            ("service.instance.id", f"{svc}-{rnd.randrange(8)}"),
            ("deployment.environment.name", "prod"),
            ("telemetry.sdk.language", "python"),
            ("telemetry.sdk.name", "opentelemetry"),
            ("telemetry.sdk.version", "1.45.2"),
            ("host.name", f"node-{rnd.randrange(32)}"),
        ):
            rs.resource.attributes.append(_kv(k, v))
        ss = rs.scope_spans.add()
        ss.scope.name = "opentelemetry.instrumentation.flask"
        trace_id = parent = b""
        for i in range(size):
            serial += 1
            sp = ss.spans.add()
            if i % 4 == 0:
                trace_id = rnd.randbytes(16)
                parent = b""
            sp.trace_id = trace_id
            sp.span_id = rnd.randbytes(8)
            if parent:
                sp.parent_span_id = parent
            else:
                parent = sp.span_id
            name, method, path, kind = ENDPOINTS[min(int(rnd.paretovariate(1.2)) - 1, len(ENDPOINTS) - 1)]
            sp.name = name
            sp.kind = kind
            start = T0 + serial * 1_000_000
            sp.start_time_unix_nano = start
            sp.end_time_unix_nano = start + int(rnd.lognormvariate(16, 1.2))
            attrs: list[tuple[str, object]] = [
                ("code.function.name", name.split(" ")[-1]),
                ("code.file.path", "app/handlers.py"),
                ("code.line.number", 40 + kind),
            ]
            error = rnd.random() < 0.1
            if method:
                status = 500 if error else rnd.choice([200, 200, 200, 201, 404])
                attrs += [
                    ("http.request.method", method),
                    ("http.route", (path or "") + "{id}"),
                    ("http.response.status_code", status),
                    ("url.path", f"{path}{serial}"),
                    ("url.scheme", "https"),
                    ("server.address", "api.example.com"),
                    ("server.port", 443),
                ]
            if kind == 2:
                attrs += [
                    ("client.address", f"10.0.{rnd.randrange(256)}.{rnd.randrange(256)}"),
                    ("client.port", rnd.randrange(32768, 61000)),
                    ("user_agent.original", "Mozilla/5.0 (X11; Linux x86_64)"),
                    ("user.id", f"user_{rnd.randrange(20000)}"),
                    ("session.id", f"sess_{rnd.randrange(50000)}"),
                ]
            if name == "SELECT users":
                attrs += [
                    ("db.system.name", "postgresql"),
                    ("db.query.text", "SELECT * FROM users WHERE id = $1"),
                ]
            sp.attributes.extend(_kv(k, v) for k, v in attrs)
            sp.status.code = 2 if error else (1 if kind == 2 else 0)
            if error:
                sp.status.message = "upstream timed out"
                ev = sp.events.add(name="exception", time_unix_nano=start + 1000)
                ev.attributes.extend(
                    [
                        _kv("exception.type", "TimeoutError"),
                        _kv("exception.message", f"timeout after {serial}"),
                    ]
                )
        bodies.append(req.SerializeToString())
    return bodies


# -- in-process cases ------------------------------------------------------------------------------


def run_parse(bodies: list[bytes], size: int) -> dict[str, Any]:
    t, c = time.perf_counter(), time.process_time()
    for body in bodies:
        ExportTraceServiceRequest.FromString(body)
    secs, cpu = time.perf_counter() - t, time.process_time() - c
    return {"spans_per_s": size * len(bodies) / secs, "cpu_us_per_span": cpu / (size * len(bodies)) * 1e6}


def run_decode(bodies: list[bytes], size: int, decoder: Decoder) -> dict[str, Any]:
    t, c = time.perf_counter(), time.process_time()
    for body in bodies:
        out = decoder.traces(parse_protobuf("traces", body))
        out.batch()
    secs, cpu = time.perf_counter() - t, time.process_time() - c
    return {"spans_per_s": size * len(bodies) / secs, "cpu_us_per_span": cpu / (size * len(bodies)) * 1e6}


# -- the real server -------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`timefusion serve` with OTLP on free ports, a scrubbed environment and a temporary data dir."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.pg_port, self.http_port, self.grpc_port = _free_port(), _free_port(), _free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Server:
        scrub = ("PGWIRE_", "TIMEFUSION_", "AWS_", "GRPC_")
        env = {k: v for k, v in os.environ.items() if not k.startswith(scrub)}
        env.update(
            TIMEFUSION_DATA_DIR=str(self.tmp / "data"),
            PGWIRE_PORT=str(self.pg_port),
            TIMEFUSION_PGWIRE_HOST="127.0.0.1",
            PGWIRE_PASSWORD=PASSWORD,
            TIMEFUSION_FLIGHT_ENABLED="false",
            TIMEFUSION_OTLP_HOST="127.0.0.1",
            TIMEFUSION_OTLP_HTTP_PORT=str(self.http_port),
            TIMEFUSION_OTLP_GRPC_PORT=str(self.grpc_port),
            TIMEFUSION_WAL_FSYNC_MODE="sync_each",
            GRPC_TOKEN=TOKEN,
        )
        log = open(self.tmp / "server.log", "wb")  # noqa: SIM115 - closed with the process
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "timefusion.cli", "serve"],
            env=env,
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 120
        while True:
            try:
                with self.connect() as conn:
                    conn.execute("SELECT 1")
                return self
            except psycopg.Error:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError((self.tmp / "server.log").read_text()) from None
                time.sleep(0.1)

    def connect(self) -> psycopg.Connection:
        return psycopg.connect(
            host="127.0.0.1",
            port=self.pg_port,
            user="postgres",
            password=PASSWORD,
            dbname="postgres",
            autocommit=True,
            connect_timeout=5,
        )

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=120)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None


def _stat(pid: int | str) -> list[str]:
    return ["", *Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()]


def server_cpu(server: Server) -> float:
    """CPU seconds (user + system) used so far by the server process and its children (the OTLP
    decoding processes), live and exited."""
    assert server.proc is not None
    pid = server.proc.pid
    f = _stat(pid)
    ticks = int(f[12]) + int(f[13]) + int(f[14]) + int(f[15])
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                c = _stat(entry.name)
            except (OSError, ValueError):
                continue
            if c[2] == str(pid):
                ticks += int(c[12]) + int(c[13]) + int(c[14]) + int(c[15])
    return ticks / os.sysconf("SC_CLK_TCK")


def run_http(server: Server, bodies: list[bytes], size: int, clients: int) -> dict[str, Any]:
    url = f"http://127.0.0.1:{server.http_port}/v1/traces"
    headers = {"content-type": "application/x-protobuf", "authorization": f"Bearer {TOKEN}"}
    lock = threading.Lock()
    state = {"next": 0}
    latencies: list[float] = []
    errors: list[str] = []

    def worker() -> None:
        session = requests.Session()
        while True:
            with lock:
                i = state["next"]
                state["next"] += 1
            if i >= len(bodies):
                return
            t = time.perf_counter()
            resp = session.post(url, data=bodies[i], headers=headers, timeout=120)
            lat = time.perf_counter() - t
            if resp.status_code != 200:
                errors.append(f"{resp.status_code}: {resp.content[:200]!r}")
            with lock:
                latencies.append(lat)

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    cpu0 = server_cpu(server)
    t0 = time.perf_counter()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    secs = time.perf_counter() - t0
    cpu = server_cpu(server) - cpu0
    if errors:
        raise RuntimeError(f"{len(errors)} requests failed, first: {errors[0]}")
    return {
        "spans_per_s": size * len(bodies) / secs,
        "p50_ms": percentile_ms(latencies, 50),
        "p99_ms": percentile_ms(latencies, 99),
        "server_cpu_us_per_span": cpu / (size * len(bodies)) * 1e6,
    }


INSERT_COLUMNS = [
    "timestamp",
    "id",
    "parent_id",
    "name",
    "kind",
    "status_code",
    "status_message",
    "duration",
    "start_time",
    "end_time",
    "context___trace_id",
    "context___span_id",
    "attributes",
    "events",
    "resource",
    "project_id",
    "attributes___http___request___method",
    "attributes___http___response___status_code",
    "attributes___url___path",
    "attributes___client___port",
    "attributes___user___id",
    "resource___service___name",
]


def _literal(v: object) -> str:
    if v is None:
        return "NULL"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, dt.datetime):
        return f"'{v.isoformat()}'"
    return "'" + str(v).replace("'", "''") + "'"


def insert_statements(bodies: list[bytes], decoder: Decoder) -> list[str]:
    out = []
    for body in bodies:
        cols = decoder.traces(parse_protobuf("traces", body)).columns
        values = [cols[c].to_pylist() if c in cols else [None] * len(cols["id"]) for c in INSERT_COLUMNS]
        rows = ",".join("(" + ",".join(_literal(v) for v in row) + ")" for row in zip(*values))
        out.append(f"INSERT INTO otel_logs_and_spans ({', '.join(INSERT_COLUMNS)}) VALUES {rows}")
    return out


def run_insert(server: Server, statements: list[str], size: int) -> dict[str, Any]:
    latencies = []
    cpu0 = server_cpu(server)
    with server.connect() as conn:
        t0 = time.perf_counter()
        for sql in statements:
            t = time.perf_counter()
            conn.execute(sql)
            latencies.append(time.perf_counter() - t)
        secs = time.perf_counter() - t0
    return {
        "spans_per_s": size * len(statements) / secs,
        "p50_ms": percentile_ms(latencies, 50),
        "p99_ms": percentile_ms(latencies, 99),
        "server_cpu_us_per_span": (server_cpu(server) - cpu0) / (size * len(statements)) * 1e6,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--spans", type=int, default=40_000, help="spans per request size and case (default 40k)")
    ap.add_argument("--sizes", default="100,1000,5000", help="spans per request (comma separated)")
    ap.add_argument("--clients", default="1,2", help="HTTP client thread counts (comma separated)")
    ap.add_argument("--quick", action="store_true", help="10k spans per case")
    ap.add_argument("--out", help="save the numbers as JSON")
    args = ap.parse_args(argv)
    total = 10_000 if args.quick else args.spans
    sizes = [int(s) for s in args.sizes.split(",")]
    clients = [int(c) for c in args.clients.split(",")]
    print(f"protobuf backend: {protobuf_backend()}; {total} spans per case; cores: {os.cpu_count()}")
    decoder = Decoder(load_tables())
    tmp = Path(tempfile.mkdtemp(prefix="bench-otlp-"))
    server = Server(tmp).start()
    results: dict[str, Any] = {}
    rows = []
    try:
        for size in sizes:
            print(f"generating {total} spans in requests of {size} ...", flush=True)
            # separate bodies per case so that no case profits from another's attribute cache
            seeds = iter(range(size * 100, size * 100 + 100))
            res: dict[str, Any] = {
                "parse (baseline)": run_parse(make_bodies(total, size, next(seeds)), size),
                "decode": run_decode(make_bodies(total, size, next(seeds)), size, Decoder(load_tables())),
            }
            for c in clients:
                res[f"HTTP e2e, {c} client(s)"] = run_http(
                    server, make_bodies(total, size, next(seeds)), size, c
                )
            statements = insert_statements(make_bodies(total, size, next(seeds)), decoder)
            res["INSERT (baseline), 1 client"] = run_insert(server, statements, size)
            results[str(size)] = res
            size_kb = len(make_bodies(size, size, 1)[0]) / 1024
            for name, r in res.items():
                rows.append(
                    [
                        size,
                        f"{size_kb:.0f}",
                        name,
                        fmt_num(r["spans_per_s"], 0),
                        fmt_num(r.get("p50_ms"), 1) if "p50_ms" in r else "",
                        fmt_num(r.get("p99_ms"), 1) if "p99_ms" in r else "",
                        fmt_num(r.get("server_cpu_us_per_span", r.get("cpu_us_per_span")), 1),
                    ]
                )
        with server.connect() as conn:
            stored = conn.execute("SELECT count(*) FROM otel_logs_and_spans").fetchone()[0]
        expected = sum(total // s * s * (len(clients) + 1) for s in sizes)
        print(f"rows stored: {stored} (expected {expected})")
    finally:
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    print_table(
        ["spans/request", "KiB/request", "case", "spans/s", "p50 ms", "p99 ms", "CPU µs/span"],
        rows,
        "rrlrrrr",
    )
    print("CPU µs/span: this process's CPU for parse/decode; for HTTP and INSERT the server's (with its")
    print("decoding processes): spans/s per core = 1e6 / CPU µs/span, independent of other load")
    save_json(args.out, {"spans_per_case": total, "results": results})
    return 0


if __name__ == "__main__":
    sys.exit(main())
