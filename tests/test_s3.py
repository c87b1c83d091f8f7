"""Tables in an S3 bucket (moto's real HTTP server, see s3_server.py): durability, cache, outages.

Request counts are taken on the endpoint side (moto's request log), never from our own counters
alone, so "no GET" means the bucket really saw none.
"""

from __future__ import annotations

import datetime as dt
import os
import threading
import time
from pathlib import Path

import pyarrow as pa
import pytest
from conftest import make_config
from s3_server import S3Endpoint, s3_endpoint  # noqa: F401

from timefusion.app import TimeFusion
from timefusion.config import Config
from timefusion.storage.cache import ReadCache
from timefusion.storage.objects import fetcher
from timefusion.storage.s3 import S3Settings

TABLE = "otel_logs_and_spans"
T0 = dt.datetime(2025, 1, 17, 12, 0, tzinfo=dt.UTC)
_n = iter(range(10_000))


def rows(start: int, n: int, project: str = "p1", step_secs: int = 7, payload: int = 0) -> pa.Table:
    """`n` spans; `payload` random bytes per row (as hex text) make files that do not compress."""
    return pa.Table.from_pylist(
        [
            {
                "id": f"id-{i}",
                "project_id": project,
                "timestamp": T0 + dt.timedelta(seconds=step_secs * i),
                "name": f"op-{i % 5}",
                "duration": i,
                "hashes": [],
                "attributes": os.urandom(payload).hex() if payload else None,
            }
            for i in range(start, start + n)
        ]
    )


def count(db: TimeFusion, where: str = "") -> int:
    return db.sql(f"SELECT COUNT(*) AS n FROM {TABLE} {where}").to_table().column(0)[0].as_py()


def s3_config(ep: S3Endpoint, tmp: Path, **overrides: object) -> Config:
    bucket = ep.create_bucket(f"tf-s3-{next(_n)}")
    return make_config(tmp, **{**ep.config_overrides(bucket), **overrides})


def data_gets(ep: S3Endpoint, bucket: str) -> int:
    """GETs of data files (Parquet objects) in `bucket`."""
    return sum(1 for r in ep.requests("GET", f"/{bucket}/") if ".parquet" in r)


def test_write_flush_restart_read_back(s3_endpoint: S3Endpoint, tmp_path: Path) -> None:  # noqa: F811
    cfg = s3_config(s3_endpoint, tmp_path)
    with TimeFusion(cfg) as db:
        db.ingest(TABLE, rows(0, 500))
        assert db.flush() == 500
        db.ingest(TABLE, rows(500, 100))  # flushed at close
    # the tables are in the bucket, nothing went to the local data directory
    keys = [
        o["Key"]
        for o in s3_endpoint.client().list_objects_v2(Bucket=cfg.s3_bucket)["Contents"]  # type: ignore[index]
    ]
    assert any(k.startswith(f"timefusion/{TABLE}/_delta_log/") for k in keys)
    assert (
        sum(k.endswith(".parquet") and k.startswith(f"timefusion/{TABLE}/project_id=p1/") for k in keys) == 2
    )
    assert not (cfg.data_dir / TABLE).exists()
    with TimeFusion(cfg) as db:
        assert count(db) == 600
        got = db.sql(f"SELECT id, duration FROM {TABLE} WHERE id = 'id-550'").to_table().to_pylist()
        assert got == [{"id": "id-550", "duration": 550}]
    # a second machine with an empty cache reads the same rows from the bucket
    with TimeFusion(make_config(tmp_path / "other", **s3_endpoint.config_overrides(cfg.s3_bucket))) as db:
        assert count(db) == 600


