"""`array_length(a, dim)` as PostgreSQL: an int4, and NULL for an empty array or another dimension
(DataFusion returns 0 for an empty array, as a uint64)."""

from __future__ import annotations

from collections.abc import Mapping

from sqlglot import exp

from timefusion.schema.tables import TableSchema


def rewrite_array_length(
    tree: exp.Expression, schemas: Mapping[str, TableSchema] | None = None, *, copy: bool = True
) -> exp.Expression:
    calls = [n for n in tree.find_all(exp.ArraySize, exp.Anonymous) if _is_length(n)]
    if not calls:
        return tree
    if copy:
        tree = tree.copy()
    for node in [n for n in tree.find_all(exp.ArraySize, exp.Anonymous, bfs=False) if _is_length(n)][::-1]:
        if isinstance(node, exp.ArraySize):
            array, dim = node.this, node.args.get("expression")
        else:
            array, dim = ([*node.expressions, None])[:2]
        length = exp.Anonymous(
            this="array_length", expressions=[array.copy()] + ([dim.copy()] if dim else [])
        )
        value: exp.Expression = exp.Nullif(this=length, expression=exp.Literal.number(0))
        if isinstance(dim, exp.Literal) and not dim.is_string and dim.name != "1":
            value = exp.Null()
        replacement = exp.Cast(this=value, to=exp.DataType.build("INT"))
        if node is tree:
            return replacement
        node.replace(replacement)
    return tree


def _is_length(node: exp.Expression) -> bool:
    if isinstance(node, exp.ArraySize):
        return True
    return isinstance(node, exp.Anonymous) and node.name.lower() == "array_length"
