"""The PostgreSQL wire protocol byte by byte, with a tiny raw-socket client.

Most tests run twice: against `timefusion serve` and against a throwaway PostgreSQL cluster
(`tests/pg_server.py`), so every expectation written here is one that PostgreSQL itself meets.
Where TimeFusion differs, the test compares it with PostgreSQL's answer and is marked xfail with
the difference spelled out.
"""

from __future__ import annotations

import contextlib
import re
import socket
import struct
from collections.abc import Iterator
from dataclasses import dataclass

import psycopg
import pytest
import scramp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pg_server import PgServer
from pgwire_server import TimeFusionServer, server  # noqa: F401

PROTOCOL_3_0 = 3 << 16
PROTOCOL_3_2 = (3 << 16) | 2
SSL_REQUEST = 80877103
GSSENC_REQUEST = 80877104
CANCEL_REQUEST = 80877102


# -- the raw client --------------------------------------------------------------------------------


def message(kind: bytes, body: bytes = b"") -> bytes:
    return kind + struct.pack("!i", len(body) + 4) + body


def cstr(text: str) -> bytes:
    return text.encode() + b"\0"


def startup_packet(params: dict[str, str], version: int = PROTOCOL_3_0) -> bytes:
    body = struct.pack("!i", version) + b"".join(cstr(k) + cstr(v) for k, v in params.items()) + b"\0"
    return struct.pack("!i", len(body) + 4) + body


def request_packet(code: int, extra: bytes = b"") -> bytes:
    return struct.pack("!ii", 8 + len(extra), code) + extra


def query(sql: str) -> bytes:
    return message(b"Q", cstr(sql))


def parse(sql: str, name: str = "", oids: tuple[int, ...] = ()) -> bytes:
    return message(b"P", cstr(name) + cstr(sql) + struct.pack(f"!h{len(oids)}i", len(oids), *oids))


def bind(portal: str = "", statement: str = "", params: tuple[bytes | None, ...] = ()) -> bytes:
    body = cstr(portal) + cstr(statement) + struct.pack("!hh", 0, len(params))
    for p in params:
        body += struct.pack("!i", -1) if p is None else struct.pack("!i", len(p)) + p
    return message(b"B", body + struct.pack("!h", 0))


def describe(kind: bytes, name: str = "") -> bytes:
    return message(b"D", kind + cstr(name))


def execute(portal: str = "", max_rows: int = 0) -> bytes:
    return message(b"E", cstr(portal) + struct.pack("!i", max_rows))


SYNC = message(b"S")
TERMINATE = message(b"X")

Msg = tuple[bytes, bytes]


def fields(body: bytes) -> dict[str, str]:
    """The fields of an ErrorResponse/NoticeResponse."""
    return {p[:1].decode(): p[1:].decode(errors="replace") for p in body.split(b"\0") if p}


class Closed(Exception):
    """The server closed the connection."""


class Wire:
    """A socket speaking protocol v3: send bytes, read (type, body) messages."""

    def __init__(self, port: int, timeout: float = 10.0) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _fill(self, n: int) -> None:
        while len(self.buf) < n:
            try:
                chunk = self.sock.recv(1 << 16)
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                raise Closed(self.buf)
            self.buf += chunk

    def read_byte(self) -> bytes:
        self._fill(1)
        out, self.buf = self.buf[:1], self.buf[1:]
        return out

    def read(self) -> Msg:
        self._fill(5)
        kind, length = struct.unpack("!ci", self.buf[:5])
        self._fill(1 + length)
        body, self.buf = self.buf[5 : 1 + length], self.buf[1 + length :]
        return kind, body

    def until_ready(self) -> list[Msg]:
        out = []
        while True:
            m = self.read()
            out.append(m)
            if m[0] == b"Z":
                return out

    def exchange(self, data: bytes) -> list[Msg]:
        self.send(data)
        return self.until_ready()

    def until_closed(self) -> list[Msg]:
        out = []
        with contextlib.suppress(Closed):
            while True:
                out.append(self.read())
        return out

    def authenticate(self, user: str, password: str | None) -> list[Msg]:
        """Answer the server's authentication requests; returns every message up to ReadyForQuery."""
        out: list[Msg] = []
        client: scramp.ScramClient | None = None
        while True:
            kind, body = self.read()
            out.append((kind, body))
            if kind == b"E":
                return out
            if kind == b"Z":
                return out
            if kind != b"R":
                continue
            (code,) = struct.unpack("!i", body[:4])
            if code == 3:  # cleartext
                self.send(message(b"p", cstr(password or "")))
            elif code == 10:  # SASL
                client = scramp.ScramClient(["SCRAM-SHA-256"], user, password or "")
                first = client.get_client_first().encode()
                self.send(message(b"p", cstr("SCRAM-SHA-256") + struct.pack("!i", len(first)) + first))
            elif code == 11:
                assert client is not None
                client.set_server_first(body[4:].decode())
                self.send(message(b"p", client.get_client_final().encode()))
            elif code == 12:
                assert client is not None
                client.set_server_final(body[4:].decode())

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


