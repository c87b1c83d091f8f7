"""A throwaway PostgreSQL cluster and a tiny protocol-v3 client, for byte-for-byte wire comparisons.

Tests of the pgwire encoder compare our DataRow bytes with what a real PostgreSQL sends for the same
values, so they need a server and a client that returns raw message bytes (drivers decode them).
:class:`PgServer` runs ``initdb`` and ``postgres`` from ``/usr/lib/postgresql/*/bin`` (Debian's
layout) on 127.0.0.1 and a free port with trust authentication, as the ``postgres`` OS user when the
tests run as root (the server refuses to run as root). :class:`RawClient` speaks just enough of the
extended query protocol to send typed parameters and get back the exact RowDescription and DataRow
bytes in text or binary format.

Missing binaries are an error, never a skip: the encoder's correctness rests on this comparison.
"""

from __future__ import annotations

import atexit
import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

NOT_FOUND = "PostgreSQL server binaries not found: run `apt-get install -y postgresql` (make test does this)"

# Session settings that fix PostgreSQL's output formats to the ones our server announces.
SESSION = {
    "TimeZone": "UTC",
    "DateStyle": "ISO, MDY",
    "IntervalStyle": "postgres",
    "extra_float_digits": "1",
    "bytea_output": "hex",
    "client_encoding": "UTF8",
}


