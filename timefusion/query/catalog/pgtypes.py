"""PostgreSQL's types as the catalog reports them: `pg_type` rows, `format_type`, `::regtype` input.

Clients learn column types from two places that must agree: the wire layer's RowDescription OIDs and
`pg_type` (drivers look unknown OIDs up there; psql's `\\d` prints `format_type(atttypid, atttypmod)`).
The rows are PostgreSQL 15's own (`pg_static.TYPES`), so lengths, array links and I/O function names are
exactly what drivers expect. This module also maps our schema types to PostgreSQL types and any
PostgreSQL type to the Arrow type that holds its values in an emulated catalog table.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import pyarrow as pa

from timefusion.query.catalog import pg_static


class TypeRow(NamedTuple):
    """One `pg_type` row (the columns of `pg_static.TYPE_COLUMNS`)."""

    oid: int
    typname: str
    typlen: int
    typbyval: bool
    typtype: str
    typcategory: str
    typispreferred: bool
    typisdefined: bool
    typdelim: str
    typrelid: int
    typsubscript: str
    typelem: int
    typarray: int
    typinput: str
    typoutput: str
    typreceive: str
    typsend: str
    typmodin: str
    typmodout: str
    typanalyze: str
    typalign: str
    typstorage: str
    typnotnull: bool
    typbasetype: int
    typtypmod: int
    typndims: int
    typcollation: int


assert tuple(TypeRow._fields) == tuple(pg_static.TYPE_COLUMNS), "pg_static.py is out of date"

TYPES: dict[int, TypeRow] = {row[0]: TypeRow(*row) for row in pg_static.TYPES}
_BY_TYPNAME: dict[str, int] = {t.typname: t.oid for t in TYPES.values()}

# Our schema types (timefusion.schema) → PostgreSQL type OID (json is stored as text, shown as jsonb).
OUR_TYPES: dict[str, int] = {
    "utf8": 25,
    "json": 3802,
    "int32": 23,
    "int64": 20,
    "float64": 701,
    "bool": 16,
    "date32": 1082,
    "timestamp": 1184,
    "list<utf8>": 1009,
    "list<int64>": 1016,
    "list<float64>": 1022,
}

# format_type's SQL-standard spellings (everything else prints as its typname).
_SQL_NAMES: dict[int, str] = {
    16: "boolean",
    18: '"char"',
    20: "bigint",
    21: "smallint",
    23: "integer",
    700: "real",
    701: "double precision",
    1042: "character",
    1043: "character varying",
    1083: "time without time zone",
    1114: "timestamp without time zone",
    1184: "timestamp with time zone",
    1266: "time with time zone",
    1560: "bit",
    1562: "bit varying",
}

# Extra names `::regtype` / to_regtype() accept (PostgreSQL's parser aliases).
_ALIASES: dict[str, int] = {
    **{name: oid for oid, name in _SQL_NAMES.items()},
    "int": 23,
    "int4": 23,
    "int2": 21,
    "int8": 20,
    "bool": 16,
    "float": 701,
    "float4": 700,
    "float8": 701,
    "decimal": 1700,
    "char": 1042,
    "varchar": 1043,
    "timestamp": 1114,
    "timestamptz": 1184,
    "time": 1083,
    "timetz": 1266,
    "varbit": 1562,
}


def type_row(oid: int) -> TypeRow | None:
    return TYPES.get(oid)


def format_type(oid: int | None, typmod: int | None = None) -> str | None:
    """PostgreSQL's `format_type(oid, typmod)`: the type's SQL name, `[]` for arrays, `???` if unknown."""
    if oid is None:
        return None
    row = TYPES.get(oid)
    if row is None:
        return "???"
    if row.typcategory == "A" and row.typelem and row.typlen == -1:
        element = format_type(row.typelem, typmod)
        return f"{element}[]"
    name = _SQL_NAMES.get(oid, row.typname)
    if typmod is None or typmod < 0:
        return name
    if oid in (1042, 1043):  # character(n), character varying(n)
        return f"{name}({typmod - 4})"
    if oid == 1700:
        precision, scale = (typmod - 4) >> 16, (typmod - 4) & 0xFFFF
        return f"numeric({precision},{scale})"
    if oid in (1114, 1184, 1083, 1266):  # timestamp(p) with/without time zone
        base, _, zone = name.partition(" ")
        return f"{base}({typmod}) {zone}".strip()
    return name


def regtype_oid(name: str | None) -> int | None:
    """The OID `'name'::regtype` / `to_regtype('name')` gives (None when there is no such type)."""
    if name is None:
        return None
    text = " ".join(name.strip().split()).lower()
    if text.startswith("pg_catalog."):
        text = text[len("pg_catalog.") :]
    if text.endswith("[]"):
        element = regtype_oid(text[:-2])
        row = TYPES.get(element) if element is not None else None
        return row.typarray if row is not None and row.typarray else None
    if text.startswith('"') and text.endswith('"'):
        return _BY_TYPNAME.get(text[1:-1])
    if text.isdigit():
        return int(text) if int(text) in TYPES else None
    return _ALIASES.get(text, _BY_TYPNAME.get(text))


def arrow_type(oid: int) -> pa.DataType:
    """The Arrow type that holds values of PostgreSQL type `oid` in an emulated catalog table.

    OIDs and other object identifiers are int64 (so that they compare with plain integers and with
    `'16384'` literals); `regproc` holds the function's name, as it prints; anything without an exact
    Arrow counterpart (aclitem, pg_node_tree, inet, interval, …) is text.
    """
    if oid in _SCALARS:
        return _SCALARS[oid]
    row = TYPES.get(oid)
    if row is not None and row.typelem and row.typlen == -1 and row.typcategory == "A":
        element = arrow_type(row.typelem)
        return pa.list_(element)
    if oid in (22, 30):  # int2vector, oidvector
        return pa.list_(pa.int16() if oid == 22 else pa.int64())
    return pa.string()


_SCALARS: dict[int, pa.DataType] = {
    16: pa.bool_(),
    17: pa.binary(),
    20: pa.int64(),
    21: pa.int16(),
    23: pa.int32(),
    26: pa.int64(),  # oid
    28: pa.int64(),  # xid
    29: pa.int64(),  # cid
    5069: pa.int64(),  # xid8
    2205: pa.int64(),  # regclass
    2206: pa.int64(),  # regtype
    4089: pa.int64(),  # regnamespace
    4096: pa.int64(),  # regrole
    700: pa.float32(),
    701: pa.float64(),
    1700: pa.float64(),
    1082: pa.date32(),
    1114: pa.timestamp("us"),
    1184: pa.timestamp("us", tz="UTC"),
    2277: pa.string(),  # anyarray (pg_stats' histograms): shown as text
}


def type_rows_as_dicts() -> list[dict[str, Any]]:
    """Every `pg_type` row as a dict (column → value), with the namespace and owner we report."""
    return [{**row._asdict(), "typnamespace": 11, "typowner": 10} for row in TYPES.values()]
