"""The benchmark data generator: deterministic, schema-compatible, internally consistent."""

from __future__ import annotations

import datetime as dt
import json

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from bench.datagen import ENDPOINT_NAMES, as_table, generate_project_mix, generate_spans
from timefusion.schema import load_tables
from timefusion.write.coerce import coerce

N = 20_000


@pytest.fixture(scope="module")
def rows() -> pa.Table:
    return as_table(generate_spans(N, batch_size=7_000))


def test_batches_and_row_counts() -> None:
    sizes = [b.num_rows for b in generate_spans(1_000, batch_size=300)]
    assert sizes == [300, 300, 300, 100]
    assert list(generate_spans(0)) == []


def test_deterministic_and_independent_of_batch_size(rows: pa.Table) -> None:
    again = as_table(generate_spans(N, batch_size=N))
    assert again.equals(rows)
    other = as_table(generate_spans(N, seed=43))
    assert not other.column("id").equals(rows.column("id"))
    assert not as_table(generate_spans(N, project_id="x")).column("id").equals(rows.column("id"))


def test_coerces_to_the_table_schema(rows: pa.Table) -> None:
    schema = load_tables()["otel_logs_and_spans"]
    assert set(rows.column_names) <= set(schema.by_name)
    batch = coerce(schema, rows.slice(0, 5_000))
    assert batch.schema == schema.arrow_schema
    assert batch.num_rows == 5_000
    for name in rows.column_names:  # nothing changed on the way through
        assert batch.column(name).equals(rows.column(name).slice(0, 5_000).combine_chunks()), name


def test_content(rows: pa.Table) -> None:
    assert pc.count_distinct(rows["id"]).as_py() == N
    ts = rows["timestamp"]
    lo, hi = pc.min_max(ts).values()
    assert lo.as_py() >= dt.datetime(2025, 1, 17, tzinfo=dt.UTC)
    assert hi.as_py() < dt.datetime(2025, 1, 18, tzinfo=dt.UTC)
    assert pc.all(pc.greater_equal(ts[1:], ts[:-1])).as_py()  # ordered=True: ascending
    assert set(rows["project_id"].unique().to_pylist()) == {"prod-api-001"}
    assert set(rows["name"].unique().to_pylist()) <= set(ENDPOINT_NAMES)
    counts = rows.group_by("name").aggregate([("id", "count")]).sort_by([("id_count", "descending")])
    top = counts["id_count"].to_pylist()
    assert top[0] > 5 * top[-1]  # skewed
    assert set(rows["status_code"].unique().to_pylist()) == {"OK", "ERROR", "UNSET"}
    assert pc.sum(pc.greater(rows["duration"], 1_000_000_000)).as_py() > N // 500
    trace = pc.list_value_length(rows["hashes"])
    assert pc.min(trace).as_py() >= 1
    flat = pc.list_flatten(rows["hashes"])
    assert pc.sum(pc.equal(flat, "trace_124")).as_py() > 0
    err = pc.equal(rows["status_code"], "ERROR")
    http = rows.filter(pc.is_valid(rows["attributes___http___response___status_code"]))
    e = http.filter(pc.equal(http["status_code"], "ERROR"))
    assert pc.all(pc.greater_equal(e["attributes___http___response___status_code"], 400)).as_py()
    assert pc.all(pc.is_valid(rows.filter(err)["attributes___error___type"])).as_py()
    assert pc.all(pc.is_null(rows.filter(pc.invert(err))["attributes___error___type"])).as_py()
    roots = pc.is_null(rows["parent_id"])
    assert 0.15 < pc.mean(roots.cast(pa.float64())).as_py() < 0.35


def _path(doc: dict, column: str, prefix: str) -> object:
    for part in column[len(prefix) :].split("___"):
        if not isinstance(doc, dict) or part not in doc:
            return None
        doc = doc[part]
    return doc


def test_json_matches_flattened_columns(rows: pa.Table) -> None:
    sample = rows.slice(0, 3_000).to_pylist()
    for r in sample:
        attrs, res, ctx = json.loads(r["attributes"]), json.loads(r["resource"]), json.loads(r["context"])
        for name, value in r.items():
            if name.startswith("attributes___"):
                assert _path(attrs, name, "attributes___") == value, (name, r["attributes"])
            elif name.startswith("resource___"):
                assert _path(res, name, "resource___") == value, (name, r["resource"])
        assert ctx["trace_id"] == r["context___trace_id"] and ctx["span_id"] == r["context___span_id"]
        for col in ("events", "errors", "severity"):
            if r[col] is not None:
                json.loads(r[col])
        assert r["summary"][0] == r["name"]


def test_project_mix() -> None:
    mix = as_table(generate_project_mix(10_000, batch_size=1_000))
    counts = dict(zip(*mix.group_by("project_id").aggregate([("id", "count")]).to_pydict().values()))
    assert counts == {"prod-api-001": 6_000, "prod-web-002": 3_000, "staging-api-003": 1_000}
    assert pc.count_distinct(mix["id"]).as_py() == 10_000
