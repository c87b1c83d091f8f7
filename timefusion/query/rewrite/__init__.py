"""The SQL front half of the query engine: PostgreSQL SQL in, DataFusion SQL plus pruning hulls out.

`prepare()` is the one entry point the engine calls for every statement. It parses once with sqlglot
(PostgreSQL dialect), applies the rewrites in order, each a pure function in its own module:

  names.py        unaliased projections get PostgreSQL's output names (`count`, `avg`, `?column?`)
  params.py       `$1 … $n` bound to typed literals (an SQL-injection boundary)
  array_literals.py  `'{a,b}'::text[]` (and array text where the context wants an array) → ARRAY[…],
                  `a && b` → array_has_any
  gapfill.py      time_bucket_gapfill with locf()/interpolate(): a grid of buckets LEFT JOIN the aggregate
  time_bucket.py  TimescaleDB `time_bucket` → `date_bin` with TimescaleDB's origin, µs result
  avg_numeric.py  AVG(integer/numeric) exact in decimal (PostgreSQL's numeric AVG), 16 decimals
  round_numeric.py  ROUND(x, n) in numeric (n places, exact halves), ROUND(float8) half to even
  int_cast.py     casts to integer types round (numeric half away from zero, float8 half to even)
  percentile.py   PERCENTILE_CONT computed exactly (DataFusion 55 truncates the interpolation)
  sketches.py     percentile_agg/approx_percentile, approx_count_distinct/distinct_count → native
  time_zone.py    AT TIME ZONE / at_time_zone() / extract_epoch() with PostgreSQL's meaning
  to_char.py      to_char(ts, PostgreSQL format) → native chrono to_char pieces
  interval_math.py  interval * number, number * interval, interval / number
  arrays.py       array_length(a, 1): NULL for an empty array, int4
  json_ops.py     -> ->> #> #>> @> ? jsonb_path_exists, ::json(b), json(b)_build_*, to_json(b) →
                  the vectorised tf_json_* UDFs of query/functions

then extracts the pruning hull of every table of ours it reads (prune.py) and generates the SQL with
sqlglot's PostgreSQL generator (function names in lower case), whose output DataFusion 55 parses.
Rewrites whose trigger (a node type, a function name) does not occur are skipped, and typing (scopes)
is only built when a rewrite asks for it: a plain query pays for parse, names, pruning and generation.
Statements sqlglot cannot parse pass through unchanged (fallback.py): DataFusion reports the real
error. A bare VALUES list with nothing to rewrite (the ingest path's INSERT source) is not parsed at
all. `split_insert()` cuts an INSERT into target, columns and source query, for the ingest path.

For the wire layer: `infer_param_types()` gives the types PostgreSQL would infer for `$1 … $n` at
Parse (param_types.py; a large INSERT … VALUES is read by a scanner, not parsed), and
`parse_pg_array()` reads array input text (`'{a,"b c",NULL}'`) as a Python list to bind.

Helpers: pgtypes.py (PostgreSQL's type of an expression), intervals.py and literals.py (interval and
timestamp text), placeholders.py (where `$n` are, by PostgreSQL's lexical rules), errors.py.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import pyarrow as pa
import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError

from timefusion.query.rewrite.array_literals import parse_pg_array, rewrite_array_literals
from timefusion.query.rewrite.arrays import rewrite_array_length
from timefusion.query.rewrite.avg_numeric import exact_averages
from timefusion.query.rewrite.errors import RewriteError
from timefusion.query.rewrite.fallback import referenced_tables, substitute_text, tokens
from timefusion.query.rewrite.gapfill import rewrite_gapfill
from timefusion.query.rewrite.insert import split_insert
from timefusion.query.rewrite.int_cast import round_int_casts
from timefusion.query.rewrite.interval_math import rewrite_interval_math
from timefusion.query.rewrite.json_ops import rewrite_json
from timefusion.query.rewrite.names import column_names, name_projections
from timefusion.query.rewrite.param_types import infer_tree, table_column_types
from timefusion.query.rewrite.params import bind_params
from timefusion.query.rewrite.percentile import exact_percentiles
from timefusion.query.rewrite.pgtypes import TypeResolver, arrow_of_datatype
from timefusion.query.rewrite.placeholders import placeholder_spans, spaced, splice, values_rows
from timefusion.query.rewrite.prune import UNBOUNDED, PruneSpec, extract_prune
from timefusion.query.rewrite.round_numeric import round_like_postgres
from timefusion.query.rewrite.sketches import protect_sketch_names, rewrite_sketches
from timefusion.query.rewrite.time_bucket import rewrite_time_bucket
from timefusion.query.rewrite.time_zone import rewrite_time_zones
from timefusion.query.rewrite.to_char import protect_to_char, rewrite_to_char
from timefusion.schema.tables import TableSchema

__all__ = [
    "Prepared",
    "PruneSpec",
    "RewriteError",
    "infer_param_types",
    "parse_pg_array",
    "prepare",
    "split_insert",
]

DIALECT = "postgres"


@dataclass(frozen=True)
class Prepared:
    sql: str  # SQL text DataFusion 55 will accept, semantics as PostgreSQL
    tables: dict[str, PruneSpec]  # each of OUR tables the statement reads (keys are table names) → its hull
    # PostgreSQL's output column names of a query, where DataFusion's may differ (duplicates are made
    # unique for DataFusion: rename the result's columns to these); None when unknown (`SELECT *`, DDL).
    column_names: tuple[str, ...] | None = None


class _DropCommandFallback(logging.Filter):
    """sqlglot logs a warning each time it keeps a statement as an opaque Command; that is expected
    here (SHOW, EXPLAIN …) and handled, so it is not logged for every such query."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Falling back to parsing as a 'Command'" not in record.getMessage()


