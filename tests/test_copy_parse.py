"""COPY statement parsing: PostgreSQL's grammar (current and pre-9.0 option syntax) and its errors."""

from __future__ import annotations

import pytest

from timefusion.protocol.pgwire.copy import CopySpec, parse_copy
from timefusion.protocol.pgwire.errors import PgError


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("COPY t FROM STDIN", CopySpec("from", table="t", delimiter="\t", null="\\N", quote='"', escape='"')),
        (
            'copy public."My T" (a, "B") from stdin;',
            CopySpec(
                "from", table="My T", columns=["a", "B"], delimiter="\t", null="\\N", quote='"', escape='"'
            ),
        ),
        (
            "COPY t FROM STDIN WITH (FORMAT 'csv', HEADER 0, DELIMITER E'\\t', NULL 'x', QUOTE '''', ESCAPE '\\')",
            CopySpec("from", table="t", format="csv", delimiter="\t", null="x", quote="'", escape="\\"),
        ),
        (
            "COPY t (a, b) FROM STDIN WITH CSV HEADER DELIMITER AS ';' NULL AS 'n' QUOTE AS '\"' FORCE NOT NULL a, b",
            CopySpec(
                "from",
                table="t",
                columns=["a", "b"],
                format="csv",
                header=True,
                delimiter=";",
                null="n",
                quote='"',
                escape='"',
                force_not_null=["a", "b"],
            ),
        ),
        (
            "COPY BINARY t FROM STDIN",
            CopySpec("from", table="t", format="binary", delimiter="\t", null="\\N", quote='"', escape='"'),
        ),
        (
            "COPY (SELECT ')' AS x, f(1) -- comment )\n) TO STDOUT (FORMAT csv, FORCE_QUOTE *, HEADER)",
            CopySpec(
                "to",
                query="SELECT ')' AS x, f(1) -- comment )",
                format="csv",
                header=True,
                delimiter=",",
                null="",
                quote='"',
                escape='"',
                force_quote=True,
            ),
        ),
        (
            "COPY t TO STDOUT WITH CSV FORCE QUOTE a",
            CopySpec(
                "to",
                table="t",
                format="csv",
                delimiter=",",
                null="",
                quote='"',
                escape='"',
                force_quote=["a"],
            ),
        ),
        (
            "COPY t FROM STDIN (FORMAT csv, HEADER match)",
            CopySpec(
                "from", table="t", format="csv", header="match", delimiter=",", null="", quote='"', escape='"'
            ),
        ),
    ],
)
def test_parse(sql: str, expected: CopySpec) -> None:
    assert parse_copy(sql) == expected


@pytest.mark.parametrize(
    ("sql", "sqlstate", "message"),
    [
        ("COPY t FROM STDIN (FORMAT csv, FORMAT text)", "42601", "conflicting or redundant options"),
        ("COPY t FROM STDIN (HEADER maybe)", "22023", "header requires a Boolean value"),
        ("COPY t TO STDOUT (FORMAT csv, HEADER match)", "0A000", 'cannot use "match" with HEADER in COPY TO'),
        (
            "COPY t FROM STDIN (FORMAT csv, FORCE_QUOTE (a))",
            "0A000",
            "COPY force quote only available using COPY TO",
        ),
        (
            "COPY t FROM STDIN (FORMAT csv, DELIMITER ',', QUOTE ',')",
            "22023",
            "COPY delimiter and quote must be different",
        ),
        ("COPY t FROM STDIN (DELIMITER '\\')", "22023", 'COPY delimiter cannot be "\\"'),
        ("COPY t FROM STDIN (FORMAT binary, NULL 'x')", "42601", "cannot specify NULL in BINARY mode"),
        ("COPY t FROM STDIN (ENCODING 'LATIN1')", "0A000", 'COPY encoding "LATIN1" is not supported'),
        ("COPY t FROM STDIN WHERE a > 1", "0A000", "COPY … FROM … WHERE is not supported"),
        ("COPY (SELECT 1) FROM STDIN", "42601", 'syntax error at or near "FROM"'),
        ("COPY () TO STDOUT", "42601", "syntax error"),
        ("COPY t", "42601", "syntax error at end of input"),
        ("COPY (SELECT 1 TO STDOUT", "42601", "syntax error at end of input"),
        ("COPY t FROM STDIN (FORMAT csv", "42601", "syntax error at end of input"),
    ],
)
def test_errors(sql: str, sqlstate: str, message: str) -> None:
    with pytest.raises(PgError) as caught:
        parse_copy(sql)
    assert caught.value.sqlstate == sqlstate
    assert message in caught.value.message


# -- binary tuples: the compiled scanner, fed in arbitrary pieces ---------------------------------
def _binary_decoder():  # type: ignore[no-untyped-def]
    from timefusion.protocol.pgwire.copy import BinaryDecoder, _columns
    from timefusion.schema.tables import load_tables

    spec = parse_copy("COPY otel_logs_and_spans (id, name, duration) FROM STDIN (FORMAT binary)")
    schema = load_tables()["otel_logs_and_spans"]
    return BinaryDecoder(spec, schema, _columns(spec, schema))


def _tuple(*fields: bytes | None) -> bytes:
    import struct

    out = struct.pack("!h", len(fields))
    for f in fields:
        out += struct.pack("!i", -1) if f is None else struct.pack("!i", len(f)) + f
    return out


HEADER = b"PGCOPY\n\xff\r\n\x00" + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x00"
TRAILER = b"\xff\xff"


def _rows(n: int) -> bytes:
    import struct

    return b"".join(
        _tuple(f"id-{i}".encode(), None if i % 3 == 0 else b"op" * (i % 5), struct.pack("!q", i * 1000))
        for i in range(n)
    )


@pytest.mark.parametrize("piece", [1, 7, 64, 100_000])
def test_binary_tuples_split_anywhere(piece: int) -> None:
    data = HEADER + _rows(50) + TRAILER
    decoder = _binary_decoder()
    tables = []
    for i in range(0, len(data), piece):
        tables += decoder.feed(data[i : i + piece], final=i + piece >= len(data))
    import pyarrow as pa

    t = pa.concat_tables(tables)
    assert t.column("id").to_pylist() == [f"id-{i}" for i in range(50)]
    assert t.column("name").to_pylist() == [None if i % 3 == 0 else "op" * (i % 5) for i in range(50)]
    assert t.column("duration").to_pylist() == [i * 1000 for i in range(50)]
    assert decoder.trailer_seen


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (_tuple(b"a", b"b"), "row field count is 2, expected 3 (COPY otel_logs_and_spans, line 3)"),
        (b"\x00\x03\xff\xff\xff\xfe", "invalid field size (COPY otel_logs_and_spans, line 3)"),
        (TRAILER + b"\x00", "received copy data after EOF marker"),
    ],
)
def test_binary_tuple_errors(body: bytes, message: str) -> None:
    with pytest.raises(PgError) as e:
        _binary_decoder().feed(HEADER + _rows(2) + body, final=True)
    assert e.value.sqlstate == "22P04"
    assert message in str(e.value)
