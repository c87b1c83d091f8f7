"""Tests for the write-ahead log: real files, real fsync, real threads and a real second process."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from timefusion.write.wal import MAGIC, Wal, WalClosedError, WalLockedError, WalRecord

REPO_ROOT = Path(__file__).resolve().parents[1]
LOGGER = "timefusion.write.wal"


def make_batch(i: int, rows: int = 5) -> pa.RecordBatch:
    return pa.record_batch(
        {
            "ts": pa.array([i * 1000 + r for r in range(rows)], pa.int64()),
            "name": pa.array([f"row-{i}-{r}" for r in range(rows)]),
            "value": pa.array([float(i) + r / 10 for r in range(rows)]),
        }
    )


def open_wal(directory: Path, **kwargs: object) -> Wal:
    wal = Wal(directory, **kwargs)  # type: ignore[arg-type]
    wal.open_for_append()
    return wal


def replay_all(directory: Path) -> list[WalRecord]:
    wal = Wal(directory)
    try:
        return list(wal.replay())
    finally:
        wal.close()


def segment_files(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.wal"))


def append_tracking_ends(wal: Wal, directory: Path, batches: list[tuple[str, pa.RecordBatch]]) -> list[int]:
    """Append one at a time into a single segment; return the file size after each append (frame ends)."""
    ends = []
    for table, batch in batches:
        wal.append(table, batch)
        (seg,) = segment_files(directory)
        ends.append(seg.stat().st_size)
    return ends


def test_round_trip_two_tables_and_lsns_continue(tmp_path: Path) -> None:
    wal = Wal(tmp_path)
    assert list(wal.replay()) == []
    expected = []
    for i in range(6):
        table = "logs" if i % 2 else "metrics"
        batch = make_batch(i, rows=i + 1)
        lsn = wal.append(table, batch)
        expected.append((lsn, table, batch))
    assert [e[0] for e in expected] == list(range(1, 7))
    wal_id = wal.wal_id
    wal.close()
    wal.close()  # idempotent

    wal = Wal(tmp_path)
    assert wal.wal_id == wal_id
    records = list(wal.replay())
    assert [(r.lsn, r.table) for r in records] == [(e[0], e[1]) for e in expected]
    assert all(r.batch.equals(e[2]) for r, e in zip(records, expected))
    assert wal.next_lsn == 7
    assert wal.append("logs", make_batch(99)) == 7
    assert len(segment_files(tmp_path)) == 2  # appends after replay go to a new segment
    wal.close()
    assert [r.lsn for r in replay_all(tmp_path)] == list(range(1, 8))


def test_append_before_replay_after_close_and_bad_input(tmp_path: Path) -> None:
    open_wal(tmp_path).close()  # creates an empty log
    wal = Wal(tmp_path)
    with pytest.raises(RuntimeError, match="replay"):
        wal.append("t", make_batch(0))
    wal.replay()  # an iterator that is never started does not count as a replay in progress
    gen = wal.replay()
    list(gen)
    with pytest.raises(RuntimeError):
        wal.replay()  # already completed
    with pytest.raises(TypeError):
        wal.append("t", pa.table({"x": [1]}))  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        wal.append("", make_batch(0))
    wal.close()
    with pytest.raises(WalClosedError):
        wal.append("t", make_batch(0))
    with pytest.raises(WalClosedError):
        wal.release_up_to(1)


def test_group_commit_many_threads(tmp_path: Path) -> None:
    wal = open_wal(tmp_path, fsync_mode="sync_each")
    threads, per_thread = 16, 50
    results: dict[int, list[int]] = {t: [] for t in range(threads)}
    barrier = threading.Barrier(threads)

    def worker(t: int) -> None:
        barrier.wait()
        for i in range(per_thread):
            results[t].append(wal.append(f"table{t % 3}", make_batch(t * 1000 + i, rows=2)))

    pool = [threading.Thread(target=worker, args=(t,)) for t in range(threads)]
    for th in pool:
        th.start()
    for th in pool:
        th.join()
    stats = wal.stats()
    wal.close()
    total = threads * per_thread
    all_lsns = [lsn for lsns in results.values() for lsn in lsns]
    assert sorted(all_lsns) == list(range(1, total + 1))
    for lsns in results.values():
        assert lsns == sorted(lsns)  # one thread's appends are ordered
    assert stats["appends"] == total
    assert 0 < stats["fsyncs"] < total, stats
    replayed = {r.lsn: r for r in replay_all(tmp_path)}
    assert sorted(replayed) == list(range(1, total + 1))
    for t, lsns in results.items():
        for i, lsn in enumerate(lsns):
            assert replayed[lsn].table == f"table{t % 3}"
            assert replayed[lsn].batch.equals(make_batch(t * 1000 + i, rows=2))


def test_apply_called_once_in_lsn_order_before_append_returns(tmp_path: Path) -> None:
    applied: list[int] = []
    wal = open_wal(tmp_path, apply=lambda rec: applied.append(rec.lsn))
    errors: list[str] = []

    def worker() -> None:
        for i in range(40):
            lsn = wal.append("t", make_batch(i, rows=1))
            if lsn not in applied:
                errors.append(f"lsn {lsn} returned before apply")

    pool = [threading.Thread(target=worker) for _ in range(8)]
    for th in pool:
        th.start()
    for th in pool:
        th.join()
    wal.close()
    assert errors == []
    assert applied == list(range(1, 8 * 40 + 1))


def test_apply_error_reaches_only_that_caller_and_record_is_durable(tmp_path: Path) -> None:
    def apply(rec: WalRecord) -> None:
        if rec.table == "boom":
            raise ValueError("apply failed")

    wal = open_wal(tmp_path, apply=apply)
    assert wal.append("ok", make_batch(1)) == 1
    with pytest.raises(ValueError, match="apply failed"):
        wal.append("boom", make_batch(2))
    assert wal.append("ok", make_batch(3)) == 3  # the WAL keeps working
    wal.close()
    assert [r.table for r in replay_all(tmp_path)] == ["ok", "boom", "ok"]


def test_replay_in_progress_and_reentrant_calls_from_apply(tmp_path: Path) -> None:
    wal = open_wal(tmp_path)
    wal.append("t", make_batch(0))
    wal.append("t", make_batch(1))
    wal.close()

    seen: list[str] = []

    def apply(rec: WalRecord) -> None:
        try:
            wal.append("nested", make_batch(5))
        except RuntimeError as exc:
            seen.append(str(exc))

    wal = Wal(tmp_path, apply=apply)
    gen = wal.replay()
    assert next(gen).lsn == 1
    with pytest.raises(RuntimeError, match="in progress"):
        wal.replay()
    assert [r.lsn for r in gen] == [2]
    assert wal.append("t", make_batch(2)) == 3
    assert seen and "deadlock" in seen[0]
    wal.close()


def test_append_async(tmp_path: Path) -> None:
    applied: list[int] = []
    wal = open_wal(tmp_path, apply=lambda rec: applied.append(rec.lsn))

    async def main() -> list[int]:
        return list(await asyncio.gather(*(wal.append_async("t", make_batch(i)) for i in range(20))))

    lsns = asyncio.run(main())
    wal.close()
    assert sorted(lsns) == list(range(1, 21))
    assert applied == list(range(1, 21))
    assert len(replay_all(tmp_path)) == 20


@pytest.mark.parametrize("cut", ["header", "payload", "one_byte", "two_frames"])
def test_torn_tail_is_truncated_and_quarantined(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, cut: str
) -> None:
    wal = open_wal(tmp_path)
    batches = [("t", make_batch(i, rows=20)) for i in range(5)]
    ends = append_tracking_ends(wal, tmp_path, batches)
    wal.close()
    (seg,) = segment_files(tmp_path)
    original = seg.read_bytes()
    cut_at = {
        "header": ends[3] + 7,
        "payload": ends[3] + 60,
        "one_byte": ends[4] - 1,
        "two_frames": ends[2] + 100,
    }[cut]
    keep = sum(1 for e in ends if e <= cut_at)
    with open(seg, "r+b") as f:
        f.truncate(cut_at)

    with caplog.at_level(logging.WARNING, logger=LOGGER):
        wal = Wal(tmp_path)
        records = list(wal.replay())
    assert [r.lsn for r in records] == list(range(1, keep + 1))
    assert all(r.batch.equals(batches[r.lsn - 1][1]) for r in records)
    warnings = [r for r in caplog.records if r.name == LOGGER and r.levelno == logging.WARNING]
    assert warnings and "tail" in warnings[0].getMessage()
    assert seg.stat().st_size == ends[keep - 1]
    quarantined = tmp_path / "quarantine" / f"{seg.name}.{ends[keep - 1]}.tail"
    assert quarantined.read_bytes() == original[ends[keep - 1] : cut_at]
    assert wal.stats()["quarantined"] == 1

    assert wal.append("t", make_batch(100)) == keep + 1
    wal.close()
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        assert [r.lsn for r in replay_all(tmp_path)] == list(range(1, keep + 2))
    assert not [r for r in caplog.records if r.name == LOGGER]  # repaired: nothing to report now


def test_whole_last_segment_torn(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    wal = open_wal(tmp_path, segment_bytes=1)  # one segment per append
    for i in range(3):
        wal.append("t", make_batch(i))
    wal.close()
    last = segment_files(tmp_path)[-1]
    with open(last, "r+b") as f:
        f.truncate(10)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        wal = Wal(tmp_path)
        assert [r.lsn for r in wal.replay()] == [1, 2]
    assert last.stat().st_size == 0
    assert wal.append("t", make_batch(9)) == 3  # reuses the emptied segment file
    wal.close()
    assert [r.lsn for r in replay_all(tmp_path)] == [1, 2, 3]


def corrupt_and_reopen(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, mutate: object
) -> tuple[list[WalRecord], list[int], bytes]:
    wal = open_wal(tmp_path)
    ends = append_tracking_ends(wal, tmp_path, [("t", make_batch(i, rows=10)) for i in range(5)])
    wal.close()
    (seg,) = segment_files(tmp_path)
    data = bytearray(seg.read_bytes())
    original = bytes(data)
    mutate(data, ends)  # type: ignore[operator]
    seg.write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        records = replay_all(tmp_path)
    return records, ends, original


def test_corrupt_middle_record_is_quarantined_and_skipped(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    def flip(data: bytearray, ends: list[int]) -> None:
        for off in (ends[1] + 40, ends[1] + 41, ends[1] + 90):
            data[off] ^= 0xFF

    records, ends, original = corrupt_and_reopen(tmp_path, caplog, flip)
    assert [r.lsn for r in records] == [1, 2, 4, 5]
    assert all(r.batch.equals(make_batch(r.lsn - 1, rows=10)) for r in records)
    (bad,) = (tmp_path / "quarantine").iterdir()
    assert bad.name == f"{segment_files(tmp_path)[0].name}.{ends[1]}.bad"
    assert len(bad.read_bytes()) == ends[2] - ends[1]
    errors = [r for r in caplog.records if r.name == LOGGER and r.levelno == logging.ERROR]
    assert len(errors) == 1
    msg = errors[0].getMessage()
    assert f"offset {ends[1]}" in msg and f"length {ends[2] - ends[1]}" in msg
    assert segment_files(tmp_path)[0].read_bytes() != original  # left in place, not truncated
    assert len(segment_files(tmp_path)[0].read_bytes()) == len(original)


@pytest.mark.parametrize("new_length", [0xFFFFFFF0, 1 << 20, 7])
def test_corrupt_length_field_resyncs_on_magic(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, new_length: int
) -> None:
    def set_length(data: bytearray, ends: list[int]) -> None:
        assert data[ends[1] : ends[1] + 4] == MAGIC
        data[ends[1] + 4 : ends[1] + 8] = new_length.to_bytes(4, "little")

    records, ends, _ = corrupt_and_reopen(tmp_path, caplog, set_length)
    assert [r.lsn for r in records] == [1, 2, 4, 5]
    assert [p.name.rsplit(".", 2)[1:] for p in (tmp_path / "quarantine").iterdir()] == [[str(ends[1]), "bad"]]
    assert any(r.levelno == logging.ERROR for r in caplog.records if r.name == LOGGER)


def test_corruption_at_end_of_older_segment_is_an_error_not_a_truncation(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    wal = open_wal(tmp_path, segment_bytes=1)
    for i in range(3):
        wal.append("t", make_batch(i))
    wal.close()
    first = segment_files(tmp_path)[0]
    size = first.stat().st_size
    with open(first, "r+b") as f:
        f.truncate(size - 5)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        assert [r.lsn for r in replay_all(tmp_path)] == [2, 3]
    assert any(r.levelno == logging.ERROR for r in caplog.records if r.name == LOGGER)
    assert first.stat().st_size == size - 5
    assert [p.suffix for p in (tmp_path / "quarantine").iterdir()] == [".bad"]


LOCK_SCRIPT = """
import sys
from pathlib import Path
from timefusion.write.wal import Wal, WalLockedError
try:
    Wal(Path(sys.argv[1])).close()