logging.getLogger("sqlglot").addFilter(_DropCommandFallback())

# Statements with no table to read and nothing to rewrite: not even parsed.
_UTILITY = re.compile(
    r"^\s*(SET|SHOW|RESET|BEGIN|START|COMMIT|END|ROLLBACK|ABORT|SAVEPOINT|RELEASE|DISCARD|DEALLOCATE"
    r"|CLOSE|LISTEN|UNLISTEN|NOTIFY)\b",
    re.IGNORECASE,
)
_EXPLAIN = re.compile(r"^\s*EXPLAIN(\s+ANALY[SZ]E)?(\s+VERBOSE)?\s+(?=\S)", re.IGNORECASE)
_VALUES = re.compile(r"VALUES\s*\(", re.IGNORECASE)
# Words without which a VALUES list needs no rewrite (casts to integers, ROUND, time_bucket, a
# subquery that could read our tables, percentiles); seen anywhere, even in a string, they only cost
# the full path.
_MAY_NEED_REWRITE = re.compile(
    r"::\s*(small|big)?int|\bint[248]?\b|\binteger\b|\bround\b|time_bucket|\bselect\b|percentile"
    r"|(?:'|\$\d+)\s*::\s*[\w ]+(?:\([\d\s,]*\))?\s*\[|\bcast\s*\(\s*(?:'|\$\d)",  # array text casts
    re.IGNORECASE,
)
_JSON_KINDS = {
    exp.JSONExtract,
    exp.JSONExtractScalar,
    exp.JSONBExtract,
    exp.JSONBExtractScalar,
    exp.JSONBContainsTopKey,
    exp.ArrayContainsAll,
}
_JSON_FUNCTIONS = {
    "json_build_object",
    "jsonb_build_object",
    "json_build_array",
    "jsonb_build_array",
    "to_json",
    "to_jsonb",
    "jsonb_path_exists",
    "row_to_json",
}
# names renamed in the text before parsing (to_char.py, sketches.py) → their output column names
_PROTECTED = {
    "tf_pg_to_char": "to_char",
    "tf_rollup": "rollup",
    "tf_approx_count_distinct": "approx_count_distinct",
}
_LEADING_COMMENTS = re.compile(r"^(\s*(--[^\n]*(\n|$)|/\*.*?\*/))*\s*", re.DOTALL)


