"""Output column names as PostgreSQL gives them, by aliasing unaliased projections.

Clients see the names in RowDescription: PostgreSQL names `count(*)` "count", `AVG(x)::INT` "avg",
`x::INT` "x", `1` "?column?" (its FigureColname rules), where DataFusion would say "count(*)",
"avg(x)", "t.x" or "Int64(1)". The names also matter inside a query: `WITH c AS (SELECT count(*) FROM
t) SELECT count FROM c` works in PostgreSQL only because the CTE's column is called "count". So every
unaliased projection of every SELECT gets its PostgreSQL name as an explicit alias. This runs first,
before other rewrites change the expressions (time_bucket → date_bin would change the name).

DataFusion refuses two output columns with one name, which PostgreSQL allows (`SELECT count(*),
count(*) FILTER (…)`): a later duplicate gets a unique alias ("count_2"), and `column_names()`
reports PostgreSQL's names for the top-level query so the caller can rename the result.
"""

from __future__ import annotations

import re

from sqlglot import exp

T = exp.DataType.Type

UNNAMED = "?column?"

# PostgreSQL's internal type names, which FigureColname uses for a bare cast (`SELECT '1'::int`).
_TYPE_NAMES: dict[T, str] = {
    T.SMALLINT: "int2",
    T.INT: "int4",
    T.BIGINT: "int8",
    T.FLOAT: "float4",
    T.DOUBLE: "float8",
    T.DECIMAL: "numeric",
    T.TEXT: "text",
    T.VARCHAR: "varchar",
    T.CHAR: "bpchar",
    T.BOOLEAN: "bool",
    T.DATE: "date",
    T.TIME: "time",
    T.TIMETZ: "timetz",
    T.TIMESTAMP: "timestamp",
    T.TIMESTAMPTZ: "timestamptz",
    T.INTERVAL: "interval",
    T.VARBINARY: "bytea",
    T.JSON: "json",
    T.JSONB: "jsonb",
    T.UUID: "uuid",
    T.NAME: "name",
}

# SQL value functions without parentheses keep their keyword as the name.
_VALUE_FUNCTIONS: dict[type, str] = {
    exp.CurrentDate: "current_date",
    exp.CurrentTime: "current_time",
    exp.CurrentTimestamp: "current_timestamp",
    exp.CurrentUser: "current_user",
    exp.Localtimestamp: "localtimestamp",
}

_FUNC_NAME = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_$]*)\s*\(")


def figure_name(node: exp.Expression, sql: str | None = None) -> str:
    """PostgreSQL's name for an unaliased output expression (FigureColname); `sql` is the statement
    text the tree was parsed from, used to recover a function's name as written."""
    name, _ = _figure(node, sql)
    return name or UNNAMED


def _figure(node: exp.Expression, sql: str | None) -> tuple[str | None, int]:
    if isinstance(node, exp.Alias):
        return node.alias, 2
    if isinstance(node, exp.Column):
        if isinstance(node.this, exp.Star):
            return None, 0
        return node.name, 2
    if isinstance(node, exp.Dot):
        return node.name, 2
    if isinstance(node, exp.Bracket | exp.Paren | exp.Window | exp.Filter | exp.WithinGroup):
        return _figure(node.this, sql)
    if isinstance(node, exp.Cast | exp.TryCast):
        name, strength = _figure(node.this, sql)
        if strength <= 1:
            to = node.to
            element = to.expressions[0] if to.this == T.ARRAY and to.expressions else to
            type_name = _TYPE_NAMES.get(element.this) if isinstance(element, exp.DataType) else None
            if type_name:
                return type_name, 1
        return name, strength
    if isinstance(node, exp.Case):
        default = node.args.get("default")
        name, strength = _figure(default, sql) if default is not None else (None, 0)
        if strength <= 1:
            return "case", 1
        return name, strength
    if isinstance(node, exp.Array):
        return "array", 2
    if isinstance(node, exp.Exists):
        return "exists", 2
    if isinstance(node, exp.Tuple):
        return "row", 2
    if isinstance(node, exp.Subquery):
        select = node.this
        if isinstance(select, exp.Select) and select.expressions:
            name, _ = _figure(select.expressions[0], sql)
            if name and name != UNNAMED:
                return name, 2
        return None, 0
    if isinstance(node, exp.Interval):
        return "interval", 1
    value_function = _VALUE_FUNCTIONS.get(type(node))
    if isinstance(node, exp.Func):
        written = _written_name(node, sql)
        if written:
            return written, 2
        if value_function:
            return value_function, 2
        if isinstance(node, exp.Anonymous):
            return node.name if node.args.get("quoted") else node.name.lower(), 2
        if isinstance(node, exp.Coalesce):
            return "coalesce", 2
        if isinstance(node, exp.Greatest | exp.Least):
            return type(node).__name__.lower(), 2
        if isinstance(node, exp.Nullif):
            return "nullif", 2
        m = _FUNC_NAME.match(node.sql("postgres"))
        if m:
            return m.group(1).lower(), 2
    return None, 0


def _written_name(node: exp.Func, sql: str | None) -> str | None:
    """The function name as spelled in the statement (sqlglot keeps its position for calls)."""
    meta = node.meta
    if sql is None or "start" not in meta or "end" not in meta:
        return None
    text = sql[meta["start"] : meta["end"] + 1]
    if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_$]*", text):
        return text.lower()
    if len(text) > 2 and text[0] == '"' and text[-1] == '"':
        return text[1:-1]
    return None


def name_projections(tree: exp.Expression, sql: str | None = None, *, copy: bool = True) -> exp.Expression:
    """Alias every unaliased, non-column projection of every SELECT with its PostgreSQL name, and
    make duplicate names unique (DataFusion requires it)."""
    if copy:
        tree = tree.copy()
    for select in list(tree.find_all(exp.Select)):
        seen: set[str] = set()
        for projection in list(select.expressions):
            if isinstance(projection, exp.Star) or (
                isinstance(projection, exp.Column) and isinstance(projection.this, exp.Star)
            ):
                continue
            name = projection.alias if isinstance(projection, exp.Alias) else figure_name(projection, sql)
            # DataFusion tells `t1.id` from `t2.id`: a bare column's key is qualified.
            key = (
                f"{projection.table}.{name}"
                if isinstance(projection, exp.Column) and projection.table
                else name
            )
            unique, n = key, 1
            while unique in seen:
                n += 1
                unique = f"{name}_{n}"
            seen.add(unique)
            if unique == key and isinstance(projection, exp.Column):
                continue  # DataFusion already names a bare column by its name
            if isinstance(projection, exp.Alias):
                if unique != key:
                    projection.set("alias", exp.to_identifier(unique, quoted=True))
                continue
            alias = exp.Alias(alias=exp.to_identifier(name if unique == key else unique, quoted=True))
            projection.replace(alias)
            alias.set("this", projection)
    return tree


def column_names(tree: exp.Expression, sql: str | None = None) -> tuple[str, ...] | None:
    """PostgreSQL's output names of a query (before `name_projections`); None when they depend on a
    `*` or the statement is not a query."""
    node = tree
    while isinstance(node, exp.SetOperation | exp.Subquery):
        node = node.this
    if not isinstance(node, exp.Select):
        return None
    names = []
    for projection in node.expressions:
        if isinstance(projection, exp.Star) or (
            isinstance(projection, exp.Column) and isinstance(projection.this, exp.Star)
        ):
            return None
        names.append(figure_name(projection, sql))
    return tuple(names)
