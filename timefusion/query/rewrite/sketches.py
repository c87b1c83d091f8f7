"""TimescaleDB's sketch API: `percentile_agg`, `approx_percentile`, `approx_count_distinct`,
`distinct_count` and `rollup`.

A sketch consumed in the same expression goes to DataFusion's native approximate aggregates:

    approx_percentile(q, percentile_agg(x))            → approx_percentile_cont(x, q)
    approx_percentile(q, rollup(percentile_agg(x)))    (the same)
    distinct_count(approx_count_distinct(x))           → approx_distinct(x) (as bigint)

Their partial-aggregation states are mergeable sketches (a t-digest, a HyperLogLog), merged in Rust
across the buffer and the Delta files (one UNION ALL view aggregated in parallel partitions). A sketch
kept as a value (`SELECT percentile_agg(x) AS s … GROUP BY minute`, read by an outer query with
`approx_percentile(0.5, rollup(s))`) uses TimeFusion's UDAFs (query/functions/sketches.py):
tf_percentile_agg, tf_approx_count_distinct, tf_rollup, tf_approx_percentile, tf_distinct_count.

sqlglot cannot read `rollup(…)` as a function and reads `approx_count_distinct` as `approx_distinct`,
so `protect_sketch_names()` renames both in the SQL text before parsing (not `GROUP BY ROLLUP (…)`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from sqlglot import exp

from timefusion.query.rewrite.errors import RewriteError
from timefusion.schema.tables import TableSchema

NAMES = frozenset(
    {"approx_percentile", "percentile_agg", "distinct_count", "tf_approx_count_distinct", "tf_rollup"}
)
_WORDS = re.compile(
    r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|--[^\n]*|\b(group\s+by|select|from|where|having|order\s+by|limit)\b"
    r"|\b(rollup|approx_count_distinct)\s*\(",
    re.IGNORECASE,
)


def protect_sketch_names(sql: str) -> str:
    """`rollup(` (outside a GROUP BY clause) → `tf_rollup(`, `approx_count_distinct(` →
    `tf_approx_count_distinct(`, outside strings."""
    lower = sql.lower()
    if "rollup" not in lower and "approx_count_distinct" not in lower:
        return sql
    clause = ""

    def sub(m: re.Match[str]) -> str:
        nonlocal clause
        if m.group(1):
            clause = re.sub(r"\s+", " ", m.group(1).lower())
            return m.group(0)
        if m.group(2) is None:
            return m.group(0)
        if m.group(2).lower() == "rollup" and clause == "group by":
            return m.group(0)
        return "tf_" + m.group(0)

    return _WORDS.sub(sub, sql)


def rewrite_sketches(
    tree: exp.Expression, schemas: Mapping[str, TableSchema] | None = None, *, copy: bool = True
) -> exp.Expression:
    if not any(n.name.lower() in NAMES for n in tree.find_all(exp.Anonymous)):
        return tree
    if copy:
        tree = tree.copy()
    for node in [n for n in tree.find_all(exp.Anonymous, bfs=False) if n.name.lower() in NAMES][::-1]:
        if node.parent is None and node is not tree:
            continue
        replacement = _rewrite(node)
        if replacement is None:
            continue
        if node is tree:
            return replacement
        node.replace(replacement)
    return tree


def _call(name: str, *args: exp.Expression) -> exp.Anonymous:
    return exp.Anonymous(this=name, expressions=list(args))


def _cast(node: exp.Expression, to: str) -> exp.Expression:
    return exp.Cast(this=node.copy(), to=exp.DataType.build(to))


def _rewrite(node: exp.Anonymous) -> exp.Expression | None:
    name = node.name.lower()
    args = node.expressions
    if name == "approx_percentile":
        if len(args) != 2:
            raise RewriteError(
                "function approx_percentile(double precision, sketch) takes 2 arguments", "42883"
            )
        q, sketch = args
        if isinstance(q, exp.Literal) and not q.is_string and not 0 <= float(q.name) <= 1:
            raise RewriteError(f"percentile value {q.name} is not between 0 and 1", "22003")
        x = _consumed(sketch, ("percentile_agg",))
        if x is not None:
            return _call("approx_percentile_cont", x, _cast(q, "DOUBLE PRECISION"))
        return _call("tf_approx_percentile", _cast(q, "DOUBLE PRECISION"), _value(sketch))
    if name == "distinct_count":
        if len(args) != 1:
            raise RewriteError("function distinct_count(sketch) takes 1 argument", "42883")
        x = _consumed(args[0], ("tf_approx_count_distinct",))
        if x is not None:
            return _cast(_call("approx_distinct", x), "BIGINT")
        return _call("tf_distinct_count", _value(args[0]))
    if isinstance(node.parent, exp.Anonymous) and node.parent.name.lower() in NAMES:
        return None  # rewritten with its consumer
    return _value(node)


def _consumed(node: exp.Expression, constructors: tuple[str, ...]) -> exp.Expression | None:
    """x when `node` is constructor(x) or rollup(constructor(x)): the native aggregate can be used."""
    if isinstance(node, exp.Anonymous) and node.name.lower() == "tf_rollup" and len(node.expressions) == 1:
        node = node.expressions[0]
    if isinstance(node, exp.Anonymous) and node.name.lower() in constructors and len(node.expressions) == 1:
        return node.expressions[0].copy()
    return None


def _value(node: exp.Expression) -> exp.Expression:
    """A sketch-valued expression onto the UDAFs."""
    if isinstance(node, exp.Anonymous):
        name = node.name.lower()
        if name == "percentile_agg":
            if len(node.expressions) != 1:
                raise RewriteError("function percentile_agg(double precision) takes 1 argument", "42883")
            return _call("tf_percentile_agg", _cast(node.expressions[0], "DOUBLE PRECISION"))
        if name == "tf_approx_count_distinct":
            if len(node.expressions) != 1:
                raise RewriteError("function approx_count_distinct(anyelement) takes 1 argument", "42883")
            return _call("tf_approx_count_distinct", _cast(node.expressions[0], "TEXT"))
        if name == "tf_rollup":
            if len(node.expressions) != 1:
                raise RewriteError("function rollup(sketch) takes 1 argument", "42883")
            return _call("tf_rollup", _value(node.expressions[0]))
    return node.copy()
