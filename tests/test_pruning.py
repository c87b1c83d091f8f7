"""The Delta side is pruned by project, date and timestamp before DataFusion opens any file."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pytest
from s3_server import STORAGE_KINDS, s3_endpoint, storage_config  # noqa: F401

from timefusion.app import TimeFusion

PROJECTS = ["alpha", "beta", "gamma"]
DAYS = [dt.date(2025, 1, 16), dt.date(2025, 1, 17)]


@pytest.fixture(scope="module", params=STORAGE_KINDS)
def db(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> TimeFusion:
    """3 projects × 2 days × 4 six-hour flushes = 24 files, one row per minute (local and S3)."""
    instance = TimeFusion(storage_config(request, tmp_path_factory.mktemp("prune"))).open()
    for day in DAYS:
        for quarter in range(4):
            start = dt.datetime.combine(day, dt.time(quarter * 6), dt.UTC)
            minutes = [start + dt.timedelta(minutes=m) for m in range(6 * 60)]
            for p in PROJECTS:
                instance.ingest(
                    "otel_logs_and_spans",
                    pa.table(
                        {
                            "timestamp": pa.array(minutes, pa.timestamp("us", tz="UTC")),
                            "id": [f"{p}-{t.isoformat()}" for t in minutes],
                            "project_id": [p] * len(minutes),
                            "name": ["op"] * len(minutes),
                        }
                    ),
                )
            instance.flush()
    yield instance
    instance.close()


def scan(db: TimeFusion, sql: str) -> tuple[int, int, int]:
    result = db.sql(sql)
    n = result.to_table().column(0)[0].as_py()
    stats = result.scans["otel_logs_and_spans"]
    return n, stats.files_scanned, stats.files_total


def test_one_project_one_hour_opens_one_file(db: TimeFusion) -> None:
    n, scanned, total = scan(
        db,
        "SELECT COUNT(*) FROM otel_logs_and_spans WHERE project_id = 'beta' "
        "AND timestamp >= '2025-01-17 14:00:00' AND timestamp < '2025-01-17 15:00:00'",
    )
    assert (n, scanned, total) == (60, 1, 24)


def test_timestamp_range_alone_prunes_dates(db: TimeFusion) -> None:
    n, scanned, _ = scan(
        db,
        "SELECT COUNT(*) FROM otel_logs_and_spans "
        "WHERE timestamp BETWEEN '2025-01-16 23:00:00' AND '2025-01-17 00:59:00'",
    )
    assert n == 3 * 120
    assert scanned == 6  # the last quarter of the 16th and the first of the 17th, for 3 projects


def test_date_and_in_list(db: TimeFusion) -> None:
    n, scanned, _ = scan(
        db,
        "SELECT COUNT(*) FROM otel_logs_and_spans WHERE date = '2025-01-16' AND project_id IN ('alpha', 'gamma')",
    )
    assert (n, scanned) == (2 * 24 * 60, 8)


def test_parameters_prune_too(db: TimeFusion) -> None:
    result = db.sql(
        "SELECT COUNT(*) FROM otel_logs_and_spans WHERE project_id = $1 AND timestamp >= $2 AND timestamp < $3",
        ["gamma", dt.datetime(2025, 1, 16, 6, tzinfo=dt.UTC), dt.datetime(2025, 1, 16, 6, 30, tzinfo=dt.UTC)],
    )
    assert result.to_table().column(0)[0].as_py() == 30
    assert result.scans["otel_logs_and_spans"].files_scanned == 1


def test_unconstrained_query_reads_everything(db: TimeFusion) -> None:
    n, scanned, total = scan(db, "SELECT COUNT(*) FROM otel_logs_and_spans")
    assert (n, scanned, total) == (3 * 2 * 24 * 60, 24, 24)


def test_or_does_not_prune_wrongly(db: TimeFusion) -> None:
    n, _, _ = scan(
        db,
        "SELECT COUNT(*) FROM otel_logs_and_spans WHERE project_id = 'alpha' OR name = 'op'",
    )
    assert n == 3 * 2 * 24 * 60


def test_sub_millisecond_bounds_never_prune_a_matching_file(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """delta-rs stores timestamp statistics truncated to milliseconds; a row at .999999 must still
    be found by a bound inside that millisecond."""
    from conftest import make_config

    with TimeFusion(make_config(tmp_path)).open() as db:
        ts = [
            dt.datetime(2025, 1, 17, 12, 0, 0, 123456, dt.UTC),
            dt.datetime(2025, 1, 17, 12, 0, 0, 999999, dt.UTC),
        ]
        db.ingest(
            "otel_logs_and_spans",
            pa.table(
                {
                    "timestamp": pa.array(ts, pa.timestamp("us", tz="UTC")),
                    "id": ["a", "b"],
                    "project_id": ["p"] * 2,
                }
            ),
        )
        db.flush()
        n, scanned, total = scan(
            db, "SELECT COUNT(*) FROM otel_logs_and_spans WHERE timestamp >= '2025-01-17 12:00:00.999500'"
        )
        assert (n, scanned, total) == (1, 1, 1)
