"""Restart after a crash: acknowledged rows come back from the WAL exactly once."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pyarrow as pa
import pytest
from conftest import make_config

from timefusion.app import TimeFusion
from timefusion.write.wal import WalLockedError

T = "otel_logs_and_spans"


def batch(start: int, n: int, project: str = "p1") -> pa.Table:
    base = dt.datetime(2025, 1, 17, 12, tzinfo=dt.UTC)
    return pa.table(
        {
            "timestamp": pa.array(
                [base + dt.timedelta(seconds=37 * i) for i in range(start, start + n)],
                pa.timestamp("us", tz="UTC"),
            ),
            "id": [f"r{i}" for i in range(start, start + n)],
            "project_id": [project] * n,
        }
    )


def count(db: TimeFusion) -> tuple[int, int]:
    t = db.sql("SELECT COUNT(*) AS n, COUNT(DISTINCT id) AS d FROM otel_logs_and_spans").to_table()
    return t.column("n")[0].as_py(), t.column("d")[0].as_py()


def test_unflushed_rows_survive_a_crash(tmp_path: Path) -> None:
    db = TimeFusion(make_config(tmp_path)).open()
    db.ingest(T, batch(0, 500))
    db.ingest(T, batch(500, 500, "p2"))
    db.close(flush=False)  # a crash: nothing flushed, buffer lost
    db = TimeFusion(make_config(tmp_path)).open()
    assert db.replay_stats["rows_restored"] == 1000
    assert count(db) == (1000, 1000)
    db.close()
    db = TimeFusion(make_config(tmp_path)).open()  # clean stop flushed everything
    assert db.replay_stats["rows_restored"] == 0
    assert count(db) == (1000, 1000)
    assert db.stores[T].snapshot.num_files == 2
    db.close()


def test_crash_between_commit_and_wal_release_duplicates_nothing(tmp_path: Path) -> None:
    db = TimeFusion(make_config(tmp_path)).open()
    db.ingest(T, batch(0, 300))
    db.flusher.release_wal = lambda lsn: 0  # the process dies right after the Delta commit
    db.flush()
    db.ingest(T, batch(300, 200))  # a later row of the same bucket, not yet flushed
    db.close(flush=False)
    db = TimeFusion(make_config(tmp_path)).open()
    assert db.replay_stats["records"] == 2
    assert db.replay_stats["rows_restored"] == 200
    assert count(db) == (500, 500)
    db.close()
    db = TimeFusion(make_config(tmp_path)).open()
    assert count(db) == (500, 500)
    db.close()


def test_wal_segments_are_released_after_flush(tmp_path: Path) -> None:
    db = TimeFusion(make_config(tmp_path, wal_segment_mb=1)).open()
    for i in range(20):  # ~70 bytes a row in the WAL: 3 segments of 1 MB
        db.ingest(T, batch(i * 2000, 2000).append_column("name", pa.array(["x" * 30] * 2000)))
    segments = len(list((tmp_path / "data" / "wal").glob("*.wal")))
    assert segments > 2
    db.flush()
    assert len(list((tmp_path / "data" / "wal").glob("*.wal"))) <= 1
    db.close(flush=False)
    db = TimeFusion(make_config(tmp_path)).open()
    assert db.replay_stats["rows_restored"] == 0
    assert count(db) == (40000, 40000)
    db.close()


def test_second_process_cannot_own_the_wal(tmp_path: Path) -> None:
    db = TimeFusion(make_config(tmp_path)).open()
    try:
        with pytest.raises(WalLockedError):
            TimeFusion(make_config(tmp_path)).open()
    finally:
        db.close()


def test_flush_dedups_same_timestamp_and_id_last_write_wins(tmp_path: Path) -> None:
    db = TimeFusion(make_config(tmp_path)).open()
    first = batch(0, 10).append_column("name", pa.array(["old"] * 10))
    second = batch(5, 10).append_column("name", pa.array(["new"] * 10))
    db.ingest(T, first)
    db.ingest(T, second)
    db.flush()
    rows = db.sql("SELECT id, name FROM otel_logs_and_spans ORDER BY id").to_table().to_pylist()
    assert len(rows) == 15
    assert {r["id"]: r["name"] for r in rows} == {
        **{f"r{i}": "old" for i in range(5)},
        **{f"r{i}": "new" for i in range(5, 15)},
    }
    db.close()


def test_flushed_files_are_sorted_newest_first(tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    db = TimeFusion(make_config(tmp_path)).open()
    db.ingest(T, batch(0, 100).take(list(range(99, -1, -3)) + list(range(0, 100, 3))))
    db.flush()
    (path,) = db.stores[T].snapshot.files.column("path").to_pylist()
    ts = pq.read_table(path, columns=["timestamp"]).column(0).to_pylist()
    assert ts == sorted(ts, reverse=True)
    db.close()


def test_wal_stores_only_filled_columns_and_replay_restores_the_rest(tmp_path: Path) -> None:
    """The WAL drops all-NULL columns (an 8-column row was ~490 bytes as 92 columns); replay puts
    them back as NULLs of the right type, so replayed rows equal the acknowledged ones."""
    rows = batch(0, 300).append_column("duration", pa.array(range(300), pa.int64()))
    db = TimeFusion(make_config(tmp_path)).open()
    db.ingest(T, rows)
    before = db.sql("SELECT * FROM otel_logs_and_spans ORDER BY id").to_table()
    wal_bytes = sum(f.stat().st_size for f in db.config.wal_path.rglob("*.wal"))
    db.close(flush=False)
    assert 0 < wal_bytes < 300 * 120  # 92 columns in full would be ~300 × 400 bytes
    db = TimeFusion(make_config(tmp_path)).open()
    after = db.sql("SELECT * FROM otel_logs_and_spans ORDER BY id").to_table()
    db.close()
    assert after.schema == before.schema
    assert after.equals(before)


def test_commits_of_another_process_become_visible_at_the_next_tick(tmp_path: Path) -> None:
    """Two servers on one table (own WALs): each one's queries see the other's flushed rows after
    its next flusher tick, without flushing anything itself."""
    import time

    reader = TimeFusion(make_config(tmp_path, wal_dir=tmp_path / "wal-a", flush_interval_secs=0.2)).open()
    writer = TimeFusion(make_config(tmp_path, wal_dir=tmp_path / "wal-b")).open()
    try:
        assert count(reader) == (0, 0)
        writer.ingest(T, batch(0, 250))
        writer.flush()
        deadline = time.monotonic() + 10
        while count(reader) != (250, 250) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert count(reader) == (250, 250)
    finally:
        writer.close()
        reader.close()
