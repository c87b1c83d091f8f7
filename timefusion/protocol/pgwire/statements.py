"""Classify a statement and parse the session commands the wire layer answers itself.

Queries, INSERTs, UPDATEs and DELETEs go to the engine; `SET`, `RESET`, `SHOW`, transaction
control, `DISCARD` and `DEALLOCATE` change or read per-connection state here. Functions and
keywords that read session state (`current_user`, `version()`, `current_setting('x')`, …) become
literals.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from timefusion.protocol.pgwire.errors import SYNTAX_ERROR, PgError
from timefusion.protocol.pgwire.session import VERSION_STRING

_LEADING = re.compile(r"^(?:\s+|--[^\n]*\n?|/\*.*?\*/|\()*", re.S)
_WORD = re.compile(r"[A-Za-z_]+")


@dataclass(frozen=True)
class Statement:
    # query | insert | update | delete | set | reset | show | begin | commit | rollback | discard |
    # deallocate | noop
    kind: str
    sql: str
    tag: str = ""  # the CommandComplete tag for commands answered here
    name: str = ""  # setting / prepared statement name
    value: str | None = None  # SET value


_QUERY_WORDS = {"select", "with", "values", "table", "explain", "describe"}
_NOOP = {
    "savepoint": "SAVEPOINT",
    "release": "RELEASE",
    "listen": "LISTEN",
    "unlisten": "UNLISTEN",
    "notify": "NOTIFY",
    "checkpoint": "CHECKPOINT",
    "vacuum": "VACUUM",
    "analyze": "ANALYZE",
    "lock": "LOCK TABLE",
}


def first_words(sql: str, n: int = 3) -> list[str]:
    body = _LEADING.sub("", sql, count=1)
    return [w.lower() for w in _WORD.findall(body[:200])[:n]]


def classify(sql: str) -> Statement:
    words = first_words(sql)
    head = words[0] if words else ""
    if head in _QUERY_WORDS:
        return Statement("query", sql)
    if head == "insert":
        return Statement("insert", sql)
    if head == "copy":
        return Statement("copy", sql)
    if head in ("update", "delete"):  # run by the engine (query/dml.py); the tag carries the count
        return Statement(head, sql)
    if head in ("begin", "start"):
        return Statement("begin", sql, "BEGIN")
    if head in ("commit", "end"):
        return Statement("commit", sql, "COMMIT")
    if head in ("rollback", "abort"):
        if len(words) > 1 and words[1] == "to":
            return Statement("noop", sql, "ROLLBACK")
        return Statement("rollback", sql, "ROLLBACK")
    if head == "set":
        if (len(words) > 1 and words[1] in ("transaction", "constraints")) or words[1:3] == [
            "session",
            "characteristics",
        ]:
            return Statement("noop", sql, "SET")
        name, value = parse_set(sql)
        return Statement("set", sql, "SET", name, value)
    if head == "reset":
        m = re.search(r"reset\s+(\w+|\"[^\"]+\")", sql, re.I)
        if not m:
            raise PgError(SYNTAX_ERROR, "syntax error at end of input: RESET needs a parameter name or ALL")
        return Statement("reset", sql, "RESET", m.group(1).strip('"').lower())
    if head == "show":
        m = re.search(r"show\s+(\w+(?:\.\w+)?|\"[^\"]+\")", sql, re.I)
        if not m:
            raise PgError(SYNTAX_ERROR, "syntax error at end of input: SHOW needs a parameter name")
        name = m.group(1).strip('"').lower()
        if name == "time" and len(words) > 2 and words[2] == "zone":
            name = "timezone"
        elif name == "transaction" and len(words) > 2 and words[2] == "isolation":
            name = "transaction_isolation"
        return Statement("show", sql, "SHOW", name)
    if head == "discard":
        return Statement("discard", sql, "DISCARD " + (words[1].upper() if len(words) > 1 else "ALL"))
    if head == "deallocate":
        m = re.search(r"deallocate\s+(?:prepare\s+)?(\w+|\"[^\"]+\")", sql, re.I)
        name = m.group(1).strip('"') if m else ""
        if name.lower() == "all":
            return Statement("deallocate", sql, "DEALLOCATE ALL", "")
        return Statement("deallocate", sql, "DEALLOCATE", name)
    if head == "declare":
        m = _DECLARE.match(_LEADING.sub("", sql, count=1))
        if not m:
            raise PgError(SYNTAX_ERROR, f"syntax error in DECLARE: {sql.strip()[:80]}")
        return Statement("declare", sql, "DECLARE CURSOR", _ident(m.group(1)), m.group(2))
    if head in ("fetch", "move"):
        m = _FETCH.match(_LEADING.sub("", sql, count=1))
        if not m:
            raise PgError(SYNTAX_ERROR, f"syntax error in {head.upper()}: {sql.strip()[:80]}")
        how = (m.group(2) or "next").lower().split()
        count = "all" if "all" in how else next((w for w in how if w.isdigit()), "1")
        return Statement("fetch" if head == "fetch" else "move", sql, head.upper(), _ident(m.group(3)), count)
    if head == "close":
        m = re.search(r"close\s+(\w+|\"[^\"]+\")", sql, re.I)
        name = _ident(m.group(1)) if m else "all"
        return Statement("close", sql, "CLOSE CURSOR" if name.lower() != "all" else "CLOSE CURSOR ALL", name)
    if head in _NOOP:
        return Statement("noop", sql, _NOOP[head])
    return Statement("query", sql)


_DECLARE = re.compile(
    r"declare\s+(\w+|\"[^\"]+\")\s+(?:binary\s+)?(?:(?:asensitive|insensitive)\s+)?(?:no\s+)?(?:scroll\s+)?"
    r"cursor\s+(?:(?:with|without)\s+hold\s+)?for\s+(.*?)\s*;?\s*$",
    re.I | re.S,
)
_FETCH = re.compile(
    r"(fetch|move)\s+(?:((?:forward\s+)?(?:all|next|\d+)|forward)\s+)?(?:(?:from|in)\s+)?(\w+|\"[^\"]+\")\s*;?\s*$",
    re.I | re.S,
)


def _ident(name: str) -> str:
    return name[1:-1].replace('""', '"') if name.startswith('"') else name.lower()


_SET = re.compile(
    r"^\s*set\s+(?:(?:session|local)\s+)?(?P<name>time\s+zone|names|[A-Za-z_][\w.]*|\"[^\"]+\")"
    r"\s*(?:(?:to|=)\s*)?(?P<value>.*?)\s*;?\s*$",
    re.I | re.S,
)


def parse_set(sql: str) -> tuple[str, str | None]:
    """`SET [SESSION|LOCAL] name {TO|=} value[, …]` → (lower-case name, value or None for DEFAULT)."""
    body = _LEADING.sub("", sql, count=1)
    m = _SET.match(body)
    if not m or not m.group("value"):
        raise PgError(SYNTAX_ERROR, f"syntax error in SET statement: {sql.strip()[:80]}")
    name = re.sub(r"\s+", " ", m.group("name").strip('"').lower())
    name = {"time zone": "timezone", "names": "client_encoding"}.get(name, name)
    raw = m.group("value").strip()
    if raw.lower() in ("default", "local"):
        return name, None
    values = []
    for part in re.findall(r"'(?:[^']|'')*'|[^,\s][^,]*", raw):
        part = part.strip()
        if part.startswith("'") and part.endswith("'"):
            part = part[1:-1].replace("''", "'")
        values.append(part)
    return name, ", ".join(values)


# -- session values -----------------------------------------------------------------------------

_SESSION_RE = re.compile(
    r"(?<![\w.\"])(?:pg_catalog\.)?(?:(current_user|session_user|current_role|current_catalog|current_schema)"
    r"(?:\s*\(\s*\))?(?![\w\"(])|(version|current_database|current_schema|pg_backend_pid)\s*\(\s*\)"
    r"|current_setting\s*\(\s*'((?:[^']|'')*)'\s*(?:,\s*(true|false)\s*)?\))",
    re.I,
)


def quote_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def bind_session_values(
    sql: str, user: str, database: str, pid: int, setting: Callable[[str], str | None]
) -> str:
    """Replace calls that read session state (current_user, version(), current_setting('x'), …)
    by literals, outside quotes and comments. DataFusion cannot parse some of them (current_user
    is a keyword there), and all of them are constants for the statement."""
    if not _SESSION_RE.search(sql):
        return sql

    def value(m: re.Match[str]) -> str:
        word = (m.group(1) or m.group(2) or "").lower()
        if word in ("current_user", "session_user", "current_role"):
            return quote_literal(user)
        if word in ("current_catalog", "current_database"):
            return quote_literal(database)
        if word == "current_schema":
            return "'public'"
        if word == "version":
            return quote_literal(VERSION_STRING)
        if word == "pg_backend_pid":
            return str(pid)
        name = m.group(3).replace("''", "'")
        found = setting(name)
        if found is None:
            if (m.group(4) or "").lower() == "true":
                return "CAST(NULL AS TEXT)"
            raise PgError("42704", f'unrecognized configuration parameter "{name}"')
        return quote_literal(found)

    # a match counts only where it starts in code (not inside a quoted string or a comment)
    quoted: list[tuple[int, int]] = []
    pos = 0
    for code, text in _segments(sql):
        if not code:
            quoted.append((pos, pos + len(text)))
        pos += len(text)

    def in_code(m: re.Match[str]) -> str:
        if any(a <= m.start() < b for a, b in quoted):
            return m.group(0)
        return value(m)

    return _SESSION_RE.sub(in_code, sql)


def _segments(sql: str) -> list[tuple[bool, str]]:
    """Split into (is_code, text) pieces: quoted strings, identifiers and comments are not code."""
    pieces: list[tuple[bool, str]] = []
    pattern = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|--[^\n]*|/\*.*?\*/|\$(\w*)\$.*?\$\1\$", re.S)
    pos = 0
    for m in pattern.finditer(sql):
        if m.start() > pos:
            pieces.append((True, sql[pos : m.start()]))
        pieces.append((False, m.group(0)))
        pos = m.end()
    if pos < len(sql):
        pieces.append((True, sql[pos:]))
    return pieces
