"""An emulation of PostgreSQL's `pg_catalog` and `information_schema`, enough for psql and drivers.

psql's backslash commands (`\\dt`, `\\d table`, `\\l`, `\\dn`, `\\du` …) and drivers' type
introspection (asyncpg, psycopg, JDBC) query the system catalog. The engine calls, for a statement:

    if needs_catalog(sql):
        sql = rewrite_catalog_sql(sql)              # PostgreSQL-only syntax → DataFusion SQL
        register_catalog(ctx, schemas, session)     # catalog relations + functions in this context

`register_catalog` puts every relation PostgreSQL 15 has in `pg_catalog` and `information_schema`
into the context (lazily: a relation's rows are built when a query reads it), plus the modelled ones
under their bare names (`pg_class` …), and registers the catalog functions as UDFs. Our tables appear
in schema `public`, owned by the session user, with PostgreSQL types (utf8 → text, json → jsonb …).
Relations we do not model answer zero rows with PostgreSQL's columns. DataFusion's own
information_schema may stay enabled: the rewrite reads ours under `__tf_information_schema`.

Modules: `rewrite` (the SQL rewrite), `model` (rows and lookups), `functions` (UDFs), `relations`
(every catalog relation's columns), `pgtypes` (pg_type, format_type), `pg_static` (generated from a
real PostgreSQL by `generate_static`).
"""

from __future__ import annotations

from collections.abc import Mapping

import pyarrow as pa
import pyarrow.dataset as ds
from datafusion import SessionContext
from datafusion.catalog import SchemaProvider, Table

from timefusion.query.catalog.functions import register_functions
from timefusion.query.catalog.model import CatalogModel, SessionInfo
from timefusion.query.catalog.relations import INFORMATION_SCHEMA, MODELLED, PG_CATALOG, RELATIONS
from timefusion.query.catalog.rewrite import INFO_ALIAS, needs_catalog, rewrite_catalog_sql
from timefusion.schema.tables import TableSchema

__all__ = ["CatalogModel", "SessionInfo", "needs_catalog", "register_catalog", "rewrite_catalog_sql"]


class _Names(list[str]):
    def __call__(self) -> set[str]:
        return set(self)


class _CatalogSchema(SchemaProvider):
    """One of `pg_catalog` / `information_schema`, building a relation's table when it is first read."""

    def __init__(self, schema: str, model: CatalogModel) -> None:
        self._schema = schema
        self._model = model
        self._names = {name for s, name in RELATIONS if s == schema}
        self._tables: dict[str, Table] = {}

    def owner_name(self) -> str | None:
        return self._model.user

    @property
    def table_names(self) -> _Names:  # type: ignore[override]
        # DataFusion's own information_schema reads this as an attribute holding a sequence, the
        # SchemaProvider interface calls it: a list that can be called serves both.
        return _Names(sorted(self._names))

    def table_exist(self, name: str) -> bool:
        return name in self._names

    def table(self, name: str) -> Table | None:
        if name not in self._names:
            return None
        if name not in self._tables:
            self._tables[name] = Table(ds.dataset(_rows(self._model, self._schema, name)))
        return self._tables[name]


def _rows(model: CatalogModel, schema: str, name: str) -> pa.Table:
    if (schema, name) in MODELLED:
        return model.table(name if schema == PG_CATALOG else f"{schema}.{name}")
    return RELATIONS[schema, name].arrow_schema.empty_table()


def register_catalog(ctx: SessionContext, schemas: Mapping[str, TableSchema], session: SessionInfo) -> None:
    """Make the catalog relations and functions available in `ctx` for a query by `session`."""
    model = CatalogModel(schemas, session)
    catalog = ctx.catalog()
    pg_catalog = _CatalogSchema(PG_CATALOG, model)
    catalog.register_schema(PG_CATALOG, pg_catalog)
    info = _CatalogSchema(INFORMATION_SCHEMA, model)
    catalog.register_schema(INFO_ALIAS, info)
    catalog.register_schema(INFORMATION_SCHEMA, info)  # shadowed while DataFusion's own is enabled
    for schema, name in sorted(MODELLED):
        if schema == PG_CATALOG:  # bare `pg_class` etc. for statements that skip the rewrite
            ctx.register_table(name, pg_catalog.table(name))
    register_functions(ctx, model)
