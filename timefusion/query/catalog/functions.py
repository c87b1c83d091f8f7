"""PostgreSQL's catalog functions as DataFusion UDFs (`format_type`, `pg_get_userbyid`, `::regclass` …).

psql and drivers call these around catalog queries. Each is one entry in `SPECS`: its argument types
(the SQL rewrite casts every argument to them and fills omitted optional ones, because DataFusion's
Python UDFs have one exact signature), its result type and a row-wise Python implementation over the
session's `CatalogModel`. Catalog relations are tiny, so row-wise evaluation costs nothing that matters.
Functions whose answer is a constant for us (`has_table_privilege` → true, `pg_get_indexdef` → NULL …)
are not UDFs: the rewrite replaces their calls by the constant (`CONSTANT_FUNCTIONS`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
from datafusion import SessionContext, udf

from timefusion.query.catalog.model import CatalogModel
from timefusion.query.catalog.pgtypes import format_type, regtype_oid


@dataclass(frozen=True)
class FunctionSpec:
    args: tuple[str, ...]  # SQL type of each argument ("BIGINT", "TEXT", "BOOLEAN")
    returns: pa.DataType
    impl: Callable[..., Any]  # (model, *row values) → value
    optional: tuple[str, ...] = ()  # SQL literals filled in for omitted trailing arguments


def _size_pretty(size: int | None) -> str | None:
    """PostgreSQL 15's pg_size_pretty: bytes below 10 kB, then kB … PB, each rounded half away from 0."""
    if size is None:
        return None
    units = (("bytes", 10 * 1024, False, 0), ("kB", 20 * 1024 - 1, True, 10), ("MB", 20 * 1024 - 1, True, 20))
    units += (
        ("GB", 20 * 1024 - 1, True, 30),
        ("TB", 20 * 1024 - 1, True, 40),
        ("PB", 20 * 1024 - 1, True, 50),
    )
    value = int(size)
    for i, (name, limit, rounded, bits) in enumerate(units):
        if abs(value) < limit or i == len(units) - 1:
            if rounded:
                value = int((value + (1 if value >= 0 else -1)) / 2)
            return f"{value} {name}"
        following = units[i + 1]
        shift = following[3] - bits - int(following[2]) + int(rounded)
        value = value >> shift if value >= 0 else -((-value) >> shift)
    return None  # pragma: no cover


def _quote_ident(name: str | None) -> str | None:
    if name is None:
        return None
    plain = (
        name != ""
        and (name[0].islower() or name[0] == "_")
        and all(c.islower() or c.isdigit() or c == "_" for c in name)
    )
    return name if plain else '"' + name.replace('"', '""') + '"'


def _current_setting(m: CatalogModel, name: str | None) -> str | None:
    if name is None:
        return None
    for key, value in m.settings.items():
        if key.lower() == name.lower():
            return value
    return None


def _set_config(m: CatalogModel, name: str | None, value: str | None, _local: bool | None) -> str | None:
    # Per query contexts: the value is reported back (as PostgreSQL does) but not kept.
    return value


