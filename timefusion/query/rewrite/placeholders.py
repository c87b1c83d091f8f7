"""Where the `$n` placeholders of a statement are, by PostgreSQL's lexical rules.

sqlglot 30's tokenizer misreads `$1,$2` (no space) as the start of a dollar-quoted string and fails,
although drivers commonly send exactly that; and a textual splice of parameter values (for statements
sqlglot cannot parse, and for the VALUES fast path) needs placeholder positions it can trust. This
scanner skips what PostgreSQL skips: '…' strings ('' doubled), E'…' strings (backslash escapes), "…"
identifiers, -- and nested /* */ comments, $tag$…$tag$ dollar quotes, and identifiers (which may
contain `$`). DataFusion's SQL lexer follows the same rules (backslashes are literal in '…', E'…'
escapes, dollar quotes, nested comments), which is what makes splicing at these positions safe.
Unterminated strings, identifiers or comments return None: then nothing is spliced. Text without any
quote, comment, dollar quote or `$` inside a word (what drivers send for a large INSERT) needs no
scanner: every `$digits` in it is a placeholder. `values_rows()` cuts a plain `VALUES (…), (…)` list
into its elements by the same rules (parameter type inference of large INSERTs, without sqlglot).
"""

from __future__ import annotations

import re

_NEXT = re.compile(r"""[eE]'|'|"|--|/\*|\$|[^\W\d][\w$]*""")
_STRING = re.compile(r"'(?:[^']|'')*'")
_E_STRING = re.compile(r"[eE]'(?:[^'\\]|\\.|'')*'", re.DOTALL)
_IDENT = re.compile(r'"(?:[^"]|"")*"')
_PARAM = re.compile(r"\$(\d+)")
_DOLLAR_TAG = re.compile(r"\$([^\W\d][\w]*)?\$")
# Without quotes, comments, dollar quotes or a `$` inside a word, every `$digits` is a placeholder:
# found by one regex (a 500-row INSERT with 4000 placeholders: ~1 ms instead of ~20).
_NEEDS_LEXER = re.compile(r"""['"]|--|/\*|\$(?!\d)|[\w$]\$""")


def placeholder_spans(sql: str) -> list[tuple[int, int, int]] | None:
    """(start, end, n) of each `$n` outside strings and comments; None if the text does not lex."""
    if _NEEDS_LEXER.search(sql) is None:
        return [(m.start(), m.end(), int(m.group(1))) for m in _PARAM.finditer(sql)]
    spans: list[tuple[int, int, int]] = []
    pos = 0
    while True:
        m = _NEXT.search(sql, pos)
        if m is None:
            return spans
        i = m.start()
        token = m.group()
        if token == "'":
            end = _match_end(_STRING, sql, i)
        elif token in ("e'", "E'"):
            end = _match_end(_E_STRING, sql, i)
        elif token == '"':
            end = _match_end(_IDENT, sql, i)
        elif token == "--":
            newline = sql.find("\n", i)
            end = len(sql) if newline < 0 else newline + 1
        elif token == "/*":
            end = _comment_end(sql, i)
        elif token == "$":
            param = _PARAM.match(sql, i)
            tag = _DOLLAR_TAG.match(sql, i)
            if param is not None:
                spans.append((i, param.end(), int(param.group(1))))
                end = param.end()
            elif tag is not None:
                close = sql.find(tag.group(), tag.end())
                end = None if close < 0 else close + len(tag.group())
            else:
                end = i + 1
        else:  # an identifier or keyword, possibly with `$` inside: no placeholder there
            end = m.end()
        if end is None:
            return None
        pos = end


def _match_end(pattern: re.Pattern[str], sql: str, i: int) -> int | None:
    m = pattern.match(sql, i)
    return None if m is None else m.end()


def _comment_end(sql: str, i: int) -> int | None:
    depth = 0
    pos = i
    while True:
        opening = sql.find("/*", pos)
        closing = sql.find("*/", pos)
        if closing < 0:
            return None
        if 0 <= opening < closing:
            depth += 1
            pos = opening + 2
        else:
            depth -= 1
            pos = closing + 2
            if depth == 0:
                return pos


def spaced(sql: str, spans: list[tuple[int, int, int]]) -> str:
    """The text with a space after every placeholder directly followed by something (`$1,$2` → `$1 ,$2 `),
    so that sqlglot's tokenizer reads each as a parameter. Meaning is unchanged."""
    out: list[str] = []
    last = 0
    for _, end, _ in spans:
        if end < len(sql) and not sql[end].isspace():
            out.append(sql[last:end])
            out.append(" ")
            last = end
    out.append(sql[last:])
    return "".join(out)


def splice(sql: str, spans: list[tuple[int, int, int]], literals: dict[int, str]) -> str:
    """Replace each placeholder by the literal text for its number."""
    out: list[str] = []
    last = 0
    for start, end, n in spans:
        out.append(sql[last:start])
        out.append(literals[n])
        last = end
    out.append(sql[last:])
    return "".join(out)


_ROW_TOKEN = re.compile(r"""[eE]'|'|"|--|/\*|\$|[(),\[\]]|[^\W\d][\w$]*""")
_VALUES_HEAD = re.compile(r"\s*VALUES\b", re.IGNORECASE)


def values_rows(sql: str) -> list[list[tuple[int, int]]] | None:
    """(start, end) of every element of every row of a plain `VALUES (…), (…)` list, by the same
    lexical rules; None when the text is anything else (a tail clause, an unterminated string …)."""
    head = _VALUES_HEAD.match(sql)
    if head is None:
        return None
    rows: list[list[tuple[int, int]]] = []
    row: list[tuple[int, int]] = []
    depth = 0
    start = pos = head.end()
    while True:
        m = _ROW_TOKEN.search(sql, pos)
        gap = sql[pos : len(sql) if m is None else m.start()]
        if depth == 0 and gap.strip() not in ("", ";"):
            return None
        if m is None:
            return rows if depth == 0 and rows else None
        i = m.start()
        token = m.group()
        end: int | None = m.end()
        if token == "'":
            end = _match_end(_STRING, sql, i)
        elif token in ("e'", "E'"):
            end = _match_end(_E_STRING, sql, i)
        elif token == '"':
            end = _match_end(_IDENT, sql, i)
        elif token == "--":
            newline = sql.find("\n", i)
            end = len(sql) if newline < 0 else newline + 1
        elif token == "/*":
            end = _comment_end(sql, i)
        elif token == "$":
            param = _PARAM.match(sql, i)
            tag = _DOLLAR_TAG.match(sql, i)
            if param is not None:
                end = param.end()
            elif tag is not None:
                close = sql.find(tag.group(), tag.end())
                end = None if close < 0 else close + len(tag.group())
            else:
                end = i + 1
        elif token in "([":
            if depth == 0:
                if token == "[":
                    return None
                row, start = [], m.end()
            depth += 1
        elif token in ")]":
            depth -= 1
            if depth < 0:
                return None
            if depth == 0:
                row.append((start, i))
                rows.append(row)
        elif token == ",":
            if depth == 1:
                row.append((start, i))
                start = m.end()
        elif depth == 0:  # a word after the rows: ORDER BY, LIMIT, ON CONFLICT …
            return None
        if end is None:
            return None
        if depth == 0 and token not in ("(", ")", ","):
            return None  # a string, comment or placeholder between rows
        pos = end
