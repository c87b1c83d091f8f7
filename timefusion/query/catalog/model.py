"""The rows of the catalog relations we model: our tables, their columns, one database, one role.

`CatalogModel` is built from the table schemas and the session, and answers two kinds of question:
row sets for the modelled relations (`table()`, Arrow tables with PostgreSQL's exact columns) and the
lookups the catalog functions need (`pg_get_userbyid`, `::regclass`, `obj_description`, sizes …).
Our tables live in schema `public` (namespace 2200), are owned by the session user (role OID 10) and get
OIDs 16384 + their index in name order, with attribute numbers 1..n in schema order. PostgreSQL's own
catalog relations are listed too (in `pg_catalog` / `information_schema`), so `\\d pg_class` and
`'pg_catalog.pg_class'::regclass` work. The parts that depend only on PostgreSQL's catalog shape are
built once per process.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import pyarrow as pa

from timefusion.query.catalog import pg_static
from timefusion.query.catalog.pgtypes import OUR_TYPES, TYPES, format_type, type_rows_as_dicts
from timefusion.query.catalog.relations import (
    FIRST_TABLE_OID,
    INFORMATION_SCHEMA,
    NAMESPACE_OIDS,
    OWNER_OID,
    PG_CATALOG,
    PUBLIC_OID,
    RELATIONS,
    Relation,
)
from timefusion.schema.tables import TableSchema

PG_CLASS_OID = 1259  # classoid of pg_class rows in pg_description
PG_NAMESPACE_OID = 2615
_CLASSOIDS = {"pg_class": PG_CLASS_OID, "pg_namespace": PG_NAMESPACE_OID}
DATABASE_OID = 5  # PostgreSQL's OID of `postgres`; another session database gets OTHER_DATABASE_OID
OTHER_DATABASE_OID = 16383
SERVER_VERSION = "16.4"
SERVER_VERSION_NUM = "160004"

# Settings `current_setting()` and pg_settings report unless the session says otherwise.
DEFAULT_SETTINGS: dict[str, str] = {
    "application_name": "",
    "client_encoding": "UTF8",
    "DateStyle": "ISO, MDY",
    "default_transaction_isolation": "read committed",
    "default_transaction_read_only": "off",
    "extra_float_digits": "1",
    "integer_datetimes": "on",
    "IntervalStyle": "postgres",
    "is_superuser": "on",
    "jit": "off",
    "lc_collate": "C.UTF-8",
    "lc_ctype": "C.UTF-8",
    "max_identifier_length": "63",
    "search_path": '"$user", public',
    "server_encoding": "UTF8",
    "server_version": SERVER_VERSION,
    "server_version_num": SERVER_VERSION_NUM,
    "standard_conforming_strings": "on",
    "statement_timeout": "0",
    "TimeZone": "UTC",
    "transaction_isolation": "read committed",
    "transaction_read_only": "off",
}


@dataclass
class SessionInfo:
    """Who is asking: the catalog reports this user as the owner of everything and this database."""

    user: str
    database: str
    application_name: str = ""
    settings: dict[str, str] = field(default_factory=dict)
    # Optional on-disk size in bytes per table name (for `\\dt+`, `pg_table_size`); unknown → 0.
    table_sizes: Mapping[str, int] = field(default_factory=dict)


def _default_expression(column_default: Any, type_name: str) -> str | None:
    """How PostgreSQL would print a column default (`pg_get_expr(adbin, …)`)."""
    if column_default is None:
        return None
    if column_default == "now":
        return "now()"
    if column_default == "uuid":
        return "gen_random_uuid()"
    if isinstance(column_default, bool):
        return "true" if column_default else "false"
    if isinstance(column_default, int | float):
        return repr(column_default)
    text = str(column_default).replace("'", "''")
    return f"'{text}'::text" if type_name in ("utf8", "json") else f"'{text}'"


def _attribute_row(relid: int, num: int, name: str, typ: int, notnull: bool, hasdef: bool) -> dict[str, Any]:
    row = TYPES.get(typ)
    is_array = bool(row and row.typcategory == "A")
    return {
        "attrelid": relid,
        "attname": name,
        "atttypid": typ,
        "attstattarget": -1,
        "attlen": row.typlen if row else -1,
        "attnum": num,
        "attndims": 1 if is_array else 0,
        "attcacheoff": -1,
        "atttypmod": -1,
        "attbyval": row.typbyval if row else False,
        "attalign": row.typalign if row else "i",
        "attstorage": row.typstorage if row else "p",
        "attcompression": "",
        "attnotnull": notnull,
        "atthasdef": hasdef,
        "atthasmissing": False,
        "attidentity": "",
        "attgenerated": "",
        "attisdropped": False,
        "attislocal": True,
        "attinhcount": 0,
        "attcollation": row.typcollation if row else 0,
    }


def _class_row(oid: int, name: str, namespace: int, kind: str, natts: int) -> dict[str, Any]:
    return {
        "oid": oid,
        "relname": name,
        "relnamespace": namespace,
        "reltype": 0,
        "reloftype": 0,
        "relowner": OWNER_OID,
        "relam": 2 if kind == "r" else 0,
        "relfilenode": oid if kind == "r" else 0,
        "reltablespace": 0,
        "relpages": 0,
        "reltuples": -1.0,
        "relallvisible": 0,
        "reltoastrelid": 0,
        "relhasindex": False,
        "relisshared": False,
        "relpersistence": "p",
        "relkind": kind,
        "relnatts": natts,
        "relchecks": 0,
        "relhasrules": False,
        "relhastriggers": False,
        "relhassubclass": False,
        "relrowsecurity": False,
        "relforcerowsecurity": False,
        "relispopulated": True,
        "relreplident": "d" if kind == "r" else "n",
        "relispartition": False,
        "relrewrite": 0,
        "relfrozenxid": 0,
        "relminmxid": 0,
    }


def _data_type(typ: int) -> str:
    """information_schema.columns.data_type: the SQL name, or ARRAY for arrays."""
    row = TYPES.get(typ)
    if row is not None and row.typcategory == "A" and row.typelem:
        return "ARRAY"
    return format_type(typ, -1) or "USER-DEFINED"


_PRECISION: dict[int, tuple[int | None, int | None, int | None]] = {
    21: (16, 2, 0),
    23: (32, 2, 0),
    20: (64, 2, 0),
    700: (24, 2, None),
    701: (53, 2, None),
}


def _column_row(
    database: str, schema: str, table: str, num: int, name: str, typ: int, notnull: bool, default: str | None
) -> dict[str, Any]:
    row = TYPES.get(typ)
    precision = _PRECISION.get(typ, (None, None, None))
    return {
        "table_catalog": database,
        "table_schema": schema,
        "table_name": table,
        "column_name": name,
        "ordinal_position": num,
        "column_default": default,
        "is_nullable": "NO" if notnull else "YES",
        "data_type": _data_type(typ),
        "character_octet_length": 1073741824 if typ in (25, 1043, 1042) else None,
        "numeric_precision": precision[0],
        "numeric_precision_radix": precision[1],
        "numeric_scale": precision[2],
        "datetime_precision": 0 if typ == 1082 else (6 if typ in (1114, 1184, 1083, 1266) else None),
        "udt_catalog": database,
        "udt_schema": "pg_catalog",
        "udt_name": row.typname if row else None,
        "dtd_identifier": str(num),
        "is_self_referencing": "NO",
        "is_identity": "NO",
        "identity_cycle": "NO",
        "is_generated": "NEVER",
        "is_updatable": "YES" if schema not in (PG_CATALOG, INFORMATION_SCHEMA) else "NO",
    }


def _table(relation: Relation, rows: list[dict[str, Any]]) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=relation.arrow_schema)


def _rel(schema: str, name: str) -> Relation:
    return RELATIONS[schema, name]


@cache
def _static_rows() -> dict[str, list[dict[str, Any]]]:
    """Rows describing PostgreSQL's own catalog relations (same for every session)."""
    classes, attributes, tables, pg_tables = [], [], [], []
    for rel in sorted(RELATIONS.values(), key=lambda r: r.oid):
        namespace = NAMESPACE_OIDS[rel.schema]
        classes.append(_class_row(rel.oid, rel.name, namespace, rel.kind, len(rel.columns)))
        for num, (name, typ, notnull) in enumerate(rel.columns, 1):
            attributes.append(_attribute_row(rel.oid, num, name, typ, notnull, False))
        tables.append((rel.schema, rel.name, "BASE TABLE" if rel.kind == "r" else "VIEW"))
        if rel.kind == "r":
            pg_tables.append(
                {"schemaname": rel.schema, "tablename": rel.name, "hasindexes": True, "hasrules": False}
                | {"hastriggers": False, "rowsecurity": False}
            )
    return {"pg_class": classes, "pg_attribute": attributes, "tables": tables, "pg_tables": pg_tables}


