"""The README's reference queries, run unchanged, against rows split between buffer and Delta.

Expected answers come from a small pure-Python oracle that follows PostgreSQL's semantics
(integer division, AVG of bigint is numeric and `::INT` rounds half away from zero, linear
`PERCENTILE_CONT`), plus a few hand-checked literal values.
"""

from __future__ import annotations

import datetime as dt
import math
import random
from collections import defaultdict
from decimal import ROUND_HALF_UP, Decimal

import pyarrow as pa
import pytest
from s3_server import STORAGE_KINDS, s3_endpoint, storage_config  # noqa: F401

from timefusion.app import TimeFusion

P = "prod-api-001"
UTC = dt.UTC
NAMES = ["GET /api/users", "POST /api/orders", "GET /api/items", "SELECT users", "GET /health"]


def make_rows(seed: int = 7, n: int = 3000) -> list[dict]:
    rng = random.Random(seed)
    start = dt.datetime(2025, 1, 16, 12, 0, tzinfo=UTC)
    rows = []
    for i in range(n):
        ts = start + dt.timedelta(microseconds=rng.randrange(0, 28 * 3600 * 1_000_000))
        status = rng.choice([200, 200, 200, 201, 404, 500, None])
        rows.append(
            {
                "id": f"id-{i}",
                "project_id": P if rng.random() < 0.85 else "other",
                "timestamp": ts,
                "name": rng.choice(NAMES),
                "duration": rng.randrange(1_000_000, 5_000_000_000),
                "attributes___http___response___status_code": status,
                "attributes___error___type": "timeout" if status == 500 else None,
                "hashes": [f"trace_{t}" for t in rng.sample(range(118, 130), rng.randrange(0, 3))],
            }
        )
    return rows


