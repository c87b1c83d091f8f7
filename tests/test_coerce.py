"""Coercion of incoming Arrow data to a table schema (the rules every protocol shares)."""

import datetime as dt

import pyarrow as pa
import pytest

from timefusion.schema import load_tables
from timefusion.write.coerce import IngestError, coerce

LOGS = load_tables()["otel_logs_and_spans"]
METRICS = load_tables()["otel_metrics"]


def test_missing_columns_nulls_defaults_and_derived_date() -> None:
    batch = coerce(
        LOGS,
        pa.table(
            {
                "timestamp": ["2025-01-17 23:59:59.5", "2025-01-18T00:00:01Z"],
                "id": ["a", "b"],
                "name": ["x", None],
                "project_id": ["p1", None],
                "date": ["1999-01-01", "1999-01-01"],  # ignored: date is derived from timestamp
            }
        ),
    )
    assert batch.schema == LOGS.arrow_schema
    rows = batch.to_pylist()
    assert rows[0]["date"] == dt.date(2025, 1, 17)
    assert rows[1]["date"] == dt.date(2025, 1, 18)
    assert rows[0]["timestamp"] == dt.datetime(2025, 1, 17, 23, 59, 59, 500000, tzinfo=dt.UTC)
    assert rows[1]["project_id"] == "default"
    assert rows[0]["summary"] == []  # NOT NULL list → empty list
    assert rows[0]["duration"] is None


def test_timestamps_normalised_to_microseconds_utc() -> None:
    ns = pa.array([1_737_123_900_123_456_789], pa.timestamp("ns", tz="Europe/Berlin"))
    naive = pa.array([dt.datetime(2025, 1, 17, 14, 25)], pa.timestamp("s"))
    offset = pa.array(["2025-01-17 16:25:00+02:00"])
    for arr, expected in [
        (ns, dt.datetime(2025, 1, 17, 14, 25, 0, 123456, tzinfo=dt.UTC)),
        (naive, dt.datetime(2025, 1, 17, 14, 25, tzinfo=dt.UTC)),
        (offset, dt.datetime(2025, 1, 17, 14, 25, tzinfo=dt.UTC)),
    ]:
        batch = coerce(LOGS, pa.table({"timestamp": arr, "id": ["x"]}))
        assert batch.column("timestamp").type == pa.timestamp("us", tz="UTC")
        assert batch.column("timestamp")[0].as_py() == expected


def test_bad_value_names_column_and_row() -> None:
    with pytest.raises(IngestError) as err:
        coerce(
            LOGS,
            pa.table(
                {"timestamp": ["2025-01-17 00:00:00"] * 3, "id": ["a", "b", "c"], "duration": ["1", "2", "x"]}
            ),
        )
    assert '"duration"' in str(err.value)
    assert "row 3" in str(err.value)
    assert err.value.sqlstate == "22P02"


def test_unknown_column_and_missing_not_null() -> None:
    with pytest.raises(IngestError, match='column "nope"') as err:
        coerce(LOGS, pa.table({"timestamp": ["2025-01-17 00:00:00"], "id": ["a"], "nope": [1]}))
    assert err.value.sqlstate == "42703"
    with pytest.raises(IngestError, match='"timestamp"') as err:
        coerce(LOGS, pa.table({"id": ["a"]}))
    assert err.value.sqlstate == "23502"
    with pytest.raises(IngestError, match="row 2"):
        coerce(LOGS, pa.table({"timestamp": ["2025-01-17 00:00:00", None], "id": ["a", "b"]}))


def test_metric_defaults_and_json_columns() -> None:
    batch = coerce(
        METRICS,
        pa.table(
            {
                "timestamp": ["2025-01-17 00:00:00"],
                "series_id": ["s"],
                "metric_name": ["m"],
                "metric_type": ["gauge"],
                "attributes": pa.array([{"k": 1}], pa.struct([("k", pa.int64())])),
            }
        ),
    )
    row = batch.to_pylist()[0]
    assert row["flags"] == 0 and row["metric_unit"] == ""
    assert row["ingested_at"] is not None and len(row["id"]) == 36
    assert row["attributes"] == '{"k":1}'
