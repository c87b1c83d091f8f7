"""The PostgreSQL wire server: accepts connections, caps them, routes cancel requests, drains on stop.

It listens before the database has finished WAL replay so that clients get SQLSTATE 57P03 ("the
database system is starting up") instead of a refused connection; `db` is set once ready.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import scramp

from timefusion.protocol.pgwire.connection import Connection
from timefusion.protocol.pgwire.errors import QUERY_CANCELED, PgError

if TYPE_CHECKING:
    from timefusion.app import TimeFusion

log = logging.getLogger(__name__)


class PgServer:
    def __init__(
        self,
        *,
        user: str,
        password: str | None,
        host: str = "0.0.0.0",
        port: int = 5432,
        max_connections: int = 500,
        auth_method: str = "scram-sha-256",
        workers: int = 32,
    ) -> None:
        self.user = user
        self.password = password
        self.host = host
        self.port = port
        self.max_connections = max_connections
        self.auth_method = auth_method
        self.db: TimeFusion | None = None
        self.projects: frozenset[str] | None = None
        self.json_column_names: frozenset[str] = frozenset()
        self.stopping = False
        self.connections: dict[int, Connection] = {}
        self._pids = itertools.count(os.getpid() * 1000 % 2_000_000_000 + 1)
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="pgwire")
        self._server: asyncio.base_events.Server | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._scram: tuple[Any, ...] | None = None

    def attach(self, db: TimeFusion) -> None:
        """The database finished starting: serve it."""
        self.json_column_names = frozenset(c for s in db.schemas.values() for c in s.json_columns)
        self.db = db

    def scram_auth_info(self, mechanism: scramp.ScramMechanism) -> tuple[Any, ...]:
        if self._scram is None:  # deriving the keys costs 4096 PBKDF2 rounds: do it once
            assert self.password is not None
            self._scram = mechanism.make_auth_info(self.password, iteration_count=4096)
        return self._scram

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._accept, self.host, self.port, limit=1 << 20, backlog=1024
        )
        sock = self._server.sockets[0].getsockname()
        self.port = sock[1]
        log.info("PostgreSQL wire protocol listening on %s:%d", sock[0], sock[1])

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        pid = next(self._pids)
        conn = Connection(self, reader, writer, pid, self._executor)
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            await conn.run()
        except asyncio.CancelledError:
            pass  # shutdown closed this connection after its grace period
        finally:
            self.connections.pop(pid, None)
            if task is not None:
                self._tasks.discard(task)

    def admit(self, conn: Connection) -> bool:
        if len(self.connections) >= self.max_connections:
            return False
        self.connections[conn.pid] = conn
        return True

    def cancel(self, pid: int, secret: int) -> None:
        conn = self.connections.get(pid)
        if conn is not None and conn.secret == secret:
            conn.request_cancel(PgError(QUERY_CANCELED, "canceling statement due to user request"))

    async def stop(self, grace_secs: float) -> None:
        """Stop accepting; let running statements finish for `grace_secs`; close everything."""
        self.stopping = True
        if self._server is not None:
            self._server.close()
        deadline = asyncio.get_running_loop().time() + grace_secs
        while any(c.busy for c in self.connections.values()) and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.05)
        shutdown = PgError("57P01", "terminating connection due to administrator command")
        for conn in list(self.connections.values()):
            conn.request_cancel(shutdown)
            if not conn.busy:
                await conn.fatal(PgError("57P01", "terminating connection due to administrator command"))
                conn.writer.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._executor.shutdown(wait=False, cancel_futures=True)