def test_cache_serves_repeated_queries_and_survives_restart(
    s3_endpoint: S3Endpoint,  # noqa: F811
    tmp_path: Path,
) -> None:
    cfg = s3_config(s3_endpoint, tmp_path)
    bucket = cfg.s3_bucket
    assert bucket
    with TimeFusion(cfg) as db:
        for part in range(3):
            db.ingest(TABLE, rows(part * 1000, 1000, project=f"p{part}"))
            db.flush()
        base = data_gets(s3_endpoint, bucket)
        assert base == 0, "freshly flushed files are cached at write time"
        for _ in range(3):
            assert count(db) == 3000
            assert count(db, "WHERE project_id = 'p1'") == 1000
        assert data_gets(s3_endpoint, bucket) == 0
        stats = db.cache.stats()  # type: ignore[union-attr]
        assert stats["misses"] == 0 and stats["disk_hits"] >= 12 and stats["files_written"] == 3
    # restart: the disk cache is still there, so no data file is fetched again
    with TimeFusion(cfg) as db:
        assert db.cache.stats()["disk_files"] == 3  # type: ignore[union-attr]
        assert count(db) == 3000
        assert data_gets(s3_endpoint, bucket) == 0
    # a fresh cache directory downloads each file once, then serves it locally
    cold = make_config(tmp_path / "cold", **s3_endpoint.config_overrides(bucket))
    with TimeFusion(cold) as db:
        assert count(db) == 3000
        assert data_gets(s3_endpoint, bucket) == 3
        assert count(db) == 3000 and count(db, "WHERE project_id = 'p2'") == 1000
        assert data_gets(s3_endpoint, bucket) == 3
        assert db.cache.stats()["misses"] == 3  # type: ignore[union-attr]


def test_cache_memory_and_disk_stay_within_limits(s3_endpoint: S3Endpoint, tmp_path: Path) -> None:  # noqa: F811
    cfg = s3_config(s3_endpoint, tmp_path, foyer_memory_mb=1)
    with TimeFusion(cfg) as db:
        for part in range(10):  # about 150 kB per file, 1.5 MB in all
            db.ingest(TABLE, rows(part * 2000, 2000, project=f"m{part}", payload=70))
            db.flush()
            stats = db.cache.stats()  # type: ignore[union-attr]
            assert 0 < stats["memory_bytes"] <= 1024 * 1024
        assert count(db) == 20_000
        assert db.cache.stats()["evictions"] > 0  # type: ignore[union-attr]
        sizes = db.cache.stats()  # type: ignore[union-attr]
        assert sizes["memory_bytes"] <= 1024 * 1024
    # disk tier: LRU by size (no grace period here), files evicted are fetched again when used
    s3 = S3Settings.from_config(cfg)
    uris = [
        f"s3://{cfg.s3_bucket}/{o['Key']}"
        for o in s3_endpoint.client().list_objects_v2(Bucket=cfg.s3_bucket)["Contents"]  # type: ignore[index]
        if o["Key"].endswith(".parquet")
    ]
    assert len(uris) >= 10
    size = max(
        Path(p).stat().st_size for p in ReadCache(tmp_path / "c0", fetcher(s3), 0, 10**9).local_paths(uris)
    )
    cache = ReadCache(tmp_path / "c1", fetcher(s3), 0, 3 * size, grace_secs=0)
    for uri in uris:
        cache.local_paths([uri])
        assert cache.stats()["disk_bytes"] <= 3 * size
    assert cache.stats()["disk_files"] <= 3 and cache.stats()["evictions"] >= len(uris) - 3
    cache.close()


def test_disk_cache_ttl_expires_entries(s3_endpoint: S3Endpoint, tmp_path: Path) -> None:  # noqa: F811
    cfg = s3_config(s3_endpoint, tmp_path)
    with TimeFusion(cfg) as db:
        db.ingest(TABLE, rows(0, 100))
        db.flush()
    uri = f"s3://{cfg.s3_bucket}/" + next(
        o["Key"]
        for o in s3_endpoint.client().list_objects_v2(Bucket=cfg.s3_bucket)["Contents"]  # type: ignore[index]
        if o["Key"].endswith(".parquet")
    )
    s3 = S3Settings.from_config(cfg)
    cache = ReadCache(tmp_path / "ttl", fetcher(s3), 0, 10**9, ttl_secs=1)
    cache.local_paths([uri])
    cache.local_paths([uri])
    assert cache.stats()["misses"] == 1
    time.sleep(1.2)
    cache.local_paths([uri])
    assert cache.stats()["misses"] == 2 and cache.stats()["expired"] == 1
    cache.close()