@dataclass(frozen=True)
class Target:
    name: str
    port: int
    password: str | None  # None: trust authentication (the PostgreSQL cluster)
    user: str = "postgres"

    def startup(self, version: int = PROTOCOL_3_0, **params: str) -> tuple[Wire, list[Msg]]:
        w = Wire(self.port)
        w.send(startup_packet({"user": self.user, "database": "postgres", **params}, version))
        return w, w.authenticate(self.user, self.password)

    def login(self, **params: str) -> Wire:
        w, msgs = self.startup(**params)
        assert msgs[-1][0] == b"Z", msgs
        return w


def kinds(msgs: list[Msg]) -> list[str]:
    return [k.decode() for k, _ in msgs]


def data_rows(msgs: list[Msg]) -> list[str]:
    """The single text column of each DataRow."""
    out = []
    for kind, body in msgs:
        if kind == b"D":
            (n,) = struct.unpack("!h", body[:2])
            assert n == 1
            (length,) = struct.unpack("!i", body[2:6])
            out.append(body[6 : 6 + length].decode())
    return out


def tags(msgs: list[Msg]) -> list[str]:
    return [body.rstrip(b"\0").decode() for kind, body in msgs if kind == b"C"]


# -- fixtures --------------------------------------------------------------------------------------

TABLE_DDL = "CREATE TABLE otel_logs_and_spans (id text, project_id text, timestamp timestamptz, name text)"


@pytest.fixture(scope="module")
def pg() -> Iterator[Target]:
    with PgServer() as cluster:
        target = Target("postgresql", cluster.port, None)
        w = target.login()
        assert kinds(w.exchange(query(TABLE_DDL)))[-2:] == ["C", "Z"]
        w.close()
        yield target


@pytest.fixture(scope="module")
def tf(server: TimeFusionServer) -> Target:  # noqa: F811
    return Target("timefusion", server.port, server.password)


@pytest.fixture(params=["timefusion", "postgresql"])
def target(request: pytest.FixtureRequest) -> Target:
    return request.getfixturevalue("tf" if request.param == "timefusion" else "pg")


# -- startup ---------------------------------------------------------------------------------------


def test_ssl_request_is_declined_then_startup_works(target: Target) -> None:
    w = Wire(target.port)
    w.send(request_packet(SSL_REQUEST))
    assert w.read_byte() == b"N"
    w.send(startup_packet({"user": target.user, "database": "postgres"}))
    msgs = w.authenticate(target.user, target.password)
    assert kinds(msgs)[-1] == "Z"
    assert kinds(w.exchange(query("SELECT 1"))) == ["T", "D", "C", "Z"]
    w.close()


