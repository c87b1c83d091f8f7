"""DataFusion after `prepare()` gives what PostgreSQL gives: values as PostgreSQL's text and names.

The expected answers were computed by a real PostgreSQL (tests/fixtures/pg_answers/regenerate.py,
which also holds the rows and the queries); here the same rows are loaded into DataFusion with our
exact Arrow schema and each query runs through prepare() first.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pytest
from datafusion import SessionConfig, SessionContext

from timefusion.query.rewrite import prepare
from timefusion.schema.tables import load_tables

ANSWERS = json.loads((Path(__file__).parent / "fixtures" / "pg_answers" / "answers.json").read_text())
SCHEMAS = load_tables()
NOW = datetime(2025, 1, 17, 15, 30, tzinfo=UTC)


def _context() -> SessionContext:
    ctx = SessionContext(SessionConfig().set("datafusion.execution.time_zone", "+00:00"))
    for name, schema in SCHEMAS.items():
        data = []
        if name == "otel_logs_and_spans":
            for r in ANSWERS["rows"]:
                row = {c.name: None for c in schema.columns}
                row.update(r)
                row["timestamp"] = datetime.fromisoformat(r["timestamp"])
                row["date"] = date.fromisoformat(r["date"])
                row["summary"] = []
                data.append(row)
        batch = pa.RecordBatch.from_pylist(data, schema=schema.arrow_schema)
        ctx.register_record_batches(name, [[batch]])
    return ctx


CTX = _context()


def pg_text(value: object) -> str | None:
    """A value as PostgreSQL's text output would show it."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, float):
        if math.isfinite(value) and value == int(value) and abs(value) < 1e15:
            return str(int(value)) if value != 0 or math.copysign(1, value) > 0 else "-0"
        return repr(value)
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, datetime):
        value = value.astimezone(UTC)
        text = value.strftime("%Y-%m-%d %H:%M:%S")
        if value.microsecond:
            text += f".{value.microsecond:06d}".rstrip("0")
        return text + "+00"
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, list):
        return "{" + ",".join(_array_element(v) for v in value) + "}"
    return str(value)


def _array_element(value: object) -> str:
    """An element inside PostgreSQL's array output: quoted when empty, `NULL`-like, or holding
    whitespace or one of `{},"\\` (with `"` and `\\` escaped)."""
    if value is None:
        return "NULL"
    if isinstance(value, list):
        return pg_text(value) or "{}"
    text = pg_text(value) or ""
    if text == "" or text.upper() == "NULL" or any(c in text for c in '{},"\\ \t\n\r\v\f'):
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return text


@pytest.mark.parametrize("case", ANSWERS["cases"], ids=[c["name"] for c in ANSWERS["cases"]])
def test_same_answer_as_postgresql(case: dict) -> None:
    prepared = prepare(case["sql"], None, SCHEMAS, NOW)
    frame = CTX.sql(prepared.sql)
    table = frame.to_arrow_table()
    names = list(prepared.column_names or table.column_names)
    assert names == case["columns"], prepared.sql
    if case.get("names_only"):
        return
    rows = [[pg_text(v) for v in row.values()] for row in table.to_pylist()]
    expected = case["rows"]
    if "ORDER BY" not in case["sql"] or len(rows) != len(expected):
        # The order among ties is not defined: compare as multisets.
        rows = sorted(rows, key=repr)
        expected = sorted(expected, key=repr)
    assert rows == expected, prepared.sql


def test_dataframe_names_match_postgresql_without_renaming() -> None:
    """Where PostgreSQL's names are unique, DataFusion's result already carries them (no renaming)."""
    for case in ANSWERS["cases"]:
        if len(set(case["columns"])) != len(case["columns"]):
            continue
        prepared = prepare(case["sql"], None, SCHEMAS, NOW)
        assert CTX.sql(prepared.sql).schema().names == case["columns"], case["name"]
