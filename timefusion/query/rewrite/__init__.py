"""The SQL front half of the query engine: PostgreSQL SQL in, DataFusion SQL plus pruning hulls out.

`prepare()` is the one entry point the engine calls for every statement. It parses once with sqlglot
(PostgreSQL dialect), applies the rewrites in order, each a pure function in its own module:

  names.py        unaliased projections get PostgreSQL's output names (`count`, `avg`, `?column?`)
  params.py       `$1 … $n` bound to typed literals (an SQL-injection boundary)
  time_bucket.py  TimescaleDB `time_bucket` → `date_bin` with TimescaleDB's origin, µs result
  round_numeric.py  ROUND(x, n) in numeric (n places, exact halves), ROUND(float8) half to even
  int_cast.py     casts to integer types round (numeric half away from zero, float8 half to even)
  percentile.py   PERCENTILE_CONT computed exactly (DataFusion 55 truncates the interpolation)

then extracts the pruning hull of every table of ours it reads (prune.py) and generates the SQL with
sqlglot's PostgreSQL generator (function names in lower case), whose output DataFusion 55 parses.
Rewrites whose trigger (a node type, a function name) does not occur are skipped, and typing (scopes)
is only built when a rewrite asks for it: a plain query pays for parse, names, pruning and generation.
Statements sqlglot cannot parse pass through unchanged (fallback.py): DataFusion reports the real
error. A bare VALUES list with nothing to rewrite (the ingest path's INSERT source) is not parsed at
all. `split_insert()` cuts an INSERT into target, columns and source query, for the ingest path.

Helpers: pgtypes.py (PostgreSQL's type of an expression), intervals.py and literals.py (interval and
timestamp text), placeholders.py (where `$n` are, by PostgreSQL's lexical rules), errors.py.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError

from timefusion.query.rewrite.errors import RewriteError
from timefusion.query.rewrite.fallback import referenced_tables, substitute_text, tokens
from timefusion.query.rewrite.insert import split_insert
from timefusion.query.rewrite.int_cast import round_int_casts
from timefusion.query.rewrite.names import column_names, name_projections
from timefusion.query.rewrite.params import bind_params
from timefusion.query.rewrite.percentile import exact_percentiles
from timefusion.query.rewrite.pgtypes import TypeResolver
from timefusion.query.rewrite.placeholders import placeholder_spans, spaced
from timefusion.query.rewrite.prune import UNBOUNDED, PruneSpec, extract_prune
from timefusion.query.rewrite.round_numeric import round_like_postgres
from timefusion.query.rewrite.time_bucket import rewrite_time_bucket
from timefusion.schema.tables import TableSchema

__all__ = ["Prepared", "PruneSpec", "RewriteError", "prepare", "split_insert"]

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
    r"::\s*(small|big)?int|\bint[248]?\b|\binteger\b|\bround\b|time_bucket|\bselect\b|percentile",
    re.IGNORECASE,
)
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
        return _passthrough(sql, params, schemas, tables=False)
    text = spaced(sql, spans) if spans else sql  # sqlglot misreads `$1,$2` without the space
    try:
        statements = [s for s in sqlglot.parse(text, read=DIALECT) if s is not None]
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
    # Rewrites share one resolver: none of them replaces a SELECT or a FROM source.
    resolver = TypeResolver(source, schemas)
    if "time_bucket" in functions:
        source = rewrite_time_bucket(source, schemas, copy=False, resolver=resolver)
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
    sql: str, params: Sequence[object] | None, schemas: Mapping[str, TableSchema], *, tables: bool = True
) -> Prepared:
    text = substitute_text(sql, params)
    if not tables:
        return Prepared(text, {})
    return Prepared(text, {t: UNBOUNDED for t in referenced_tables(sql, schemas, tokens(sql))})


def _generate(tree: exp.Expression) -> str:
    # Lower-case function names: DataFusion looks table functions (generate_series) up by exact name.
    return tree.sql(dialect=DIALECT, normalize_functions="lower")