except WalLockedError as exc:
    print(exc)
    sys.exit(3)
"""


def run_lock_probe(directory: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.run(
        [sys.executable, "-c", LOCK_SCRIPT, str(directory)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=REPO_ROOT,
    )


def test_directory_lock_same_process_and_other_process(tmp_path: Path) -> None:
    wal = Wal(tmp_path)
    with pytest.raises(WalLockedError, match="another timefusion process"):
        Wal(tmp_path)  # new open file description in the same process: flock conflicts too
    proc = run_lock_probe(tmp_path)
    assert proc.returncode == 3, proc.stderr
    assert "another timefusion process" in proc.stdout and str(tmp_path) in proc.stdout
    wal.close()

    proc = run_lock_probe(tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    Wal(tmp_path).close()


def test_release_up_to_deletes_only_fully_released_segments(tmp_path: Path) -> None:
    wal = open_wal(tmp_path, segment_bytes=1)  # rotates after every group: one record per segment here
    for i in range(10):
        assert wal.append("t", make_batch(i)) == i + 1
    assert wal.stats()["segments"] == 10
    assert wal.release_up_to(4) == 3  # records 1, 2, 3
    assert wal.release_up_to(4) == 0
    assert [int(p.stem) for p in segment_files(tmp_path)] == list(range(4, 11))
    assert wal.stats()["segments"] == 7
    wal.close()
    assert [r.lsn for r in replay_all(tmp_path)] == list(range(4, 11))

    wal = open_wal(tmp_path, segment_bytes=1)
    assert wal.release_up_to(8) == 4  # 4..7
    assert wal.release_up_to(1000) == 3  # everything; LSNs must still not be reused
    assert segment_files(tmp_path) == []
    wal.close()
    wal = open_wal(tmp_path)
    assert wal.next_lsn == 11
    assert wal.append("t", make_batch(11)) == 11
    wal.close()


def test_release_rotates_a_fully_released_active_segment(tmp_path: Path) -> None:
    wal = open_wal(tmp_path)  # default 64 MiB segments: everything lands in one active segment
    for i in range(3):
        wal.append("t", make_batch(i))
    assert wal.release_up_to(3) == 0  # record 3 is not released: keep the segment
    assert wal.release_up_to(4) == 1  # rotate, then delete
    assert segment_files(tmp_path) == []
    assert wal.append("t", make_batch(3)) == 4
    assert [p.stem for p in segment_files(tmp_path)] == [f"{4:020d}"]
    wal.close()
    assert [r.lsn for r in replay_all(tmp_path)] == [4]


def test_release_is_safe_concurrently_with_appends(tmp_path: Path) -> None:
    wal = open_wal(tmp_path, segment_bytes=2000)
    stop = threading.Event()
    deleted = 0

    def releaser() -> None:
        nonlocal deleted
        while not stop.is_set():
            deleted += wal.release_up_to(max(1, wal.next_lsn - 20))
            time.sleep(0.001)

    th = threading.Thread(target=releaser)
    th.start()
    lsns = [wal.append("t", make_batch(i)) for i in range(200)]
    stop.set()
    th.join()
    wal.close()
    assert deleted > 0
    replayed = [r.lsn for r in replay_all(tmp_path)]
    assert replayed == lsns[lsns.index(replayed[0]) :]  # a contiguous suffix survives
    assert replayed[0] <= 200 - 20


def test_failed_fsync_fails_the_append_and_all_later_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    applied: list[int] = []
    wal = open_wal(tmp_path, apply=lambda rec: applied.append(rec.lsn))
    assert wal.append("t", make_batch(0)) == 1  # segment exists; only the data fsync runs from now on
    real_fsync = os.fsync
    calls = {"n": 0}

    def failing_fsync(fd: int) -> None:
        calls["n"] += 1
        if calls["n"] == 1:
            raise OSError(5, "simulated EIO from fsync")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", failing_fsync)
    with pytest.raises(OSError, match="simulated EIO"):
        wal.append("t", make_batch(1))
    for i in range(2):
        with pytest.raises(OSError, match="refuses appends"):
            wal.append("t", make_batch(2 + i))
    assert applied == [1]  # apply never ran for the failed record
    monkeypatch.undo()
    wal.close()
    # the unacknowledged group was truncated away (best effort): only the acked record replays
    assert [r.lsn for r in replay_all(tmp_path)] == [1]


def test_failed_fsync_under_concurrency_acks_nothing_after_the_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wal = open_wal(tmp_path)
    wal.append("t", make_batch(0))
    real_fsync = os.fsync
    failed = threading.Event()

    def slow_failing_fsync(fd: int) -> None:
        if not failed.is_set():
            time.sleep(0.05)  # let the other threads queue up behind the failing group
            failed.set()
            raise OSError(28, "simulated ENOSPC")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", slow_failing_fsync)
    outcomes: list[object] = []
    barrier = threading.Barrier(8)

    def worker(i: int) -> None:
        barrier.wait()
        for j in range(5):
            try:
                outcomes.append(wal.append("t", make_batch(10 * i + j)))
            except OSError as exc:
                outcomes.append(exc)

    pool = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for th in pool:
        th.start()
    for th in pool:
        th.join()
    monkeypatch.undo()
    wal.close()
    assert len(outcomes) == 40
    assert all(isinstance(o, OSError) for o in outcomes), [o for o in outcomes if isinstance(o, int)]
    assert [r.lsn for r in replay_all(tmp_path)] == [1]


def test_stale_duplicate_frame_is_not_replayed(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A frame with a valid checksum but an LSN that is not increasing is damage, not a record."""

    def duplicate_second_frame(data: bytearray, ends: list[int]) -> None:
        data += data[ends[0] : ends[1]]

    records, _, _ = corrupt_and_reopen(tmp_path, caplog, duplicate_second_frame)
    assert [r.lsn for r in records] == [1, 2, 3, 4, 5]
    assert [p.suffix for p in (tmp_path / "quarantine").iterdir()] == [".tail"]


