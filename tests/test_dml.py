"""UPDATE and DELETE through the in-process app: counts, visibility in memory and in Delta, before
and after flush and restart, UPDATE … FROM (VALUES …), immutable columns, project-bound sessions,
idempotent replay."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pyarrow as pa
import pytest
from conftest import make_config
from deltalake import DeltaTable

from timefusion.app import TimeFusion
from timefusion.query.dml import DmlError, parse_dml
from timefusion.query.engine import QueryError
from timefusion.schema import load_tables

T = "otel_logs_and_spans"
BASE = dt.datetime(2025, 1, 17, 12, tzinfo=dt.UTC)


def rows(ids: list[str], project: str = "p1", name: str = "span") -> pa.Table:
    return pa.table(
        {
            "timestamp": pa.array(
                [BASE + dt.timedelta(seconds=int(i[1:]) * 7) for i in ids], pa.timestamp("us", tz="UTC")
            ),
            "id": ids,
            "project_id": [project] * len(ids),
            "name": [name] * len(ids),
        }
    )


def state(db: TimeFusion) -> dict[tuple[str, str], list[str] | None]:
    got = db.sql(f"SELECT project_id, id, hashes FROM {T}").to_table().to_pylist()
    out = {(r["project_id"], r["id"]): r["hashes"] for r in got}
    assert len(out) == len(got), "a key appears twice"
    return out


def run(db: TimeFusion, sql: str, **kw: object) -> tuple[str, int | None]:
    result = db.sql(sql, **kw)  # type: ignore[arg-type]
    return result.command, result.rowcount


def delta_count(db: TimeFusion) -> int:
    return DeltaTable(db.stores[T].location.uri).to_pyarrow_table(columns=["id"]).num_rows


@pytest.mark.parametrize("flushed", [False, True], ids=["in-memory", "in-delta"])
def test_update_counts_and_visibility(db: TimeFusion, flushed: bool) -> None:
    db.ingest(T, rows(["r1", "r2", "r3"]))
    db.ingest(T, rows(["r1"], project="p2"))
    if flushed:
        db.flush()
    assert run(db, f"UPDATE {T} SET hashes = ARRAY['h'] WHERE project_id = 'p1' AND id IN ('r1', 'r2')") == (
        "UPDATE",
        2,
    )
    expect = {("p1", "r1"): ["h"], ("p1", "r2"): ["h"], ("p1", "r3"): None, ("p2", "r1"): None}
    assert state(db) == expect
    db.flush()
    assert state(db) == expect
    assert delta_count(db) == 4
    assert run(db, f"UPDATE {T} SET hashes = ARRAY['x'] WHERE id = 'nope'") == ("UPDATE", 0)


def test_update_keeps_other_columns_and_can_use_them(db: TimeFusion) -> None:
    db.ingest(T, rows(["r1", "r2"], name="checkout"))
    db.flush()
    assert run(db, f"UPDATE {T} SET hashes = ARRAY[name, id], deleted = true WHERE id = 'r2'") == (
        "UPDATE",
        1,
    )
    got = db.sql(f"SELECT id, name, hashes, deleted FROM {T} ORDER BY id").to_table().to_pylist()
    assert got == [
        {"id": "r1", "name": "checkout", "hashes": None, "deleted": None},
        {"id": "r2", "name": "checkout", "hashes": ["checkout", "r2"], "deleted": True},
    ]


@pytest.mark.parametrize("flushed", [False, True], ids=["in-memory", "in-delta"])
def test_delete_counts_and_visibility(db: TimeFusion, flushed: bool) -> None:
    db.ingest(T, rows(["r1", "r2", "r3"]))
    if flushed:
        db.flush()
    assert run(db, f"DELETE FROM {T} WHERE project_id = 'p1' AND id <> 'r3'") == ("DELETE", 2)
    assert state(db) == {("p1", "r3"): None}
    assert run(db, f"DELETE FROM {T} WHERE id = 'r1'") == ("DELETE", 0)  # already gone
    db.flush()
    assert state(db) == {("p1", "r3"): None}
    assert delta_count(db) == 1


def test_delete_then_insert_again(db: TimeFusion) -> None:
    db.ingest(T, rows(["r1", "r2"]))
    db.flush()
    assert run(db, f"DELETE FROM {T} WHERE id = 'r1'") == ("DELETE", 1)
    db.ingest(T, rows(["r1"], name="again"))  # newer than the tombstone: visible
    assert state(db) == {("p1", "r1"): None, ("p1", "r2"): None}
    db.flush()
    got = db.sql(f"SELECT id, name FROM {T} ORDER BY id").to_table().to_pylist()
    assert got == [{"id": "r1", "name": "again"}, {"id": "r2", "name": "span"}]


def test_update_from_values_counts_distinct_rows(db: TimeFusion) -> None:
    db.ingest(T, rows(["r1", "r2", "r3"]))
    db.flush()
    db.ingest(T, rows(["r4"]))
    sql = (
        f"UPDATE {T} AS t SET hashes = ARRAY[v.h] FROM (VALUES ('r1', 'a'), ('r4', 'd'), ('r9', 'z')) "
        "AS v(id, h) WHERE t.id = v.id AND t.project_id = 'p1'"
    )
    assert run(db, sql) == ("UPDATE", 2)
    assert state(db) == {("p1", "r1"): ["a"], ("p1", "r2"): None, ("p1", "r3"): None, ("p1", "r4"): ["d"]}


def test_update_from_unnest_with_parameters(db: TimeFusion) -> None:
    db.ingest(T, rows(["r1", "r2", "r3"]))
    sql = (
        f"UPDATE {T} t SET hashes = ARRAY[u.h] FROM unnest($1::text[], $2::text[]) AS u(id, h) "
        "WHERE t.id = u.id"
    )
    assert run(db, sql, params=[["r2", "r3"], ["b", "c"]]) == ("UPDATE", 2)
    assert state(db) == {("p1", "r1"): None, ("p1", "r2"): ["b"], ("p1", "r3"): ["c"]}


def test_survives_restart_and_replays_idempotently(tmp_path: Path) -> None:
    cfg = make_config(tmp_path)
    db = TimeFusion(cfg).open()
    db.ingest(T, rows(["r1", "r2", "r3"]))
    db.flush()
    db.sql(f"UPDATE {T} SET hashes = ARRAY['u'] WHERE id = 'r1'")
    db.sql(f"DELETE FROM {T} WHERE id = 'r2'")
    expect = {("p1", "r1"): ["u"], ("p1", "r3"): None}
    db.close(flush=False)  # crash: the UPDATE and DELETE exist only in the WAL
    db = TimeFusion(cfg).open()
    assert state(db) == expect
    assert db.flusher is not None
    db.flusher.release_wal = lambda lsn: 0  # crash after the MERGE commit, before the WAL release
    db.flush()
    assert state(db) == expect
    db.close(flush=False)
    db = TimeFusion(cfg).open()
    try:
        assert db.replay_stats["rows_restored"] == 0
        assert state(db) == expect
        assert delta_count(db) == 2
    finally:
        db.close()


def test_immutable_and_unknown_columns(db: TimeFusion) -> None:
    db.ingest(T, rows(["r1"]))
    for column in ("name", "id", "timestamp", "project_id"):
        with pytest.raises(QueryError) as e:
            db.sql(f"UPDATE {T} SET {column} = NULL")
        assert e.value.sqlstate == "0A000" and "mutable" in str(e.value)
    with pytest.raises(QueryError) as e:
        db.sql(f"UPDATE {T} SET no_such_column = 1")
    assert e.value.sqlstate == "42703"
    with pytest.raises(QueryError) as e:
        db.sql(f"UPDATE {T} SET hashes = NULL RETURNING id")
    assert e.value.sqlstate == "0A000"
    with pytest.raises(QueryError) as e:
        db.sql("DELETE FROM nothing_here WHERE true")
    assert e.value.sqlstate == "42P01"
    assert state(db) == {("p1", "r1"): None}


def test_project_bound_session_touches_only_its_projects(db: TimeFusion) -> None:
    db.ingest(T, rows(["r1", "r2"], project="p1"))
    db.ingest(T, rows(["r1", "r2"], project="p2"))
    db.flush()
    mine = frozenset({"p1"})
    assert run(db, f"UPDATE {T} SET hashes = ARRAY['m']", projects=mine) == ("UPDATE", 2)
    assert run(db, f"DELETE FROM {T} WHERE project_id = 'p2'", projects=mine) == ("DELETE", 0)
    assert run(db, f"DELETE FROM {T} WHERE id = 'r2'", projects=mine) == ("DELETE", 1)
    assert state(db) == {("p1", "r1"): ["m"], ("p2", "r1"): None, ("p2", "r2"): None}


def test_parse_dml_shapes() -> None:
    schemas = load_tables()
    d = parse_dml(
        f"  update public.{T} as t set hashes = ARRAY['a,b'], summary = ARRAY[] where t.id = 'x';", schemas
    )
    assert d is not None and d.kind == "UPDATE" and d.assigned == ("hashes", "summary")
    assert "WHERE t.id = 'x'" in d.select_sql and "ARRAY['a,b']" in d.select_sql
    d = parse_dml(f"DELETE FROM {T} USING (VALUES ('x')) v(id) WHERE {T}.id = v.id", schemas)
    assert d is not None and d.kind == "DELETE" and ", (VALUES ('x')) v(id)" in d.select_sql
    assert parse_dml("SELECT 1", schemas) is None
    with pytest.raises(DmlError):
        parse_dml(f"UPDATE {T} SET (hashes, errors) = (NULL, NULL)", schemas)
