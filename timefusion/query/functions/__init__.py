"""TimeFusion's own SQL functions, registered in every query's SessionContext.

The rewrites (query/rewrite/json_ops.py …) turn PostgreSQL syntax into calls of these `tf_*` UDFs;
users do not call them by name. Every UDF works on whole Arrow arrays (see json.py for why and how).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache

import pyarrow as pa
from datafusion import SessionContext
from datafusion.user_defined import AggregateUDF, ScalarUDF

from timefusion.query.functions import json as J
from timefusion.query.functions import sketches as S

__all__ = ["register_functions"]

_TEXT = pa.field("text", pa.string())
_BOOL = pa.field("bool", pa.bool_())


def _identity_json(values: pa.Array) -> pa.Array:
    """`'…'::json`: the text unchanged, typed JSON (reported as jsonb)."""
    return pa.ExtensionArray.from_storage(J.JSON_FIELD.type, J._as_string(values))


_UDFS: tuple[tuple[str, Callable[..., pa.Array], int, pa.Field], ...] = (
    ("tf_json_get", J.json_get, 2, J.JSON_FIELD),
    ("tf_json_get_text", J.json_get_text, 2, _TEXT),
    ("tf_json_contains", J.json_contains, 2, _BOOL),
    ("tf_json_exists", J.json_exists, 2, _BOOL),
    ("tf_json_quote", J.json_quote, 1, _TEXT),
    ("tf_json", _identity_json, 1, J.JSON_FIELD),
    ("tf_jsonb", J.json_normalize, 1, J.JSON_FIELD),
)
_BINARY = pa.binary()


@cache
def _udafs() -> tuple[AggregateUDF, ...]:
    return (
        AggregateUDF("tf_percentile_agg", S.PercentileAgg, [pa.float64()], _BINARY, [_BINARY], "immutable"),
        AggregateUDF(
            "tf_approx_count_distinct", S.DistinctAgg, [pa.string()], _BINARY, [_BINARY], "immutable"
        ),
        AggregateUDF("tf_rollup", S.Rollup, [_BINARY], _BINARY, [_BINARY], "immutable"),
    )


@cache
def _sketch_udfs() -> tuple[ScalarUDF, ...]:
    return (
        ScalarUDF(
            "tf_approx_percentile",
            S.approx_percentile,
            [pa.field("q", pa.float64()), pa.field("s", _BINARY)],
            pa.field("p", pa.float64()),
            "immutable",
        ),
        ScalarUDF(
            "tf_distinct_count",
            S.distinct_count,
            [pa.field("s", _BINARY)],
            pa.field("n", pa.int64()),
            "immutable",
        ),
    )


@cache
def _udfs() -> tuple[ScalarUDF, ...]:
    return tuple(
        ScalarUDF(name, fn, [pa.field(f"a{i}", pa.string()) for i in range(arity)], out, "immutable")
        for name, fn, arity, out in _UDFS
    )


def register_functions(ctx: SessionContext) -> None:
    """Register every TimeFusion UDF in `ctx` (the UDF objects are built once per process)."""
    for udf in (*_udfs(), *_sketch_udfs()):
        ctx.register_udf(udf)
    for udaf in _udafs():
        ctx.register_udaf(udaf)
