"""Load table definitions (YAML) into Arrow schemas with partitions, sort keys and dedup keys.

A schema file declares everything about a table, so adding a table means adding a file. `json`
columns are stored as UTF-8 text (reported as jsonb to PostgreSQL clients by the wire layer).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import pyarrow as pa
import yaml

SCHEMA_DIR = Path(__file__).resolve().parent.parent / "schemas"

TIMESTAMP = pa.timestamp("us", tz="UTC")

_TYPES: dict[str, pa.DataType] = {
    "utf8": pa.string(),
    "json": pa.string(),
    "int32": pa.int32(),
    "int64": pa.int64(),
    "float64": pa.float64(),
    "bool": pa.bool_(),
    "date32": pa.date32(),
    "timestamp": TIMESTAMP,
    "list<utf8>": pa.list_(pa.string()),
    "list<int64>": pa.list_(pa.int64()),
    "list<float64>": pa.list_(pa.float64()),
}


class SchemaError(ValueError):
    """A schema file is malformed."""


@dataclass(frozen=True)
class Column:
    name: str
    type_name: str
    nullable: bool
    default: Any = None  # literal, "now" or "uuid"; only for NOT NULL columns
    mutable: bool = False  # `mutable: true` in the YAML: UPDATE may SET it (see query/dml.py)

    @property
    def arrow_type(self) -> pa.DataType:
        return _TYPES[self.type_name]

    @property
    def is_json(self) -> bool:
        return self.type_name == "json"


@dataclass(frozen=True)
class TableSchema:
    name: str
    columns: tuple[Column, ...]
    partition_by: tuple[str, ...]
    sort_by: tuple[tuple[str, bool], ...]  # (column, descending)
    dedup_keys: tuple[str, ...]
    description: str = ""

    @cached_property
    def arrow_schema(self) -> pa.Schema:
        return pa.schema([pa.field(c.name, c.arrow_type, c.nullable) for c in self.columns])

    @cached_property
    def by_name(self) -> dict[str, Column]:
        return {c.name: c for c in self.columns}

    @cached_property
    def data_columns(self) -> tuple[str, ...]:
        """Columns stored inside the Parquet files (partition columns live in the path)."""
        return tuple(c.name for c in self.columns if c.name not in self.partition_by)

    @cached_property
    def mutable_columns(self) -> tuple[str, ...]:
        """Columns an UPDATE may SET (`mutable: true` in the schema file)."""
        return tuple(c.name for c in self.columns if c.mutable)

    @cached_property
    def json_columns(self) -> frozenset[str]:
        return frozenset(c.name for c in self.columns if c.is_json)


def _parse(doc: dict[str, Any], source: str) -> TableSchema:
    try:
        name = doc["name"]
        cols = []
        for c in doc["columns"]:
            if c["type"] not in _TYPES:
                raise SchemaError(f"{source}: column {c['name']}: unknown type {c['type']!r}")
            cols.append(
                Column(
                    c["name"], c["type"], bool(c["nullable"]), c.get("default"), bool(c.get("mutable", False))
                )
            )
        names = [c.name for c in cols]
        if len(set(names)) != len(names):
            raise SchemaError(f"{source}: duplicate column names")
        partition_by = tuple(doc.get("partition_by", ()))
        sort_by = tuple((s["column"], bool(s.get("descending", False))) for s in doc.get("sort_by", ()))
        dedup = tuple(doc.get("dedup_keys", ()))
        for ref in (*partition_by, *(s for s, _ in sort_by), *dedup, "timestamp", "project_id", "date"):
            if ref not in names:
                raise SchemaError(f"{source}: refers to column {ref!r}, which is not declared")
        for c in cols:  # a row's identity and placement can never change
            if c.mutable and c.name in (*partition_by, *dedup, "timestamp", "project_id", "date"):
                raise SchemaError(f"{source}: column {c.name!r} is a key or partition column: not mutable")
        return TableSchema(name, tuple(cols), partition_by, sort_by, dedup, doc.get("description", ""))
    except KeyError as e:
        raise SchemaError(f"{source}: missing key {e}") from None


def load_tables(directory: Path | None = None) -> dict[str, TableSchema]:
    """Every `*.yaml` table definition in `directory` (default: the shipped `schemas/`)."""
    directory = directory or SCHEMA_DIR
    tables: dict[str, TableSchema] = {}
    for path in sorted(directory.glob("*.yaml")):
        table = _parse(yaml.safe_load(path.read_text()), path.name)
        tables[table.name] = table
    if not tables:
        raise SchemaError(f"no table definitions in {directory}")
    return tables