def pg_round(x: float | Decimal) -> int:
    return int(Decimal(str(x)).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def percentile_cont(values: list[float], q: float) -> float:
    s = sorted(values)
    pos = q * (len(s) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def in_range(r: dict, lo: str, hi: str) -> bool:
    a = dt.datetime.fromisoformat(lo).replace(tzinfo=UTC)
    b = dt.datetime.fromisoformat(hi).replace(tzinfo=UTC)
    return r["project_id"] == P and a <= r["timestamp"] < b


ROWS = make_rows()


@pytest.fixture(scope="module", params=STORAGE_KINDS)
def loaded(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> TimeFusion:
    """The same rows on each storage kind (local directory, S3): answers must be identical."""
    db = TimeFusion(storage_config(request, tmp_path_factory.mktemp("ref"))).open()
    table = pa.Table.from_pylist(ROWS)
    half = len(ROWS) // 2
    db.ingest("otel_logs_and_spans", table.slice(0, half))
    db.flush()  # first half in Delta
    db.ingest("otel_logs_and_spans", table.slice(half))  # second half only in memory
    yield db
    db.close()


def run(db: TimeFusion, sql: str) -> list[dict]:
    result = db.sql(sql)
    rows = result.to_table().to_pylist()
    scan = result.scans["otel_logs_and_spans"]
    assert scan.buffer_batches > 0 and scan.files_scanned > 0, "rows must come from both sides"
    return rows


def test_insert_statement(db: TimeFusion) -> None:
    res = db.sql(
        "INSERT INTO otel_logs_and_spans (name, id, project_id, timestamp, date, hashes) VALUES "
        "('api.request', '550e8400-e29b-41d4-a716-446655440000', 'prod-api-001', '2025-01-17 14:25:00', "
        "'2025-01-17', ARRAY[]::text[])"
    )
    assert (res.command, res.rowcount) == ("INSERT", 1)
    rows = db.sql("SELECT name, id, timestamp, date, hashes, summary FROM otel_logs_and_spans").to_table()
    assert rows.to_pylist() == [
        {
            "name": "api.request",
            "id": "550e8400-e29b-41d4-a716-446655440000",
            "timestamp": dt.datetime(2025, 1, 17, 14, 25, tzinfo=UTC),
            "date": dt.date(2025, 1, 17),
            "hashes": [],
            "summary": [],
        }
    ]


def test_count_by_name_for_a_day(loaded: TimeFusion) -> None:
    got = run(
        loaded,
        "SELECT name, COUNT(*) AS count FROM otel_logs_and_spans "
        "WHERE project_id = 'prod-api-001' AND date = '2025-01-17' GROUP BY name ORDER BY count DESC",
    )
    expected: dict[str, int] = defaultdict(int)
    for r in ROWS:
        if r["project_id"] == P and r["timestamp"].date() == dt.date(2025, 1, 17):
            expected[r["name"]] += 1
    assert {r["name"]: r["count"] for r in got} == expected
    assert [r["count"] for r in got] == sorted(expected.values(), reverse=True)


def test_slow_endpoints(loaded: TimeFusion) -> None:
    got = run(
        loaded,
        "SELECT name AS endpoint, COUNT(*) AS request_count, AVG(duration / 1000000)::INT AS avg_duration_ms, "
        "MAX(duration / 1000000)::INT AS max_duration_ms FROM otel_logs_and_spans "
        "WHERE project_id = 'prod-api-001' AND timestamp >= '2025-01-17 14:00:00' "
        "AND timestamp < '2025-01-17 15:00:00' AND duration > 1000000000 "
        "GROUP BY name ORDER BY avg_duration_ms DESC",
    )
    groups: dict[str, list[int]] = defaultdict(list)
    for r in ROWS:
        if in_range(r, "2025-01-17 14:00:00", "2025-01-17 15:00:00") and r["duration"] > 1_000_000_000:
            groups[r["name"]].append(r["duration"] // 1_000_000)
    expected = {
        name: {
            "endpoint": name,
            "request_count": len(v),
            "avg_duration_ms": pg_round(Decimal(sum(v)) / len(v)),
            "max_duration_ms": max(v),
        }
        for name, v in groups.items()
    }
    assert {r["endpoint"]: r for r in got} == expected
    assert [r["avg_duration_ms"] for r in got] == sorted(
        (e["avg_duration_ms"] for e in expected.values()), reverse=True
    )
    assert list(got[0]) == ["endpoint", "request_count", "avg_duration_ms", "max_duration_ms"]


def test_error_rate_per_hour(loaded: TimeFusion) -> None:
    got = run(
        loaded,
        "SELECT name AS endpoint, date_trunc('hour', timestamp) AS hour, COUNT(*) AS total_requests, "
        "COUNT(*) FILTER (WHERE attributes___http___response___status_code >= 400) AS errors, "
        "ROUND(100.0 * COUNT(*) FILTER (WHERE attributes___http___response___status_code >= 400) / COUNT(*), 2) "
        "AS error_rate FROM otel_logs_and_spans WHERE project_id = 'prod-api-001' "
        "AND timestamp >= '2025-01-16 15:00:00' AND timestamp < '2025-01-17 15:00:00' "
        "GROUP BY name, date_trunc('hour', timestamp) ORDER BY hour DESC, error_rate DESC",
    )
    groups: dict[tuple, list[int]] = defaultdict(lambda: [0, 0])
    for r in ROWS:
        if in_range(r, "2025-01-16 15:00:00", "2025-01-17 15:00:00"):
            g = groups[(r["name"], r["timestamp"].replace(minute=0, second=0, microsecond=0))]
            g[0] += 1
            code = r["attributes___http___response___status_code"]
            g[1] += 1 if code is not None and code >= 400 else 0
    assert len(got) == len(groups)
    for r in got:
        total, errors = groups[(r["endpoint"], r["hour"])]
        assert (r["total_requests"], r["errors"]) == (total, errors)
        expected_rate = (Decimal(100) * errors / total).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
        assert Decimal(str(r["error_rate"])) == expected_rate
    keys = [(r["hour"], r["error_rate"]) for r in got]
    assert keys == sorted(keys, key=lambda k: (k[0], k[1]), reverse=True)


def test_trace_lookup_with_any(loaded: TimeFusion) -> None:
    got = run(
        loaded,
        "SELECT id AS trace_id, name AS endpoint, timestamp, (duration / 1000000)::INT AS duration_ms, "
        "attributes___error___type AS error_type FROM otel_logs_and_spans "
        "WHERE project_id = 'prod-api-001' AND 'trace_124' = ANY(hashes) "
        "AND timestamp >= '2025-01-17 14:00:00' AND timestamp < '2025-01-17 15:00:00'",
    )
    expected = {
        r["id"]: (r["name"], r["timestamp"], r["duration"] // 1_000_000, r["attributes___error___type"])
        for r in ROWS
        if in_range(r, "2025-01-17 14:00:00", "2025-01-17 15:00:00") and "trace_124" in r["hashes"]
    }
    assert expected, "the data set must contain matches"
    assert {
        r["trace_id"]: (r["endpoint"], r["timestamp"], r["duration_ms"], r["error_type"]) for r in got
    } == expected


def test_time_bucket_with_percentile(loaded: TimeFusion) -> None:
    got = run(
        loaded,
        "SELECT time_bucket(INTERVAL '5 minutes', timestamp) AS bucket, COUNT(*) AS requests, "
        "AVG(duration / 1000000)::INT AS avg_duration_ms, "
        "PERCENTILE_CONT(0.95) WITHIN GROUP (ORDER BY duration / 1000000) AS p95_duration_ms "
        "FROM otel_logs_and_spans WHERE project_id = 'prod-api-001' AND timestamp >= '2025-01-17 14:00:00' "
        "AND timestamp < '2025-01-17 15:00:00' GROUP BY bucket ORDER BY bucket DESC",
    )
    groups: dict[dt.datetime, list[int]] = defaultdict(list)
    for r in ROWS:
        if in_range(r, "2025-01-17 14:00:00", "2025-01-17 15:00:00"):
            t = r["timestamp"]
            groups[t.replace(minute=t.minute - t.minute % 5, second=0, microsecond=0)].append(
                r["duration"] // 1_000_000
            )
    assert [r["bucket"] for r in got] == sorted(groups, reverse=True)
    assert len(got) == 12
    for r in got:
        v = groups[r["bucket"]]
        assert r["requests"] == len(v)
        assert r["avg_duration_ms"] == pg_round(Decimal(sum(v)) / len(v))
        assert r["p95_duration_ms"] == pytest.approx(percentile_cont(v, 0.95), rel=1e-12)


def test_moving_average_over_cte(loaded: TimeFusion) -> None:
    got = run(
        loaded,
        "WITH ts AS (SELECT time_bucket(INTERVAL '1 minute', timestamp) AS minute, name AS endpoint, "
        "AVG(duration / 1000000) AS avg_duration_ms FROM otel_logs_and_spans "
        "WHERE project_id = 'prod-api-001' AND timestamp >= '2025-01-17 14:30:00' "
        "AND timestamp < '2025-01-17 15:00:00' GROUP BY minute, endpoint) "
        "SELECT minute, endpoint, avg_duration_ms::INT, AVG(avg_duration_ms) OVER (PARTITION BY endpoint "
        "ORDER BY minute ROWS BETWEEN 2 PRECEDING AND CURRENT ROW)::INT AS moving_avg "
        "FROM ts ORDER BY endpoint, minute DESC",
    )
    per: dict[str, dict[dt.datetime, list[int]]] = defaultdict(lambda: defaultdict(list))
    for r in ROWS:
        if in_range(r, "2025-01-17 14:30:00", "2025-01-17 15:00:00"):
            per[r["name"]][r["timestamp"].replace(second=0, microsecond=0)].append(r["duration"] // 1_000_000)
    expected = []
    for endpoint in sorted(per):
        minutes = sorted(per[endpoint])
        avgs = [Decimal(sum(per[endpoint][m])) / len(per[endpoint][m]) for m in minutes]
        rows = []
        for i, m in enumerate(minutes):
            window = avgs[max(0, i - 2) : i + 1]
            rows.append((m, endpoint, pg_round(avgs[i]), pg_round(sum(window) / len(window))))
        expected.extend(reversed(rows))
    assert [tuple(r.values()) for r in got] == expected
    assert list(got[0]) == ["minute", "endpoint", "avg_duration_ms", "moving_avg"]


def test_other_projects_are_not_counted(loaded: TimeFusion) -> None:
    total = loaded.sql("SELECT COUNT(*) AS n FROM otel_logs_and_spans").to_table().column("n")[0].as_py()
    assert total == len(ROWS)
    mine = loaded.sql(
        "SELECT COUNT(*) AS n FROM otel_logs_and_spans", projects=frozenset({"other"})
    ).to_table()
    assert mine.column("n")[0].as_py() == sum(1 for r in ROWS if r["project_id"] == "other")


def test_output_names_follow_postgresql(loaded: TimeFusion) -> None:
    res = loaded.sql(
        "SELECT count(*), count(*) FILTER (WHERE duration > 1000000000), max(duration) "
        "FROM otel_logs_and_spans WHERE project_id = 'prod-api-001'"
    )
    assert res.schema.names == ["count", "count", "max"]
    (batch,) = list(res)
    row = [batch.column(i)[0].as_py() for i in range(3)]
    mine = [r for r in ROWS if r["project_id"] == P]
    assert row[0] == len(mine)
    assert row[1] == sum(1 for r in mine if r["duration"] > 1_000_000_000)
