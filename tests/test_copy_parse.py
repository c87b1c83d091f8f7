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
