"""PostgreSQL's type of an expression, coarsely, as far as the rewrites need it.

sqlglot's `annotate_types` follows a generic dialect (AVG → DOUBLE, 2.7 → DOUBLE), but the rewrites
must know PostgreSQL's answer: `2.7` and `AVG(bigint)` are `numeric` (a cast to an integer rounds half
away from zero), `AVG(float8)` and `float8` columns are `float` (the cast uses rint, half to even),
`bigint / bigint` is an integer. So this module resolves columns through sqlglot scopes (tables of
ours by their schema, CTEs and derived tables by their projection, VALUES lists by their rows, UPDATE
and DELETE by their target table) and types expressions with PostgreSQL's rules. Anything it cannot
tell is None, and callers then leave the expression alone.

Classes: "int", "numeric", "float", "text", "unknown" (an untyped string literal), "bool", "date",
"timestamp", "timestamptz", "interval", "array". A cast a rewrite adds for DataFusion only (float64
arithmetic on exact averages) carries its PostgreSQL class in `meta[PG_CLASS]`.

`arrow_type_of()` is the finer answer parameter inference needs (param_types.py): int4 vs int8,
text[] vs int[], as the Arrow types the wire layer maps to PostgreSQL OIDs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import pyarrow as pa
from sqlglot import exp
from sqlglot.optimizer.scope import Scope, traverse_scope

from timefusion.schema.tables import TIMESTAMP, Column, TableSchema

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
# meta key: a cast a rewrite added for DataFusion's sake, PostgreSQL's class of its value is this
PG_CLASS = "pg_class"


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
        origin = self.column_origin(column)
        if isinstance(origin, Column):
            return column_class(origin)
        if origin is None:
            return None
        rows = _values_rows_at(origin)
        if rows is not None:  # a VALUES column: PostgreSQL unifies the rows' types
            return combine(*(self.type_of(e) for e in rows))
        return self.type_of(origin)

    def column_origin(self, column: exp.Column) -> Column | exp.Expression | None:
        """What a column reference reads: a column of one of our tables, or the expression that defines
        it (a CTE's or derived table's projection, a VALUES list's first row, an output alias)."""
        scope = self.scope_of(column)
        name = column.name
        qualifier = column.table
        if scope is None:
            return self._dml_column(column)
        while scope is not None:
            sources = scope.selected_sources
            if qualifier:
                if qualifier in sources:
                    return self._source_column(sources[qualifier][1], name)
            else:
                found: list[Column | exp.Expression | None] = []
                unsure = False
                for _, source in sources.values():
                    has = self._source_has(source, name)
                    if has is None:
                        unsure = True
                    elif has:
                        found.append(self._source_column(source, name))
                if len(found) == 1 and not unsure:
                    return found[0]
                if found or unsure:
                    return None
                # not an input column: an output alias (ORDER BY / GROUP BY may name one)
                select = scope.expression
                if isinstance(select, exp.Select):
                    for projection in select.expressions:
                        if isinstance(projection, exp.Alias) and projection.alias == name:
                            return projection.this
            scope = scope.parent  # a correlated reference to an outer query
        return None

    def _dml_column(self, column: exp.Column) -> Column | None:
        """A column of UPDATE/DELETE (sqlglot builds no scope for them): the target table's column."""
        statement = column.find_ancestor(exp.Update, exp.Delete)
        if statement is None or statement.find(exp.Select) is not None:
            return None
        target = statement.this
        if not isinstance(target, exp.Table):
            return None
        schema = self.table_schema(target)
        qualifier = column.table
        if schema is None or (qualifier and qualifier not in (target.alias_or_name, target.name)):
            return None
        return schema.by_name.get(column.name)

    def _source_has(self, source: exp.Table | Scope, name: str) -> bool | None:
        if isinstance(source, exp.Table):
            schema = self.table_schema(source)
            return None if schema is None else name in schema.by_name
        if isinstance(source.expression, exp.Values):
            return name in _values_names(source.expression)
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

    def _source_column(self, source: exp.Table | Scope, name: str) -> Column | exp.Expression | None:
        if isinstance(source, exp.Table):
            schema = self.table_schema(source)
            if schema is None:
                return None
            return schema.by_name.get(name)
        if isinstance(source.expression, exp.Values):
            return _values_column(source.expression, name)
        select = _first_select(source.expression)
        if select is None:
            return None
        for projection in select.expressions:
            if projection.alias_or_name == name:
                return projection.unalias()
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

    # -- Arrow types (parameter inference) -----------------------------------------------------------

    def arrow_type_of(self, node: exp.Expression) -> pa.DataType | None:
        """PostgreSQL's type of `node` as the Arrow type the wire layer maps to its OID (int4 → int32,
        text → utf8, numeric → decimal128(38, 10), timestamptz → timestamp[us, UTC], our json columns →
        arrow.json, i.e. jsonb); None when unknown (an untyped string literal, a parameter)."""
        key = id(node)
        if key in self._busy:
            return None
        self._busy.add(key)
        try:
            return self._arrow_type_of(node)
        finally:
            self._busy.discard(key)

    def _arrow_type_of(self, node: exp.Expression) -> pa.DataType | None:
        if isinstance(node, exp.Column):
            origin = self.column_origin(node)
            if isinstance(origin, Column):
                return pa.json_() if origin.is_json else origin.arrow_type
            if origin is None:
                return None
            rows = _values_rows_at(origin)
            if rows is not None and len(rows) > 1:
                known = [self.arrow_type_of(e) for e in rows]
                return _unify([t for t in known if t is not None]) if None not in known else None
            return self.arrow_type_of(origin)
        if isinstance(node, exp.Cast | exp.TryCast) and PG_CLASS not in node.meta:
            return arrow_of_datatype(node.to)
        if isinstance(node, exp.Literal):
            return None if node.is_string else _number_type(node.name)
        if isinstance(node, exp.Paren | exp.Neg | exp.Abs | exp.Window | exp.Filter | exp.Min | exp.Max):
            return self.arrow_type_of(node.this)
        if isinstance(node, exp.Array):
            elements = [self.arrow_type_of(e) for e in node.expressions]
            if not any(elements) and any(
                isinstance(e, exp.Literal) and e.is_string for e in node.expressions
            ):
                return pa.list_(pa.string())  # ARRAY['a', 'b'] is text[]
            return _list_of(elements)
        if isinstance(node, exp.Bracket):
            outer = self.arrow_type_of(node.this)
            return outer.value_type if outer is not None and pa.types.is_list(outer) else None
        if isinstance(node, exp.Count):
            return pa.int64()
        if isinstance(node, exp.Sum):
            arg = self.arrow_type_of(node.this)
            if arg is not None and pa.types.is_integer(arg):
                return NUMERIC_ARROW if arg == pa.int64() else pa.int64()
            return arg
        if isinstance(node, exp.Length):
            return pa.int32()
        if isinstance(node, exp.DPipe | exp.Lower | exp.Upper | exp.Concat):
            return pa.string()
        if isinstance(node, exp.Subquery):
            select = _first_select(node.this)
            if select is None or len(select.expressions) != 1:
                return None
            return self.arrow_type_of(select.expressions[0].unalias())
        if isinstance(node, exp.Add | exp.Sub | exp.Mul | exp.Div | exp.Mod):
            left, right = self.arrow_type_of(node.this), self.arrow_type_of(node.expression)
            integers = [t for t in (left, right) if t is not None and pa.types.is_integer(t)]
            if len(integers) == 2:
                return max(integers, key=lambda t: t.bit_width)
        if isinstance(node, exp.Coalesce | exp.Greatest | exp.Least):
            known = [self.arrow_type_of(e) for e in (node.this, *node.expressions)]
            found = [t for t in known if t is not None]
            unified = _unify(found) if found else None
            if unified is not None:
                return unified
        return ARROW_OF_CLASS.get(self._type_of(node) or "")  # not type_of: `node` is busy already


NUMERIC_ARROW = pa.decimal128(38, 10)  # PostgreSQL numeric as the wire layer's parameter type
ARROW_OF_CLASS: dict[str, pa.DataType] = {
    "int": pa.int64(),
    "numeric": NUMERIC_ARROW,
    "float": pa.float64(),
    "text": pa.string(),
    "bool": pa.bool_(),
    "date": pa.date32(),
    "timestamp": pa.timestamp("us"),
    "timestamptz": TIMESTAMP,
    "interval": pa.month_day_nano_interval(),
}
_ARROW_OF_CAST: dict[T, pa.DataType] = {
    **dict.fromkeys((T.TINYINT, T.SMALLINT), pa.int16()),
    **dict.fromkeys((T.INT, T.MEDIUMINT), pa.int32()),
    T.BIGINT: pa.int64(),
    T.FLOAT: pa.float32(),
    T.DOUBLE: pa.float64(),
    **dict.fromkeys((T.DECIMAL, T.BIGDECIMAL, T.MONEY), NUMERIC_ARROW),
    **dict.fromkeys((T.TEXT, T.VARCHAR, T.CHAR, T.NAME, T.NCHAR, T.NVARCHAR, T.BPCHAR), pa.string()),
    T.BOOLEAN: pa.bool_(),
    T.DATE: pa.date32(),
    T.TIMESTAMP: pa.timestamp("us"),
    T.TIMESTAMPTZ: TIMESTAMP,
    T.INTERVAL: pa.month_day_nano_interval(),
    T.TIME: pa.time64("us"),
    T.UUID: pa.uuid(),
    **dict.fromkeys((T.JSON, T.JSONB), pa.json_()),
    **dict.fromkeys((T.VARBINARY, T.BINARY), pa.binary()),
}


def arrow_of_datatype(to: exp.DataType) -> pa.DataType | None:
    """The Arrow type of a cast target (`text[]` → list<utf8>); None for types not modelled."""
    if to.this == T.ARRAY:
        inner = to.expressions[0] if to.expressions else None
        element = arrow_of_datatype(inner) if isinstance(inner, exp.DataType) else None
        return pa.list_(element) if element is not None else None
    return _ARROW_OF_CAST.get(to.this)


def _number_type(text: str) -> pa.DataType:
    """A numeric constant's type: int4 if it fits, else int8, else numeric (PostgreSQL's rules)."""
    if text.isdigit():
        value = int(text)
        if value < 2**31:
            return pa.int32()
        if value < 2**63:
            return pa.int64()
    return NUMERIC_ARROW


def _list_of(elements: list[pa.DataType | None]) -> pa.DataType | None:
    known = [t for t in elements if t is not None]
    unified = _unify(known) if known else None
    return pa.list_(unified) if unified is not None else None


def _unify(types: list[pa.DataType]) -> pa.DataType | None:
    """One type for UNION/CASE/COALESCE-like branches: equal types, or the widest number."""
    first = types[0]
    if all(t == first for t in types):
        return first
    if all(pa.types.is_integer(t) for t in types):
        return max(types, key=lambda t: t.bit_width)
    if all(pa.types.is_integer(t) or pa.types.is_decimal(t) or pa.types.is_floating(t) for t in types):
        return pa.float64() if any(pa.types.is_floating(t) for t in types) else NUMERIC_ARROW
    return None


def column_class(column: Column) -> str | None:
    type_name = column.type_name
    return "array" if type_name.startswith("list<") else _ARROW_TYPES.get(type_name)


def _values_names(values: exp.Values) -> list[str]:
    alias = values.args.get("alias")
    columns = alias.columns if alias is not None else []
    if columns:
        return [c.name for c in columns]
    first = values.expressions[0] if values.expressions else None
    width = len(first.expressions) if isinstance(first, exp.Tuple) else 1
    return [f"column{i + 1}" for i in range(width)]


def _values_column(values: exp.Values, name: str) -> exp.Expression | None:
    names = _values_names(values)
    first = values.expressions[0] if values.expressions else None
    if name not in names or not isinstance(first, exp.Tuple):
        return None
    index = names.index(name)
    return first.expressions[index] if index < len(first.expressions) else None


def _values_rows_at(node: exp.Expression, limit: int = 100) -> list[exp.Expression] | None:
    """The expressions at `node`'s position in every row (up to `limit`), if `node` is in a VALUES row."""
    row = node.parent
    values = row.parent if row is not None else None
    if not isinstance(row, exp.Tuple) or not isinstance(values, exp.Values):
        return None
    index = node.index if node.index is not None else 0
    return [
        r.expressions[index]
        for r in values.expressions[:limit]
        if isinstance(r, exp.Tuple) and index < len(r.expressions)
    ]


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
    exp.Cast: lambda self, n: n.meta.get(PG_CLASS) or cast_class(n.to),
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
