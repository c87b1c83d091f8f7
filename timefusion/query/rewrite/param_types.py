"""The types PostgreSQL infers for `$1 … $n` when a client leaves them unspecified (Parse with OID 0).

PostgreSQL types an unknown-typed value from where it stands, and so does this module (the wire layer
reports the result in ParameterDescription and decodes the Bind values by it):

  - `$1::int`, `CAST($1 AS timestamptz)`                      the cast's type
  - `col op $1`, `$1 op col` (=, <>, <, <=, >, >=, IS [NOT] DISTINCT FROM, BETWEEN, IN (…), CASE,
    COALESCE, NULLIF, row comparisons `(a, b) = ($1, $2)`) the other side's type; LIKE, ILIKE, SIMILAR
    TO, ~, ~*, || → text
  - `$1 = ANY(array_col)` → the element type; `col = ANY($1)` → an array of col's type
  - `array_col && $1`, `@>`, `<@`, `=`                        the array's type
  - `$1 * 1000`, `now() - $1`                                 the other operand's type (int4 for 1000,
    as in PostgreSQL: `duration > $1 * 1000` infers integer, not bigint)
  - `LIMIT $1`, `OFFSET $1`, `FETCH FIRST $1`                 bigint
  - `ARRAY[$1, …]`                                            the element type its context asks for
  - `INSERT INTO t (cols) VALUES ($1, …), …` / `… SELECT $1, …` the target columns' types (all the
    table's columns in order without a column list); `UPDATE t SET col = $1` the column's type
  - WHERE/HAVING/ON/AND/OR/NOT operands                        boolean

Column types come from pgtypes.TypeResolver (our schemas through aliases, CTEs, derived tables and
VALUES lists). Types are Arrow types, as the wire layer maps them to OIDs: int4 → int32, int8 → int64,
text → utf8, numeric → decimal128(38, 10), timestamptz → timestamp[us, UTC], our json columns →
arrow.json (reported as jsonb), text[] → list<utf8>. Anything not covered is None (the wire layer then
says text, which is what PostgreSQL does for an unconstrained `SELECT $1`). When a parameter occurs
more than once, its first typed occurrence wins.

`expected_type()` is also what makes an untyped string literal an array (array_literals.py).
"""

from __future__ import annotations

from collections.abc import Mapping

import pyarrow as pa
from sqlglot import exp

from timefusion.query.rewrite.params import parameter_index
from timefusion.query.rewrite.pgtypes import TypeResolver, arrow_of_datatype, our_table
from timefusion.schema.tables import TableSchema

_COMPARISONS = (
    exp.EQ,
    exp.NEQ,
    exp.GT,
    exp.GTE,
    exp.LT,
    exp.LTE,
    exp.NullSafeEQ,
    exp.NullSafeNEQ,
)
_TEXT_MATCH = (exp.Like, exp.ILike, exp.SimilarTo, exp.RegexpLike, exp.RegexpILike, exp.DPipe)
_ARITHMETIC = (exp.Add, exp.Sub, exp.Mul, exp.Div, exp.Mod)
_ARRAY_OPERATORS = (exp.ArrayOverlaps, exp.ArrayContainsAll, exp.ArrayContainedBy)
_BOOLEAN_CONTEXT = (exp.Where, exp.Having, exp.And, exp.Or, exp.Not, exp.Xor)
_TEXT_FUNCTIONS = (exp.Lower, exp.Upper, exp.Length, exp.Trim, exp.Initcap)
_MAX_DEPTH = 12


def infer_tree(
    tree: exp.Expression, schemas: Mapping[str, TableSchema], count: int
) -> list[pa.DataType | None]:
    """One Arrow type (or None) per `$1 … $count` from the parsed statement `tree`."""
    types: list[pa.DataType | None] = [None] * count
    nodes = [(n, parameter_index(n)) for n in tree.find_all(exp.Parameter, bfs=False)]
    nodes = [(n, i) for n, i in nodes if i is not None and 1 <= i <= count]
    if not nodes:
        return types
    resolver = TypeResolver(tree, schemas)
    for node, index in nodes:
        if types[index - 1] is None:
            types[index - 1] = expected_type(node, resolver)
    return types