@cache
def _static_tables() -> dict[str, pa.Table]:
    """Session-independent modelled relations, as Arrow tables."""
    return {
        "pg_type": _table(_rel(PG_CATALOG, "pg_type"), type_rows_as_dicts()),
        "pg_am": _table(
            _rel(PG_CATALOG, "pg_am"),
            [dict(zip(("oid", "amname", "amhandler", "amtype"), am)) for am in pg_static.AMS],
        ),
        "pg_tablespace": _table(
            _rel(PG_CATALOG, "pg_tablespace"),
            [
                {"oid": 1663, "spcname": "pg_default", "spcowner": OWNER_OID},
                {"oid": 1664, "spcname": "pg_global", "spcowner": OWNER_OID},
            ],
        ),
        "pg_namespace": _table(
            _rel(PG_CATALOG, "pg_namespace"),
            [{"oid": oid, "nspname": n, "nspowner": OWNER_OID} for n, oid in NAMESPACE_OIDS.items()],
        ),
    }


# Built row sets, by (relation, id(schemas), session fields): sessions repeat the same catalog queries.
# The schemas object is kept with its entry, so a reused id() of a freed mapping never matches.
_TABLE_CACHE: dict[tuple[Any, ...], tuple[Mapping[str, TableSchema], pa.Table]] = {}


