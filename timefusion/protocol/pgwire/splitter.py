"""Split a simple-query string into statements, like psql and the server do.

Semicolons inside quotes ('…', E'…', "…"), dollar quotes ($tag$…$tag$), `--` comments and nested
`/* */` comments do not split. Empty statements are dropped except that an all-empty query string
yields no statements (the caller then sends EmptyQueryResponse).
"""

from __future__ import annotations

import re

_DOLLAR_TAG = re.compile(r"\$([A-Za-z_\x80-\uffff][A-Za-z_0-9\x80-\uffff]*)?\$")
_SPECIAL = re.compile(r"['\";$/-]")  # the only characters that can start a quote, comment or split


def split_statements(sql: str) -> list[str]:
    if ";" not in sql.rstrip().rstrip(";"):  # one statement (a 500-row INSERT is ~78 KB): no scan
        single = sql.strip().rstrip(";").strip()
        return [single] if _has_code(single) else []
    out: list[str] = []
    start = i = 0
    n = len(sql)
    while i < n:
        m = _SPECIAL.search(sql, i)
        if m is None:
            break
        i = m.start()
        c = sql[i]
        if c == "'":
            escapes = (
                i > 0 and sql[i - 1] in "eE" and (i < 2 or not (sql[i - 2].isalnum() or sql[i - 2] == "_"))
            )
            i = _skip_escaped(sql, i + 1) if escapes else _skip_quoted(sql, i + 1, "'")
        elif c == '"':
            i = _skip_quoted(sql, i + 1, '"')
        elif c == "-" and sql.startswith("--", i):
            nl = sql.find("\n", i)
            i = n if nl < 0 else nl + 1
        elif c == "/" and sql.startswith("/*", i):
            depth = 1
            i += 2
            while i < n and depth:
                if sql.startswith("/*", i):
                    depth += 1
                    i += 2
                elif sql.startswith("*/", i):
                    depth -= 1
                    i += 2
                else:
                    i += 1
        elif c == "$" and (i == 0 or not (sql[i - 1].isalnum() or sql[i - 1] == "_")):
            m = _DOLLAR_TAG.match(sql, i)
            if m:
                end = sql.find(m.group(0), m.end())
                i = n if end < 0 else end + len(m.group(0))
            else:
                i += 1
        elif c == ";":
            out.append(sql[start:i])
            i += 1
            start = i
        else:
            i += 1
    out.append(sql[start:])
    return [s.strip() for s in out if _has_code(s)]


def _skip_quoted(sql: str, i: int, quote: str) -> int:
    """Index after the closing quote of a '…' or "…" token whose body starts at `i` (doubled
    quotes escape); found with str.find, so long literals cost no Python per character."""
    while True:
        j = sql.find(quote, i)
        if j < 0:
            return len(sql)
        if sql.startswith(quote, j + 1):
            i = j + 2
            continue
        return j + 1


def _skip_escaped(sql: str, i: int) -> int:
    """Index after the closing quote of an E'…' string (backslash escapes)."""
    n = len(sql)
    while i < n:
        if sql[i] == "\\":
            i += 2
        elif sql[i] == "'":
            if i + 1 < n and sql[i + 1] == "'":
                i += 2
                continue
            return i + 1
        else:
            i += 1
    return n


def _has_code(text: str) -> bool:
    """True unless the text is only whitespace and comments."""
    stripped = re.sub(r"--[^\n]*|/\*.*?\*/", "", text, flags=re.S)
    return bool(stripped.strip())