def _unparen(node: exp.Expression) -> exp.Expression:
    while isinstance(node, exp.Paren):
        node = node.this
    return node


def _is_untyped(node: exp.Expression) -> bool:
    node = _unparen(node)
    return isinstance(node, exp.Parameter) or (isinstance(node, exp.Literal) and node.is_string)


def _type(node: exp.Expression, resolver: TypeResolver) -> pa.DataType | None:
    if _is_untyped(node):
        return None
    try:
        return resolver.arrow_type_of(node)
    except Exception:  # typing is best effort: an odd tree must not fail a Parse
        return None


def _first(nodes: list[exp.Expression], resolver: TypeResolver) -> pa.DataType | None:
    for n in nodes:
        t = _type(n, resolver)
        if t is not None:
            return t
    return None


def _element(t: pa.DataType | None) -> pa.DataType | None:
    return t.value_type if t is not None and pa.types.is_list(t) else None


def expected_type(node: exp.Expression, resolver: TypeResolver, depth: int = 0) -> pa.DataType | None:
    """The type PostgreSQL gives an unknown-typed value (a `$n`, a string literal) at `node`."""
    if depth > _MAX_DEPTH:
        return None
    child = node
    parent = node.parent
    while isinstance(parent, exp.Paren):
        child, parent = parent, parent.parent
    if parent is None:
        return None
    if isinstance(parent, exp.Cast | exp.TryCast) and parent.this is child:
        return arrow_of_datatype(parent.to)
    if isinstance(parent, exp.Limit | exp.Offset | exp.Fetch):
        return pa.int64()
    if isinstance(parent, _TEXT_MATCH):
        other = parent.expression if parent.this is child else parent.this
        if isinstance(parent, exp.DPipe) and _element(_type(other, resolver)) is not None:
            return None  # array || element: PostgreSQL's anyarray rules, not modelled
        return pa.string()
    if isinstance(parent, exp.Any | exp.All) or (
        isinstance(parent, exp.Anonymous) and parent.name.upper() in ("ANY", "ALL", "SOME")
    ):
        comparison = parent.parent
        while isinstance(comparison, exp.Paren):
            comparison = comparison.parent
        if isinstance(comparison, _COMPARISONS):
            t = _type(comparison.this, resolver)
            return pa.list_(t) if t is not None else None
        return None
    if isinstance(parent, _COMPARISONS):
        other = parent.expression if parent.this is child else parent.this
        inner = _unparen(other)
        if isinstance(inner, exp.Any | exp.All) or (
            isinstance(inner, exp.Anonymous) and inner.name.upper() in ("ANY", "ALL", "SOME")
        ):
            array = inner.this if isinstance(inner, exp.Any | exp.All) else inner.expressions[0]
            return _element(_type(array, resolver))
        if isinstance(inner, exp.Literal) and inner.is_string:
            return pa.string()  # unknown = unknown: text
        return _type(other, resolver)
    if isinstance(parent, _ARRAY_OPERATORS):
        other = parent.expression if parent.this is child else parent.this
        return _type(other, resolver)
    if isinstance(parent, _ARITHMETIC):
        other = parent.expression if parent.this is child else parent.this
        return _type(other, resolver)
    if isinstance(parent, exp.Between):
        if child is parent.this:
            return _first([parent.args["low"], parent.args["high"]], resolver)
        return _first([parent.this, parent.args["low"], parent.args["high"]], resolver)
    if isinstance(parent, exp.In):
        if child is parent.this:
            query = parent.args.get("query")
            if query is not None:
                return _type(query, resolver)
            return _first(parent.expressions, resolver)
        if child in parent.expressions:
            return _first([parent.this, *parent.expressions], resolver)
        return None
    if isinstance(parent, exp.Array):
        found = _first(parent.expressions, resolver)
        if found is not None:
            return found
        return _element(expected_type(parent, resolver, depth + 1))
    if isinstance(parent, exp.Coalesce | exp.Greatest | exp.Least | exp.Nullif):
        found = _first([parent.this, *parent.expressions, parent.args.get("expression")], resolver)
        if found is not None or isinstance(parent, exp.Nullif):
            return found
        return expected_type(parent, resolver, depth + 1)
    if isinstance(parent, exp.If):  # a WHEN … THEN … branch of a CASE
        case = parent.parent
        if not isinstance(case, exp.Case):
            return None
        if child is parent.args.get("true"):
            return _case_result(case, resolver, depth)
        operand = case.this
        if operand is not None:  # CASE x WHEN $1 …
            return _first([operand, *(i.this for i in case.args.get("ifs") or [])], resolver)
        return pa.bool_()
    if isinstance(parent, exp.Case):
        if child is parent.args.get("default"):
            return _case_result(parent, resolver, depth)
        if child is parent.this:
            return _first([i.this for i in parent.args.get("ifs") or []], resolver)
        return None
    if isinstance(parent, exp.Tuple):
        return _tuple_member(parent, child, resolver)
    if isinstance(parent, exp.Alias | exp.Select):
        return _insert_select_target(child, parent, resolver)
    on_clause = isinstance(parent, exp.Join) and child is parent.args.get("on")
    if isinstance(parent, _BOOLEAN_CONTEXT) or on_clause:
        return pa.bool_()
    if isinstance(parent, _TEXT_FUNCTIONS) and child is parent.this:
        return pa.string()
    if (
        isinstance(parent, exp.Anonymous)
        and parent.name.lower() in ("time_bucket", "date_bin")
        and parent.expressions
        and child is parent.expressions[0]
    ):
        return pa.month_day_nano_interval()
    return None


