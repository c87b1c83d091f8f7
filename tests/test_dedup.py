"""Idempotent ingest: a row written twice with the same (project_id, timestamp, id) appears once,
the last write winning, whether the copies are in memory, in Delta, or one in each — across
flushes, restarts (WAL replay) and SIGKILL. Also: the append-only path never takes the MERGE path.
"""

from __future__ import annotations

import collections
import datetime as dt
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pyarrow as pa
from conftest import make_config
from deltalake import DeltaTable

from timefusion.app import TimeFusion
from timefusion.write.buffer import NO, Buffer

T = "otel_logs_and_spans"
BASE = dt.datetime(2025, 1, 17, 12, tzinfo=dt.UTC)


def stamp(key: str, start: dt.datetime = BASE) -> dt.datetime:
    """Each id has one timestamp (so a re-sent id is the same key)."""
    return start + dt.timedelta(seconds=int.from_bytes(key.encode(), "big") % 3000)


def rows(ids: list[str], name: str, project: str = "p1", start: dt.datetime = BASE) -> pa.Table:
    return pa.table(
        {
            "timestamp": pa.array([stamp(i, start) for i in ids], pa.timestamp("us", tz="UTC")),
            "id": ids,
            "project_id": [project] * len(ids),
            "name": [name] * len(ids),
        }
    )


def seen(db: TimeFusion, where: str = "") -> list[tuple[str, str, str]]:
    sql = f"SELECT project_id, id, name FROM {T} {where} ORDER BY project_id, id"
    return [(r["project_id"], r["id"], r["name"]) for r in db.sql(sql).to_table().to_pylist()]


def delta_ids(db: TimeFusion) -> list[str]:
    """Every id stored in Delta (the committed table, read by deltalake itself)."""
    table = DeltaTable(db.stores[T].location.uri).to_pyarrow_table(columns=["id"])
    return sorted(table.column("id").to_pylist())


def operations(db: TimeFusion) -> list[str]:
    return [h["operation"] for h in db.stores[T]._table.history() if h["operation"] != "CREATE TABLE"]


def test_duplicates_in_memory_last_write_wins(db: TimeFusion) -> None:
    db.ingest(T, rows(["a", "b", "c"], "v1"))
    db.ingest(T, rows(["a", "b", "c"], "v2"))
    assert seen(db) == [("p1", i, "v2") for i in "abc"]
    assert db.sql(f"SELECT count(*) AS n FROM {T}").to_table().column("n")[0].as_py() == 3
    db.flush()
    assert seen(db) == [("p1", i, "v2") for i in "abc"]
    assert delta_ids(db) == ["a", "b", "c"]


def test_duplicates_within_one_batch(db: TimeFusion) -> None:
    batch = pa.concat_tables([rows(["a", "b"], "v1"), rows(["a"], "v2")])
    db.ingest(T, batch)
    assert seen(db) == [("p1", "a", "v2"), ("p1", "b", "v1")]
    db.flush()
    assert seen(db) == [("p1", "a", "v2"), ("p1", "b", "v1")]


def test_one_in_delta_one_in_memory(db: TimeFusion) -> None:
    db.ingest(T, rows(["a", "b", "c"], "v1"))
    db.flush()
    db.ingest(T, rows(["b", "c", "d"], "v2"))  # a retried batch, plus one new row
    assert seen(db) == [("p1", "a", "v1"), ("p1", "b", "v2"), ("p1", "c", "v2"), ("p1", "d", "v2")]
    assert db.sql(f"SELECT count(*) AS n FROM {T} WHERE id <> 'zz'").to_table()["n"][0].as_py() == 4
    db.flush()
    assert seen(db) == [("p1", "a", "v1"), ("p1", "b", "v2"), ("p1", "c", "v2"), ("p1", "d", "v2")]
    assert delta_ids(db) == ["a", "b", "c", "d"]  # Delta itself holds each key once
    assert operations(db)[0] == "MERGE"


def test_both_copies_in_delta_across_flushes(db: TimeFusion) -> None:
    for version in ("v1", "v2", "v3"):
        db.ingest(T, rows(["a", "b"], version))
        db.flush()
    assert seen(db) == [("p1", "a", "v3"), ("p1", "b", "v3")]
    assert delta_ids(db) == ["a", "b"]