def test_endpoint_down_in_the_middle_of_a_flush(s3_endpoint: S3Endpoint, tmp_path: Path) -> None:  # noqa: F811
    cfg = s3_config(s3_endpoint, tmp_path, flush_interval_secs=0.3, s3_request_timeout_secs=2.0)
    bucket = cfg.s3_bucket
    db = TimeFusion(cfg).open()
    try:
        db.ingest(TABLE, rows(0, 300))
        deadline = time.monotonic() + 30
        while count_delta(db) < 300:  # the background flusher commits the first rows
            assert time.monotonic() < deadline
            time.sleep(0.1)
        puts_before = s3_endpoint.count("PUT", f"/{bucket}/")

        def cut_after_first_upload() -> None:
            end = time.monotonic() + 20
            while time.monotonic() < end:
                if s3_endpoint.count("PUT", f"/{bucket}/") > puts_before:
                    break
                time.sleep(0.005)
            s3_endpoint.stop()

        cutter = threading.Thread(target=cut_after_first_upload)
        cutter.start()
        # ten partitions → ten uploads, then a commit: the endpoint goes away part way through
        for p in range(10):
            db.ingest(TABLE, rows(1000 + p * 200, 200, project=f"q{p}"))
        cutter.join()
        assert db.flusher is not None
        deadline = time.monotonic() + 30
        while db.flusher.stats.failures == 0:
            assert time.monotonic() < deadline, "a flush must fail while the endpoint is down"
            time.sleep(0.1)
        # acknowledged rows stay queryable (buffer + cached files) and in the WAL
        assert count(db) == 2300
        # crash while the endpoint is down: the WAL alone must bring every row back
        db.close(flush=False)
        s3_endpoint.resume()
        db = TimeFusion(cfg).open()
        assert count(db) == 2300
        deadline = time.monotonic() + 30
        while count_delta(db) < 2300:
            assert time.monotonic() < deadline, f"flush did not recover: {db.flusher.stats}"  # type: ignore[union-attr]
            time.sleep(0.2)
        assert count(db) == 2300
    finally:
        if not s3_endpoint.proxy.running:
            s3_endpoint.resume()
        db.close()
    # nothing lost, nothing twice, from a fresh reader of the bucket
    with TimeFusion(make_config(tmp_path / "reader", **s3_endpoint.config_overrides(bucket))) as reader:
        assert count(reader) == 2300
        assert reader.sql(f"SELECT COUNT(DISTINCT id) FROM {TABLE}").to_table().column(0)[0].as_py() == 2300


def count_delta(db: TimeFusion) -> int:
    """Rows committed to Delta (the published snapshot)."""
    files = db.stores[TABLE].snapshot.files
    return sum(files.column("num_records").to_pylist()) if files.num_rows else 0


@pytest.mark.parametrize("kind", ["missing bucket", "wrong endpoint", "bad bucket name", "http not allowed"])
def test_startup_errors(s3_endpoint: S3Endpoint, tmp_path: Path, kind: str) -> None:  # noqa: F811
    overrides = s3_endpoint.config_overrides("no-such-bucket-here")
    expected = "does not exist"
    if kind == "wrong endpoint":
        overrides.update(s3_bucket=s3_endpoint.create_bucket("tf-endpoint"), s3_endpoint="http://127.0.0.1:9")
        expected = "cannot reach the S3 endpoint http://127.0.0.1:9"
    elif kind == "bad bucket name":
        overrides.update(s3_bucket="ab")
        expected = "is not a valid bucket name"
    elif kind == "http not allowed":
        overrides.update(aws_allow_http=False)
        expected = "AWS_ALLOW_HTTP=true"
    from timefusion.app import StartupError

    with pytest.raises(StartupError, match=expected):
        TimeFusion(make_config(tmp_path, **overrides)).open()
    assert not (tmp_path / "data" / TABLE).exists(), "no silent fallback to the local directory"


def test_commit_outcome_is_looked_up_in_the_log(s3_endpoint: S3Endpoint, tmp_path: Path) -> None:  # noqa: F811
    """What an append does when a commit's outcome is unknown: find it by commit id, or say so."""
    from timefusion.storage.objects import META_COMMIT_ID

    cfg = s3_config(s3_endpoint, tmp_path, s3_request_timeout_secs=1.0)
    with TimeFusion(cfg) as db:
        store = db.stores[TABLE]
        writer = store._objects
        assert writer is not None
        before = store._table.version()
        db.ingest(TABLE, rows(0, 10))
        db.flush()
        landed = store._table.history(1)[0][META_COMMIT_ID]
        assert writer.find_commit(landed, before) is True
        assert writer.find_commit("not-a-commit", before) is False
        s3_endpoint.stop()
        try:
            assert writer.find_commit(landed, before, attempts=1) is None  # unreadable: unknown
        finally:
            s3_endpoint.resume()