def _case_result(case: exp.Case, resolver: TypeResolver, depth: int) -> pa.DataType | None:
    results = [i.args.get("true") for i in case.args.get("ifs") or []]
    default = case.args.get("default")
    found = _first([r for r in (*results, default) if r is not None], resolver)
    return found if found is not None else expected_type(case, resolver, depth + 1)


def _tuple_member(row: exp.Tuple, child: exp.Expression, resolver: TypeResolver) -> pa.DataType | None:
    index = next((i for i, e in enumerate(row.expressions) if e is child), None)
    if index is None:
        return None
    holder = row.parent
    if isinstance(holder, exp.Values):
        insert = holder.parent
        if isinstance(insert, exp.Insert) and insert.expression is holder:
            columns = insert_target_columns(insert, resolver.schemas)
            if columns is not None and index < len(columns):
                return columns[index]
        return None
    while isinstance(holder, exp.Paren):
        holder = holder.parent
    if isinstance(holder, _COMPARISONS):  # (a, b) = ($1, $2)
        other = _unparen(holder.expression if _unparen(holder.this) is row else holder.this)
        if isinstance(other, exp.Tuple) and index < len(other.expressions):
            return _type(other.expressions[index], resolver)
    return None


def _insert_select_target(
    child: exp.Expression, parent: exp.Expression, resolver: TypeResolver
) -> pa.DataType | None:
    """`INSERT INTO t (cols) SELECT $1, $2 …`: the target column of that projection."""
    projection = child
    if isinstance(parent, exp.Alias):
        projection, parent = parent, parent.parent
    if not isinstance(parent, exp.Select):
        return None
    insert = parent.parent
    if not isinstance(insert, exp.Insert) or insert.expression is not parent:
        return None
    index = next((i for i, e in enumerate(parent.expressions) if e is projection), None)
    columns = insert_target_columns(insert, resolver.schemas)
    if index is None or columns is None or index >= len(columns):
        return None
    return columns[index]


def insert_target_columns(
    insert: exp.Insert, schemas: Mapping[str, TableSchema]
) -> list[pa.DataType | None] | None:
    """Types of an INSERT's target columns, in the order values are given; None if not our table."""
    target = insert.this
    names: list[str] | None = None
    if isinstance(target, exp.Schema):
        names = [c.name if c.quoted else c.name.lower() for c in target.expressions]
        target = target.this
    if not isinstance(target, exp.Table):
        return None
    schema = our_table(target, schemas)
    if schema is None:
        return None
    return table_column_types(schema, names)


def table_column_types(
    schema: TableSchema, names: list[str] | tuple[str, ...] | None
) -> list[pa.DataType | None]:
    """Arrow types of `names` (all columns in order if None) of one of our tables; None if unknown."""
    columns = schema.columns if names is None else [schema.by_name.get(n) for n in names]
    return [None if c is None else pa.json_() if c.is_json else c.arrow_type for c in columns]
