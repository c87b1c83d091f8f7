"""Each rewrite is a pure function tested by a fixture file of before/after SQL pairs.

tests/fixtures/rewrite/<rewrite>.sql: blocks separated by blank lines; `# key: value` lines (title,
params, error), then the input statement and the expected output, each ending with `;` at the end of
a line. Both sides are compared after a round trip through sqlglot, so spacing and case do not matter.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest
import sqlglot
from sqlglot import exp

from timefusion.query.rewrite import RewriteError
from timefusion.query.rewrite.array_literals import rewrite_array_literals
from timefusion.query.rewrite.arrays import rewrite_array_length
from timefusion.query.rewrite.avg_numeric import exact_averages
from timefusion.query.rewrite.int_cast import round_int_casts
from timefusion.query.rewrite.interval_math import rewrite_interval_math
from timefusion.query.rewrite.json_ops import rewrite_json
from timefusion.query.rewrite.names import name_projections
from timefusion.query.rewrite.params import bind_params
from timefusion.query.rewrite.percentile import exact_percentiles
from timefusion.query.rewrite.round_numeric import round_like_postgres
from timefusion.query.rewrite.sketches import protect_sketch_names, rewrite_sketches
from timefusion.query.rewrite.time_bucket import rewrite_time_bucket
from timefusion.query.rewrite.time_zone import rewrite_time_zones
from timefusion.query.rewrite.to_char import protect_to_char, rewrite_to_char
from timefusion.schema.tables import load_tables

FIXTURES = Path(__file__).parent / "fixtures" / "rewrite"
SCHEMAS = load_tables()
PARAM_NAMES = {
    "Decimal": Decimal,
    "datetime": datetime,
    "date": date,
    "timedelta": timedelta,
    "timezone": timezone,
    "UTC": UTC,
    "UUID": uuid.UUID,
    "float": float,
    "object": object,
}


@dataclass
class Case:
    file: str
    title: str
    sql: str
    expected: str | None
    params: list | None
    error: str | None


def load(name: str) -> list[Case]:
    cases = []
    for block in (FIXTURES / f"{name}.sql").read_text().split("\n\n"):
        meta: dict[str, str] = {}
        body: list[str] = []
        for line in block.strip().splitlines():
            if line.startswith("#"):
                key, _, value = line[1:].partition(":")
                meta[key.strip()] = value.strip()
            else:
                body.append(line)
        if not body:
            continue
        statements, current = [], []
        for line in body:
            current.append(line)
            if line.rstrip().endswith(";"):
                statements.append("\n".join(current).rstrip()[:-1])
                current = []
        assert not current, f"{name}: statement without `;` in {block!r}"
        params = eval(meta["params"], {"__builtins__": {}}, PARAM_NAMES) if "params" in meta else None
        error = meta.get("error")
        assert len(statements) == (1 if error else 2), f"{name}: {meta.get('title')}"
        cases.append(
            Case(name, meta.get("title", ""), statements[0], None if error else statements[1], params, error)
        )
    return cases


REWRITES: dict[str, Callable[[exp.Expression, Case], exp.Expression]] = {
    "params": lambda tree, case: bind_params(tree, case.params),
    "time_bucket": lambda tree, case: rewrite_time_bucket(tree, SCHEMAS),
    "int_cast": lambda tree, case: round_int_casts(tree, SCHEMAS),
    "round_numeric": lambda tree, case: round_like_postgres(tree, SCHEMAS),
    "percentile": lambda tree, case: exact_percentiles(tree, SCHEMAS),
    "avg_numeric": lambda tree, case: exact_averages(tree, SCHEMAS),
    "array_literals": lambda tree, case: rewrite_array_literals(tree, SCHEMAS),
    "names": lambda tree, case: name_projections(tree, case.sql),
    "json_ops": lambda tree, case: rewrite_json(tree, SCHEMAS),
    # sqlglot rewrites a known to_char's format; prepare() renames the call first (protect_to_char)
    "to_char": lambda tree, case: rewrite_to_char(
        sqlglot.parse_one(protect_to_char(case.sql), read="postgres"), SCHEMAS
    ),
    "time_zone": lambda tree, case: rewrite_time_zones(tree, SCHEMAS),
    "interval_math": lambda tree, case: rewrite_interval_math(tree, SCHEMAS),
    "sketches": lambda tree, case: rewrite_sketches(
        sqlglot.parse_one(protect_sketch_names(case.sql), read="postgres"), SCHEMAS
    ),
    "arrays": lambda tree, case: rewrite_array_length(tree, SCHEMAS),
}
CASES = [case for name in REWRITES for case in load(name)]


def normalized(sql: str) -> str:
    return sqlglot.parse_one(sql, read="postgres").sql(dialect="postgres", normalize_functions="lower")


@pytest.mark.parametrize("case", CASES, ids=[f"{c.file}: {c.title}" for c in CASES])
def test_fixture(case: Case) -> None:
    tree = sqlglot.parse_one(case.sql, read="postgres")
    before = tree.sql(dialect="postgres")
    rewrite = REWRITES[case.file]
    if case.error:
        with pytest.raises(RewriteError) as info:
            rewrite(tree, case)
        assert info.value.sqlstate == case.error
        return
    out = rewrite(tree, case)
    assert case.expected is not None
    assert normalized(out.sql(dialect="postgres")) == normalized(case.expected)
    assert tree.sql(dialect="postgres") == before  # pure: the input tree is unchanged


def test_every_fixture_file_is_tested() -> None:
    assert {p.stem for p in FIXTURES.glob("*.sql")} == set(REWRITES)
