"""OTLP decoding in worker processes, so that it is not bound to the one core the GIL allows.

Decoding (protobuf → Arrow columns) is pure Python work of ~25 µs per span and the rest of an
export (HTTP, WAL append, buffer insert) ~8 µs, so with decoding in the server process one core
caps OTLP at ~30k spans/s whatever the machine. `DecodePool` runs `decode_body` — the same function
the server runs in-process when there is no pool — in `spawn`ed worker processes (DESIGN.md: never
`fork` a process that imported deltalake; the workers do not import it). A request's body goes to a
worker and comes back as one Arrow record batch (pickled as Arrow IPC); the durable part (WAL
append) stays in the server process, in the one ingest entry point.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from timefusion.protocol.otlp.decode import Decoded, Decoder, parse_json, parse_protobuf

log = logging.getLogger(__name__)

_decoder: Decoder | None = None  # one per worker process, with its own attribute caches


def decode_body(decoder: Decoder, kind: str, body: bytes, json: bool, project: str | None) -> Decoded:
    """Parse and decode one request body; its columns come back as one `record_batch`."""
    message = parse_json(kind, body) if json else parse_protobuf(kind, body)
    decoded = decoder.decode(kind, message, project or None)
    decoded.record_batch = decoded.batch() if decoded.rows else None
    decoded.columns = {}
    return decoded


def _init(server_pid: int, project_attribute: str, default_project: str) -> None:
    global _decoder
    # The server's pid comes from the server: a worker still importing when the server is killed
    # would read its *new* parent from os.getppid() here and never notice it was orphaned.
    threading.Thread(target=_exit_with_parent, args=(server_pid,), daemon=True, name="parent-watch").start()
    from timefusion.schema import load_tables

    _decoder = Decoder(dict(load_tables()), project_attribute, default_project)


def _exit_with_parent(parent: int) -> None:
    """End this worker once the server is gone: a killed server (SIGKILL, out of memory) cannot shut
    its pool down, and a worker blocked on its task queue would otherwise live on forever."""
    while True:
        if os.getppid() != parent:
            os._exit(0)
        time.sleep(1.0)


def _work(kind: str, body: bytes, json: bool, project: str | None) -> Decoded:
    assert _decoder is not None
    return decode_body(_decoder, kind, body, json, project)


def _ready() -> int:
    return os.getpid()


def default_workers() -> int:
    """Worker processes for this machine: one per core (none on a single core: no gain)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return 0 if cores < 2 else min(cores, 8)


class DecodePool:
    """A pool of decoding processes; `decode` blocks the calling thread until the result is back."""

    def __init__(self, workers: int, project_attribute: str, default_project: str) -> None:
        self.workers = workers
        self._args = (project_attribute, default_project)
        self._lock = threading.Lock()
        self._pool = self._new()

    def _new(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(
            self.workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_init,
            initargs=(os.getpid(), *self._args),
        )

    def warm(self) -> None:
        """Start every worker now (each takes ~1 s to import), not on the first requests."""
        futures = [self._pool.submit(_ready) for _ in range(self.workers)]
        for f in futures:
            f.result()

    def decode(self, kind: str, body: bytes, json: bool, project: str | None) -> Decoded:
        pool = self._pool
        try:
            return pool.submit(_work, kind, body, json, project).result()
        except BrokenProcessPool:
            with self._lock:  # a worker died (killed, out of memory): replace the pool once
                if self._pool is pool:
                    log.error("an OTLP decoding process died; starting new ones")
                    self._pool = self._new()
            raise

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


__all__ = ["DecodePool", "decode_body", "default_workers"]
