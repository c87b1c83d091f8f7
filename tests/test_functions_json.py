"""The compiled JSON kernels agree with a plain Python reference (json.loads + walk) on random documents.

query/functions/json.py answers `#>`/`#>>`/`@>`/`?` from byte spans found by numba kernels, falling
back to Python only for rows they cannot decide; these property tests generate JSON documents
(nested objects and arrays, escapes, unicode, numbers in several spellings, whitespace) and paths,
and compare every row with the reference. Duplicate keys are left out: there the kernel finds the
first member and jsonb the last (a documented difference).
"""

from __future__ import annotations

import json

import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from timefusion.query.functions import json as J

KEYS = st.sampled_from(["a", "b", "http", "é", 'q"uote', "x y", "0", "1", ""])
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**12), 10**12),
    st.sampled_from(["1.50", "-0.25", "1e2", "3E-2"]).map(
        lambda s: json.loads(s, parse_float=lambda x: J.Decimal(x))
    ),
    st.text(alphabet=st.sampled_from('ab"\\\n\té€ {}[],:'), max_size=6),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(KEYS, inner, max_size=4)),
    max_leaves=12,
)
STEP = st.one_of(KEYS, st.integers(-3, 3), KEYS.map(lambda k: [k]), st.sampled_from([["0"], ["-1"]]))


def dumps(value: object, spaced: bool) -> str:
    """JSON text with exact numbers (Decimal) in a compact or spaced layout."""

    def enc(v: object) -> str:
        if isinstance(v, J.Decimal):
            return str(v)
        if isinstance(v, dict):
            sep = ": " if spaced else ":"
            return (
                "{" + (", " if spaced else ",").join(json.dumps(k) + sep + enc(x) for k, x in v.items()) + "}"
            )
        if isinstance(v, list):
            return "[" + (", " if spaced else ",").join(enc(x) for x in v) + "]"
        return json.dumps(v, ensure_ascii=spaced)

    return enc(value)


def reference(text: str | None, path: list, as_text: bool) -> str | None:
    if text is None:
        return None
    value = J.walk(J.loads(text), path)
    if value is J._MISSING:
        return None
    return J.as_text(value) if as_text else J.jsonb_text(value)


@settings(max_examples=300, deadline=None)
@given(
    docs=st.lists(st.one_of(st.none(), st.tuples(VALUES, st.booleans())), min_size=1, max_size=8),
    path=st.lists(STEP, max_size=3),
)
def test_get_matches_reference(docs: list, path: list) -> None:
    texts = [None if d is None else dumps(d[0], d[1]) for d in docs]
    arr = pa.array(texts, pa.string())
    path_arr = pa.array([json.dumps(path)] * len(texts))
    got_text = J.json_get_text(arr, path_arr).to_pylist()
    got_json = J.json_get(arr, path_arr).storage.to_pylist()
    assert got_text == [reference(t, path, True) for t in texts]
    assert got_json == [reference(t, path, False) for t in texts]
    exists = J.json_exists(arr, path_arr).to_pylist()
    assert exists == [None if t is None else J.walk(J.loads(t), path) is not J._MISSING for t in texts]


@settings(max_examples=300, deadline=None)
@given(docs=st.lists(st.one_of(st.none(), VALUES), min_size=1, max_size=8), needle=VALUES)
def test_contains_matches_reference(docs: list, needle: object) -> None:
    texts = [None if d is None else dumps(d, False) for d in docs]
    arr = pa.array(texts, pa.string())
    needle_text = dumps(needle, True)
    got = J.json_contains(arr, pa.array([needle_text] * len(texts))).to_pylist()
    want = [None if t is None else J.contains(J.loads(t), J.loads(needle_text)) for t in texts]
    assert got == want


def test_sliced_arrays_and_invalid_rows() -> None:
    arr = pa.array(['{"a":1}', '{"a":2}', "not json", '{"a":', None, '{"a":"x"}'])[1:]
    path = pa.array(['["a"]'] * len(arr))
    assert J.json_get_text(arr, path).to_pylist() == ["2", None, None, None, "x"]
    assert J.json_contains(arr, pa.array(['{"a":2}'] * len(arr))).to_pylist() == [
        True,
        False,
        False,
        None,
        False,
    ]


def test_contains_examples_from_postgres_docs() -> None:
    cases = [
        ('"foo"', '"foo"', True),
        ("[1, 2, 3]", "[1, 3]", True),
        ("[1, 2, 3]", "[3, 1]", True),
        ("[1, 2, 3]", "[1, 2, 2]", True),
        ('{"product": "PostgreSQL", "version": 9.4, "jsonb": true}', '{"version": 9.4}', True),
        ("[1, 2, [1, 3]]", "[1, 3]", False),
        ("[1, 2, [1, 3]]", "[[1, 3]]", True),
        ('{"foo": {"bar": "baz"}}', '{"bar": "baz"}', False),
        ('{"foo": {"bar": "baz"}}', '{"foo": {}}', True),
        ('["foo", "bar"]', '"foo"', True),
        ('"bar"', '["bar"]', False),
    ]
    for doc, needle, want in cases:
        got = J.json_contains(pa.array([doc]), pa.array([needle])).to_pylist()
        assert got == [want], (doc, needle)
