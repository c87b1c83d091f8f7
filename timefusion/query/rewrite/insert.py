"""Cut `INSERT INTO t [(cols)] <VALUES … | SELECT … | WITH …>` into target, columns and source query.

The ingest path runs the source query (through `prepare`, with the statement's parameters, so `$n`
keep their numbers) and appends its rows to the target through the WAL. The source is returned as
the original text, not regenerated: a 500-row VALUES list must not pay for a full sqlglot parse here
(DESIGN.md §3 measures how slow that is), so the head is read with a regular expression and only a
statement the expression cannot read is parsed. `ON CONFLICT` and `RETURNING` are refused (0A000),
as is `DEFAULT VALUES`; `split_insert` returns None for anything that is not an INSERT.
"""

from __future__ import annotations

import re

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError
from sqlglot.tokens import TokenType

from timefusion.query.rewrite.errors import RewriteError
from timefusion.query.rewrite.fallback import tokens

_IDENT = r'(?:"(?:[^"]|"")+"|[A-Za-z_][A-Za-z0-9_$]*)'
_HEAD = re.compile(
    rf"""^(?P<lead>(?:\s+|--[^\n]*(?:\n|$)|/\*.*?\*/)*)
        INSERT\s+INTO\s+(?P<table>{_IDENT}(?:\s*\.\s*{_IDENT}){{0,2}})
        (?:\s+(?:AS\s+)?(?!VALUES\b|SELECT\b|WITH\b|DEFAULT\b|OVERRIDING\b)(?P<alias>{_IDENT}))?
        \s*(?:\((?P<cols>\s*{_IDENT}(?:\s*,\s*{_IDENT})*\s*)\))?
        \s*(?P<rest>(?:VALUES|SELECT|WITH|TABLE)\b.*|\(.*)$""",
    re.IGNORECASE | re.DOTALL | re.VERBOSE,
)
_LOOKS_LIKE_INSERT = re.compile(r"^(?:\s+|--[^\n]*(?:\n|$)|/\*.*?\*/)*INSERT\b", re.IGNORECASE | re.DOTALL)
_TAIL_WORDS = re.compile(r"\b(RETURNING|CONFLICT)\b", re.IGNORECASE)


def _ident(text: str) -> str:
    text = text.strip()
    if text.startswith('"'):
        return text[1:-1].replace('""', '"')
    return text.lower()


def _table_name(text: str) -> str:
    parts = [_ident(p) for p in re.findall(_IDENT, text)]
    if len(parts) >= 2 and parts[-2] == "public" and (len(parts) == 2 or parts[0] == "datafusion"):
        return parts[-1]
    return ".".join(parts)


def split_insert(sql: str) -> tuple[str, tuple[str, ...] | None, str] | None:
    """(target table, target columns or None, source query text) of an INSERT; None otherwise."""
    if not _LOOKS_LIKE_INSERT.match(sql):
        return None
    m = _HEAD.match(sql)
    if m is None:
        return _split_parsed(sql)
    source = m.group("rest").rstrip()
    while source.endswith(";"):
        source = source[:-1].rstrip()
    if _TAIL_WORDS.search(source):
        _refuse_tail(source)
    cols = m.group("cols")
    columns = tuple(_ident(c) for c in re.findall(_IDENT, cols)) if cols else None
    return _table_name(m.group("table")), columns, source


def _refuse_tail(source: str) -> None:
    toks = tokens(source)
    if toks is None:
        return  # DataFusion will report what is wrong with the source
    depth = 0
    for i, tok in enumerate(toks):
        if tok.token_type in (TokenType.L_PAREN, TokenType.L_BRACKET):
            depth += 1
        elif tok.token_type in (TokenType.R_PAREN, TokenType.R_BRACKET):
            depth -= 1
        elif depth == 0 and tok.token_type == TokenType.RETURNING:
            raise RewriteError("INSERT … RETURNING is not supported", "0A000")
        elif (
            depth == 0
            and tok.text.upper() == "ON"
            and i + 1 < len(toks)
            and toks[i + 1].text.upper() == "CONFLICT"
        ):
            raise RewriteError("INSERT … ON CONFLICT is not supported", "0A000")


def _split_parsed(sql: str) -> tuple[str, tuple[str, ...] | None, str] | None:
    try:
        tree = sqlglot.parse_one(sql, read="postgres")
    except SqlglotError:
        return None
    if not isinstance(tree, exp.Insert):
        return None
    if tree.args.get("conflict") is not None or tree.args.get("returning") is not None:
        raise RewriteError("INSERT … ON CONFLICT / RETURNING is not supported", "0A000")
    target = tree.this
    columns: tuple[str, ...] | None = None
    if isinstance(target, exp.Schema):
        columns = tuple(c.name if c.quoted else c.name.lower() for c in target.expressions)
        target = target.this
    if not isinstance(target, exp.Table) or tree.expression is None:
        raise RewriteError("INSERT without a VALUES list or query is not supported", "0A000")
    name = target.this.name if target.this.quoted else target.name.lower()
    db = target.args.get("db")
    if db is not None and db.name.lower() != "public":
        name = f"{db.name}.{name}"
    return name, columns, tree.expression.sql(dialect="postgres")
