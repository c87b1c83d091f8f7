"""PostgreSQL's type of an expression, coarsely, as far as the rewrites need it.

sqlglot's `annotate_types` follows a generic dialect (AVG → DOUBLE, 2.7 → DOUBLE), but the rewrites
must know PostgreSQL's answer: `2.7` and `AVG(bigint)` are `numeric` (a cast to an integer rounds half
away from zero), `AVG(float8)` and `float8` columns are `float` (the cast uses rint, half to even),
`bigint / bigint` is an integer. So this module resolves columns through sqlglot scopes (tables of
ours by their schema, CTEs and derived tables by their projection) and types expressions with
PostgreSQL's rules. Anything it cannot tell is None, and callers then leave the expression alone.

Classes: "int", "numeric", "float", "text", "unknown" (an untyped string literal), "bool", "date",
"timestamp", "timestamptz", "interval", "array".
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from sqlglot import exp
from sqlglot.optimizer.scope import Scope, traverse_scope

from timefusion.schema.tables import TableSchema

T = exp.DataType.Type

_CAST_TYPES: dict[T, str] = {
    **dict.fromkeys((T.TINYINT, T.SMALLINT, T.INT, T.BIGINT, T.MEDIUMINT), "int"),
    **dict.fromkeys((T.DECIMAL, T.BIGDECIMAL, T.MONEY), "numeric"),
    **dict.fromkeys((T.FLOAT, T.DOUBLE), "float"),
    **dict.fromkeys((T.TEXT, T.VARCHAR, T.CHAR, T.NAME, T.NCHAR, T.NVARCHAR, T.UUID), "text"),
    T.BOOLEAN: "bool",
    T.DATE: "date",
    T.TIMESTAMP: "timestamp",
    T.TIMESTAMPTZ: "timestamptz",
    T.INTERVAL: "interval",
    T.ARRAY: "array",
}

_ARROW_TYPES: dict[str, str] = {
    "int32": "int",
    "int64": "int",
    "float64": "float",
    "utf8": "text",
    "json": "text",
    "bool": "bool",
    "date32": "date",
    "timestamp": "timestamptz",
}

NUMERIC = ("int", "numeric", "float")


def cast_class(to: exp.DataType) -> str | None:
    if to.args.get("nested") or to.this == T.ARRAY:
        return "array"
    return _CAST_TYPES.get(to.this)


def combine(*types: str | None) -> str | None:
    """Result class of arithmetic or of a CASE/COALESCE over these classes (PostgreSQL promotion)."""
    known = [t for t in types if t != "unknown"]
    if not known or None in known:
        return None
    if all(t in NUMERIC for t in known):
        if "float" in known:
            return "float"
        if "numeric" in known:
            return "numeric"
        return "int"
    first = known[0]
    return first if all(t == first for t in known) else None


class TypeResolver:
    """Types expressions of one statement tree; scopes are built on first use (not in the hot path).

    One resolver may serve several rewrites of the same tree in turn, as long as they replace no SELECT
    and no FROM source (scopes are keyed by those nodes; expressions are typed as they are now)."""

    def __init__(self, tree: exp.Expression, schemas: Mapping[str, TableSchema]) -> None:
        self.tree = tree
        self.schemas = schemas
        self._scopes: dict[int, Scope] | None = None
        self._busy: set[int] = set()

    # -- scopes ------------------------------------------------------------------------------------

    def scope_of(self, node: exp.Expression) -> Scope | None:
        if self._scopes is None:
            try:
                self._scopes = {id(s.expression): s for s in traverse_scope(self.tree)}
            except Exception:  # sqlglot cannot scope some statements (DDL, odd syntax): no types then
                self._scopes = {}
        parent: exp.Expression | None = node
        while parent is not None:
            scope = self._scopes.get(id(parent))
            if scope is not None and isinstance(parent, exp.Select):
                return scope
            parent = parent.parent
        return None

    def table_schema(self, table: exp.Table) -> TableSchema | None:
        return our_table(table, self.schemas)

    def column_type(self, column: exp.Column) -> str | None:
        scope = self.scope_of(column)
        name = column.name
        qualifier = column.table
        while scope is not None:
            sources = scope.selected_sources
            if qualifier:
                if qualifier in sources:
                    return self._source_column_type(sources[qualifier][1], name)
            else:
                found: list[str | None] = []
                unsure = False
                for _, source in sources.values():
                    has = self._source_has(source, name)
                    if has is None:
                        unsure = True
                    elif has:
                        found.append(self._source_column_type(source, name))
                if len(found) == 1 and not unsure:
                    return found[0]
                if found or unsure:
                    return None
                # not an input column: an output alias (ORDER BY / GROUP BY may name one)
                select = scope.expression
                if isinstance(select, exp.Select):
                    for projection in select.expressions:
                        if isinstance(projection, exp.Alias) and projection.alias == name:
                            return self.type_of(projection.this)
            scope = scope.parent  # a correlated reference to an outer query
        return None

    def _source_has(self, source: exp.Table | Scope, name: str) -> bool | None:
        if isinstance(source, exp.Table):
            schema = self.table_schema(source)
            return None if schema is None else name in schema.by_name
        select = _first_select(source.expression)
        if select is None:
            return None
        for projection in select.expressions:
            if isinstance(projection, exp.Star) or (
                isinstance(projection, exp.Column) and isinstance(projection.this, exp.Star)
            ):
                return None
            if projection.alias_or_name == name:
                return True
        return False

    def _source_column_type(self, source: exp.Table | Scope, name: str) -> str | None:
        if isinstance(source, exp.Table):
            schema = self.table_schema(source)
            if schema is None or name not in schema.by_name:
                return None
            type_name = schema.by_name[name].type_name
            return "array" if type_name.startswith("list<") else _ARROW_TYPES.get(type_name)
        select = _first_select(source.expression)
        if select is None:
            return None
        for projection in select.expressions:
            if projection.alias_or_name == name:
                return self.type_of(projection.unalias())
        return None

    # -- expressions -------------------------------------------------------------------------------

    def type_of(self, node: exp.Expression) -> str | None:
        key = id(node)
        if key in self._busy:  # an alias that refers to itself
            return None
        self._busy.add(key)
        try:
            return self._type_of(node)
        finally:
            self._busy.discard(key)

    def _type_of(self, node: exp.Expression) -> str | None:
        handler = _HANDLERS.get(type(node))
        if handler is not None:
            return handler(self, node)
        if isinstance(node, exp.Binary):
            return None
        if isinstance(node, exp.AggFunc) and type(node).__name__.startswith(("Stddev", "Variance")):
            return _avg_like(self.type_of(node.this))
        return None


def _first_select(node: exp.Expression) -> exp.Select | None:
    while isinstance(node, exp.SetOperation):
        node = node.this
    if isinstance(node, exp.Subquery):
        return _first_select(node.this)
    return node if isinstance(node, exp.Select) else None


def our_table(table: exp.Table, schemas: Mapping[str, TableSchema]) -> TableSchema | None:
    """The schema of a table reference if it names one of our tables (optionally in `public`)."""
    if table.args.get("catalog") is not None:
        return None
    db = table.args.get("db")
    if db is not None and db.name.lower() != "public":
        return None
    ident = table.this
    if not isinstance(ident, exp.Identifier):
        return None
    name = ident.name if ident.quoted else ident.name.lower()
    return schemas.get(name)


def _avg_like(arg: str | None) -> str | None:
    if arg in ("int", "numeric"):
        return "numeric"
    return "float" if arg == "float" else None


def _literal(self: TypeResolver, node: exp.Literal) -> str | None:
    if node.is_string:
        return "unknown"
    text = node.name
    return "int" if text.isdigit() else "numeric"


def _arith(self: TypeResolver, node: exp.Binary) -> str | None:
    left, right = self.type_of(node.this), self.type_of(node.expression)
    times = ("timestamp", "timestamptz", "date")
    if isinstance(node, exp.Add | exp.Sub):
        if left in times and right in ("interval", "unknown"):
            return "timestamp" if left == "timestamp" else "timestamptz"
        if isinstance(node, exp.Sub) and left in times and right in times:
            return "int" if left == right == "date" else "interval"
    if left == right == "interval":
        return "interval"
    return combine(left, right)


def _anonymous(self: TypeResolver, node: exp.Anonymous) -> str | None:
    name = node.name.lower()
    if name == "arrow_cast" and len(node.expressions) == 2:
        target = node.expressions[1]
        if isinstance(target, exp.Literal) and target.name.startswith("Timestamp("):
            return "timestamp" if target.name.replace(" ", "").endswith(",None)") else "timestamptz"
        return None
    if name in ("date_bin", "time_bucket") and len(node.expressions) >= 2:
        return self.type_of(node.expressions[1])
    if name == "to_timestamp":
        return "timestamptz"
    return None


def _first_arg(self: TypeResolver, node: exp.Expression) -> str | None:
    return self.type_of(node.this)


def _all_args(self: TypeResolver, node: exp.Expression) -> str | None:
    return combine(self.type_of(node.this), *(self.type_of(e) for e in node.expressions))


def _case(self: TypeResolver, node: exp.Case) -> str | None:
    branches = [self.type_of(i.args["true"]) for i in node.args.get("ifs") or []]
    default = node.args.get("default")
    if default is not None:
        branches.append(self.type_of(default))
    return combine(*branches)


def _round(self: TypeResolver, node: exp.Round) -> str | None:
    arg = self.type_of(node.this)
    if node.args.get("decimals") is not None:
        return "numeric" if arg in NUMERIC else None
    return arg


def _math(self: TypeResolver, node: exp.Expression) -> str | None:
    arg = self.type_of(node.this)
    return "numeric" if arg == "numeric" else ("float" if arg in NUMERIC else None)


def _pow(self: TypeResolver, node: exp.Pow) -> str | None:
    both = combine(self.type_of(node.this), self.type_of(node.expression))
    return "numeric" if both == "numeric" else ("float" if both in NUMERIC else None)


def _subquery(self: TypeResolver, node: exp.Subquery) -> str | None:
    select = _first_select(node.this)
    if select is None or len(select.expressions) != 1:
        return None
    return self.type_of(select.expressions[0].unalias())


def _within_group(self: TypeResolver, node: exp.WithinGroup) -> str | None:
    inner = node.this
    if isinstance(inner, exp.PercentileCont):
        return "float"
    return None


_Handler = Callable[[TypeResolver, exp.Expression], "str | None"]

_HANDLERS: dict[type, _Handler] = {
    exp.Literal: _literal,
    exp.Null: lambda self, n: None,
    exp.Boolean: lambda self, n: "bool",
    exp.Cast: lambda self, n: cast_class(n.to),
    exp.TryCast: lambda self, n: cast_class(n.to),
    exp.Column: lambda self, n: self.column_type(n),
    exp.Paren: _first_arg,
    exp.Neg: _first_arg,
    exp.Abs: _first_arg,
    exp.Add: _arith,
    exp.Sub: _arith,
    exp.Mul: _arith,
    exp.Div: _arith,
    exp.Mod: _arith,
    exp.Avg: lambda self, n: _avg_like(self.type_of(n.this)),
    exp.Sum: lambda self, n: self.type_of(n.this),
    exp.Min: _first_arg,
    exp.Max: _first_arg,
    exp.AnyValue: _first_arg,
    exp.Count: lambda self, n: "int",
    exp.Window: _first_arg,
    exp.Filter: _first_arg,
    exp.WithinGroup: _within_group,
    exp.PercentileCont: lambda self, n: "float",
    exp.Median: lambda self, n: "float",
    exp.ApproxQuantile: lambda self, n: "float",
    exp.Round: _round,
    exp.Floor: _first_arg,
    exp.Ceil: _first_arg,
    exp.Sqrt: _math,
    exp.Cbrt: _math,
    exp.Exp: _math,
    exp.Ln: _math,
    exp.Log: _math,
    exp.Pow: _pow,
    exp.Extract: lambda self, n: "numeric",
    exp.Coalesce: _all_args,
    exp.Greatest: _all_args,
    exp.Least: _all_args,
    exp.Nullif: _first_arg,
    exp.Case: _case,
    exp.Subquery: _subquery,
    exp.CurrentTimestamp: lambda self, n: "timestamptz",
    exp.CurrentDate: lambda self, n: "date",
    exp.TimestampTrunc: _first_arg,
    exp.DateTrunc: _first_arg,
    exp.Interval: lambda self, n: "interval",
    exp.Anonymous: _anonymous,
    exp.Length: lambda self, n: "int",
    exp.Array: lambda self, n: "array",
}