class CatalogModel:
    """Catalog rows and lookups for one set of table schemas seen by one session."""

    def __init__(self, schemas: Mapping[str, TableSchema], session: SessionInfo) -> None:
        self.session = session
        self.user = session.user
        self.database = session.database
        self.settings: dict[str, str] = {**DEFAULT_SETTINGS, "application_name": session.application_name}
        self.settings.update(session.settings)
        self.tables: list[tuple[int, TableSchema]] = [
            (FIRST_TABLE_OID + i, schemas[name]) for i, name in enumerate(sorted(schemas))
        ]
        # oid → (namespace name, relation name) for every relation we report
        self.relations: dict[int, tuple[str, str]] = {
            rel.oid: (rel.schema, rel.name) for rel in RELATIONS.values()
        }
        self.relations.update({oid: ("public", t.name) for oid, t in self.tables})
        self.relation_oids: dict[tuple[str, str], int] = {v: k for k, v in self.relations.items()}
        self.namespace_names: dict[int, str] = {oid: name for name, oid in NAMESPACE_OIDS.items()}
        self.databases: list[tuple[int, str]] = [(DATABASE_OID, "postgres")]
        if self.database != "postgres":
            self.databases.append((OTHER_DATABASE_OID, self.database))
        self.descriptions: dict[tuple[int, int], str] = {
            (oid, PG_CLASS_OID): t.description for oid, t in self.tables if t.description
        }
        self.descriptions[NAMESPACE_OIDS["public"], PG_NAMESPACE_OID] = "standard public schema"
        self.descriptions[NAMESPACE_OIDS["pg_catalog"], PG_NAMESPACE_OID] = "system catalog schema"
        self._key = (id(schemas), self.user, self.database, session.application_name)
        self._key += (tuple(sorted(session.settings.items())),)
        self._schemas = schemas
        self._builders: dict[str, Callable[[], pa.Table]] = {
            "pg_class": self._pg_class,
            "pg_attribute": self._pg_attribute,
            "pg_attrdef": self._pg_attrdef,
            "pg_database": self._pg_database,
            "pg_roles": lambda: self._roles("pg_roles", "********"),
            "pg_authid": lambda: self._roles("pg_authid", None),
            "pg_user": self._pg_user,
            "pg_settings": self._pg_settings,
            "pg_description": self._pg_description,
            "pg_tables": self._pg_tables,
            "information_schema.schemata": self._schemata,
            "information_schema.tables": self._info_tables,
            "information_schema.columns": self._info_columns,
        }

    # ---- lookups used by the catalog functions -------------------------------------------------
    def table_size(self, oid: int) -> int:
        schema, name = self.relations.get(oid, ("", ""))
        return int(self.session.table_sizes.get(name, 0)) if schema == "public" else 0

    def regclass_name(self, oid: int) -> str:
        """How a regclass prints: the bare name when visible on the search path, else qualified."""
        found = self.relations.get(oid)
        if found is None:
            return str(oid)
        schema, name = found
        shown = (
            name
            if name.islower() and name.replace("_", "").isalnum()
            else '"' + name.replace('"', '""') + '"'
        )
        return shown if schema in ("public", PG_CATALOG) else f"{schema}.{shown}"

    def regclass_oid(self, text: str) -> int | None:
        """`'name'::regclass`: resolve a possibly qualified, possibly quoted name on the search path."""
        parts = _split_name(text)
        if len(parts) == 1:
            for schema in (PG_CATALOG, "public"):
                if (schema, parts[0]) in self.relation_oids:
                    return self.relation_oids[schema, parts[0]]
            return None
        return self.relation_oids.get((parts[-2], parts[-1]))

    def is_visible(self, oid: int) -> bool | None:
        found = self.relations.get(oid)
        return None if found is None else found[0] in ("public", PG_CATALOG)

    def namespace_oid(self, name: str) -> int | None:
        return NAMESPACE_OIDS.get(_split_name(name)[-1])

    def role_name(self, oid: int) -> str:
        return self.user if oid == OWNER_OID else f"unknown (OID={oid})"

    def description(self, oid: int, catalog: str | None) -> str | None:
        """obj_description(oid, catalog); without a catalog, any object with that OID."""
        if catalog is None:
            return next((text for (o, _), text in self.descriptions.items() if o == oid), None)
        classoid = _CLASSOIDS.get(catalog.removeprefix("pg_catalog."))
        return self.descriptions.get((oid, classoid)) if classoid is not None else None

    def database_size(self, name_or_oid: str) -> int | None:
        for oid, name in self.databases:
            if name_or_oid in (name, str(oid)):
                return sum(int(v) for v in self.session.table_sizes.values()) if name == self.database else 0
        return None

    # ---- relation row sets ---------------------------------------------------------------------
    def has_table(self, qualified: str) -> bool:
        return qualified in self._builders or qualified in _static_tables()

    def table(self, qualified: str) -> pa.Table:
        """Rows of a modelled relation: `pg_class`, …, or `information_schema.columns`."""
        static = _static_tables().get(qualified)
        if static is not None:
            return static
        key = (qualified, *self._key)
        cached = _TABLE_CACHE.get(key)
        if cached is not None and cached[0] is self._schemas:
            return cached[1]
        table = self._builders[qualified]()
        if len(_TABLE_CACHE) >= 256:
            _TABLE_CACHE.clear()
        _TABLE_CACHE[key] = (self._schemas, table)
        return table

    def _pg_class(self) -> pa.Table:
        rows = [_class_row(oid, t.name, PUBLIC_OID, "r", len(t.columns)) for oid, t in self.tables]
        return _table(_rel(PG_CATALOG, "pg_class"), rows + _static_rows()["pg_class"])

    def _pg_attribute(self) -> pa.Table:
        rows = []
        for oid, t in self.tables:
            for num, c in enumerate(t.columns, 1):
                rows.append(
                    _attribute_row(
                        oid, num, c.name, OUR_TYPES[c.type_name], not c.nullable, c.default is not None
                    )
                )
        return _table(_rel(PG_CATALOG, "pg_attribute"), rows + _static_rows()["pg_attribute"])

    def _pg_attrdef(self) -> pa.Table:
        rows = []
        for oid, t in self.tables:
            for num, c in enumerate(t.columns, 1):
                text = _default_expression(c.default, c.type_name)
                if text is not None:
                    rows.append({"oid": 20000 + len(rows), "adrelid": oid, "adnum": num, "adbin": text})
        return _table(_rel(PG_CATALOG, "pg_attrdef"), rows)

    def _pg_database(self) -> pa.Table:
        rows = [
            {
                "oid": oid,
                "datname": name,
                "datdba": OWNER_OID,
                "encoding": 6,
                "datlocprovider": "c",
                "datistemplate": False,
                "datallowconn": True,
                "datconnlimit": -1,
                "datfrozenxid": 0,
                "datminmxid": 1,
                "dattablespace": 1663,
                "datcollate": "C.UTF-8",
                "datctype": "C.UTF-8",
            }
            for oid, name in self.databases
        ]
        return _table(_rel(PG_CATALOG, "pg_database"), rows)

    def _roles(self, relation: str, password: str | None) -> pa.Table:
        row = {
            "oid": OWNER_OID,
            "rolname": self.user,
            "rolsuper": True,
            "rolinherit": True,
            "rolcreaterole": True,
            "rolcreatedb": True,
            "rolcanlogin": True,
            "rolreplication": True,
            "rolconnlimit": -1,
            "rolpassword": password,
            "rolbypassrls": True,
        }
        return _table(_rel(PG_CATALOG, relation), [row])

    def _pg_user(self) -> pa.Table:
        row = {
            "usename": self.user,
            "usesysid": OWNER_OID,
            "usecreatedb": True,
            "usesuper": True,
            "userepl": True,
            "usebypassrls": True,
            "passwd": "********",
        }
        return _table(_rel(PG_CATALOG, "pg_user"), [row])

    def _pg_settings(self) -> pa.Table:
        rows = []
        for name in sorted(self.settings, key=str.lower):
            value = self.settings[name]
            default = DEFAULT_SETTINGS.get(name)
            rows.append(
                {
                    "name": name,
                    "setting": value,
                    "category": "Client Connection Defaults",
                    "context": "user",
                    "vartype": "string",
                    "source": "default"
                    if value == default and name not in self.session.settings
                    else "client",
                    "boot_val": default,
                    "reset_val": value,
                    "pending_restart": False,
                }
            )
        return _table(_rel(PG_CATALOG, "pg_settings"), rows)

    def _pg_description(self) -> pa.Table:
        rows = [
            {"objoid": oid, "classoid": classoid, "objsubid": 0, "description": text}
            for (oid, classoid), text in sorted(self.descriptions.items())
        ]
        return _table(_rel(PG_CATALOG, "pg_description"), rows)

    def _pg_tables(self) -> pa.Table:
        rows = [
            {"schemaname": "public", "tablename": t.name, "tableowner": self.user, "hasindexes": False}
            | {"hasrules": False, "hastriggers": False, "rowsecurity": False}
            for _, t in self.tables
        ]
        static = [r | {"tableowner": self.user} for r in _static_rows()["pg_tables"]]
        return _table(_rel(PG_CATALOG, "pg_tables"), rows + static)

    def _schemata(self) -> pa.Table:
        rows = [
            {"catalog_name": self.database, "schema_name": name, "schema_owner": self.user}
            for name in ("information_schema", "pg_catalog", "pg_toast", "public")
        ]
        return _table(_rel(INFORMATION_SCHEMA, "schemata"), rows)

    def _info_tables(self) -> pa.Table:
        entries = [("public", t.name, "BASE TABLE") for _, t in self.tables] + _static_rows()["tables"]
        rows = [
            {
                "table_catalog": self.database,
                "table_schema": schema,
                "table_name": name,
                "table_type": kind,
                "is_insertable_into": "YES" if schema == "public" else "NO",
                "is_typed": "NO",
            }
            for schema, name, kind in entries
        ]
        return _table(_rel(INFORMATION_SCHEMA, "tables"), rows)

    def _info_columns(self) -> pa.Table:
        rows = []
        for _, t in self.tables:
            for num, c in enumerate(t.columns, 1):
                default = _default_expression(c.default, c.type_name)
                typ = OUR_TYPES[c.type_name]
                rows.append(
                    _column_row(self.database, "public", t.name, num, c.name, typ, not c.nullable, default)
                )
        for rel in RELATIONS.values():
            for num, (name, typ, notnull) in enumerate(rel.columns, 1):
                rows.append(_column_row(self.database, rel.schema, rel.name, num, name, typ, notnull, None))
        return _table(_rel(INFORMATION_SCHEMA, "columns"), rows)


def _split_name(text: str) -> list[str]:
    """`a.b`, `"A"."b.c"` → name parts, unquoted names folded to lower case (PostgreSQL's rules)."""
    parts: list[str] = []
    current: list[str] = []
    i, quoted_any = 0, False
    while i < len(text):
        ch = text[i]
        if ch == '"':
            end = i + 1
            while end < len(text):
                if text[end] == '"' and text[end + 1 : end + 2] == '"':
                    current.append('"')
                    end += 2
                    continue
                if text[end] == '"':
                    break
                current.append(text[end])
                end += 1
            i, quoted_any = end + 1, True
            continue
        if ch == ".":
            parts.append("".join(current))
            current, quoted_any = [], False
            i += 1
            continue
        current.append(ch if quoted_any else ch.lower())
        i += 1
    parts.append("".join(current).strip())
    return [p.strip() for p in parts]