def prepare(
    sql: str,
    params: Sequence[object] | None,
    schemas: Mapping[str, TableSchema],
    now: datetime | None = None,
) -> Prepared:
    """Rewrite one statement for DataFusion with PostgreSQL semantics and find what it reads.

    `params` binds `$1 … $n` (None: the statement must have no placeholders); `now` is the time at
    which the statement runs (default: the current time), used for `now() - INTERVAL …` bounds.
    """
    now = now.astimezone(UTC) if now is not None else datetime.now(UTC)
    body = sql[_LEADING_COMMENTS.match(sql).end() :]  # type: ignore[union-attr]
    if _UTILITY.match(body):
        return _passthrough(sql, params, schemas)
    explain = _EXPLAIN.match(body)
    if explain:
        inner = prepare(body[explain.end() :], params, schemas, now)
        return Prepared(body[: explain.end()] + inner.sql, inner.tables)
    spans = placeholder_spans(sql)
    if spans is not None and _VALUES.match(body) and not _MAY_NEED_REWRITE.search(body):
        # The ingest path's INSERT … VALUES source: nothing here to rewrite, nothing of ours read,
        # and a 500-row list would take sqlglot a third of a second to parse and generate.
        return _passthrough(sql, params, schemas, tables=False, spans=spans)
    text = spaced(sql, spans) if spans else sql  # sqlglot misreads `$1,$2` without the space
    try:
        statements = [
            s
            for s in sqlglot.parse(protect_sketch_names(protect_to_char(text)), read=DIALECT)
            if s is not None
        ]
    except SqlglotError:
        return _passthrough(sql, params, schemas)
    if not statements:
        return _passthrough(sql, params, schemas)
    if len(statements) > 1:
        raise RewriteError("cannot insert multiple commands into a prepared statement", "42601")
    tree = statements[0]
    if isinstance(tree, exp.Command):
        return _passthrough(sql, params, schemas)
    return _rewrite(tree, text, params, schemas, now)


def infer_param_types(sql: str, schemas: Mapping[str, TableSchema]) -> list[pa.DataType | None]:
    """The type PostgreSQL would infer for each `$n` of `sql` (index n-1), as an Arrow type (int4 →
    int32, text[] → list<utf8>, timestamptz → timestamp[us, UTC], …), None where it cannot tell (the
    wire layer then reports text). Never raises: a statement sqlglot cannot parse gets all None."""
    spans = placeholder_spans(sql)
    numbers = [n for _, _, n in spans] if spans is not None else _ANY_PLACEHOLDER.findall(sql)
    count = max(map(int, numbers), default=0)
    if count == 0:
        return []
    try:
        return _infer(sql, spans, count, schemas)
    except Exception:  # inference is advice for the client: it must never fail a Parse
        return [None] * count


_ANY_PLACEHOLDER = re.compile(r"\$(\d+)")
_CAST_PLACEHOLDER = re.compile(r"\s*\$(\d+)\s*::\s*(.+?)\s*$", re.DOTALL)
_BARE_PLACEHOLDER = re.compile(r"\s*\$(\d+)\s*$")
_PLAIN_ROW = re.compile(r"\(\s*\$\d+\s*(?:,\s*\$\d+\s*)*\)")
_PLAIN_ROWS = re.compile(
    rf"\s*VALUES\s*({_PLAIN_ROW.pattern}(?:\s*,\s*{_PLAIN_ROW.pattern})*)\s*;?\s*$", re.I
)


def _infer(
    sql: str, spans: list[tuple[int, int, int]] | None, count: int, schemas: Mapping[str, TableSchema]
) -> list[pa.DataType | None]:
    unknown: list[pa.DataType | None] = [None] * count
    if spans is None:
        return unknown
    body = sql[_LEADING_COMMENTS.match(sql).end() :]  # type: ignore[union-attr]
    if _UTILITY.match(body):
        return unknown
    explain = _EXPLAIN.match(body)
    if explain:
        body = body[explain.end() :]
        spans = placeholder_spans(body)
        if spans is None:
            return unknown
    try:
        insert = split_insert(body)
    except RewriteError:
        insert = None
    if insert is not None or _VALUES.match(body):
        # INSERT … VALUES (the ingest path sends hundreds of rows): read the rows, parse no SQL.
        table, columns, source = insert if insert is not None else (None, None, body)
        found = _infer_values(source, table, columns, count, schemas)
        if found is not None:
            return found
    text = spaced(body, spans) if spans else body
    try:
        statements = [s for s in sqlglot.parse(text, read=DIALECT) if s is not None]
    except SqlglotError:
        return unknown
    if len(statements) != 1 or isinstance(statements[0], exp.Command):
        return unknown
    return infer_tree(statements[0], schemas, count)