def test_gssenc_then_ssl_requests_are_declined(tf: Target) -> None:
    # (TimeFusion only: Debian's PostgreSQL is built with GSSAPI and answers 'G'; 'N' is as valid)
    w = Wire(tf.port)
    w.send(request_packet(GSSENC_REQUEST))
    assert w.read_byte() == b"N"
    w.send(request_packet(SSL_REQUEST))
    assert w.read_byte() == b"N"
    w.send(startup_packet({"user": tf.user, "database": "postgres"}))
    assert kinds(w.authenticate(tf.user, tf.password))[-1] == "Z"
    w.close()


def test_protocol_3_2_with_unknown_option_is_negotiated(target: Target) -> None:
    w, msgs = target.startup(PROTOCOL_3_2, **{"_pq_.foo": "bar"})
    kind, body = msgs[0]
    assert kind == b"v"
    (_, count) = struct.unpack("!ii", body[:8])
    assert count == 1
    assert body[8:] == b"_pq_.foo\0"
    assert msgs[1][0] == b"R"  # then authentication goes on as usual
    assert kinds(msgs)[-1] == "Z"
    assert data_rows(w.exchange(query("SELECT 'ok'"))) == ["ok"]
    w.close()


def test_negotiate_protocol_version_matches_postgresql(
    tf: Target,
    pg: Target,
    server: TimeFusionServer,  # noqa: F811
) -> None:
    answers = {}
    for t in (tf, pg):
        w, msgs = t.startup(PROTOCOL_3_2, **{"_pq_.foo": "bar"})
        answers[t.name] = msgs[0]
        w.close()
    assert answers["postgresql"] == (b"v", struct.pack("!ii", PROTOCOL_3_0, 1) + b"_pq_.foo\0")
    assert answers["timefusion"] == answers["postgresql"]
    with psycopg.connect(server.dsn + " max_protocol_version=3.2") as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_cancel_request_for_unknown_backend_closes_quietly(target: Target) -> None:
    w = Wire(target.port)
    w.send(request_packet(CANCEL_REQUEST, struct.pack("!ii", 12345, 67890)))
    assert w.until_closed() == []
    w.close()
    w = target.login()  # the server is fine
    assert data_rows(w.exchange(query("SELECT 'still here'"))) == ["still here"]
    w.close()


# -- simple and extended query ---------------------------------------------------------------------


@pytest.mark.parametrize("sql", ["", "   ", ";", "-- only a comment"])
def test_empty_query(target: Target, sql: str) -> None:
    w = target.login()
    assert w.exchange(query(sql)) == [(b"I", b""), (b"Z", b"I")]
    w.close()


def test_empty_query_extended(target: Target) -> None:
    w = target.login()
    msgs = w.exchange(parse("") + bind() + describe(b"P") + execute() + SYNC)
    assert kinds(msgs) == ["1", "2", "n", "I", "Z"]
    w.close()


def test_simple_query_stops_at_the_first_error(target: Target) -> None:
    w = target.login()
    msgs = w.exchange(query("SELECT 'a'; SELECT * FROM no_such_table; SELECT 'c'"))
    assert kinds(msgs) == ["T", "D", "C", "E", "Z"]
    assert data_rows(msgs) == ["a"]
    assert fields(msgs[3][1])["C"] == "42P01"
    w.close()


def test_syntax_error_anywhere_in_a_simple_query_runs_nothing(tf: Target, pg: Target) -> None:
    answers = {}
    for t in (tf, pg):
        w = t.login()
        answers[t.name] = kinds(w.exchange(query("SELECT 'a'; SELEC 'b'; SELECT 'c'")))
        w.close()
    assert answers["postgresql"] == ["E", "Z"]
    assert answers["timefusion"] == answers["postgresql"]


def test_describe_insert_gives_no_data(target: Target) -> None:
    w = target.login()
    sql = (
        "INSERT INTO otel_logs_and_spans (id, project_id, timestamp) "
        "VALUES ($1, 'protocol-test', '2025-01-17 14:00:00+00')"
    )
    msgs = w.exchange(parse(sql, "ins") + describe(b"S", "ins") + SYNC)
    assert kinds(msgs) == ["1", "t", "n", "Z"]
    assert msgs[1][1] == struct.pack("!hi", 1, 25)  # one parameter, text (the id column)
    msgs = w.exchange(bind("p", "ins", (b"describe-insert-1",)) + describe(b"P", "p") + execute("p") + SYNC)
    assert kinds(msgs) == ["2", "n", "C", "Z"]
    assert tags(msgs) == ["INSERT 0 1"]
    w.close()