def test_same_key_in_two_projects_is_two_rows(db: TimeFusion) -> None:
    db.ingest(T, rows(["a"], "one", project="p1"))
    db.ingest(T, rows(["a"], "two", project="p2"))
    db.flush()
    db.ingest(T, rows(["a"], "three", project="p2"))
    assert seen(db) == [("p1", "a", "one"), ("p2", "a", "three")]


def test_across_restart_wal_replay(tmp_path: Path) -> None:
    cfg = make_config(tmp_path)
    db = TimeFusion(cfg).open()
    db.ingest(T, rows(["a", "b"], "v1"))
    db.ingest(T, rows(["a", "b"], "v2"))
    db.close(flush=False)  # a crash: everything is only in the WAL
    db = TimeFusion(cfg).open()
    try:
        assert seen(db) == [("p1", "a", "v2"), ("p1", "b", "v2")]
        db.ingest(T, rows(["b"], "v3"))
        assert seen(db) == [("p1", "a", "v2"), ("p1", "b", "v3")]
    finally:
        db.close()
    db = TimeFusion(cfg).open()
    try:
        assert seen(db) == [("p1", "a", "v2"), ("p1", "b", "v3")]
        assert delta_ids(db) == ["a", "b"]
    finally:
        db.close()


def test_retry_after_flush_then_crash(tmp_path: Path) -> None:
    cfg = make_config(tmp_path)
    db = TimeFusion(cfg).open()
    db.ingest(T, rows(["a", "b"], "v1"))
    db.flush()
    db.ingest(T, rows(["a", "b"], "v2"))  # the retry sits in the WAL and the buffer only
    db.close(flush=False)
    db = TimeFusion(cfg).open()  # replay: the rows shadow Delta's again
    try:
        assert seen(db) == [("p1", "a", "v2"), ("p1", "b", "v2")]
        db.flush()
        assert delta_ids(db) == ["a", "b"]
        assert seen(db) == [("p1", "a", "v2"), ("p1", "b", "v2")]
    finally:
        db.close()


def test_commit_without_wal_release_replays_idempotently(tmp_path: Path) -> None:
    """A crash between the MERGE commit and the WAL release: replay must skip what Delta has."""
    cfg = make_config(tmp_path)
    db = TimeFusion(cfg).open()
    db.ingest(T, rows(["a", "b"], "v1"))
    db.flush()
    db.ingest(T, rows(["a"], "v2"))
    assert db.flusher is not None
    db.flusher.release_wal = lambda lsn: 0  # the WAL keeps every record
    db.flush()
    db.close(flush=False)
    db = TimeFusion(cfg).open()
    try:
        assert db.replay_stats["rows_restored"] == 0
        assert seen(db) == [("p1", "a", "v2"), ("p1", "b", "v1")]
        assert delta_ids(db) == ["a", "b"]
    finally:
        db.close()


def test_append_only_and_late_rows_take_the_append_path(db: TimeFusion) -> None:
    db.ingest(T, rows([f"r{i}" for i in range(50)], "v1", start=BASE))
    db.flush()
    fresh = rows([f"n{i}" for i in range(10)], "v1", start=BASE + dt.timedelta(hours=2))
    db.ingest(T, fresh)  # newer than every Delta file: no suspicion at all
    assert all(b.shadows == NO and not b.dup for b in db.buffer._active.values())
    late = rows([f"l{i}" for i in range(10)], "v1", start=BASE + dt.timedelta(seconds=5))
    db.ingest(T, late)  # inside a Delta file's time range, but new keys: verified, then appended
    assert len(seen(db)) == 70
    assert all(b.shadows == NO for b in db.buffer._active.values())  # the query settled it
    db.flush()
    assert operations(db)[0] == "WRITE"
    assert len(delta_ids(db)) == 70


