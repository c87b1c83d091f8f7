"""Durable, group-committing write-ahead log of Arrow record batches.

Why: an ingest request is acknowledged only once its rows would survive a crash. Rows go first to this
log, then into the in-memory buffer (via the ``apply`` callback), and much later into Delta Lake. After
the flusher has committed everything below some LSN to Delta it calls :meth:`Wal.release_up_to` and
whole segment files are deleted. On restart :meth:`Wal.replay` yields every record still in the log so
the buffer can be rebuilt.

How: callers serialise their batch (Arrow IPC stream) and compute most of its checksum in their own
thread, then hand the bytes to one background writer thread. The writer drains *all* pending appends,
assigns consecutive LSNs, writes the group with one ``os.writev`` on an ``O_APPEND`` descriptor and, in
``sync_each`` mode, makes it durable with ONE ``os.fsync`` per group (group commit). ``os.fsync`` is
used rather than ``os.fdatasync``: every append changes the file size, so fdatasync must journal the
same metadata and measured no faster here, and ``os.fsync`` is portable. Only then is ``apply`` called
for each record, in LSN order, and the waiting callers are woken.

Frame format (all integers little-endian)::

    offset  size  field
    0       4     MAGIC = b"TFW1"
    4       4     u32 payload_length        (> 1 GiB is treated as corruption)
    8       4     u32 crc32                 zlib.crc32 over payload, then continued over the 8 lsn bytes
    12      8     u64 lsn
    20      n     payload = u16 table-name length | utf-8 table name | Arrow IPC stream of exactly one batch

The checksum covers the lsn and the payload; the payload is fed first so that the expensive part
(``zlib.crc32`` of a megabyte-sized payload) runs in the caller's thread, in parallel, before the LSN
is known; the writer thread only continues it over 8 bytes.

Directory layout::

    LOCK                      exclusive fcntl.flock while a Wal is open (holds the owner's pid)
    wal_id                    persistent uuid4 of this log
    lsn_floor                 lowest LSN the next append may use (survives deletion of every segment)
    <first_lsn:020d>.wal      segments; a segment holds records with first_lsn <= lsn < next segment's name
    quarantine/               bytes removed by recovery: <segment>.<offset>.tail / <segment>.<offset>.bad

Recovery: a damaged region is found by a checksum mismatch, an impossible length or LSN, or a payload that
does not decode; the scanner then resynchronises at the next MAGIC where a valid frame starts. Damage at
the end of the last segment (a torn write; nothing valid after it) is copied to ``quarantine/`` and
truncated with a ``logging.warning``. Damage followed by a valid record is copied to ``quarantine/``,
reported with ``logging.error`` and skipped; it is left in place (so it is reported on every restart
until the segment is released) and never silently dropped.

Fsync modes:

* ``sync_each``: an append returns after its group is fsynced and applied. Nothing acked is lost.
* ``ms``: an append returns once written and applied; the writer fsyncs at most ``fsync_interval_ms``
  after the first unsynced write (and on rotation and close), and not at all while idle. A crash can
  lose up to that interval of acknowledged appends.
* ``none``: never fsyncs; the OS decides. Also skips the directory fsyncs of segment creation/deletion.

Failure semantics: if a write or fsync fails, the callers of that group get the ``OSError``, ``apply``
is not called for them, a best-effort ``ftruncate`` removes the group's bytes, and every later append
raises :class:`WalFailedError` (an ``OSError``): after a failed fsync the state of the file is unknown
and a durable log must not acknowledge anything more. Restart the process (replay repairs the file). A
failed append's record is *indeterminate*: it normally is not replayed, but may be if the truncate did
not reach the disk. If ``apply`` raises for a record, that caller gets the exception; the record is
logged (durable per the fsync mode, and WILL be replayed after a restart) but was not applied; other
records are unaffected. ``apply`` must not call back into the Wal (that raises RuntimeError).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import errno
import fcntl
import logging
import os
import queue
import re
import struct
import threading
import time
import uuid
import zlib
from collections.abc import Callable, Generator, Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

__all__ = [
    "FSYNC_MODES",
    "MAGIC",
    "Wal",
    "WalClosedError",
    "WalFailedError",
    "WalLockedError",
    "WalRecord",
]

logger = logging.getLogger(__name__)

MAGIC = b"TFW1"
FSYNC_MODES = ("sync_each", "ms", "none")
MAX_PAYLOAD = 1 << 30  # a frame claiming more than 1 GiB is corrupt

_HEADER = struct.Struct("<4sIIQ")  # magic, payload_length, crc32, lsn
HEADER_SIZE = _HEADER.size  # 20
_CRC_START = 12  # offset of the lsn inside the header
_LSN = struct.Struct("<Q")
_U16 = struct.Struct("<H")
_SEGMENT_RE = re.compile(r"^(\d{20})\.wal$")
_MAX_GROUP_RECORDS = 1024
_MAX_GROUP_BYTES = 64 << 20
try:
    _IOV_MAX = max(16, min(int(os.sysconf("SC_IOV_MAX")), 1024))
except (ValueError, OSError, AttributeError):  # pragma: no cover - non-Linux
    _IOV_MAX = 1024


@dataclass(frozen=True)
class WalRecord:
    """One logged batch. ``lsn`` is strictly increasing from 1 and never reused."""

    lsn: int
    table: str
    batch: pa.RecordBatch


class WalLockedError(RuntimeError):
    """The WAL directory is locked by another open :class:`Wal` (normally another process)."""


class WalClosedError(RuntimeError):
    """The :class:`Wal` has been closed."""


class WalFailedError(OSError):
    """An earlier write or fsync failed; the log refuses every further append until reopened."""


@dataclass
class _Segment:
    first_lsn: int
    path: Path
    size: int


_IPC_EOS = b"\xff\xff\xff\xff\x00\x00\x00\x00"


class _Append:
    """An encoded append waiting for the writer thread."""

    __slots__ = ("batch", "future", "head", "ipc", "length", "payload_crc", "table")

    def __init__(self, table: str, batch: pa.RecordBatch, logged: pa.RecordBatch | None = None) -> None:
        if not isinstance(batch, pa.RecordBatch):
            raise TypeError(f"Wal.append expects a pyarrow.RecordBatch, got {type(batch).__name__}")
        if not isinstance(table, str):
            raise TypeError(f"table name must be a str, got {type(table).__name__}")
        name = table.encode("utf-8")
        if not name or len(name) > 0xFFFF:
            raise ValueError(f"table name must be 1..65535 utf-8 bytes, got {len(name)}")
        # An IPC *stream* is schema message + batch message + end-of-stream marker; serialising
        # the two messages directly avoids BufferOutputStream's grow-and-copy (3-10x faster on
        # 100k-row batches, measured by bench/ingest.py's profile).
        on_disk = batch if logged is None else logged
        self.ipc: list[Any] = [on_disk.schema.serialize(), on_disk.serialize(), _IPC_EOS]
        self.head = _U16.pack(len(name)) + name
        self.length = len(self.head) + sum(len(p) if isinstance(p, bytes) else p.size for p in self.ipc)
        if self.length > MAX_PAYLOAD:
            raise ValueError(f"batch too large for one WAL frame: {self.length} bytes > {MAX_PAYLOAD}")
        crc = zlib.crc32(self.head)
        for part in self.ipc:
            crc = zlib.crc32(part, crc)  # GIL released for large buffers
        self.payload_crc = crc
        self.table = table
        self.batch = batch
        self.future: Future[int] = Future()


class _Command:
    __slots__ = ("arg", "future", "kind")

    def __init__(self, kind: str, arg: int = 0) -> None:
        self.kind = kind  # "release" | "close"
        self.arg = arg
        self.future: Future[int] = Future()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_file_atomic(path: Path, data: bytes, *, durable: bool = True) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    try:
        os.write(fd, data)
        if durable:
            os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    if durable:
        _fsync_dir(path.parent)


def _writev_all(fd: int, bufs: list[Any]) -> int:
    """Write every buffer with as few ``os.writev`` calls as possible, coping with short writes."""
    views = [memoryview(b).cast("B") for b in bufs]
    total = 0
    i = 0
    while i < len(views):
        chunk = views[i : i + _IOV_MAX]
        n = os.writev(fd, chunk)
        if n <= 0:
            raise OSError(errno.EIO, "os.writev wrote 0 bytes")
        total += n
        while n > 0:
            v = views[i]
            if n >= v.nbytes:
                n -= v.nbytes
                i += 1
            else:
                views[i] = v[n:]
                n = 0
    return total


def _clone_exc(exc: BaseException) -> BaseException:
    """A copy per waiting caller: one exception object must not be raised in several threads at once."""
    try:
        dup = copy.copy(exc)
    except Exception:  # pragma: no cover - exotic exception types
        return exc
    dup.__cause__ = exc.__cause__
    return dup


class Wal:
    """A write-ahead log in ``directory``; see the module docstring for format and guarantees.

    Usage::

        wal = Wal(path, apply=buffer.insert)
        for record in wal.replay():   # must be fully consumed (or call wal.open_for_append())
            buffer.insert(record)
        lsn = wal.append("otel_logs_and_spans", batch)
        ...
        wal.release_up_to(committed_lsn + 1)
        wal.close()
    """

    def __init__(
        self,
        directory: Path,
        *,
        fsync_mode: str = "sync_each",
        fsync_interval_ms: int = 100,
        segment_bytes: int = 64 << 20,
        apply: Callable[[WalRecord], None] | None = None,
    ) -> None:
        if fsync_mode not in FSYNC_MODES:
            raise ValueError(f"fsync_mode must be one of {FSYNC_MODES}, got {fsync_mode!r}")
        if fsync_interval_ms <= 0:
            raise ValueError(f"fsync_interval_ms must be > 0, got {fsync_interval_ms}")
        if segment_bytes <= 0:
            raise ValueError(f"segment_bytes must be > 0, got {segment_bytes}")
        self.directory = Path(directory)
        self.fsync_mode = fsync_mode
        self._durable = fsync_mode != "none"
        self._interval = fsync_interval_ms / 1000.0
        self._segment_bytes = segment_bytes
        self._apply = apply

        self._submit_lock = threading.Lock()
        self._queue: queue.SimpleQueue[_Append | _Command] = queue.SimpleQueue()
        self._writer: threading.Thread | None = None
        self._ready = False  # replay finished, appends allowed
        self._replaying = False
        self._closed = False
        self._failure: BaseException | None = None
        self._writer_dead = False  # the writer thread crashed (a bug); set under _submit_lock

        self._segments: list[_Segment] = []
        self._fd: int | None = None  # active segment (always self._segments[-1] when set)
        self._dirty = False
        self._dirty_since = 0.0
        self._next_lsn = 1
        self._floor = 1
        self._appends = 0
        self._fsyncs = 0
        self._bytes = 0
        self._quarantined = 0

        self.directory.mkdir(parents=True, exist_ok=True)
        self._lock_fd: int | None = self._acquire_lock()
        try:
            self.wal_id: str = self._load_wal_id()
            self._segments = self._list_segments()
        except BaseException:
            self._release_lock()
            raise

    # ------------------------------------------------------------------ opening
    def _acquire_lock(self) -> int:
        path = self.directory / "LOCK"
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = ""
            with contextlib.suppress(OSError, ValueError):
                pid = int(os.pread(fd, 32, 0).decode().strip())
                holder = f" (pid {pid}{', this process' if pid == os.getpid() else ''})"
            os.close(fd)
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise
            raise WalLockedError(
                f"WAL directory {self.directory} is locked: another timefusion process{holder} is using it "
                f"(flock on {path}). Stop it or use a different WAL directory."
            ) from None
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        return fd

    def _release_lock(self) -> None:
        fd, self._lock_fd = self._lock_fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(fd, fcntl.LOCK_UN)  # also releases it for forked children sharing the fd
            os.close(fd)

    def _load_wal_id(self) -> str:
        path = self.directory / "wal_id"
        if path.exists():
            text = path.read_text().strip()
            try:
                return str(uuid.UUID(text))
            except ValueError:
                raise RuntimeError(f"{path} does not contain a uuid: {text[:60]!r}") from None
        wal_id = str(uuid.uuid4())
        _write_file_atomic(path, f"{wal_id}\n".encode())
        return wal_id

    def _list_segments(self) -> list[_Segment]:
        segments = []
        for entry in os.scandir(self.directory):
            m = _SEGMENT_RE.match(entry.name)
            if m and entry.is_file():
                segments.append(_Segment(int(m.group(1)), Path(entry.path), entry.stat().st_size))
        segments.sort(key=lambda s: s.first_lsn)
        return segments

    def _read_floor(self) -> int:
        path = self.directory / "lsn_floor"
        try:
            return max(1, int(path.read_text().strip()))
        except FileNotFoundError:
            return 1
        except (OSError, ValueError) as exc:
            logger.warning("ignoring unreadable %s: %s", path, exc)
            return 1

    # ------------------------------------------------------------------ replay
    def replay(self) -> Iterator[WalRecord]:
        """Yield every valid record in LSN order, repairing damage (see module docstring).

        Appends are allowed only once the returned iterator is exhausted; after that the next LSN is the
        highest one ever used + 1 and appends go to a new segment file. A replay abandoned part-way may
        be started again. Replayed batches reference the segment's bytes without copying.
        """
        if self._closed:
            raise WalClosedError(f"WAL {self.directory} is closed")
        if self._ready:
            raise RuntimeError("replay() already completed; the WAL is open for appends")
        if self._replaying:
            raise RuntimeError("replay() is already in progress")
        return self._replay_gen()

    def open_for_append(self) -> int:
        """Replay and discard every record (repairing damage), then allow appends. Returns the count."""
        count = 0
        for _ in self.replay():
            count += 1
        return count

    def _replay_gen(self) -> Iterator[WalRecord]:
        if self._replaying or self._ready:  # two iterators were created before either started
            raise RuntimeError("replay() is already in progress or completed")
        self._replaying = True
        try:
            segments = self._list_segments()
            prev_lsn = 0
            for i, seg in enumerate(segments):
                if self._closed:
                    raise WalClosedError(f"WAL {self.directory} was closed during replay")
                is_last = i == len(segments) - 1
                upper = (1 << 64) - 1 if is_last else segments[i + 1].first_lsn - 1
                prev_lsn = yield from self._scan_segment(seg, is_last, prev_lsn, upper)
            if self._closed:
                raise WalClosedError(f"WAL {self.directory} was closed during replay")
            self._floor = self._read_floor()
            self._next_lsn = max(prev_lsn + 1, self._floor, max((s.first_lsn for s in segments), default=1))
            self._segments = segments
            self._writer = threading.Thread(
                target=self._run, name=f"wal-writer:{self.directory}", daemon=True
            )
            self._writer.start()
            self._ready = True
        finally:
            self._replaying = False

    def _scan_segment(
        self, seg: _Segment, is_last: bool, prev_lsn: int, upper: int
    ) -> Generator[WalRecord, None, int]:
        data = seg.path.read_bytes()
        mv = memoryview(data)
        n = len(data)
        pos = 0
        bad_start = -1
        while pos < n:
            parsed = self._parse_frame(data, mv, pos, max(prev_lsn + 1, seg.first_lsn), upper)
            if parsed is not None:
                record, end = parsed
                if bad_start >= 0:
                    self._report_bad(seg, data, bad_start, pos)
                    bad_start = -1
                prev_lsn = record.lsn
                yield record
                pos = end
                continue
            if bad_start < 0:
                bad_start = pos
            nxt = data.find(MAGIC, pos + 1)
            pos = n if nxt < 0 else nxt
        if bad_start >= 0:
            if is_last:
                self._repair_tail(seg, data, bad_start)
            else:
                self._report_bad(seg, data, bad_start, n)
        seg.size = os.path.getsize(seg.path)
        return prev_lsn

    @staticmethod
    def _parse_frame(
        data: bytes, mv: memoryview, pos: int, min_lsn: int, max_lsn: int
    ) -> tuple[WalRecord, int] | None:
        if len(data) - pos < HEADER_SIZE:
            return None
        magic, length, crc, lsn = _HEADER.unpack_from(data, pos)
        if magic != MAGIC or length < 2 or length > MAX_PAYLOAD:
            return None
        start = pos + HEADER_SIZE
        end = start + length
        if end > len(data):
            return None
        payload = mv[start:end]
        if zlib.crc32(mv[pos + _CRC_START : start], zlib.crc32(payload)) != crc:
            return None
        if not min_lsn <= lsn <= max_lsn:
            return None
        (name_len,) = _U16.unpack_from(data, start)
        if 2 + name_len > length:
            return None
        try:
            table = bytes(payload[2 : 2 + name_len]).decode("utf-8")
            reader = pa.ipc.open_stream(pa.py_buffer(payload[2 + name_len :]))
            batch = reader.read_next_batch()
        except Exception:
            return None
        try:
            reader.read_next_batch()
        except StopIteration:
            return WalRecord(lsn, table, batch), end
        except Exception:
            return None
        return None  # more than one batch: not something we wrote

    def _quarantine(self, seg: _Segment, data: bytes, start: int, end: int, kind: str) -> Path:
        qdir = self.directory / "quarantine"
        qdir.mkdir(exist_ok=True)
        path = qdir / f"{seg.path.name}.{start}.{kind}"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
        try:
            _writev_all(fd, [memoryview(data)[start:end]])
            os.fsync(fd)
        finally:
            os.close(fd)
        _fsync_dir(qdir)
        self._quarantined += 1
        return path

    def _report_bad(self, seg: _Segment, data: bytes, start: int, end: int) -> None:
        path = self._quarantine(seg, data, start, end, "bad")
        logger.error(
            "WAL segment %s: corrupt region at offset %d, length %d bytes skipped; copied to %s",
            seg.path,
            start,
            end - start,
            path,
        )

    def _repair_tail(self, seg: _Segment, data: bytes, start: int) -> None:
        path = self._quarantine(seg, data, start, len(data), "tail")
        fd = os.open(seg.path, os.O_WRONLY | os.O_CLOEXEC)
        try:
            os.ftruncate(fd, start)
            os.fsync(fd)
        finally:
            os.close(fd)
        logger.warning(
            "WAL segment %s: torn or corrupt tail at offset %d (%d bytes) truncated; copied to %s",
            seg.path,
            start,
            len(data) - start,
            path,
        )

    # ------------------------------------------------------------------ appending
    def _submit(self, table: str, batch: pa.RecordBatch, logged: pa.RecordBatch | None = None) -> Future[int]:
        self._check_open()  # fail fast, before serialising
        item = _Append(table, batch, logged)  # serialise + checksum in the caller's thread
        with self._submit_lock:
            self._check_open()
            self._queue.put(item)
        return item.future

    def _check_open(self) -> None:
        if self._closed:
            raise WalClosedError(f"WAL {self.directory} is closed")
        if not self._ready:
            raise RuntimeError(
                "WAL is not open for appends: consume wal.replay() or call wal.open_for_append()"
            )
        if self._failure is not None or self._writer_dead:
            raise self._failed_error()

    def _failed_error(self) -> WalFailedError:
        exc = self._failure
        code = getattr(exc, "errno", None) or errno.EIO
        err = WalFailedError(code, f"WAL {self.directory} refuses appends after an earlier failure: {exc!r}")
        err.__cause__ = exc
        return err

    def append(self, table: str, batch: pa.RecordBatch, logged: pa.RecordBatch | None = None) -> int:
        """Log ``batch`` for ``table``; block until durable (per fsync mode) and applied. Returns its LSN.

        ``logged``, when given, is what goes to disk instead of ``batch`` (the caller's compact
        form of the same rows, e.g. without all-NULL columns); ``batch`` is what ``apply`` gets.
        Replay returns the logged form."""
        self._not_from_writer("append")
        return self._submit(table, batch, logged).result()

    def _not_from_writer(self, what: str) -> None:
        if self._writer is not None and threading.current_thread() is self._writer:
            raise RuntimeError(f"Wal.{what}() called from inside apply (the writer thread) would deadlock")

    async def append_async(self, table: str, batch: pa.RecordBatch) -> int:
        """Like :meth:`append` without blocking a thread (serialisation runs in the event loop thread)."""
        return await asyncio.wrap_future(self._submit(table, batch))

    def release_up_to(self, lsn: int) -> int:
        """Declare every record with LSN < ``lsn`` committed elsewhere; delete segments holding only such
        records (rotating the active segment first if it qualifies). Returns the number of files deleted.
        """
        self._not_from_writer("release_up_to")
        cmd = _Command("release", int(lsn))
        with self._submit_lock:
            if self._closed:
                raise WalClosedError(f"WAL {self.directory} is closed")
            if not self._ready:
                raise RuntimeError("release_up_to() before replay() was consumed")
            if self._writer_dead:
                raise self._failed_error()
            self._queue.put(cmd)
        return cmd.future.result()

    @property
    def next_lsn(self) -> int:
        """The LSN the next append will get (meaningful once replay has completed)."""
        return self._next_lsn

    def stats(self) -> dict[str, int]:
        """Counters since open: appends and frame bytes written, data fsyncs (directory fsyncs are not
        counted), current segment files and regions quarantined."""
        return {
            "appends": self._appends,
            "fsyncs": self._fsyncs,
            "bytes": self._bytes,
            "segments": len(self._segments),
            "quarantined": self._quarantined,
        }

    def close(self) -> None:
        """Drain pending appends, fsync (unless ``none``), stop the writer and release the lock.

        Idempotent. Raises the ``OSError`` of the final fsync if it fails (after releasing the lock).
        """
        self._not_from_writer("close")
        writer = self._writer
        with self._submit_lock:
            if self._closed:
                return
            self._closed = True
            cmd = _Command("close")
            if writer is not None:
                self._queue.put(cmd)
        error: BaseException | None = None
        if writer is not None:
            writer.join()  # the writer exits after handling the close command (or if it crashed)
            self._fail_pending(WalClosedError(f"WAL {self.directory} is closed"))
            exc = cmd.future.exception()
            if exc is not None and not isinstance(exc, WalClosedError):
                error = exc
        self._release_lock()
        if error is not None:
            raise error

    def __enter__(self) -> Wal:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Wal({str(self.directory)!r}, fsync_mode={self.fsync_mode!r}, next_lsn={self._next_lsn})"

    # ------------------------------------------------------------------ writer thread
    def _run(self) -> None:
        try:
            self._loop()
        except BaseException as exc:  # a bug: never leave callers hanging
            logger.exception("WAL writer thread crashed")
            with self._submit_lock:
                if self._failure is None:
                    self._failure = exc
                self._writer_dead = True
            self._fail_pending(exc)
            self._close_fd()

    def _fail_pending(self, exc: BaseException) -> None:
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return
            if item.future.set_running_or_notify_cancel():
                item.future.set_exception(_clone_exc(exc))

    def _next_item(self) -> _Append | _Command:
        while True:
            if self._dirty and self.fsync_mode == "ms":
                remaining = self._dirty_since + self._interval - time.monotonic()
                if remaining > 0:
                    try:
                        return self._queue.get(timeout=remaining)
                    except queue.Empty:
                        pass
                self._timer_sync()
                continue
            return self._queue.get()

    def _loop(self) -> None:
        while True:
            items = [self._next_item()]
            nbytes = 0
            while len(items) < _MAX_GROUP_RECORDS and nbytes < _MAX_GROUP_BYTES:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                items.append(item)
                if isinstance(item, _Append):
                    nbytes += item.length
            group: list[_Append] = []
            for item in items:
                if isinstance(item, _Append):
                    group.append(item)
                    continue
                if group:
                    self._commit(group)
                    group = []
                if item.kind == "close":
                    self._finish(item)
                    return
                self._release(item)
            if group:
                self._commit(group)

    def _fail(self, exc: BaseException, what: str) -> None:
        if self._failure is None:
            self._failure = exc
            logger.error("WAL %s: %s failed (%r); refusing further appends", self.directory, what, exc)

    def _commit(self, group: list[_Append]) -> None:
        live = [a for a in group if a.future.set_running_or_notify_cancel()]
        if not live:
            return
        if self._failure is not None:
            for a in live:
                a.future.set_exception(self._failed_error())
            return
        first_lsn = self._next_lsn
        bufs: list[Any] = []
        for i, a in enumerate(live):
            lsn = first_lsn + i
            crc = zlib.crc32(_LSN.pack(lsn), a.payload_crc)
            bufs.append(_HEADER.pack(MAGIC, a.length, crc, lsn) + a.head)
            bufs.extend(a.ipc)
        self._next_lsn = first_lsn + len(live)  # consumed even if the write fails: never reused
        start = -1
        try:
            seg, fd = self._ensure_active(first_lsn)
            start = seg.size
            written = _writev_all(fd, bufs)
            seg.size += written
            if not self._dirty:
                self._dirty_since = time.monotonic()
            self._dirty = True
            if self.fsync_mode == "sync_each":
                os.fsync(fd)
                self._fsyncs += 1
                self._dirty = False
        except Exception as exc:
            self._fail(exc, "write/fsync")
            if start >= 0 and self._fd is not None:
                with contextlib.suppress(OSError):
                    os.ftruncate(self._fd, start)  # best effort: drop the unacknowledged group
            for a in live:
                a.future.set_exception(_clone_exc(exc))
            return
        self._appends += len(live)
        self._bytes += written
        apply = self._apply
        for i, a in enumerate(live):
            lsn = first_lsn + i
            if apply is not None:
                try:
                    apply(WalRecord(lsn, a.table, a.batch))
                except Exception as exc:
                    a.future.set_exception(exc)
                    continue
            a.future.set_result(lsn)
        if seg.size > self._segment_bytes:
            try:
                self._rotate()
            except Exception as exc:
                self._fail(exc, "segment rotation")

    def _ensure_active(self, first_lsn: int) -> tuple[_Segment, int]:
        if self._fd is not None:
            return self._segments[-1], self._fd
        path = self.directory / f"{first_lsn:020d}.wal"
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
        if self._segments and self._segments[-1].first_lsn == first_lsn:
            seg = self._segments[-1]  # empty leftover (e.g. torn tail truncated to 0 bytes): reuse it
            if os.path.getsize(path) != 0:
                raise RuntimeError(f"segment {path} already exists and is not empty")
            fd = os.open(path, flags, 0o644)
        else:
            fd = os.open(path, flags | os.O_EXCL, 0o644)
            seg = _Segment(first_lsn, path, 0)
            self._segments.append(seg)
        self._fd = fd
        if self._durable:
            _fsync_dir(self.directory)
        return seg, fd

    def _close_fd(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)

    def _rotate(self) -> None:
        """Close the active segment (fsyncing it if needed); the next group creates a new one."""
        if self._fd is None:
            return
        try:
            if self._dirty and self._durable and self._failure is None:
                os.fsync(self._fd)
                self._fsyncs += 1
            self._dirty = False
        finally:
            self._close_fd()

    def _timer_sync(self) -> None:
        self._dirty = False
        if self._fd is None or self._failure is not None:
            return
        try:
            os.fsync(self._fd)
            self._fsyncs += 1
        except Exception as exc:
            self._fail(exc, "periodic fsync")

    def _release(self, cmd: _Command) -> None:
        if not cmd.future.set_running_or_notify_cancel():
            return
        try:
            cmd.future.set_result(self._release_segments(cmd.arg))
        except Exception as exc:
            cmd.future.set_exception(exc)

    def _release_segments(self, lsn: int) -> int:
        bound = min(lsn, self._next_lsn)  # every record with LSN < bound is committed elsewhere
        if bound > self._floor:
            _write_file_atomic(self.directory / "lsn_floor", f"{bound}\n".encode(), durable=self._durable)
            self._floor = bound
        segs = self._segments
        if self._fd is not None and self._failure is None and segs[-1].size > 0 and self._next_lsn <= bound:
            try:
                self._rotate()
            except Exception as exc:
                self._fail(exc, "segment rotation")
                raise
        closed = segs[:-1] if self._fd is not None else segs
        deleted = 0
        for i, seg in enumerate(closed):
            upper = segs[i + 1].first_lsn if i + 1 < len(segs) else self._next_lsn  # exclusive
            if upper > bound:
                break
            seg.path.unlink(missing_ok=True)
            deleted += 1
        if deleted:
            del segs[:deleted]
            if self._durable:
                _fsync_dir(self.directory)
        return deleted

    def _finish(self, cmd: _Command) -> None:
        cmd.future.set_running_or_notify_cancel()
        error: BaseException | None = None
        if self._fd is not None and self._dirty and self._durable and self._failure is None:
            try:
                os.fsync(self._fd)
                self._fsyncs += 1
                self._dirty = False
            except Exception as exc:
                self._fail(exc, "final fsync")
                error = exc
        self._close_fd()
        if error is None:
            cmd.future.set_result(0)
        else:
            cmd.future.set_exception(error)
