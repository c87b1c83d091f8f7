"""Buffer: bucketing by (table, project, time bucket), sealing for flush, memory accounting."""

import threading
import time

import pyarrow as pa

from timefusion.schema import load_tables
from timefusion.storage.recovery import key_string, uncommitted
from timefusion.write.buffer import Buffer
from timefusion.write.coerce import coerce

LOGS = load_tables()["otel_logs_and_spans"]
T = "otel_logs_and_spans"


def rows(ts: list[str], projects: list[str]) -> pa.RecordBatch:
    return coerce(
        LOGS, pa.table({"timestamp": ts, "project_id": projects, "id": [str(i) for i in range(len(ts))]})
    )


def test_rows_are_grouped_by_project_and_bucket() -> None:
    buf = Buffer(bucket_secs=300, max_bytes=1 << 30)
    batch = rows(
        ["2025-01-17 14:00:00", "2025-01-17 14:04:59", "2025-01-17 14:05:00", "2025-01-17 14:01:00"],
        ["a", "a", "a", "b"],
    )
    assert buf.insert(T, 1, batch) == 4
    keys = sorted((b.key[1], b.key[2]) for b in buf._active.values())
    start = 1737122400 * 1_000_000  # 2025-01-17 14:00:00 UTC
    assert keys == [("a", start), ("a", start + 300_000_000), ("b", start)]
    assert buf.stats()["rows"] == 4
    assert sum(b.num_rows for b in buf.snapshot(T, frozenset({"a"}))) == 3
    assert buf.snapshot("otel_metrics") == []


def test_seal_release_and_unseal_keep_lsn_order() -> None:
    buf = Buffer(bucket_secs=300, max_bytes=1 << 30)
    buf.insert(T, 1, rows(["2025-01-17 14:00:00"], ["a"]))
    buf.insert(T, 2, rows(["2025-01-17 14:01:00"], ["a"]))
    sealed = buf.seal(T, now_us=None)
    assert len(sealed) == 1 and (sealed[0].min_lsn, sealed[0].max_lsn) == (1, 2)
    buf.insert(T, 3, rows(["2025-01-17 14:02:00"], ["a"]))  # new generation of the same key
    assert sum(b.num_rows for b in buf.snapshot(T)) == 3  # sealed rows stay visible
    assert buf.release_watermark() == 1
    buf.unseal(sealed)  # flush failed: rows go back in front of the newer rows
    (bucket,) = buf._active.values()
    assert (bucket.min_lsn, bucket.max_lsn, bucket.rows) == (1, 3, 3)
    sealed = buf.seal(T, now_us=None)
    before = buf.nbytes
    buf.release(sealed)
    assert before > 0 and buf.nbytes == 0
    assert buf.release_watermark() == 4


def test_only_completed_buckets_are_sealed() -> None:
    buf = Buffer(bucket_secs=300, max_bytes=1 << 30)
    buf.insert(T, 1, rows(["2025-01-17 14:00:00", "2025-01-17 14:06:00"], ["a", "a"]))
    now = (1737122400 + 300) * 1_000_000  # 14:05:00: the first bucket has just ended
    sealed = buf.seal(T, now_us=now)
    assert [b.key[2] for b in sealed] == [1737122400 * 1_000_000]


def test_replay_skips_committed_keys_whatever_the_bucket_width() -> None:
    batch = rows(["2025-01-17 14:00:00", "2025-01-17 14:10:00", "2025-01-17 14:12:00"], ["a", "a", "b"])
    start = 1737122400 * 1_000_000
    committed = {300_000_000: {key_string("a", start): 5}}  # the 14:00 bucket is in Delta up to LSN 5
    assert uncommitted(batch, 5, committed).num_rows == 2
    assert uncommitted(batch, 6, committed).num_rows == 3
    # an earlier run used 1-hour buckets: its commit covers all of a's rows of that hour
    committed[3_600_000_000] = {key_string("a", start): 9}
    kept = uncommitted(batch, 7, committed)
    assert kept.column(kept.schema.get_field_index("project_id")).to_pylist() == ["b"]


def test_writers_wait_for_memory_then_give_up() -> None:
    batch = rows(["2025-01-17 14:00:00"] * 100, ["a"] * 100)
    buf = Buffer(bucket_secs=300, max_bytes=batch.get_total_buffer_size() * 2)
    buf.insert(T, 1, batch)
    buf.insert(T, 2, batch)
    t0 = time.monotonic()
    assert buf.wait_for_space(batch.get_total_buffer_size(), timeout=0.2) is False
    assert time.monotonic() - t0 >= 0.2
    sealed = buf.seal(T, None)
    threading.Timer(0.1, buf.release, args=(sealed,)).start()
    assert buf.wait_for_space(batch.get_total_buffer_size(), timeout=5) is True
