"""TimescaleDB's sketch aggregates, when the sketch is consumed in the same expression, → DataFusion's
native approximate aggregates:

    approx_percentile(q, percentile_agg(x))       → approx_percentile_cont(x, q)
    approx_percentile(q, rollup(percentile_agg(x)))  (the same)
    distinct_count(approx_count_distinct(x))      → approx_distinct(x) (as bigint)

Why this and not a sketch value: DataFusion's native aggregates already keep mergeable sketches
(a t-digest and a HyperLogLog) as their partial-aggregation state, merged across the buffer and the
Delta files (one UNION ALL view, aggregated in parallel partitions) and across partitions of a
group, in Rust; a Python UDAF with its own serialized sketch would be slower on every dashboard
query. A sketch kept as a value (a `percentile_agg` column read by an outer query) is refused
with a clear error (0A000), as is a bare `percentile_agg` / `approx_count_distinct`.
"""

from __future__ import annotations

from collections.abc import Mapping

from sqlglot import exp

from timefusion.query.rewrite.errors import RewriteError
from timefusion.schema.tables import TableSchema

_NAMES = frozenset(
    {"approx_percentile", "percentile_agg", "distinct_count", "approx_count_distinct", "rollup"}
)


def rewrite_sketches(
    tree: exp.Expression, schemas: Mapping[str, TableSchema] | None = None, *, copy: bool = True
) -> exp.Expression:
    calls = [n for n in tree.find_all(exp.Anonymous) if n.name.lower() in _NAMES]
    if not calls:
        return tree
    if copy:
        tree = tree.copy()
    for node in [n for n in tree.find_all(exp.Anonymous, bfs=False) if n.name.lower() in _NAMES][::-1]:
        name = node.name.lower()
        if name == "approx_percentile":
            if len(node.expressions) != 2:
                raise RewriteError(
                    "function approx_percentile(double precision, sketch) takes 2 arguments", "42883"
                )
            q, sketch = node.expressions
            x = _sketch_input(sketch, "percentile_agg")
            if isinstance(q, exp.Literal) and not q.is_string and not 0 <= float(q.name) <= 1:
                raise RewriteError(f"percentile value {q.name} is not between 0 and 1", "22003")
            replacement: exp.Expression = exp.Anonymous(
                this="approx_percentile_cont",
                expressions=[x, exp.Cast(this=q.copy(), to=exp.DataType.build("DOUBLE"))],
            )
        elif name == "distinct_count":
            if len(node.expressions) != 1:
                raise RewriteError("function distinct_count(sketch) takes 1 argument", "42883")
            x = _sketch_input(node.expressions[0], "approx_count_distinct")
            replacement = exp.Cast(
                this=exp.Anonymous(this="approx_distinct", expressions=[x]), to=exp.DataType.build("BIGINT")
            )
        else:
            continue  # sketch constructors are consumed by their consumer above
        if node is tree:
            return replacement
        node.replace(replacement)
    # sqlglot reads approx_count_distinct(x) as approx_distinct(x): alone, it gives the estimate itself.
    for node in tree.find_all(exp.Anonymous):
        if node.name.lower() in ("percentile_agg", "rollup"):
            consumer = "approx_percentile(q, …)"
            raise RewriteError(
                f"{node.name.lower()}() is supported only as the argument of {consumer} in the same "
                "expression (TimeFusion keeps no sketch values)",
                "0A000",
            )
    return tree


def _sketch_input(node: exp.Expression, constructor: str) -> exp.Expression:
    if isinstance(node, exp.Anonymous) and node.name.lower() == "rollup" and len(node.expressions) == 1:
        node = node.expressions[0]
    if isinstance(node, exp.Anonymous) and node.name.lower() == constructor and len(node.expressions) == 1:
        return node.expressions[0].copy()
    if constructor == "approx_count_distinct" and isinstance(node, exp.ApproxDistinct):
        return node.this.copy()
    raise RewriteError(
        f"the sketch argument must be {constructor}(x) in the same expression (TimeFusion keeps no sketch "
        "values)",
        "0A000",
    )
