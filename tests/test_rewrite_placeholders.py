"""`$n` placeholders are found by PostgreSQL's lexical rules (timefusion/query/rewrite/placeholders.py)."""

from __future__ import annotations

import pytest

from timefusion.query.rewrite.placeholders import placeholder_spans, spaced, splice


@pytest.mark.parametrize(
    ("sql", "numbers"),
    [
        ("SELECT $1,$2||$10", [1, 2, 10]),
        ("SELECT '$1', 'it''s $2', $3", [3]),
        ("SELECT E'\\'$1', $2", [2]),  # backslash escapes only in E'' strings
        ("SELECT '\\', $1", [1]),  # a standard string ends at the quote after the backslash
        ('SELECT "a$1", a$2, $3', [3]),  # identifiers may contain $
        ("SELECT $$ $1 $$, $tag$ $2 $tag$, $3", [3]),
        ("SELECT /* $1 /* $2 */ $3 */ $4 -- $5\n, $6", [4, 6]),
        ("SELECT 'open", None),
        ("SELECT /* open", None),
        ("SELECT $q$ open", None),
    ],
)
def test_placeholder_spans(sql: str, numbers: list[int] | None) -> None:
    spans = placeholder_spans(sql)
    assert (None if spans is None else [n for _, _, n in spans]) == numbers


def test_spaced_and_splice() -> None:
    sql = "VALUES ($1,$2),($1, $2)"
    spans = placeholder_spans(sql)
    assert spans is not None
    assert spaced(sql, spans) == "VALUES ($1 ,$2 ),($1 , $2 )"
    assert splice(sql, spans, {1: "'a'", 2: "2"}) == "VALUES ('a',2),('a', 2)"