def test_retry_after_a_commit_that_did_land_stores_nothing_twice(
    s3_endpoint: S3Endpoint,  # noqa: F811
    tmp_path: Path,
) -> None:
    """A commit reported as failed (outcome unknown) that did land: the retry drops its rows."""
    from timefusion.storage.objects import META_COMMIT_ID, _Unresolved

    cfg = s3_config(s3_endpoint, tmp_path)
    with TimeFusion(cfg) as db:
        store = db.stores[TABLE]
        writer = store._objects
        assert writer is not None
        db.ingest(TABLE, rows(0, 10))
        db.flush()
        before = store._table.version()
        batch = rows(100, 20)
        db.ingest(TABLE, batch)
        db.flush()
        landed = store._table.history(1)[0][META_COMMIT_ID]
        ts_type = store.schema.arrow_schema.field("timestamp").type
        keys = pa.table({"timestamp": batch.column("timestamp").cast(ts_type), "id": batch.column("id")})
        # as if the client never heard back, so the flusher still holds these rows and retries them
        writer._unresolved = _Unresolved(landed, before, keys.select(list(store.schema.dedup_keys)), [])
        db.ingest(TABLE, pa.concat_tables([batch, rows(200, 5)]))
        db.flush()
        assert writer._unresolved is None
        assert count(db) == 35
    with TimeFusion(
        make_config(tmp_path / "reader", **s3_endpoint.config_overrides(cfg.s3_bucket))
    ) as reader:
        assert count(reader) == 35


def test_cold_query_while_endpoint_is_down_is_a_clear_error(
    s3_endpoint: S3Endpoint,  # noqa: F811
    tmp_path: Path,
) -> None:
    from timefusion.query.engine import QueryError

    cfg = s3_config(s3_endpoint, tmp_path, s3_request_timeout_secs=1.0)
    with TimeFusion(cfg) as db:
        db.ingest(TABLE, rows(0, 50))
        db.flush()
    cold = make_config(
        tmp_path / "cold", **{**s3_endpoint.config_overrides(cfg.s3_bucket), "s3_request_timeout_secs": 1.0}
    )
    with TimeFusion(cold) as reader:
        s3_endpoint.stop()
        try:
            with pytest.raises(QueryError, match="cannot read data files from object storage") as info:
                count(reader)
            assert info.value.sqlstate == "58030"
        finally:
            s3_endpoint.resume()
        assert count(reader) == 50


def test_crash_between_commit_and_wal_release_duplicates_nothing(
    s3_endpoint: S3Endpoint,  # noqa: F811
    tmp_path: Path,
) -> None:
    """Recovery reads our commit metadata back from the bucket's log (as test_recovery.py locally)."""
    cfg = s3_config(s3_endpoint, tmp_path)
    db = TimeFusion(cfg).open()
    db.ingest(TABLE, rows(0, 300))
    db.flusher.release_wal = lambda lsn: 0  # type: ignore[union-attr]  # dies right after the commit
    db.flush()
    db.ingest(TABLE, rows(300, 200))
    db.close(flush=False)
    db = TimeFusion(cfg).open()
    assert db.replay_stats["rows_restored"] == 200
    assert count(db) == 500
    db.close()
    with TimeFusion(cfg) as db:
        assert count(db) == 500
        assert db.sql(f"SELECT COUNT(DISTINCT id) FROM {TABLE}").to_table().column(0)[0].as_py() == 500


def test_flushed_files_are_sorted_and_deduplicated(s3_endpoint: S3Endpoint, tmp_path: Path) -> None:  # noqa: F811
    import pyarrow.parquet as pq

    cfg = s3_config(s3_endpoint, tmp_path)
    with TimeFusion(cfg) as db:
        data = rows(0, 100)
        db.ingest(TABLE, data.take(list(range(99, -1, -3)) + list(range(0, 100, 3))))
        db.ingest(TABLE, rows(0, 10).set_column(3, "name", pa.array(["new"] * 10)))
        db.flush()
        (uri,) = db.stores[TABLE].snapshot.files.column("path").to_pylist()
        (local,) = db.cache.local_paths([uri])  # type: ignore[union-attr]
        ts = pq.read_table(local, columns=["timestamp"]).column(0).to_pylist()
        assert ts == sorted(ts, reverse=True)
        assert len(ts) == len(set(range(0, 100, 3)) | set(range(10)))  # (timestamp, id) deduplicated
        names = db.sql(f"SELECT name FROM {TABLE} WHERE id IN ('id-3', 'id-51')").to_table().column(0)
        assert sorted(names.to_pylist()) == ["new", "op-1"]  # the last write wins