FIVE = "SELECT x FROM (VALUES (1), (2), (3), (4), (5)) AS t(x) ORDER BY x"
FOUR = "SELECT x FROM (VALUES (1), (2), (3), (4)) AS t(x) ORDER BY x"


@pytest.mark.parametrize(
    ("sql", "limits", "expected", "rows"),
    [
        (FIVE, (2, 2, 2), ["1", "2", "D", "D", "s", "D", "D", "s", "D", "C", "Z"], 5),
        (FIVE, (2, 0), ["1", "2", "D", "D", "s", "D", "D", "D", "C", "Z"], 5),
        (FOUR, (2, 2, 2), ["1", "2", "D", "D", "s", "D", "D", "s", "C", "Z"], 4),
        (FIVE, (5,), ["1", "2", "D", "D", "D", "D", "D", "s", "Z"], 5),
        (FIVE, (6,), ["1", "2", "D", "D", "D", "D", "D", "C", "Z"], 5),
        (FIVE, (1, 1, 1, 1, 1, 1), ["1", "2"] + ["D", "s"] * 5 + ["C", "Z"], 5),
    ],
    ids=["2-2-2", "2-all", "exact-end", "limit-equals-rows", "limit-above-rows", "one-by-one"],
)
def test_execute_with_max_rows_suspends_the_portal(
    target: Target, sql: str, limits: tuple[int, ...], expected: list[str], rows: int
) -> None:
    w = target.login()
    msgs = w.exchange(parse(sql) + bind() + b"".join(execute(max_rows=n) for n in limits) + SYNC)
    assert kinds(msgs) == expected
    assert data_rows(msgs) == [str(i) for i in range(1, rows + 1)]  # all rows, in order, once
    w.close()


def test_named_portals_are_independent(target: Target) -> None:
    w = target.login()
    msgs = w.exchange(
        parse(FIVE, "s")
        + bind("a", "s")
        + bind("b", "s")
        + execute("a", 2)
        + execute("b", 3)
        + execute("a", 0)
        + execute("b", 0)
        + SYNC
    )
    assert kinds(msgs) == [
        "1",
        "2",
        "2",
        "D",
        "D",
        "s",
        "D",
        "D",
        "D",
        "s",
        "D",
        "D",
        "D",
        "C",
        "D",
        "D",
        "C",
        "Z",
    ]
    assert data_rows(msgs) == ["1", "2", "1", "2", "3", "3", "4", "5", "4", "5"]
    w.close()


def test_command_tag_after_suspension_matches_postgresql(tf: Target, pg: Target) -> None:
    answers: dict[str, list[list[str]]] = {}
    for t in (tf, pg):
        w = t.login()
        answers[t.name] = [
            tags(w.exchange(parse(sql) + bind() + b"".join(execute(max_rows=n) for n in limits) + SYNC))
            for sql, limits in ((FIVE, (2, 2, 2)), (FIVE, (2, 0)), (FOUR, (2, 2, 2)))
        ]
        w.close()
    assert answers["postgresql"] == [["SELECT 1"], ["SELECT 3"], ["SELECT 0"]]
    assert answers["timefusion"] == answers["postgresql"]