def _infer_values(
    source: str,
    table: str | None,
    columns: tuple[str, ...] | None,
    count: int,
    schemas: Mapping[str, TableSchema],
) -> list[pa.DataType | None] | None:
    """Types of the placeholders of a plain VALUES list (the INSERT's target columns give bare `$n`
    their types, `$n::type` its cast); None when the text is not a plain VALUES list."""
    schema = schemas.get(table) if table is not None else None
    targets = table_column_types(schema, columns) if schema is not None else []
    types: list[pa.DataType | None] = [None] * count
    plain = _PLAIN_ROWS.match(source)
    if plain is not None:  # only `$n` in the rows (what drivers send): one regex, no scanning
        width = len(targets)
        for m in _PLAIN_ROW.finditer(source, plain.start(1)):
            for i, n in enumerate(_ANY_PLACEHOLDER.findall(m.group())):
                k = int(n)
                if 1 <= k <= count and types[k - 1] is None and i < width:
                    types[k - 1] = targets[i]
        return types
    rows = values_rows(source)
    if rows is None:
        return None
    names = list(columns) if columns is not None else [c.name for c in schema.columns] if schema else []

    def _target(i: int) -> tuple[str, str] | None:
        return (table, names[i]) if table is not None and schema is not None and i < len(names) else None

    shapes: dict[tuple[str, tuple[str, str] | None], list[pa.DataType | None] | None] = {}
    for row in rows:
        for i, (start, end) in enumerate(row):
            element = source[start:end]
            if "$" not in element:
                continue
            target = targets[i] if i < len(targets) else None
            bare = _BARE_PLACEHOLDER.match(element)
            if bare is not None:
                n, found = int(bare.group(1)), target
            else:
                cast = _CAST_PLACEHOLDER.match(element)
                if cast is None or "::" in cast.group(2):
                    if not _infer_element(element, _target(i), types, schemas, shapes):
                        return None
                    continue
                n, found = int(cast.group(1)), _cast_type(cast.group(2))
            if 1 <= n <= count and types[n - 1] is None:
                types[n - 1] = found
    return types


def _infer_element(
    element: str,
    target: tuple[str, str] | None,
    types: list[pa.DataType | None],
    schemas: Mapping[str, TableSchema],
    cache: dict[tuple[str, tuple[str, str] | None], list[pa.DataType | None] | None],
) -> bool:
    """An element more complex than `$n[::type]` (ARRAY[$1, $2], lower($3) …): parsed alone, as the
    value of its `target` (table, column). Rows repeat their shape, so each shape (placeholders
    renumbered by first appearance) is parsed once. False if it cannot be parsed."""
    spans = placeholder_spans(element)
    if spans is None:
        return False
    order: dict[int, int] = {}
    for _, _, n in spans:
        order.setdefault(n, len(order) + 1)
    shape = splice(element, spans, {n: f"${k} " for n, k in order.items()})
    key = (shape, target)
    if key not in cache:
        cache[key] = _shape_types(shape, target, len(order), schemas)
    found = cache[key]
    if found is None:
        return False
    for n, k in order.items():
        if 1 <= n <= len(types) and types[n - 1] is None:
            types[n - 1] = found[k - 1]
    return True


def _shape_types(
    shape: str, target: tuple[str, str] | None, count: int, schemas: Mapping[str, TableSchema]
) -> list[pa.DataType | None] | None:
    try:
        select = sqlglot.parse_one(f"SELECT {shape}", read=DIALECT)
    except SqlglotError:
        return None
    if not isinstance(select, exp.Select) or len(select.expressions) != 1 or select.args.get("from_"):
        return None
    if target is None:
        return infer_tree(select, schemas, count)
    table, column = target
    value = select.expressions[0]
    into = exp.Schema(this=exp.to_table(table), expressions=[exp.to_identifier(column, quoted=True)])
    insert = exp.Insert(this=into, expression=exp.Values(expressions=[exp.Tuple(expressions=[value])]))
    return infer_tree(insert, schemas, count)


_CAST_TYPES: dict[str, pa.DataType | None] = {}


def _cast_type(text: str) -> pa.DataType | None:
    if text not in _CAST_TYPES:
        try:
            _CAST_TYPES[text] = arrow_of_datatype(exp.DataType.build(text, dialect=DIALECT))
        except (SqlglotError, ValueError):
            _CAST_TYPES[text] = None
        if len(_CAST_TYPES) > 1000:
            _CAST_TYPES.clear()
    return _CAST_TYPES.get(text)


