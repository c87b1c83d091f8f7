"""UPDATE and DELETE: parsed here into a SELECT that finds the affected rows, then written as new
row versions or tombstones through the WAL.

Why this mechanism (not Delta's own UPDATE/DELETE): rows live in two places, the in-memory buffer
and Delta, and a write is acknowledged only once it is in the WAL. Rewriting Delta files inside the
statement would make every UPDATE as slow as a Delta commit (100s of ms, file rewrites), bypass the
WAL, and leave buffered rows untouched. Instead:

- UPDATE = `SELECT <every column, with the SET expressions in place of the assigned ones> FROM
  <target> [, <FROM items>] WHERE <cond>` run by the query engine over buffer ∪ Delta (so it sees
  exactly what a query sees, within the session's projects), keep one row per key (project_id,
  timestamp, id), and ingest those rows like any write: coerce → WAL fsync → buffer → ack. Being
  newer (a higher WAL LSN) they replace the old versions at read time, and the flusher turns that
  into a Delta MERGE (see `write/buffer.py`, `write/flusher.py`).
- DELETE = the same SELECT of the keys only, logged to the WAL as one tombstone record; applying it
  drops older buffered rows of those keys and hides, then deletes, their Delta rows.

Both are durable once acknowledged, and replay is idempotent: a replayed record whose bucket a Delta
commit already covers is skipped (the commit metadata records per bucket the highest LSN it holds),
and re-applying one that is not covered produces the same state. The tag counts distinct rows.

Only columns marked `mutable: true` in the table's schema file may be SET (0A000 otherwise): keys,
partition columns and the telemetry itself are write-once. Not supported (0A000): RETURNING,
`SET (a, b) = (…)`, `WHERE CURRENT OF`, UPDATE/DELETE inside a WITH. There are no transactions:
an UPDATE reads, then writes; a row written by another client in between may be overwritten.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from timefusion.schema import TableSchema

KEY = ("project_id", "timestamp", "id")


class DmlError(ValueError):
    def __init__(self, message: str, sqlstate: str) -> None:
        super().__init__(message)
        self.sqlstate = sqlstate


@dataclass(frozen=True)
class Dml:
    """A parsed UPDATE or DELETE: the target, and the SELECT that yields its new rows / keys."""

    kind: str  # "UPDATE" | "DELETE"
    table: str
    select_sql: str
    assigned: tuple[str, ...] = ()


_HEAD = re.compile(r"^(?:\s+|--[^\n]*\n?|/\*.*?\*/)*(update|delete)\b", re.I | re.S)
_TOKEN = re.compile(
    r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|--[^\n]*|/\*.*?\*/|\$(\w*)\$.*?\$\1\$|[()\[\]]|,|[A-Za-z_][\w$]*|.",
    re.S,
)
_IDENT = r'(?:"(?:[^"]|"")+"|[A-Za-z_][\w$]*)'
_TARGET = re.compile(
    rf"^\s*(?:only\s+)?(?P<name>{_IDENT}(?:\s*\.\s*{_IDENT})?)\s*(?:(?:as\s+)?(?P<alias>{_IDENT}))?\s*$",
    re.I | re.S,
)
_ASSIGN = re.compile(rf"^\s*(?P<col>{_IDENT})\s*=(?!=)\s*(?P<expr>.+?)\s*$", re.S)
_RESERVED = {"set", "from", "where", "using", "returning"}


def is_dml(sql: str) -> bool:
    return _HEAD.match(sql) is not None


def _ident(text: str) -> str:
    text = text.strip()
    return text[1:-1].replace('""', '"') if text.startswith('"') else text.lower()


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _top_level(sql: str) -> list[tuple[int, int, str]]:
    """(start, end, lower-case word or ',') of the tokens outside brackets, quotes and comments."""
    out: list[tuple[int, int, str]] = []
    depth = 0
    for m in _TOKEN.finditer(sql):
        tok = m.group(0)
        if tok in ("(", "["):
            depth += 1
        elif tok in (")", "]"):
            depth -= 1
        elif depth == 0 and (tok == "," or tok[0].isalpha() or tok[0] == "_"):
            out.append((m.start(), m.end(), tok.lower() if tok != "," else ","))
    return out


def _clauses(body: str, words: tuple[str, ...]) -> dict[str, str]:
    """Split `body` at the top-level keywords `words` (each at most once, in any order)."""
    marks = [(s, e, w) for s, e, w in _top_level(body) if w in words]
    seen: set[str] = set()
    for _, _, w in marks:
        if w in seen:
            raise DmlError(f"syntax error at or near {w.upper()!r}", "42601")
        seen.add(w)
    out = {"": body[: marks[0][0]] if marks else body}
    for i, (_, end, w) in enumerate(marks):
        stop = marks[i + 1][0] if i + 1 < len(marks) else len(body)
        out[w] = body[end:stop]
    return out


def _split_commas(text: str) -> list[str]:
    parts, start = [], 0
    for s, _, w in _top_level(text):
        if w == ",":
            parts.append(text[start:s])
            start = s + 1
    parts.append(text[start:])
    return parts


def _target(text: str, schemas: dict[str, TableSchema]) -> tuple[TableSchema, str]:
    m = _TARGET.match(text)
    if not m:
        raise DmlError(f"syntax error in target table: {text.strip()[:80]}", "42601")
    parts = [_ident(p) for p in re.split(r"\s*\.\s*(?=(?:[^\"]*\"[^\"]*\")*[^\"]*$)", m.group("name"))]
    if len(parts) == 2 and parts[0] not in ("public",):
        raise DmlError(f'relation "{".".join(parts)}" does not exist', "42P01")
    name = parts[-1]
    schema = schemas.get(name)
    if schema is None:
        raise DmlError(f'relation "{name}" does not exist', "42P01")
    alias = m.group("alias")
    if alias is not None and _ident(alias) in _RESERVED:
        raise DmlError(f"syntax error at or near {alias!r}", "42601")
    return schema, _ident(alias) if alias else name


def _strip(sql: str) -> str:
    return re.sub(r"[\s;]+$", "", sql)


def parse_dml(sql: str, schemas: dict[str, TableSchema]) -> Dml | None:
    """Parse an UPDATE or DELETE into a `Dml`; None for any other statement."""
    head = _HEAD.match(sql)
    if head is None:
        return None
    verb = head.group(1).upper()
    body = _strip(sql[head.end() :])
    if verb == "UPDATE":
        return _update(body, schemas)
    return _delete(body, schemas)


def _unsupported(parts: dict[str, str], verb: str) -> None:
    if "returning" in parts:
        raise DmlError(f"{verb} … RETURNING is not supported", "0A000")
    where = parts.get("where", "")
    if re.match(r"\s*current\s+of\b", where, re.I):
        raise DmlError("WHERE CURRENT OF is not supported", "0A000")


def _update(body: str, schemas: dict[str, TableSchema]) -> Dml:
    parts = _clauses(body, ("set", "from", "where", "returning"))
    _unsupported(parts, "UPDATE")
    if "set" not in parts:
        raise DmlError("syntax error: UPDATE needs SET", "42601")
    schema, alias = _target(parts[""], schemas)
    assigned: dict[str, str] = {}
    for item in _split_commas(parts["set"]):
        if item.strip().startswith("("):
            raise DmlError("UPDATE … SET (a, b) = (…) is not supported; assign each column", "0A000")
        m = _ASSIGN.match(item)
        if not m:
            raise DmlError(f"syntax error in SET: {item.strip()[:80]}", "42601")
        name = _ident(m.group("col").split(".")[-1])
        column = schema.by_name.get(name)
        if column is None:
            raise DmlError(f'column "{name}" of relation "{schema.name}" does not exist', "42703")
        if name in assigned:
            raise DmlError(f'multiple assignments to same column "{name}"', "42601")
        if not column.mutable:
            allowed = ", ".join(schema.mutable_columns) or "none"
            raise DmlError(
                f'column "{name}" of relation "{schema.name}" cannot be updated: only columns marked '
                f"mutable in the table's schema may be (here: {allowed})",
                "0A000",
            )
        expr = m.group("expr")
        if re.fullmatch(r"\s*default\s*", expr, re.I):
            expr = "NULL"
        assigned[name] = expr
    columns = []
    for c in schema.columns:
        if c.name in assigned:
            columns.append(f"({assigned[c.name]}) AS {_quote(c.name)}")
        else:
            columns.append(f"{_quote(alias)}.{_quote(c.name)} AS {_quote(c.name)}")
    sql = f"SELECT {', '.join(columns)} FROM {_quote(schema.name)} AS {_quote(alias)}"
    if parts.get("from", "").strip():
        sql += f", {parts['from'].strip()}"
    if parts.get("where", "").strip():
        sql += f" WHERE {parts['where'].strip()}"
    return Dml("UPDATE", schema.name, sql, tuple(assigned))


def _delete(body: str, schemas: dict[str, TableSchema]) -> Dml:
    parts = _clauses(body, ("from", "using", "where", "returning"))
    _unsupported(parts, "DELETE")
    if parts[""].strip() or "from" not in parts:
        raise DmlError("syntax error: DELETE FROM <table> [USING …] [WHERE …]", "42601")
    schema, alias = _target(parts["from"], schemas)
    keys = ", ".join(f"{_quote(alias)}.{_quote(k)} AS {_quote(k)}" for k in KEY)
    sql = f"SELECT {keys} FROM {_quote(schema.name)} AS {_quote(alias)}"
    if parts.get("using", "").strip():
        sql += f", {parts['using'].strip()}"
    if parts.get("where", "").strip():
        sql += f" WHERE {parts['where'].strip()}"
    return Dml("DELETE", schema.name, sql)
