"""Arrow Flight: the real `timefusion serve` with pyarrow.flight as the client.

DoPut acks each batch once durable (rows are visible over SQL and survive a SIGTERM + restart), bad
input is a gRPC error that stores nothing of the failing batch, auth is a bearer token, and DoGet /
GetFlightInfo return query results as Arrow. Handler-level cases that a real client cannot produce
(a corrupt IPC message, a full buffer, WAL replay in progress) drive `FlightServer` in process.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import secrets
import signal
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.flight as fl
import pytest
from pgwire_server import TimeFusionServer, free_port

from timefusion.protocol.flight import FlightServer
from timefusion.schema import load_tables
from timefusion.write.ingest import ServerBusyError

T = "otel_logs_and_spans"
TOKEN = secrets.token_urlsafe(16)
TS = pa.timestamp("us", tz="UTC")


def flight_env(port: int, token: str | None = TOKEN, **extra: str) -> dict[str, str]:
    env = {"TIMEFUSION_FLIGHT_ENABLED": "true", "GRPC_PORT": str(port), "TIMEFUSION_GRPC_HOST": "127.0.0.1"}
    if token:
        env["GRPC_TOKEN"] = token
    env.update(extra)
    return env


@pytest.fixture(scope="module")
def srv() -> Iterator[TimeFusionServer]:
    server = TimeFusionServer(env=flight_env(free_port()))
    try:
        yield server.start()
    finally:
        server.close()


def client(server: TimeFusionServer) -> fl.FlightClient:
    return fl.connect(f"grpc://127.0.0.1:{server.extra_env['GRPC_PORT']}")


def auth(token: str = TOKEN) -> fl.FlightCallOptions:
    return fl.FlightCallOptions(headers=[(b"authorization", f"Bearer {token}".encode())])


def spans(project: str, n: int, start: int = 0) -> pa.RecordBatch:
    base = dt.datetime(2025, 3, 1, 12, tzinfo=dt.UTC)
    return pa.record_batch(
        {
            "project_id": pa.array([project] * n),
            "timestamp": pa.array([base + dt.timedelta(seconds=start + i) for i in range(n)], TS),
            "id": pa.array([f"{project}-{start + i}" for i in range(n)]),
            "name": pa.array([f"span {start + i}" for i in range(n)]),
            "duration": pa.array(range(start, start + n), pa.int64()),
        }
    )


def put(c: fl.FlightClient, batches: list[pa.RecordBatch], table: str = T, **kw: Any) -> list[dict[str, int]]:
    """Write every batch without waiting (pipelined), then collect the acks."""
    writer, reader = c.do_put(fl.FlightDescriptor.for_path(table), batches[0].schema, options=auth(**kw))
    acks = []
    try:
        for b in batches:
            writer.write_batch(b)
        writer.done_writing()
        for _ in batches:
            acks.append(json.loads(reader.read().to_pybytes()))
    finally:
        writer.close()
    return acks


def count(server: TimeFusionServer, project: str) -> int:
    with server.connect() as conn:
        return conn.execute(f"SELECT count(*) FROM {T} WHERE project_id = '{project}'").fetchone()[0]


def test_doput_acks_every_batch_and_rows_are_visible(srv: TimeFusionServer) -> None:
    c = client(srv)
    batches = [spans("put-ok", 1000, i * 1000) for i in range(5)]
    acks = put(c, batches)
    assert acks == [{"batch": i, "rows": 1000} for i in range(5)]
    assert count(srv, "put-ok") == 5000
    with srv.connect() as conn:
        row = conn.execute(f"SELECT name, duration FROM {T} WHERE id = 'put-ok-4321'").fetchone()
    assert row == ("span 4321", 4321)


def test_coercible_types_are_coerced(srv: TimeFusionServer) -> None:
    batch = pa.record_batch(
        {
            "project_id": ["put-coerce"] * 2,
            "timestamp": ["2025-03-01 10:00:00", "2025-03-01T10:00:01Z"],  # text → timestamptz
            "duration": pa.array([7, 8], pa.int32()),  # int32 → int8
            "id": ["c1", "c2"],
        }
    )
    assert put(client(srv), [batch]) == [{"batch": 0, "rows": 2}]
    with srv.connect() as conn:
        rows = conn.execute(
            f"SELECT id, timestamp, duration FROM {T} WHERE project_id = 'put-coerce' ORDER BY id"
        ).fetchall()
    assert rows == [
        ("c1", dt.datetime(2025, 3, 1, 10, tzinfo=dt.UTC), 7),
        ("c2", dt.datetime(2025, 3, 1, 10, 0, 1, tzinfo=dt.UTC), 8),
    ]


def test_unknown_table_is_not_found(srv: TimeFusionServer) -> None:
    with pytest.raises(pa.ArrowKeyError, match='relation "no_such_table" does not exist'):
        put(client(srv), [spans("put-x", 3)], table="no_such_table")


def test_uncoercible_batch_fails_and_stores_nothing_of_it(srv: TimeFusionServer) -> None:
    good = spans("put-bad", 10)
    bad = pa.record_batch(
        {
            "project_id": ["put-bad"] * 2,
            "timestamp": ["2025-03-01 10:00:00", "not a time"],
            "id": ["b1", "b2"],
        }
    )
    c = client(srv)
    writer, reader = c.do_put(fl.FlightDescriptor.for_path(T), good.schema, options=auth())
    writer.write_batch(good)
    assert json.loads(reader.read().to_pybytes()) == {"batch": 0, "rows": 10}  # acked before the bad one
    writer.close()
    with pytest.raises(
        pa.ArrowInvalid, match=r'invalid value \(\'not a time\'\) for column "timestamp".*row 2'
    ):
        put(c, [bad])
    with pytest.raises(pa.ArrowInvalid, match='column "no_such_column" of relation'):
        put(c, [pa.record_batch({"project_id": ["put-bad"], "no_such_column": [1]})])
    assert count(srv, "put-bad") == 10


def test_empty_batch_and_empty_stream_are_errors(srv: TimeFusionServer) -> None:
    c = client(srv)
    empty = spans("put-empty", 2).slice(0, 0)
    with pytest.raises(pa.ArrowInvalid, match="empty record batch"):
        put(c, [spans("put-empty", 2), empty])
    assert count(srv, "put-empty") == 2  # the first batch was acknowledged
    writer, _ = c.do_put(fl.FlightDescriptor.for_path(T), empty.schema, options=auth())
    with pytest.raises(pa.ArrowInvalid, match="carried no record batches"):
        writer.close()


def test_bad_descriptor_is_invalid_argument(srv: TimeFusionServer) -> None:
    c = client(srv)
    batch = spans("put-desc", 1)
    for descriptor in (fl.FlightDescriptor.for_command(b"x"), fl.FlightDescriptor.for_path(T, "extra")):
        writer, _ = c.do_put(descriptor, batch.schema, options=auth())
        with pytest.raises(pa.ArrowInvalid, match="path descriptor naming one table"):
            writer.write_batch(batch)
            writer.close()


@pytest.mark.parametrize("header", [None, f"Bearer {TOKEN}x", "Bearer ", TOKEN, f"Basic {TOKEN}"])
def test_wrong_or_missing_token_is_unauthenticated(srv: TimeFusionServer, header: str | None) -> None:
    c = client(srv)
    options = fl.FlightCallOptions(
        headers=[(b"authorization", header.encode())] if header is not None else []
    )
    batch = spans("put-auth", 1)
    with pytest.raises(fl.FlightUnauthenticatedError, match="bearer token"):
        writer, _ = c.do_put(fl.FlightDescriptor.for_path(T), batch.schema, options=options)
        writer.write_batch(batch)
        writer.close()
    with pytest.raises(fl.FlightUnauthenticatedError):
        c.do_get(fl.Ticket(b"SELECT 1"), options=options).read_all()
    assert count(srv, "put-auth") == 0


def test_doget_and_flight_info_return_arrow(srv: TimeFusionServer) -> None:
    c = client(srv)
    put(c, [spans("get-1", 50)])
    sql = f"SELECT id, duration, timestamp FROM {T} WHERE project_id = 'get-1' ORDER BY duration LIMIT 3"
    info = c.get_flight_info(fl.FlightDescriptor.for_command(sql), options=auth())
    assert info.schema.names == ["id", "duration", "timestamp"]
    assert info.schema.field("timestamp").type == TS
    table = c.do_get(info.endpoints[0].ticket, options=auth()).read_all()
    assert table.column("id").to_pylist() == ["get-1-0", "get-1-1", "get-1-2"]
    assert table.schema.field("duration").type == pa.int64()
    agg = c.do_get(
        fl.Ticket(f"SELECT count(*) AS n FROM {T} WHERE project_id = 'get-1'".encode()), options=auth()
    )
    assert agg.read_all().column("n").to_pylist() == [50]
    path_info = c.get_flight_info(fl.FlightDescriptor.for_path(T), options=auth())
    assert path_info.schema == load_tables()[T].arrow_schema


def test_doget_bad_sql_is_invalid_argument(srv: TimeFusionServer) -> None:
    c = client(srv)
    with pytest.raises(pa.ArrowInvalid, match="SQLSTATE 42703"):
        c.do_get(fl.Ticket(f"SELECT no_such_column FROM {T}".encode()), options=auth()).read_all()
    with pytest.raises(pa.ArrowInvalid, match="ticket is empty"):
        c.do_get(fl.Ticket(b"  "), options=auth()).read_all()
    with pytest.raises(pa.ArrowKeyError, match="does not exist"):
        c.get_flight_info(fl.FlightDescriptor.for_path("nope"), options=auth())


def test_acked_rows_survive_sigterm_and_restart() -> None:
    port = free_port()
    server = TimeFusionServer(env=flight_env(port))
    try:
        server.start()
        assert put(client(server), [spans("put-durable", 500)]) == [{"batch": 0, "rows": 500}]
        rc, log = server.restart(signal.SIGTERM)
        assert rc == 0, log
        assert count(server, "put-durable") == 500
        assert "Arrow Flight listening on 127.0.0.1" in server.log
    finally:
        server.close()


def test_sigterm_with_an_idle_doput_stream_still_exits_zero() -> None:
    port = free_port()
    server = TimeFusionServer(env=flight_env(port))
    try:
        server.start()
        c = client(server)
        batch = spans("put-idle", 20)
        writer, reader = c.do_put(fl.FlightDescriptor.for_path(T), batch.schema, options=auth())
        writer.write_batch(batch)
        assert json.loads(reader.read().to_pybytes()) == {"batch": 0, "rows": 20}
        rc, log = server.restart(signal.SIGTERM)  # the stream stays open and idle meanwhile
        assert rc == 0, log
        # gRPC may end the idle call at shutdown or leave it blocked ("still running after … s"): either
        # way the buffer is flushed and the process exits 0
        assert "stopped" in log
        assert count(server, "put-idle") == 20
        with pytest.raises(fl.FlightError):
            writer.write_batch(batch)
            writer.close()
    finally:
        server.close()


def test_without_token_flight_stays_off_unless_insecure_is_allowed() -> None:
    port = free_port()
    off = TimeFusionServer(env=flight_env(port, token=None))
    try:
        off.start()
        assert "Arrow Flight disabled: GRPC_TOKEN is not set" in off.log
        with pytest.raises(fl.FlightUnavailableError):
            fl.connect(f"grpc://127.0.0.1:{port}").do_get(fl.Ticket(b"SELECT 1")).read_all()
    finally:
        off.close()
    port = free_port()
    insecure = TimeFusionServer(env=flight_env(port, token=None, TIMEFUSION_ALLOW_INSECURE_AUTH="true"))
    try:
        insecure.start()
        assert "accepts unauthenticated clients" in insecure.log
        c = fl.connect(f"grpc://127.0.0.1:{port}")
        assert c.do_get(fl.Ticket(b"SELECT 1 AS one")).read_all().column("one").to_pylist() == [1]
    finally:
        insecure.close()


# -- in-process: what a well-behaved client cannot make happen --------------------------------------


class _FakeDb:
    """Just enough of TimeFusion for the DoPut handler."""

    def __init__(self, error: Exception | None = None) -> None:
        self.schemas = load_tables()
        self.ready = True
        self.query = None
        self.error = error
        self.stored: list[pa.RecordBatch] = []

    def ingest(self, table: str, batch: pa.RecordBatch) -> int:
        if self.error is not None:
            raise self.error
        self.stored.append(batch)
        return batch.num_rows


@pytest.fixture
def local() -> Iterator[FlightServer]:
    server = FlightServer("127.0.0.1", 0, TOKEN)
    try:
        yield server
    finally:
        server.stop(5)


def test_during_replay_every_call_is_unavailable(local: FlightServer) -> None:
    c = fl.connect(f"grpc://127.0.0.1:{local.port}")
    batch = spans("replay", 1)
    with pytest.raises(fl.FlightUnavailableError, match="starting up"):
        writer, _ = c.do_put(fl.FlightDescriptor.for_path(T), batch.schema, options=auth())
        writer.write_batch(batch)
        writer.close()
    with pytest.raises(fl.FlightUnavailableError, match="starting up"):
        c.do_get(fl.Ticket(b"SELECT 1"), options=auth()).read_all()


def test_full_buffer_is_unavailable_with_resource_exhausted_detail(local: FlightServer) -> None:
    db = _FakeDb(ServerBusyError("server busy: the write buffer is full"))
    local.attach(db)  # type: ignore[arg-type]
    c = fl.connect(f"grpc://127.0.0.1:{local.port}")
    batch = spans("busy", 3)
    with pytest.raises(fl.FlightUnavailableError, match="server busy") as caught:
        put(c, [batch])
    assert caught.value.extra_info[:2] == b"\x08\x08"  # google.rpc.Status{code: RESOURCE_EXHAUSTED}
    assert db.stored == []


def test_corrupt_payload_is_invalid_argument_and_nothing_is_acked() -> None:
    server = FlightServer.__new__(FlightServer)  # the handler only: no listening socket needed
    server.stopping = False
    server.projects = None
    db = _FakeDb()
    acks: list[Any] = []

    class Reader:
        calls = 0

        def read_chunk(self) -> Any:
            self.calls += 1
            if self.calls == 1:
                return types.SimpleNamespace(data=spans("corrupt", 2), app_metadata=None)
            raise pa.ArrowInvalid("Invalid flatbuffers message")

    writer = types.SimpleNamespace(write=acks.append)
    with pytest.raises(pa.ArrowInvalid, match="batch 1: corrupt or unreadable Arrow IPC payload"):
        server._put_stream(db, T, Reader(), writer)  # type: ignore[arg-type]
    assert len(acks) == 1 and len(db.stored) == 1


def test_readme_flight_example_runs(srv: TimeFusionServer, capsys: pytest.CaptureFixture[str]) -> None:
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    section = readme.split("## Arrow Flight", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```python\n(.*?)```", section, re.S)
    assert block is not None
    code = block.group(1)
    assert 'TOKEN = "timefusion"' in code and "grpc://localhost:50051" in code
    code = code.replace('TOKEN = "timefusion"', f"TOKEN = {TOKEN!r}")
    code = code.replace("grpc://localhost:50051", f"grpc://127.0.0.1:{srv.extra_env['GRPC_PORT']}")
    exec(compile(code, "README.md", "exec"), {})
    out = capsys.readouterr().out
    assert "{'batch': 0, 'rows': 3}" in out
    assert "GET /api/users" in out and "redis GET" in out
