"""Every relation of PostgreSQL's `pg_catalog` and `information_schema`, with its exact columns.

Clients query many catalog relations we have nothing to put in (`pg_policy`, `pg_inherits`,
`pg_stat_activity`, …). Each still exists here with PostgreSQL's columns and (Arrow-mapped) types, so a
query over it plans and answers zero rows instead of failing. Which relations hold rows (`MODELLED`) is
static knowledge the SQL rewrite uses to fold subqueries over empty relations away before DataFusion
plans them (DataFusion cannot plan several correlated forms psql uses, but never needs to when their
input is known to be empty).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import pyarrow as pa

from timefusion.query.catalog import pg_static
from timefusion.query.catalog.pgtypes import arrow_type

PG_CATALOG = "pg_catalog"
INFORMATION_SCHEMA = "information_schema"

# Namespaces we report (PostgreSQL's fixed OIDs; information_schema's is PostgreSQL 15's).
NAMESPACE_OIDS: dict[str, int] = {
    "pg_catalog": 11,
    "public": 2200,
    "information_schema": 13207,
    "pg_toast": 99,
}
PUBLIC_OID = 2200
OWNER_OID = 10  # the one role (the session user), like PostgreSQL's bootstrap superuser
FIRST_TABLE_OID = 16384  # our tables: 16384 + index in name order


@dataclass(frozen=True)
class Relation:
    schema: str
    name: str
    oid: int
    kind: str  # relkind: 'r' table, 'v' view
    columns: tuple[tuple[str, int, bool], ...]  # (name, type oid, not null)

    @cached_property
    def arrow_schema(self) -> pa.Schema:
        return pa.schema([pa.field(name, arrow_type(typ), True) for name, typ, _ in self.columns])

    @cached_property
    def column_names(self) -> frozenset[str]:
        return frozenset(name for name, _, _ in self.columns)


# Columns added after PostgreSQL 15 that newer psql releases ask for (16: ICU rules; 17: builtin locale
# provider; 18: …). They exist, NULL, so that those queries plan.
_NEWER_COLUMNS: dict[tuple[str, str], tuple[tuple[str, int, bool], ...]] = {
    (PG_CATALOG, "pg_database"): (("daticurules", 25, False), ("datlocale", 25, False)),
    (PG_CATALOG, "pg_collation"): (("collicurules", 25, False), ("colllocale", 25, False)),
    (PG_CATALOG, "pg_auth_members"): (("inherit_option", 16, False), ("set_option", 16, False)),
    (PG_CATALOG, "pg_constraint"): (("conperiod", 16, False), ("conenforced", 16, False)),
    (PG_CATALOG, "pg_publication"): (("pubgencols", 18, False),),
    (PG_CATALOG, "pg_subscription"): (("subfailover", 16, False), ("subpasswordrequired", 16, False)),
}


def _load() -> dict[tuple[str, str], Relation]:
    relations: dict[tuple[str, str], Relation] = {}
    for schema, name, oid, kind, columns in pg_static.RELATIONS:
        extra = tuple(
            c for c in _NEWER_COLUMNS.get((schema, name), ()) if c[0] not in {x[0] for x in columns}
        )
        relations[schema, name] = Relation(schema, name, oid, kind, tuple(columns) + extra)
    return relations


RELATIONS: dict[tuple[str, str], Relation] = _load()
CATALOG_NAMES: frozenset[str] = frozenset(name for schema, name in RELATIONS if schema == PG_CATALOG)
INFO_NAMES: frozenset[str] = frozenset(name for schema, name in RELATIONS if schema == INFORMATION_SCHEMA)

# Relations that hold rows (the rest are always empty).
MODELLED: frozenset[tuple[str, str]] = frozenset(
    [
        (PG_CATALOG, n)
        for n in (
            "pg_namespace",
            "pg_class",
            "pg_attribute",
            "pg_attrdef",
            "pg_type",
            "pg_database",
            "pg_roles",
            "pg_authid",
            "pg_user",
            "pg_am",
            "pg_tablespace",
            "pg_settings",
            "pg_description",
            "pg_tables",
        )
    ]
    + [(INFORMATION_SCHEMA, n) for n in ("schemata", "tables", "columns")]
)

# Columns that are NULL in every row we emit (ACLs, options, partition bounds …): a subquery that
# unnests one, or requires it to be NOT NULL, has no rows.
ALWAYS_NULL: dict[str, frozenset[str]] = {
    "pg_class": frozenset({"relacl", "reloptions", "relpartbound"}),
    "pg_attribute": frozenset({"attacl", "attoptions", "attfdwoptions", "attmissingval"}),
    "pg_namespace": frozenset({"nspacl"}),
    "pg_database": frozenset({"datacl", "daticulocale", "daticurules", "datlocale"}),
    "pg_type": frozenset({"typacl", "typdefault", "typdefaultbin"}),
    "pg_tablespace": frozenset({"spcacl", "spcoptions"}),
    "pg_roles": frozenset({"rolconfig", "rolvaliduntil"}),
}


def relation(schema: str, name: str) -> Relation | None:
    return RELATIONS.get((schema, name))


def is_modelled(schema: str, name: str) -> bool:
    return (schema, name) in MODELLED
