"""Run the real `timefusion serve` as a subprocess for wire-protocol tests.

:class:`TimeFusionServer` starts ``python -m timefusion.cli serve`` on 127.0.0.1 and a free port,
with a temporary data directory, a random password and an environment scrubbed of inherited
``PGWIRE_*``, ``TIMEFUSION_*`` and ``AWS_*`` variables (so a developer's settings or credentials
never leak into a test). :meth:`~TimeFusionServer.start` returns once a client can log in (the
server answers SQLSTATE 57P03 while it replays its WAL); :meth:`~TimeFusionServer.stop` signals it
and returns ``(returncode, log)``; :meth:`~TimeFusionServer.restart` stops it and serves the same
data directory again.

Fixtures (import them into a test module; ``tests/conftest.py`` is not used)::

    from pgwire_server import fresh_server, server  # noqa: F401

``server`` is module-scoped (a module can set ``PGWIRE_SERVER_ENV = {...}`` to add settings, e.g.
``{"TIMEFUSION_FLUSH_INTERVAL_SECS": "1"}``); ``fresh_server`` gives a test its own server.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import psycopg
import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRUBBED_PREFIXES = ("PGWIRE_", "TIMEFUSION_", "AWS_", "GRPC_")
STARTING_UP = "57P03"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class TimeFusionServer:
    """One `timefusion serve` process (see the module docstring)."""

    user = "postgres"

    def __init__(
        self,
        data_dir: Path | None = None,
        flush_interval_secs: float = 3600.0,
        env: Mapping[str, str] | None = None,
        password: str | None = None,
    ) -> None:
        self._tmp = Path(tempfile.mkdtemp(prefix="tf-pgwire-"))
        self.data_dir = Path(data_dir) if data_dir is not None else self._tmp / "data"
        self.password = password or secrets.token_urlsafe(12)
        self.flush_interval_secs = flush_interval_secs
        self.extra_env = dict(env or {})
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self._log_path: Path | None = None

    # -- addresses ---------------------------------------------------------------------------------
    @property
    def dsn(self) -> str:
        return f"host=127.0.0.1 port={self.port} user={self.user} password={self.password} dbname=postgres"

    @property
    def url(self) -> str:
        return f"postgresql://{self.user}:{self.password}@127.0.0.1:{self.port}/postgres"

    def connect(self, **kwargs: object) -> psycopg.Connection:
        kwargs.setdefault("autocommit", True)
        return psycopg.connect(self.dsn, **kwargs)  # type: ignore[arg-type]

    def environment(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(SCRUBBED_PREFIXES)}
        env.update(
            {
                "TIMEFUSION_DATA_DIR": str(self.data_dir),
                "PGWIRE_PORT": str(self.port),
                "TIMEFUSION_PGWIRE_HOST": "127.0.0.1",
                "PGWIRE_PASSWORD": self.password,
                "TIMEFUSION_FLUSH_INTERVAL_SECS": str(self.flush_interval_secs),
                "TIMEFUSION_SHUTDOWN_GRACE_SECS": "5",
                # Flight and OTLP listen on fixed default ports; tests that use them enable them
                # with free ports, so parallel servers never collide.
                "TIMEFUSION_FLIGHT_ENABLED": "false",
                "TIMEFUSION_OTLP_ENABLED": "false",
                "PYTHONPATH": str(ROOT),
            }
        )
        env.update(self.extra_env)
        return env

    # -- lifecycle ---------------------------------------------------------------------------------
    @property
    def log(self) -> str:
        if self._log_path is None or not self._log_path.exists():
            return ""
        return self._log_path.read_text(errors="replace")

    def start(self, timeout: float = 60.0) -> TimeFusionServer:
        assert self.proc is None, "already running"
        self.starts += 1
        self.port = free_port()
        self._log_path = self._tmp / f"server-{self.starts}.log"
        with open(self._log_path, "wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "timefusion.cli", "serve"],
                env=self.environment(),
                cwd=self._tmp,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + timeout
        while True:
            rc = self.proc.poll()
            if rc is not None:
                self.proc = None
                raise RuntimeError(f"timefusion serve exited with code {rc} while starting:\n{self.log}")
            try:
                with psycopg.connect(self.dsn, connect_timeout=5) as conn:
                    conn.execute("SELECT 1")
                return self
            except psycopg.OperationalError as e:
                # Refused (not listening yet) or 57P03 (listening, WAL replay still running). libpq
                # gives psycopg no SQLSTATE for a failed connection, so the message tells them apart.
                text = str(e)
                waiting = e.sqlstate == STARTING_UP or any(
                    s in text for s in ("Connection refused", "the database system is starting up")
                )
                if not waiting:
                    self.stop(signal.SIGKILL)
                    raise
            if time.monotonic() > deadline:
                _, log = self.stop(signal.SIGKILL)
                raise RuntimeError(f"timefusion serve did not accept connections in {timeout} s:\n{log}")
            time.sleep(0.05)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60.0) -> tuple[int | None, str]:
        """Send `sig`, wait for the exit; returns (returncode, the log of this run)."""
        proc = self.proc
        if proc is None:
            return None, self.log
        if proc.poll() is None:
            proc.send_signal(sig)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.proc = None
        return proc.returncode, self.log

    def restart(self, sig: int = signal.SIGTERM) -> tuple[int | None, str]:
        """Stop (returning what :meth:`stop` returns) and serve the same data directory again."""
        result = self.stop(sig)
        self.start()
        return result

    def close(self) -> None:
        self.stop(signal.SIGKILL if self.proc is not None and self.proc.poll() is None else signal.SIGTERM)
        shutil.rmtree(self._tmp, ignore_errors=True)

    def __enter__(self) -> TimeFusionServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextlib.contextmanager
def running_server(**kwargs: object) -> Iterator[TimeFusionServer]:
    srv = TimeFusionServer(**kwargs)  # type: ignore[arg-type]
    try:
        yield srv.start()
    finally:
        srv.close()


@pytest.fixture(scope="module")
def server(request: pytest.FixtureRequest) -> Iterator[TimeFusionServer]:
    """A server shared by the tests of one module; `PGWIRE_SERVER_ENV` in the module adds settings."""
    env = dict(getattr(request.module, "PGWIRE_SERVER_ENV", {}))
    flush = float(env.pop("TIMEFUSION_FLUSH_INTERVAL_SECS", 3600.0))
    with running_server(flush_interval_secs=flush, env=env) as srv:
        yield srv


@pytest.fixture
def fresh_server() -> Iterator[TimeFusionServer]:
    """A server of the test's own (for tests that stop it or need an empty database)."""
    with running_server() as srv:
        yield srv