SPECS: dict[str, FunctionSpec] = {
    "pg_get_userbyid": FunctionSpec(
        ("BIGINT",), pa.string(), lambda m, o: None if o is None else m.role_name(o)
    ),
    "pg_table_is_visible": FunctionSpec(
        ("BIGINT",), pa.bool_(), lambda m, o: None if o is None else m.is_visible(o)
    ),
    "pg_type_is_visible": FunctionSpec(("BIGINT",), pa.bool_(), lambda m, o: None if o is None else True),
    "pg_function_is_visible": FunctionSpec(("BIGINT",), pa.bool_(), lambda m, o: None if o is None else True),
    "format_type": FunctionSpec(
        ("BIGINT", "BIGINT"), pa.string(), lambda m, o, t: "-" if o == 0 else format_type(o, t), ("NULL",)
    ),
    "pg_get_expr": FunctionSpec(("TEXT", "BIGINT"), pa.string(), lambda m, e, _r: e),
    "obj_description": FunctionSpec(
        ("BIGINT", "TEXT"), pa.string(), lambda m, o, c: None if o is None else m.description(o, c), ("NULL",)
    ),
    "col_description": FunctionSpec(("BIGINT", "BIGINT"), pa.string(), lambda m, o, n: None),
    "shobj_description": FunctionSpec(("BIGINT", "TEXT"), pa.string(), lambda m, o, c: None),
    "pg_encoding_to_char": FunctionSpec(
        ("BIGINT",), pa.string(), lambda m, e: None if e is None else {6: "UTF8", 0: "SQL_ASCII"}.get(e, "")
    ),
    "pg_size_pretty": FunctionSpec(("BIGINT",), pa.string(), lambda m, s: _size_pretty(s)),
    "pg_table_size": FunctionSpec(
        ("BIGINT",), pa.int64(), lambda m, o: None if o is None else m.table_size(o)
    ),
    "pg_relation_size": FunctionSpec(
        ("BIGINT",), pa.int64(), lambda m, o: None if o is None else m.table_size(o)
    ),
    "pg_total_relation_size": FunctionSpec(
        ("BIGINT",), pa.int64(), lambda m, o: None if o is None else m.table_size(o)
    ),
    "pg_indexes_size": FunctionSpec(("BIGINT",), pa.int64(), lambda m, o: None if o is None else 0),
    "pg_database_size": FunctionSpec(
        ("TEXT",), pa.int64(), lambda m, d: None if d is None else m.database_size(d)
    ),
    "pg_tablespace_location": FunctionSpec(("BIGINT",), pa.string(), lambda m, o: None if o is None else ""),
    "current_schemas": FunctionSpec(
        ("BOOLEAN",),
        pa.list_(pa.string()),
        lambda m, implicit: (
            None if implicit is None else (["pg_catalog", "public"] if implicit else ["public"])
        ),
    ),
    "current_schema": FunctionSpec((), pa.string(), lambda m: "public"),
    "current_database": FunctionSpec((), pa.string(), lambda m: m.database),
    "__tf_current_user": FunctionSpec((), pa.string(), lambda m: m.user),
    "current_setting": FunctionSpec(("TEXT",), pa.string(), _current_setting),
    "set_config": FunctionSpec(("TEXT", "TEXT", "BOOLEAN"), pa.string(), _set_config),
    "to_regtype": FunctionSpec(("TEXT",), pa.int64(), lambda m, n: regtype_oid(n)),
    "to_regclass": FunctionSpec(("TEXT",), pa.int64(), lambda m, n: None if n is None else m.regclass_oid(n)),
    "to_regnamespace": FunctionSpec(
        ("TEXT",), pa.int64(), lambda m, n: None if n is None else m.namespace_oid(n)
    ),
    "to_regrole": FunctionSpec(
        ("TEXT",), pa.int64(), lambda m, n: 10 if n is not None and n == m.user else None
    ),
    "__tf_regclass_out": FunctionSpec(
        ("BIGINT",), pa.string(), lambda m, o: None if o is None else m.regclass_name(o)
    ),
    "__tf_regnamespace_out": FunctionSpec(
        ("BIGINT",), pa.string(), lambda m, o: None if o is None else m.namespace_names.get(o, str(o))
    ),
    "quote_ident": FunctionSpec(("TEXT",), pa.string(), lambda m, n: _quote_ident(n)),
    "pg_backend_pid": FunctionSpec((), pa.int32(), lambda m: 1),
}

# Functions answered by a constant SQL expression (their arguments are dropped).
CONSTANT_FUNCTIONS: dict[str, str] = {
    **{
        name: "TRUE"
        for name in (
            "has_table_privilege",
            "has_schema_privilege",
            "has_database_privilege",
            "has_column_privilege",
            "has_any_column_privilege",
            "has_function_privilege",
            "has_sequence_privilege",
            "has_type_privilege",
            "has_tablespace_privilege",
            "has_language_privilege",
            "has_foreign_data_wrapper_privilege",
            "has_server_privilege",
            "pg_has_role",
        )
    },
    **{
        name: "CAST(NULL AS TEXT)"
        for name in (
            "pg_get_indexdef",
            "pg_get_constraintdef",
            "pg_get_triggerdef",
            "pg_get_ruledef",
            "pg_get_viewdef",
            "pg_get_functiondef",
            "pg_get_function_result",
            "pg_get_function_arguments",
            "pg_get_function_identity_arguments",
            "pg_get_partkeydef",
            "pg_get_statisticsobjdef",
            "pg_get_statisticsobjdef_columns",
            "pg_get_serial_sequence",
            "pg_get_partition_constraintdef",
            "pg_get_ruledef",
        )
    },
    "pg_relation_is_publishable": "FALSE",
    "pg_is_in_recovery": "FALSE",
    "pg_is_other_temp_schema": "FALSE",
    "pg_my_temp_schema": "CAST(0 AS BIGINT)",
    "pg_postmaster_start_time": "CAST(NULL AS TIMESTAMP)",
    "pg_conf_load_time": "CAST(NULL AS TIMESTAMP)",
}


def _make_udf(name: str, spec: FunctionSpec, model: CatalogModel) -> Any:
    arrow_args = [_ARROW[a] for a in spec.args]

    def evaluate(*arrays: pa.Array) -> pa.Array:
        if not arrays:
            return pa.array([spec.impl(model)], type=spec.returns)
        columns = [a.to_pylist() for a in arrays]
        return pa.array([spec.impl(model, *row) for row in zip(*columns)], type=spec.returns)

    return udf(evaluate, arrow_args, spec.returns, "stable", name=name)


_ARROW: dict[str, pa.DataType] = {"BIGINT": pa.int64(), "TEXT": pa.string(), "BOOLEAN": pa.bool_()}


def register_functions(ctx: SessionContext, model: CatalogModel) -> None:
    """Register every catalog UDF of `SPECS` in `ctx`, answering from `model`."""
    for name, spec in SPECS.items():
        ctx.register_udf(_make_udf(name, spec, model))
