"""The shipped table definitions match the reference column lists exactly."""

from pathlib import Path

import pyarrow as pa
import pytest

from timefusion.schema import load_tables
from timefusion.schema.tables import SchemaError

REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference"

ARROW_NAMES = {
    "Date32": pa.date32(),
    'Timestamp(Microsecond, Some("UTC"))': pa.timestamp("us", tz="UTC"),
    "Utf8": pa.string(),
    "List(Utf8)": pa.list_(pa.string()),
    "List(Int64)": pa.list_(pa.int64()),
    "List(Float64)": pa.list_(pa.float64()),
    "Int32": pa.int32(),
    "Int64": pa.int64(),
    "Boolean": pa.bool_(),
    "Float64": pa.float64(),
}


def reference_columns(table: str) -> list[tuple[str, pa.DataType, bool]]:
    path = REFERENCE / f"{table}.columns.tsv"
    if not path.exists():  # CI has shared/ beside the clone; say so loudly rather than pass
        pytest.fail(f"reference column list {path} is missing")
    out = []
    for line in path.read_text().splitlines():
        if line.startswith("#"):
            continue
        name, typ, nullable = line.split("\t")
        arrow = pa.string() if typ.startswith("Variant") else ARROW_NAMES[typ]
        out.append((name, arrow, nullable == "true"))
    return out


@pytest.mark.parametrize(("table", "count"), [("otel_logs_and_spans", 92), ("otel_metrics", 69)])
def test_columns_match_reference(table: str, count: int) -> None:
    schema = load_tables()[table]
    got = [(f.name, f.type, f.nullable) for f in schema.arrow_schema]
    assert got == reference_columns(table)
    assert len(got) == count
    assert schema.partition_by == ("project_id", "date")
    assert schema.sort_by[0] == ("timestamp", True)
    assert schema.dedup_keys == ("timestamp", "id")


def test_variant_columns_are_json_text() -> None:
    logs = load_tables()["otel_logs_and_spans"]
    assert {"severity", "body", "context", "events", "attributes", "resource", "errors"} == logs.json_columns
    assert logs.arrow_schema.field("attributes").type == pa.string()


def test_adding_a_table_is_adding_a_file(tmp_path: Path) -> None:
    (tmp_path / "events.yaml").write_text(
        "name: events\npartition_by: [project_id, date]\nsort_by: [{column: timestamp, descending: true}]\n"
        "dedup_keys: [timestamp, id]\ncolumns:\n"
        "  - {name: project_id, type: utf8, nullable: true}\n"
        "  - {name: timestamp, type: timestamp, nullable: false}\n"
        "  - {name: date, type: date32, nullable: false}\n"
        "  - {name: id, type: utf8, nullable: false}\n"
    )
    tables = load_tables(tmp_path)
    assert list(tables) == ["events"]
    assert tables["events"].data_columns == ("timestamp", "id")


def test_bad_schema_files_are_rejected(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text(
        "name: bad\ncolumns:\n  - {name: timestamp, type: decimal, nullable: false}\n"
    )
    with pytest.raises(SchemaError, match="unknown type 'decimal'"):
        load_tables(tmp_path)