def find_bin_dir() -> Path:
    """The newest ``/usr/lib/postgresql/<major>/bin`` holding ``initdb`` and ``postgres``."""
    found = []
    for initdb in glob.glob("/usr/lib/postgresql/*/bin/initdb"):
        bin_dir = Path(initdb).parent
        if (bin_dir / "postgres").exists():
            with contextlib.suppress(ValueError):
                found.append((float(bin_dir.parent.name), bin_dir))
    if not found:
        raise RuntimeError(NOT_FOUND)
    return max(found)[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PgServer:
    """Start with :meth:`start` (or use as a context manager); :meth:`stop` kills it and removes its files."""

    def __init__(self) -> None:
        self.bin_dir = find_bin_dir()
        self.version = self.bin_dir.parent.name
        self.port = 0
        self._tmp: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    def _user_kwargs(self) -> dict[str, object]:
        """Run server processes as the ``postgres`` OS user when we are root (postgres refuses root).

        ``Popen(user=…)`` switches user in the child itself, so the process we signal *is* postgres
        (a ``runuser`` wrapper would not pass SIGINT on and would leave an orphaned server)."""
        if os.geteuid() != 0:
            return {}
        try:
            pw = pwd.getpwnam("postgres")
        except KeyError:
            raise RuntimeError(f"{NOT_FOUND} (there is no 'postgres' OS user)") from None
        return {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": [], "env": {"PATH": "/usr/bin:/bin"}}

    def start(self, timeout: float = 30.0) -> PgServer:
        self._tmp = Path(tempfile.mkdtemp(prefix="tf-pg-"))
        data, sock = self._tmp / "data", self._tmp / "sock"
        data.mkdir()
        sock.mkdir()
        as_user = self._user_kwargs()
        if as_user:
            for p in (self._tmp, data, sock):
                os.chown(p, as_user["user"], as_user["group"])  # type: ignore[arg-type]
        subprocess.run(
            (
                [
                    *(str(self.bin_dir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres"),
                    *("-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions"),
                ]
            ),
            check=True,
            capture_output=True,
            cwd=self._tmp,
            **as_user,  # type: ignore[arg-type]
        )
        self.port = _free_port()
        self._proc = subprocess.Popen(
            (
                [
                    *(str(self.bin_dir / "postgres"), "-D", str(data), "-p", str(self.port), "-k", str(sock)),
                    *("-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "full_page_writes=off"),
                    *(
                        "-c",
                        "synchronous_commit=off",
                        "-c",
                        "shared_buffers=32MB",
                        "-c",
                        "max_connections=10",
                    ),
                ]
            ),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            cwd=self._tmp,
            **as_user,  # type: ignore[arg-type]
        )
        atexit.register(self.stop)
        deadline = time.monotonic() + timeout
        while True:
            try:
                RawClient(self.port).close()
                return self
            except (OSError, PgError):
                if self._proc.poll() is not None:
                    err = self._proc.stderr.read().decode(errors="replace") if self._proc.stderr else ""
                    raise RuntimeError(f"postgres exited during start: {err}") from None
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError("postgres did not accept connections in time") from None
                time.sleep(0.05)

    def stop(self) -> None:
        if self._proc is not None:
            if self._proc.poll() is None:
                self._proc.send_signal(signal.SIGINT)  # fast shutdown
                try:
                    self._proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    self._proc.kill()
                    self._proc.wait()
            if self._proc.stderr:
                self._proc.stderr.close()
            self._proc = None
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    def __enter__(self) -> PgServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class PgError(Exception):
    """An ErrorResponse from the server (fields: severity, SQLSTATE code, message)."""

    def __init__(self, fields: dict[str, str]) -> None:
        super().__init__(f"{fields.get('C', '?')}: {fields.get('M', '')}")
        self.fields = fields


@dataclass
class Result:
    """Raw message bytes of one query: RowDescription ('T') and all DataRows ('D') concatenated."""

    row_description: bytes
    data_rows: bytes


class RawClient:
    """A minimal PostgreSQL v3 client that returns message bytes untouched."""

    def __init__(self, port: int, host: str = "127.0.0.1", settings: dict[str, str] | None = None) -> None:
        self.sock = socket.create_connection((host, port), timeout=30)
        self._buf = b""
        params = {"user": "postgres", "database": "postgres", **SESSION, **(settings or {})}
        body = struct.pack("!i", 196608) + b"".join(
            k.encode() + b"\0" + v.encode() + b"\0" for k, v in params.items()
        )
        self.sock.sendall(struct.pack("!i", len(body) + 5) + body + b"\0")
        self.parameters: dict[str, str] = {}
        for kind, payload in self._until_ready():
            if kind == b"R" and struct.unpack("!i", payload[:4])[0] != 0:
                raise PgError({"M": "only trust authentication is supported by the test client"})
            if kind == b"S":
                name, value, _ = payload.split(b"\0")
                self.parameters[name.decode()] = value.decode()

    def _read_message(self) -> tuple[bytes, bytes, bytes]:
        while True:
            if len(self._buf) >= 5:
                (length,) = struct.unpack("!i", self._buf[1:5])
                if len(self._buf) >= length + 1:
                    raw = self._buf[: length + 1]
                    self._buf = self._buf[length + 1 :]
                    return raw[:1], raw[5:], raw
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise OSError("server closed the connection")
            self._buf += chunk

    def _until_ready(self) -> Iterator[tuple[bytes, bytes]]:
        error: PgError | None = None
        while True:
            kind, payload, _ = self._read_message()
            if kind == b"E":
                fields = {}
                for part in payload.split(b"\0"):
                    if part:
                        fields[part[:1].decode()] = part[1:].decode(errors="replace")
                error = PgError(fields)
            elif kind == b"Z":
                if error is not None:
                    raise error
                return
            else:
                yield kind, payload

    def query(
        self,
        sql: str,
        params: Sequence[tuple[int, int, bytes | None]] = (),
        result_format: int | Sequence[int] = 0,
    ) -> Result:
        """Run ``sql`` with parameters given as (type OID, format code, bytes or None for NULL) and
        result columns in ``result_format`` (one code for all, or one per column); returns the raw
        RowDescription and DataRow bytes."""

        def msg(kind: bytes, body: bytes) -> bytes:
            return kind + struct.pack("!i", len(body) + 4) + body

        parse = sql.encode() + b"\0"
        parse = b"\0" + parse + struct.pack(f"!h{len(params)}i", len(params), *(p[0] for p in params))
        bind = [b"\0\0", struct.pack(f"!h{len(params)}h", len(params), *(p[1] for p in params))]
        bind.append(struct.pack("!h", len(params)))
        for _, _, value in params:
            bind.append(struct.pack("!i", -1) if value is None else struct.pack("!i", len(value)) + value)
        codes = [result_format] if isinstance(result_format, int) else list(result_format)
        bind.append(struct.pack(f"!h{len(codes)}h", len(codes), *codes))
        self.sock.sendall(
            msg(b"P", parse)
            + msg(b"B", b"".join(bind))
            + msg(b"D", b"P\0")
            + msg(b"E", b"\0" + struct.pack("!i", 0))
            + msg(b"S", b"")
        )
        description = b""
        rows: list[bytes] = []
        error: PgError | None = None
        while True:
            kind, payload, raw = self._read_message()
            if kind == b"T":
                description = raw
            elif kind == b"D":
                rows.append(raw)
            elif kind == b"E":
                fields = {p[:1].decode(): p[1:].decode(errors="replace") for p in payload.split(b"\0") if p}
                error = PgError(fields)
            elif kind == b"Z":
                if error is not None:
                    raise error
                return Result(description, b"".join(rows))

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.sendall(b"X\0\0\0\4")
        self.sock.close()