@pytest.mark.parametrize("mode", ["ms", "none"])
def test_fsync_modes_ms_and_none(tmp_path: Path, mode: str) -> None:
    applied: list[int] = []
    wal = open_wal(tmp_path, fsync_mode=mode, fsync_interval_ms=20, apply=lambda r: applied.append(r.lsn))
    lsns = [wal.append("t", make_batch(i)) for i in range(30)]
    assert applied == lsns == list(range(1, 31))
    time.sleep(0.15)
    fsyncs = wal.stats()["fsyncs"]
    if mode == "ms":
        assert 1 <= fsyncs < 30  # the timer synced, but not once per append
    else:
        assert fsyncs == 0
    wal.close()
    records = replay_all(tmp_path)
    assert [r.lsn for r in records] == lsns
    assert all(r.batch.equals(make_batch(r.lsn - 1)) for r in records)


def test_invalid_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="fsync_mode"):
        Wal(tmp_path, fsync_mode="sometimes")
    with pytest.raises(ValueError):
        Wal(tmp_path, segment_bytes=0)
    Wal(tmp_path).close()  # a failed constructor did not leave the lock held


DAMAGE = st.one_of(
    st.tuples(st.just("truncate"), st.integers(min_value=0)),
    st.tuples(
        st.just("flip"), st.integers(min_value=0), st.lists(st.integers(0, 255), min_size=1, max_size=8)
    ),
    st.tuples(st.just("garbage"), st.binary(min_size=1, max_size=64)),
    st.tuples(st.just("zeros"), st.integers(min_value=0)),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rows=st.lists(
        st.tuples(st.sampled_from(["a", "bb", "ünïcode"]), st.integers(1, 30)), min_size=1, max_size=8
    ),
    damage=DAMAGE,
    data=st.data(),
)
def test_damage_never_invents_records_and_keeps_the_prefix(
    rows: list[tuple[str, int]], damage: tuple, data: st.DataObject
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        wal = open_wal(directory, fsync_mode="none")
        appended = {}
        ends = []
        for i, (table, n) in enumerate(rows):
            batch = make_batch(i, rows=n)
            lsn = wal.append(table, batch)
            appended[lsn] = (table, batch)
            ends.append(segment_files(directory)[0].stat().st_size)
        wal.close()
        (seg,) = segment_files(directory)
        buf = bytearray(seg.read_bytes())
        size = len(buf)
        kind = damage[0]
        if kind == "truncate":
            damage_at = damage[1] % (size + 1)
            del buf[damage_at:]
        elif kind == "flip":
            damage_at = damage[1] % size
            for k, x in enumerate(damage[2]):
                if damage_at + k < size:
                    buf[damage_at + k] ^= x or 1
        elif kind == "garbage":
            damage_at = size
            buf += damage[1]
        else:
            damage_at = damage[1] % (size + 1)
            buf[damage_at:] = bytes(size - damage_at + data.draw(st.integers(0, 40)))
        seg.write_bytes(bytes(buf))

        wal = Wal(directory, fsync_mode="none")
        records = list(wal.replay())
        for rec in records:
            assert rec.lsn in appended, "replay invented a record"
            table, batch = appended[rec.lsn]
            assert rec.table == table and rec.batch.equals(batch)
        yielded = [r.lsn for r in records]
        assert yielded == sorted(set(yielded))
        intact = [lsn for lsn, end in zip(sorted(appended), ends) if end <= damage_at]
        assert yielded[: len(intact)] == intact, "lost a record before the damage"
        # the log stays usable after repair
        new_lsn = wal.append("after", make_batch(1000))
        assert new_lsn > max(yielded, default=0)
        wal.close()
        again = [r.lsn for r in replay_all(directory)]
        assert again == [*yielded, new_lsn]
