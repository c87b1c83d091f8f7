"""Buffer memory limit: flush early when near it; beyond it writers get 'server busy', never OOM."""

from __future__ import annotations

import datetime as dt
import threading
import time
from pathlib import Path

import pyarrow as pa
import pytest
from conftest import make_config

from timefusion.app import TimeFusion
from timefusion.write.ingest import ServerBusyError

T = "otel_logs_and_spans"


def batch(tag: str, n: int = 2000) -> pa.Table:
    base = dt.datetime(2025, 1, 17, 12, tzinfo=dt.UTC)
    return pa.table(
        {
            "timestamp": pa.array(
                [base + dt.timedelta(milliseconds=i) for i in range(n)], pa.timestamp("us", tz="UTC")
            ),
            "id": [f"{tag}-{i}" for i in range(n)],
            "project_id": ["p"] * n,
            "body": ["x" * 200] * n,
        }
    )


def test_pressure_flushes_early(tmp_path: Path) -> None:
    db = TimeFusion(make_config(tmp_path, buffer_max_memory_mb=2, flush_interval_secs=3600)).open()
    try:
        for i in range(12):  # ~0.5 MB each: far more than the buffer holds
            db.ingest(T, batch(f"b{i}"))
        deadline = time.monotonic() + 10
        while db.flusher.stats.commits == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert db.flusher.stats.commits >= 1, "pressure must trigger a flush long before the interval"
        assert db.sql("SELECT COUNT(*) FROM otel_logs_and_spans").to_table().column(0)[0].as_py() == 24000
    finally:
        db.close()


def test_full_buffer_gives_server_busy_and_no_ack(tmp_path: Path) -> None:
    db = TimeFusion(make_config(tmp_path, buffer_max_memory_mb=1, buffer_busy_wait_ms=300)).open()
    stuck = threading.Event()

    def storage_down(*args: object, **kwargs: object) -> object:
        stuck.set()
        raise OSError("storage unavailable")

    db.stores[T].append = storage_down  # flushing cannot drain the buffer
    acked = 0
    try:
        with pytest.raises(ServerBusyError, match="server busy") as err:
            for i in range(50):
                db.ingest(T, batch(f"b{i}", 1000))
                acked += 1
        assert err.value.sqlstate == "53200"
        assert stuck.is_set()
        assert 0 < acked < 50
        assert db.buffer.nbytes <= db.buffer.max_bytes
        n = db.sql("SELECT COUNT(*) FROM otel_logs_and_spans").to_table().column(0)[0].as_py()
        assert n == acked * 1000  # the refused batch is not stored
    finally:
        db.close(flush=False)
    db = TimeFusion(make_config(tmp_path)).open()  # storage is back: everything acked is there
    try:
        assert (
            db.sql("SELECT COUNT(*) FROM otel_logs_and_spans").to_table().column(0)[0].as_py() == acked * 1000
        )
    finally:
        db.close()