def test_error_in_extended_batch_skips_to_sync(target: Target) -> None:
    w = target.login()
    batch = (
        parse("SELECT 'first'", "ok")
        + bind("", "ok")
        + execute()
        + bind("", "no_such_statement")  # error here
        + execute()
        + parse("SELECT 'skipped'")
        + bind()
        + describe(b"P")
        + execute()
        + SYNC
    )
    msgs = w.exchange(batch)
    assert kinds(msgs) == ["1", "2", "D", "C", "E", "Z"]
    assert fields(msgs[4][1])["C"] == "26000"
    assert data_rows(msgs) == ["first"]
    # the statement prepared before the error is still there; the connection is fine
    msgs = w.exchange(bind("", "ok") + execute() + SYNC)
    assert kinds(msgs) == ["2", "D", "C", "Z"]
    msgs = w.exchange(parse("SELEC 1") + bind() + execute() + parse("SELECT 2") + bind() + execute() + SYNC)
    assert kinds(msgs)[-2:] == ["E", "Z"] and "D" not in kinds(msgs)
    assert fields(msgs[-2][1])["C"] == "42601"
    assert data_rows(w.exchange(query("SELECT 'after'"))) == ["after"]
    w.close()


def test_error_in_transaction_block(target: Target) -> None:
    w = target.login()
    assert w.exchange(query("BEGIN"))[-1] == (b"Z", b"T")
    msgs = w.exchange(parse("SELECT 'x'") + bind("", "no_such_statement") + execute() + SYNC)
    assert kinds(msgs)[-2:] == ["E", "Z"] and msgs[-1] == (b"Z", b"E")
    msgs = w.exchange(query("SELECT 1"))
    assert fields(msgs[0][1])["C"] == "25P02" and msgs[-1] == (b"Z", b"E")
    msgs = w.exchange(query("ROLLBACK"))
    assert tags(msgs) == ["ROLLBACK"] and msgs[-1] == (b"Z", b"I")
    w.close()


def test_syntax_error_is_reported_at_parse(tf: Target, pg: Target) -> None:
    answers = {}
    for t in (tf, pg):
        w = t.login()
        msgs = w.exchange(parse("SELEC 1", "bad") + SYNC)
        answers[t.name] = (kinds(msgs), fields(msgs[0][1]).get("C") if msgs[0][0] == b"E" else None)
        w.close()
    assert answers["postgresql"] == (["E", "Z"], "42601")
    assert answers["timefusion"] == answers["postgresql"]


def test_invalid_utf8_query_is_followed_by_ready_for_query(tf: Target) -> None:
    w = tf.login()
    w.sock.settimeout(1)
    w.send(message(b"Q", b"SELECT '\xff'\0"))
    try:
        msgs = w.until_ready()
    except TimeoutError:
        pytest.fail("no ReadyForQuery after the error")
    assert kinds(msgs) == ["E", "Z"]
    assert fields(msgs[0][1])["C"] == "22021"
    w.close()


def test_invalid_utf8_query_on_postgresql(pg: Target) -> None:
    """What the test above expects, as PostgreSQL does it."""
    w = pg.login()
    msgs = w.exchange(message(b"Q", b"SELECT '\xff'\0"))
    assert kinds(msgs) == ["E", "Z"] and fields(msgs[0][1])["C"] == "22021"
    w.close()


def test_negative_parameter_length_other_than_minus_one_is_rejected(tf: Target) -> None:
    w = tf.login()
    bad_bind = message(b"B", b"\0\0" + struct.pack("!hhi", 0, 1, -5) + struct.pack("!h", 0))
    w.send(parse("SELECT $1::text") + bad_bind + execute() + SYNC)
    msgs = w.until_ready()
    assert kinds(msgs) == ["1", "E", "Z"]
    assert fields(msgs[1][1])["C"] == "08P01"
    w.close()


# -- malformed input ends only that connection -----------------------------------------------------

MALFORMED = {
    "length-below-4": b"Q" + struct.pack("!i", 2),
    "negative-length": b"P" + struct.pack("!i", -1),
    "unknown-type": message(b"W", b"abc"),
}


@pytest.mark.parametrize("data", list(MALFORMED.values()), ids=list(MALFORMED))
def test_malformed_message_ends_only_that_connection(target: Target, data: bytes) -> None:
    bystander = target.login()
    w = target.login()
    w.send(data)
    w.sock.settimeout(5)
    msgs = w.until_closed()
    w.close()
    assert all(k == b"E" for k, _ in msgs), msgs
    for _, body in msgs:
        f = fields(body)
        assert (f["S"], f["C"]) == ("FATAL", "08P01")
    assert data_rows(bystander.exchange(query("SELECT 'bystander'"))) == ["bystander"]
    bystander.close()
    fresh = target.login()
    assert data_rows(fresh.exchange(query("SELECT 'fresh'"))) == ["fresh"]
    fresh.close()