def test_sealed_and_active_copies() -> None:
    """A retried row arriving while the first copy's bucket is being flushed (sealed)."""
    buf = Buffer(300, 1 << 30)
    from timefusion.schema import load_tables
    from timefusion.write.coerce import coerce

    schema = load_tables()[T]
    buf.insert(T, 1, coerce(schema, rows(["a", "b"], "v1")))
    sealed = buf.seal(T, None)
    buf.insert(T, 2, coerce(schema, rows(["a"], "v2")))
    got = pa.Table.from_batches(buf.view(T).batches).sort_by("id")
    assert got.column("name").to_pylist() == ["v2", "v1"]
    buf.release(sealed)  # the flush published "a" (v1) to Delta: the active copy now shadows it
    view = buf.view(T)
    assert view.shadow_keys is not None and view.shadow_keys.column("id").to_pylist() == ["a"]


WRITER = r"""
import datetime as dt, sys, pyarrow as pa
from pathlib import Path
from timefusion.app import TimeFusion
from timefusion.config import Config
data_dir, cycle = Path(sys.argv[1]), int(sys.argv[2])
db = TimeFusion(Config(data_dir=data_dir, flush_interval_secs=0.2, bucket_duration_secs=60,
                       wal_segment_mb=1)).open()
print("READY", flush=True)
base = dt.datetime(2025, 1, 17, 12, tzinfo=dt.UTC)
n = 0
while True:
    ids = [f"k{(n * 7 + i) % 400}" for i in range(20)]  # keys repeat across batches and cycles
    stamps = [base + dt.timedelta(seconds=int(k[1:]) * 9) for k in ids]
    value = f"c{cycle}-{n}"
    batch = pa.table({"timestamp": pa.array(stamps, pa.timestamp("us", tz="UTC")), "id": ids,
                      "project_id": ["p1"] * 20, "name": [value] * 20})
    db.ingest("otel_logs_and_spans", batch)
    db.ingest("otel_logs_and_spans", batch)  # the client's retry of the same batch
    print("ACK " + value + " " + ",".join(ids), flush=True)
    n += 1
"""


def test_sigkill_with_retries_stores_each_key_once(tmp_path: Path) -> None:
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    data_dir = tmp_path / "data"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    latest: dict[str, str] = {}  # key → value of the last acknowledged write
    for cycle in range(int(os.environ.get("TIMEFUSION_DEDUP_KILLS", "8"))):
        proc = subprocess.Popen(
            [sys.executable, str(script), str(data_dir), str(cycle)],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env=env,
        )
        lines: list[str] = []
        ready = threading.Event()

        def read(
            p: subprocess.Popen[str] = proc, out: list[str] = lines, ev: threading.Event = ready
        ) -> None:
            assert p.stdout is not None
            for line in p.stdout:
                if line.startswith("READY"):
                    ev.set()
                out.append(line.strip())

        reader = threading.Thread(target=read)
        reader.start()
        if not ready.wait(timeout=60):
            proc.kill()
            proc.wait()
            raise AssertionError("the writer did not start")
        time.sleep(0.3 + 0.15 * (cycle % 4))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        reader.join()
        for line in lines:
            if line.startswith("ACK "):
                _, value, ids = line.split()
                for k in ids.split(","):
                    latest[k] = value
    assert latest, "the writer must have acknowledged batches"
    db = TimeFusion(make_config(tmp_path)).open()
    try:
        got = db.sql(f"SELECT id, name FROM {T}").to_table().to_pylist()
        counts = collections.Counter(r["id"] for r in got)
        assert not [k for k, c in counts.items() if c > 1], "a key is stored more than once"
        names = {r["id"]: r["name"] for r in got}
        missing = [k for k in latest if k not in names]
        assert not missing, f"acknowledged keys lost: {missing[:5]}"
        # a later, unacknowledged write may have won; never an older one than the last ack
        order = {v: (int(v.split("-")[0][1:]), int(v.split("-")[1])) for v in set(names.values())}
        order.update({v: (int(v.split("-")[0][1:]), int(v.split("-")[1])) for v in latest.values()})
        stale = [k for k, v in latest.items() if order[names[k]] < order[v]]
        assert not stale, f"keys whose last acknowledged write was lost: {stale[:5]}"
        db.flush()
        assert len(delta_ids(db)) == len(set(delta_ids(db)))
    finally:
        db.close()