def _rewrite(
    tree: exp.Expression,
    sql: str,
    params: Sequence[object] | None,
    schemas: Mapping[str, TableSchema],
    now: datetime,
) -> Prepared:
    """Apply every rewrite to a freshly parsed `tree` (changed in place) and generate the SQL."""
    if isinstance(tree, exp.Insert):
        source = tree.expression
        names = None
    else:
        source = tree
        names = column_names(tree, sql)
        if names is not None and any(n in _PROTECTED for n in names):  # see protect_to_char …
            names = tuple(_PROTECTED.get(n, n) for n in names)
    if not isinstance(source, exp.Query | exp.Values):
        # DDL, UPDATE, DELETE, SET …: nothing of ours to rewrite; DataFusion decides.
        tables = {t: UNBOUNDED for t in referenced_tables(sql, schemas, tokens(sql))}
        tree = bind_params(tree, params, copy=False)
        return Prepared(_generate(tree), tables)
    name_projections(source, sql, copy=False)
    # One walk tells which rewrites can apply at all; the others cost nothing.
    kinds: set[type] = set()
    functions: set[str] = set()
    for node in tree.walk():
        kinds.add(type(node))
        if isinstance(node, exp.Anonymous):
            functions.add(node.name.lower())
    if exp.Parameter in kinds or params:
        tree = bind_params(tree, params, copy=False)
        source = tree.expression if isinstance(tree, exp.Insert) else tree
    if "time_bucket_gapfill" in functions and isinstance(source, exp.Select):
        source = rewrite_gapfill(source, schemas, now)  # a new tree: before any resolver is built
        if isinstance(tree, exp.Insert):
            tree.set("expression", source)
        else:
            tree = source
        kinds |= {type(n) for n in source.walk()}
        functions |= {n.name.lower() for n in source.find_all(exp.Anonymous)}
    # Array text: in the statement, or a bound text value (an array parameter sent as text).
    array_text = "{" in sql or any(isinstance(p, str) and "{" in p for p in params or ())
    # Rewrites share one resolver: none of them replaces a SELECT or a FROM source.
    resolver = TypeResolver(source, schemas)
    if array_text or exp.ArrayOverlaps in kinds:
        source = rewrite_array_literals(source, schemas, copy=False, resolver=resolver)
    if "time_bucket" in functions:
        source = rewrite_time_bucket(source, schemas, copy=False, resolver=resolver)
    if functions & {
        "approx_percentile",
        "distinct_count",
        "percentile_agg",
        "approx_count_distinct",
        "rollup",
    }:
        source = rewrite_sketches(source, schemas, copy=False)
    if exp.Interval in kinds and (exp.Mul in kinds or exp.Div in kinds):
        source = rewrite_interval_math(source, schemas, copy=False, resolver=resolver)
    if exp.AtTimeZone in kinds or functions & {"at_time_zone", "extract_epoch"}:
        source = rewrite_time_zones(source, schemas, copy=False, resolver=resolver)
    if "tf_pg_to_char" in functions:
        source = rewrite_to_char(source, schemas, copy=False, resolver=resolver)
    if exp.ArraySize in kinds or "array_length" in functions:
        source = rewrite_array_length(source, schemas, copy=False)
    if (
        kinds & _JSON_KINDS
        or functions & _JSON_FUNCTIONS
        or (exp.DataType in kinds and "json" in sql.lower())
    ):
        source = rewrite_json(source, schemas, copy=False, resolver=resolver)
    if exp.Avg in kinds:  # before ROUND and int_cast, which round the exact average
        source = exact_averages(source, schemas, copy=False, resolver=resolver)
    if exp.Round in kinds:  # before int_cast: the CASE it may write is integral
        source = round_like_postgres(source, schemas, copy=False, resolver=resolver)
    if exp.Cast in kinds:
        source = round_int_casts(source, schemas, copy=False, resolver=resolver)
    if exp.WithinGroup in kinds:  # after int_cast, which types PERCENTILE_CONT
        source = exact_percentiles(source, schemas, copy=False, resolver=resolver)
    if isinstance(tree, exp.Insert):
        tree.set("expression", source)
    else:
        tree = source
    tables = extract_prune(source, schemas, now)
    return Prepared(_generate(tree), tables, names)


def _passthrough(
    sql: str,
    params: Sequence[object] | None,
    schemas: Mapping[str, TableSchema],
    *,
    tables: bool = True,
    spans: list[tuple[int, int, int]] | None = None,
) -> Prepared:
    text = substitute_text(sql, params, spans)
    if not tables:
        return Prepared(text, {})
    return Prepared(text, {t: UNBOUNDED for t in referenced_tables(sql, schemas, tokens(sql))})


def _generate(tree: exp.Expression) -> str:
    # Lower-case function names: DataFusion looks table functions (generate_series) up by exact name.
    return tree.sql(dialect=DIALECT, normalize_functions="lower")