OVERSIZED = {
    "unknown-type": b"W" + struct.pack("!i", 0x3FFFFFFF) + b"x" * 1000,
    "sync": b"S" + struct.pack("!i", 0x3FFFFFFF) + b"x" * 1000,
    # a StartupMessage after login: type byte 0, then a length made of the packet's next bytes
    "startup-after-login": startup_packet({"user": "postgres", "database": "postgres"}),
}


@pytest.mark.parametrize("data", list(OVERSIZED.values()), ids=list(OVERSIZED))
def test_oversized_message_is_rejected_before_its_body(tf: Target, data: bytes) -> None:
    w = tf.login()
    w.sock.settimeout(1)
    w.send(data)
    try:
        msgs = w.until_closed()
    except TimeoutError:
        pytest.fail("the server is still waiting for the body")
    finally:
        w.close()
    assert [(fields(b)["S"], fields(b)["C"]) for _, b in msgs] in ([], [("FATAL", "08P01")])


@pytest.mark.parametrize("data", list(OVERSIZED.values()), ids=list(OVERSIZED))
def test_oversized_message_on_postgresql(pg: Target, data: bytes) -> None:
    """What the test above expects, as PostgreSQL does it."""
    w = pg.login()
    w.sock.settimeout(1)
    w.send(data)
    msgs = w.until_closed()
    w.close()
    assert [(fields(b)["S"], fields(b)["C"]) for _, b in msgs] in ([], [("FATAL", "08P01")])


def test_terminate_closes_the_connection(target: Target) -> None:
    w = target.login()
    w.send(TERMINATE)
    assert w.until_closed() == []
    w.close()


# -- random bytes after a valid startup ------------------------------------------------------------

TYPES = b"QPBDECSHXFdcfpW\0"


@st.composite
def garbage(draw: st.DrawFn) -> bytes:
    """Bytes that look a little like frontend messages: a type, a length that may lie, a payload."""
    parts = []
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from([bytes([t]) for t in TYPES]) | st.binary(min_size=1, max_size=1))
        body = draw(st.binary(max_size=64))
        length = draw(
            st.sampled_from(
                [len(body) + 4, len(body) + 4, 0, 3, 4, len(body) + 5, len(body) + 100, -1, 1 << 30]
            )
            | st.integers(-(1 << 31), (1 << 31) - 1)
        )
        parts.append(kind + struct.pack("!i", length) + body)
    return draw(st.sampled_from([b"".join(parts), draw(st.binary(min_size=1, max_size=64))]))


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True)
@given(data=garbage())
def test_random_bytes_never_hurt_the_server(tf: Target, server: TimeFusionServer, data: bytes) -> None:  # noqa: F811
    w = tf.login()
    w.send(data)
    with contextlib.suppress(OSError):
        w.sock.shutdown(socket.SHUT_WR)  # end of input: the server must give up on this connection
    w.sock.settimeout(10)
    msgs = w.until_closed()
    w.close()
    for kind, body in msgs:
        if kind == b"E":
            assert fields(body)["C"] != "XX000", (data, fields(body))  # no internal errors
    assert server.proc is not None and server.proc.poll() is None
    fresh = tf.login()
    assert data_rows(fresh.exchange(query("SELECT 'alive'"))) == ["alive"]
    fresh.close()


def test_server_log_has_no_tracebacks(server: TimeFusionServer) -> None:  # noqa: F811
    """Runs last: nothing above (malformed input, random bytes) made a connection handler crash."""
    assert server.proc is not None and server.proc.poll() is None
    log = server.log
    assert "Traceback" not in log, log[-5000:]
    assert not re.search(r"connection \d+ failed", log), log[-5000:]
