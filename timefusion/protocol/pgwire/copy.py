"""COPY over the PostgreSQL wire protocol: `COPY … FROM STDIN` and `COPY … TO STDOUT`.

Why: COPY is the bulk path PostgreSQL clients already have (psql `\\copy`, psycopg `cursor.copy()`,
asyncpg `copy_records_to_table`, …); it avoids the SQL text of INSERT entirely.

COPY FROM STDIN (text, CSV and binary formats, PostgreSQL's options and defaults): CopyData is
collected into chunks of about :data:`CHUNK_BYTES`, cut at row boundaries, and each chunk is parsed
column-wise on a worker thread while the next one arrives — text and CSV with pyarrow's CSV reader
(every column read as text, then PostgreSQL's input rules per column, shared with INSERT via
`timefusion.query.insert_values`), binary with a decoder that only walks the field lengths in Python
and gathers every column's bytes with numpy. At CopyDone the parsed rows go through the one ingest
entry point (`TimeFusion.ingest`: coerce → WAL fsync → buffer) as ONE batch, so a COPY is atomic and
`COPY n` is sent once the rows are durable. A COPY larger than :data:`PART_BYTES` of parsed Arrow
data (or 1/64 of the buffer's memory limit) is stored in parts of that size as it arrives (each part
atomic and durable); an error after the first part leaves the earlier parts stored, and the error's
DETAIL says how many rows were stored. An
error mid-copy (bad value, CopyFail, an unexpected message) is an ErrorResponse at once; the
connection then drops CopyData/CopyDone/CopyFail until the end of the query (simple protocol) or the
next Sync (extended protocol), as PostgreSQL does.

COPY TO STDOUT (a table, a column list of one, or a query; text, CSV and binary): the query runs
through the same engine and project scoping as SELECT; values are formatted by the vectorised
encoder of `encode.py` (PostgreSQL 15's text output byte for byte), then escaped/quoted column-wise
and framed as one CopyData message per row (psycopg's row reader relies on that, and PostgreSQL
does the same). Binary rows are the encoder's DataRow bodies, which have exactly the layout of a
binary COPY tuple.
"""

from __future__ import annotations

import asyncio
import logging
import re
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from timefusion.protocol.pgwire import messages as msg
from timefusion.protocol.pgwire.encode import (
    _assemble,
    _data_buffer,
    _enc_binary,
    _enc_text,
    _join,
    _normalise,
    _offsets,
    _plan,
    _values,
)
from timefusion.protocol.pgwire.errors import (
    FEATURE_NOT_SUPPORTED,
    PROTOCOL_VIOLATION,
    QUERY_CANCELED,
    SYNTAX_ERROR,
    UNDEFINED_COLUMN,
    UNDEFINED_TABLE,
    PgError,
    as_pg_error,
)
from timefusion.protocol.pgwire.messages import Payload
from timefusion.query.insert_values import _COLUMN_TYPES, ARRAY, InsertError, _array_literal, _Ctx, _input
from timefusion.schema import Column, TableSchema

if TYPE_CHECKING:
    from timefusion.protocol.pgwire.connection import Connection

log = logging.getLogger(__name__)

CHUNK_BYTES = 4 << 20  # CopyData gathered before a chunk is parsed
PART_BYTES = 256 << 20  # parsed Arrow data of one COPY stored as one atomic batch at most
ENCODE_ROWS = 65_536  # rows formatted per step of COPY TO

BAD_COPY_FORMAT = "22P04"
INVALID_PARAMETER_VALUE = "22023"
BINARY_SIGNATURE = b"PGCOPY\n\xff\r\n\x00"

# -- the statement ---------------------------------------------------------------------------------


@dataclass
class CopySpec:
    """A parsed COPY statement with PostgreSQL's defaults filled in."""

    direction: str  # "from" | "to"
    table: str | None = None
    columns: list[str] | None = None
    query: str | None = None
    format: str = "text"
    delimiter: str | None = None
    null: str | None = None
    header: bool | str = False  # True, False or "match"
    quote: str | None = None
    escape: str | None = None
    force_quote: list[str] | bool = field(default_factory=list)  # True = *
    force_not_null: list[str] = field(default_factory=list)
    force_null: list[str] = field(default_factory=list)

    def finish(self) -> CopySpec:
        """Validate the option combination and fill in the defaults, as PostgreSQL's ProcessCopyOptions."""
        csv, binary = self.format == "csv", self.format == "binary"
        if binary and self.delimiter is not None:
            raise PgError(SYNTAX_ERROR, "cannot specify DELIMITER in BINARY mode")
        if binary and self.null is not None:
            raise PgError(SYNTAX_ERROR, "cannot specify NULL in BINARY mode")
        if binary and self.header:
            raise PgError(FEATURE_NOT_SUPPORTED, "cannot specify HEADER in BINARY mode")
        if not csv and self.quote is not None:
            raise PgError(FEATURE_NOT_SUPPORTED, "COPY quote available only in CSV mode")
        if not csv and self.escape is not None:
            raise PgError(FEATURE_NOT_SUPPORTED, "COPY escape available only in CSV mode")
        if not csv and (self.force_quote or self.force_not_null or self.force_null):
            raise PgError(FEATURE_NOT_SUPPORTED, "COPY force options are available only in CSV mode")
        if self.direction == "from" and self.force_quote:
            raise PgError(FEATURE_NOT_SUPPORTED, "COPY force quote only available using COPY TO")
        if self.direction == "to" and (self.force_not_null or self.force_null):
            raise PgError(FEATURE_NOT_SUPPORTED, "COPY force not null/null only available using COPY FROM")
        if self.header == "match" and self.direction == "to":
            raise PgError(FEATURE_NOT_SUPPORTED, 'cannot use "match" with HEADER in COPY TO')
        self.delimiter = self.delimiter if self.delimiter is not None else ("," if csv else "\t")
        self.null = self.null if self.null is not None else ("" if csv else "\\N")
        self.quote = self.quote if self.quote is not None else '"'
        self.escape = self.escape if self.escape is not None else self.quote
        if not binary:
            if len(self.delimiter.encode()) != 1:
                raise PgError(FEATURE_NOT_SUPPORTED, "COPY delimiter must be a single one-byte character")
            if self.delimiter in "\r\n" or (
                not csv and self.delimiter in "\\.abcdefghijklmnopqrstuvwxyz0123456789"
            ):
                raise PgError(INVALID_PARAMETER_VALUE, f'COPY delimiter cannot be "{self.delimiter}"')
            if "\r" in self.null or "\n" in self.null:
                raise PgError(
                    INVALID_PARAMETER_VALUE, "COPY null representation cannot use newline or carriage return"
                )
        if csv:
            if len(self.quote.encode()) != 1:
                raise PgError(FEATURE_NOT_SUPPORTED, "COPY quote must be a single one-byte character")
            if len(self.escape.encode()) != 1:
                raise PgError(FEATURE_NOT_SUPPORTED, "COPY escape must be a single one-byte character")
            if self.quote == self.delimiter:
                raise PgError(INVALID_PARAMETER_VALUE, "COPY delimiter and quote must be different")
        return self


_TOKEN = re.compile(
    r"""(?P<ws>\s+|--[^\n]*|/\*.*?\*/)
    |(?P<str>[eE]?'(?:[^']|'')*')
    |(?P<qid>"(?:[^"]|"")*")
    |(?P<word>[A-Za-z_][\w$]*)
    |(?P<num>\d+(?:\.\d+)?)
    |(?P<punct>[(),;.*=])
    |(?P<other>.)""",
    re.VERBOSE | re.DOTALL,
)
_E_ESCAPES = {"b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v"}


@dataclass
class _Tok:
    kind: str
    text: str
    start: int
    end: int

    @property
    def upper(self) -> str:
        return self.text.upper() if self.kind == "word" else ""


def _tokens(sql: str) -> list[_Tok]:
    out = []
    for m in _TOKEN.finditer(sql):
        kind = m.lastgroup or "other"
        if kind != "ws":
            out.append(_Tok(kind, m.group(0), m.start(), m.end()))
    while out and out[-1].text == ";":
        out.pop()
    return out


def _string_value(tok: _Tok) -> str:
    text = tok.text
    if text[0] in "eE":
        body = text[2:-1].replace("''", "'")
        return re.sub(
            r"\\(x[0-9a-fA-F]{1,2}|[0-7]{1,3}|.)",
            lambda m: (
                chr(int(m.group(1)[1:], 16))
                if m.group(1)[0] == "x"
                else chr(int(m.group(1), 8))
                if m.group(1)[0].isdigit()
                else _E_ESCAPES.get(m.group(1), m.group(1))
            ),
            body,
        )
    return text[1:-1].replace("''", "'")


class _Parser:
    def __init__(self, sql: str) -> None:
        self.sql = sql
        self.toks = _tokens(sql)
        self.i = 0

    def peek(self, ahead: int = 0) -> _Tok | None:
        j = self.i + ahead
        return self.toks[j] if j < len(self.toks) else None

    def next(self) -> _Tok:
        tok = self.peek()
        if tok is None:
            raise PgError(SYNTAX_ERROR, "syntax error at end of input")
        self.i += 1
        return tok

    def error(self, tok: _Tok | None) -> PgError:
        if tok is None:
            return PgError(SYNTAX_ERROR, "syntax error at end of input")
        return PgError(SYNTAX_ERROR, f'syntax error at or near "{tok.text}"', position=tok.start + 1)

    def word(self, *words: str) -> bool:
        tok = self.peek()
        if tok is not None and tok.upper in words:
            self.i += 1
            return True
        return False

    def punct(self, char: str) -> bool:
        tok = self.peek()
        if tok is not None and tok.text == char and tok.kind == "punct":
            self.i += 1
            return True
        return False

    def expect(self, char: str) -> None:
        if not self.punct(char):
            raise self.error(self.peek())

    def ident(self) -> str:
        tok = self.next()
        if tok.kind == "qid":
            return tok.text[1:-1].replace('""', '"')
        if tok.kind == "word":
            return tok.text.lower()
        raise self.error(tok)

    def ident_list(self) -> list[str]:
        self.expect("(")
        names = [self.ident()]
        while self.punct(","):
            names.append(self.ident())
        self.expect(")")
        return names

    def string(self) -> str:
        tok = self.next()
        if tok.kind != "str":
            raise self.error(tok)
        return _string_value(tok)

    def subquery(self) -> str:
        """The text between balanced parentheses (quotes and comments are single tokens)."""
        open_tok = self.next()
        depth = 1
        while True:
            tok = self.next()
            if tok.text == "(" and tok.kind == "punct":
                depth += 1
            elif tok.text == ")" and tok.kind == "punct":
                depth -= 1
                if depth == 0:
                    return self.sql[open_tok.end : tok.start].strip()


def parse_copy(sql: str) -> CopySpec:
    """`COPY …` text → CopySpec (PostgreSQL's grammar, including the pre-9.0 option syntax)."""
    p = _Parser(sql)
    if not p.word("COPY"):
        raise p.error(p.peek())
    binary_prefix = p.word("BINARY")
    first = p.peek()
    if first is not None and first.text == "(":
        query = p.subquery()
        if not query:
            raise PgError(SYNTAX_ERROR, 'syntax error at or near ")"')
        spec = CopySpec("to", query=query)
        if not p.word("TO"):
            tok = p.peek()
            if tok is not None and tok.upper == "FROM":
                raise PgError(SYNTAX_ERROR, 'syntax error at or near "FROM"', position=tok.start + 1)
            raise p.error(tok)
    else:
        name = p.ident()
        while p.punct("."):
            name = p.ident()  # schema-qualified: tables live in one namespace
        spec = CopySpec("from", table=name)
        nxt = p.peek()
        if nxt is not None and nxt.text == "(":
            spec.columns = p.ident_list()
        if p.word("FROM"):
            spec.direction = "from"
        elif p.word("TO"):
            spec.direction = "to"
        else:
            raise p.error(p.peek())
    target = p.peek()
    if target is not None and (target.kind == "str" or target.upper == "PROGRAM"):
        where = "from a file or program" if spec.direction == "from" else "to a file or program"
        raise PgError(
            FEATURE_NOT_SUPPORTED,
            f"COPY {where} on the server is not supported; use COPY … "
            f"{'FROM STDIN' if spec.direction == 'from' else 'TO STDOUT'} (psql: \\copy)",
        )
    if not p.word("STDIN" if spec.direction == "from" else "STDOUT"):
        raise p.error(p.peek())
    if binary_prefix:
        spec.format = "binary"
    with_word = p.word("WITH")
    nxt = p.peek()
    if nxt is not None and nxt.text == "(":
        _new_options(p, spec)
    else:
        _old_options(p, spec, allow_empty=not with_word)
    tok = p.peek()
    if tok is not None:
        if tok.upper == "WHERE":
            raise PgError(FEATURE_NOT_SUPPORTED, "COPY … FROM … WHERE is not supported")
        raise p.error(tok)
    return spec.finish()


def _option_value(p: _Parser) -> str | list[str] | bool | None:
    tok = p.peek()
    if tok is None or tok.text in (",", ")"):
        return None
    if tok.text == "(":
        return p.ident_list()
    if tok.text == "*":
        p.next()
        return True
    p.next()
    if tok.kind == "str":
        return _string_value(tok)
    if tok.kind == "qid":
        return tok.text[1:-1]
    return tok.text


def _truth(name: str, value: Any, allow_match: bool = False) -> bool | str:
    if value is None:
        return True
    text = str(value).lower()
    if text in ("true", "on", "1"):
        return True
    if text in ("false", "off", "0"):
        return False
    if allow_match and text == "match":
        return "match"
    raise PgError(INVALID_PARAMETER_VALUE, f"{name} requires a Boolean value")


def _new_options(p: _Parser, spec: CopySpec) -> None:
    p.expect("(")
    seen: set[str] = set()
    while True:
        name = p.ident()
        value = _option_value(p)
        if name in seen:
            raise PgError(SYNTAX_ERROR, "conflicting or redundant options")
        seen.add(name)
        _set_option(spec, name, value)
        if p.punct(")"):
            return
        p.expect(",")


def _set_option(spec: CopySpec, name: str, value: Any) -> None:
    if name == "format":
        fmt = str(value).lower() if value is not None else ""
        if fmt not in ("text", "csv", "binary"):
            raise PgError(INVALID_PARAMETER_VALUE, f'COPY format "{value}" not recognized')
        spec.format = fmt
    elif name in ("delimiter", "null", "quote", "escape", "encoding"):
        if not isinstance(value, str):
            raise PgError(SYNTAX_ERROR, f"{name} requires a parameter")
        if name == "encoding":
            if value.replace("-", "").replace("_", "").upper() not in ("UTF8", "UNICODE", "SQLASCII"):
                raise PgError(FEATURE_NOT_SUPPORTED, f'COPY encoding "{value}" is not supported; use UTF8')
        else:
            setattr(spec, name, value)
    elif name == "header":
        spec.header = _truth("header", value, allow_match=True)
    elif name == "freeze":
        _truth("freeze", value)
    elif name in ("force_quote", "force_not_null", "force_null"):
        if name == "force_quote" and value is True:
            spec.force_quote = True
        elif isinstance(value, list):
            setattr(spec, name, value)
        else:
            raise PgError(SYNTAX_ERROR, f'argument to option "{name}" must be a list of column names')
    else:
        raise PgError(SYNTAX_ERROR, f'option "{name}" not recognized')


def _old_options(p: _Parser, spec: CopySpec, allow_empty: bool) -> None:
    while True:
        if p.word("BINARY"):
            spec.format = "binary"
        elif p.word("CSV"):
            spec.format = "csv"
        elif p.word("HEADER"):
            spec.header = True
        elif p.word("DELIMITER", "NULL", "QUOTE", "ESCAPE", "ENCODING"):
            name = p.toks[p.i - 1].text.lower()
            p.word("AS")
            _set_option(spec, name, p.string())
        elif p.word("FORCE"):
            if p.word("QUOTE"):
                if p.punct("*"):
                    spec.force_quote = True
                else:
                    spec.force_quote = _bare_list(p)
            elif p.word("NOT"):
                if not p.word("NULL"):
                    raise p.error(p.peek())
                spec.force_not_null = _bare_list(p)
            elif p.word("NULL"):
                spec.force_null = _bare_list(p)
            else:
                raise p.error(p.peek())
        else:
            return


def _bare_list(p: _Parser) -> list[str]:
    names = [p.ident()]
    while p.punct(","):
        names.append(p.ident())
    return names


# -- messages --------------------------------------------------------------------------------------


def copy_in_response(binary: bool, ncols: int) -> bytes:
    fmt = 1 if binary else 0
    return msg.message(b"G", struct.pack("!bh", fmt, ncols) + struct.pack(f"!{ncols}h", *([fmt] * ncols)))


def copy_out_response(binary: bool, ncols: int) -> bytes:
    fmt = 1 if binary else 0
    return msg.message(b"H", struct.pack("!bh", fmt, ncols) + struct.pack(f"!{ncols}h", *([fmt] * ncols)))


def copy_data(data: bytes) -> bytes:
    return msg.message(b"d", data)


def copy_done() -> bytes:
    return msg.message(b"c")


# -- COPY FROM: decoding ---------------------------------------------------------------------------


class _LineCtx(_Ctx):
    """Errors name the COPY line and column, as PostgreSQL's CONTEXT line does."""

    def __init__(self, table: str, column: str, rows: np.ndarray) -> None:
        super().__init__(column, rows)
        self.table = table

    def sub(self, sel: np.ndarray) -> _LineCtx:
        return _LineCtx(self.table, self.column, self.rows[sel])

    def bad(self, i: int, message: str, sqlstate: str = "22P02") -> InsertError:
        return InsertError(
            f"{message} (COPY {self.table}, line {int(self.rows[i])}, column {self.column})", sqlstate
        )


def _text_to_column(
    text: pa.Array, col: Column, table: str, lines: np.ndarray, plain: bool = False
) -> pa.Array:
    """A column of input text → the column's Arrow type, by PostgreSQL's input rules (as INSERT)."""
    code = _COLUMN_TYPES[col.type_name]
    ctx = _LineCtx(table, col.name, lines)
    out = _input(text, code, ctx) if not code & ARRAY else _text_arrays(text, code & ~ARRAY, ctx, plain)
    return out if out.type == col.arrow_type else out.cast(col.arrow_type)


def _text_arrays(text: pa.Array, elem_code: int, ctx: _LineCtx, plain: bool = False) -> pa.Array:
    """PostgreSQL array literals (`{a,b,NULL}`) → a list array; vectorised unless quotes/backslashes.

    `plain` says the input has no `"` and no backslash at all (known from the raw chunk), which
    spares a regular-expression pass over every value."""
    stripped = pc.utf8_trim_whitespace(text)
    simple = pc.and_(pc.starts_with(stripped, "{"), pc.ends_with(stripped, "}"))
    pattern = r"[{}].*[{}].*[{}]" if plain else r'["\\{}].*["\\{}].*["\\{}]|["\\]'
    simple = pc.and_kleene(simple, pc.invert(pc.match_substring_regex(stripped, pattern)))
    if pc.all(pc.fill_null(simple, True)).as_py():
        inner = pc.utf8_slice_codeunits(stripped, 1, -1)
        empty = pc.equal(pc.utf8_trim_whitespace(inner), "")
        parts = pc.split_pattern(inner, ",")
        parts = pc.if_else(empty, pa.scalar([], pa.list_(pa.string())), parts)
        flat = pc.utf8_trim_whitespace(pc.list_flatten(parts))
        offsets = parts.offsets if parts.offset == 0 else None
        if offsets is None:
            parts = pa.concat_arrays([parts])
            offsets = parts.offsets
        if pc.any(pc.equal(flat, "")).as_py():
            i = int(np.flatnonzero(pc.fill_null(pc.list_value_length(parts), 0).to_numpy() >= 0)[0])
            raise ctx.bad(i, f'malformed array literal: "{text[i].as_py()}"')
        flat = pc.if_else(pc.equal(pc.utf8_upper(flat), "NULL"), pa.scalar(None, pa.string()), flat)
        lengths = pc.fill_null(pc.list_value_length(parts), 0).to_numpy(zero_copy_only=False)
        rows = np.repeat(ctx.rows, lengths)
        values = _input(flat, elem_code, _LineCtx(ctx.table, ctx.column, rows))
        return pa.ListArray.from_arrays(offsets, values, mask=pc.is_null(text))
    items: list[list[str | None] | None] = []
    for i, v in enumerate(text.to_pylist()):
        if v is None:
            items.append(None)
            continue
        parsed = _array_literal(v)
        if parsed is None:
            raise ctx.bad(i, f'malformed array literal: "{v}"')
        items.append(parsed)
    counts = np.array([0 if x is None else len(x) for x in items], np.int64)
    flat_values = pa.array([e for x in items if x is not None for e in x], pa.string())
    values = _input(flat_values, elem_code, _LineCtx(ctx.table, ctx.column, np.repeat(ctx.rows, counts)))
    offsets = np.zeros(len(items) + 1, np.int32)
    np.cumsum(counts, out=offsets[1:])
    return pa.ListArray.from_arrays(pa.array(offsets), values, mask=pc.is_null(text))


_TEXT_ESCAPE = re.compile(r"\\(x[0-9a-fA-F]{1,2}|[0-7]{1,3}|.)", re.DOTALL)
_TEXT_ESCAPES = {"b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v"}


def _unescape_one(m: re.Match[str]) -> str:
    g = m.group(1)
    if g[0] == "x" and len(g) > 1:
        return chr(int(g[1:], 16))
    if g[0] in "01234567":
        return chr(int(g, 8) & 0xFF)
    return _TEXT_ESCAPES.get(g, g)


def _unescape_text(arr: pa.Array) -> pa.Array:
    """Text-format backslash escapes (`\\t`, `\\n`, `\\\\`, octal, hex, `\\<char>`) in a column."""
    if not pc.any(pc.match_substring(arr, "\\")).as_py():
        return arr
    return pa.array(
        [v if v is None or "\\" not in v else _TEXT_ESCAPE.sub(_unescape_one, v) for v in arr.to_pylist()],
        pa.string(),
    )


class Decoder:
    """Turns COPY FROM data into Arrow tables with the COPY's columns, typed like the table."""

    def __init__(self, spec: CopySpec, schema: TableSchema, columns: list[Column]) -> None:
        self.spec = spec
        self.schema = schema
        self.columns = columns
        self.line = 0  # lines (records) consumed so far
        self.pending = b""
        self.header_done = not spec.header

    def feed(self, data: bytes, final: bool = False) -> list[pa.Table]:
        raise NotImplementedError

    def _typed(self, texts: list[pa.Array], first_line: int, plain: bool = False) -> pa.Table:
        n = len(texts[0]) if texts else 0
        lines = np.arange(first_line, first_line + n)
        arrays = [_text_to_column(t, c, self.schema.name, lines, plain) for t, c in zip(texts, self.columns)]
        return pa.Table.from_arrays(arrays, names=[c.name for c in self.columns])


class TextDecoder(Decoder):
    """Text and CSV formats, via pyarrow's CSV reader (all columns as text), chunk by chunk."""

    def feed(self, data: bytes, final: bool = False) -> list[pa.Table]:
        buf = self.pending + data if self.pending else data
        if final:
            cut = len(buf)
        else:
            cut = self._boundary(buf)
            if cut <= 0:
                self.pending = buf
                return []
        chunk, self.pending = buf[:cut], buf[cut:]
        if final:
            chunk = self._strip_end_marker(chunk)
        if not chunk:
            return []
        if not self.header_done:
            chunk = self._take_header(chunk)
            if not chunk:
                return []
        return [self._parse(chunk)]

    def _boundary(self, buf: bytes) -> int:
        """End of the last complete record in `buf` (0 if none): after a newline outside quotes."""
        end = buf.rfind(b"\n") + 1
        if self.spec.format != "csv":
            return end
        quote = self.spec.quote.encode()  # type: ignore[union-attr]
        while end > 0 and buf.count(quote, 0, end) % 2:  # that newline is inside a quoted value
            end = buf.rfind(b"\n", 0, end - 1) + 1
        if end == 0 and len(buf) > PART_BYTES:
            raise PgError(BAD_COPY_FORMAT, "unterminated CSV quoted field")
        return end

    def _strip_end_marker(self, chunk: bytes) -> bytes:
        # `\.` on a line of its own ends the data (psql and old clients send it)
        for marker in (b"\\.\r\n", b"\\.\n", b"\\."):
            if chunk.endswith(marker) and (
                len(chunk) == len(marker) or chunk[-len(marker) - 1 : -len(marker)] == b"\n"
            ):
                return chunk[: -len(marker)]
        return chunk

    def _take_header(self, chunk: bytes) -> bytes:
        """Drop the header line (checking the names for HEADER MATCH); returns the rest."""
        end = chunk.find(b"\n") + 1
        if self.spec.format == "csv":  # the first record, which may hold quoted newlines
            quote = self.spec.quote.encode()  # type: ignore[union-attr]
            while end and chunk.count(quote, 0, end) % 2:
                nxt = chunk.find(b"\n", end)
                end = nxt + 1 if nxt >= 0 else 0
        first = end or len(chunk)
        header, rest = chunk[:first], chunk[first:]
        self.header_done = True
        self.line += 1
        if self.spec.header == "match":
            names = self._parse_rows(header, check_width=False)
            got = (
                [str(names.column(i)[0].as_py() or "") for i in range(names.num_columns)]
                if names.num_rows
                else []
            )
            want = [c.name for c in self.columns]
            if len(got) != len(want):
                raise PgError(
                    BAD_COPY_FORMAT,
                    f"wrong number of fields in header line: field count is {len(got)}, expected {len(want)}",
                )
            for g, w in zip(got, want):
                if g != w:
                    raise PgError(
                        BAD_COPY_FORMAT,
                        f'column name mismatch in header line field: got "{g}", expected "{w}"',
                    )
        return rest

    def _parse_rows(self, chunk: bytes, check_width: bool = True) -> pa.Table:
        spec = self.spec
        csv = spec.format == "csv"
        n = len(self.columns)
        names = [f"c{i}" for i in range(n)]
        parse = pacsv.ParseOptions(
            delimiter=spec.delimiter,
            quote_char=spec.quote if csv else False,
            double_quote=csv and spec.escape == spec.quote,
            escape_char=spec.escape if csv and spec.escape != spec.quote else False,
            newlines_in_values=csv,
            ignore_empty_lines=False,
            invalid_row_handler=None,
        )
        convert = pacsv.ConvertOptions(
            column_types={c: pa.string() for c in names},
            null_values=[spec.null],  # type: ignore[list-item]
            strings_can_be_null=True,
            quoted_strings_can_be_null=False,
        )
        read = pacsv.ReadOptions(
            column_names=names if check_width else None,
            autogenerate_column_names=not check_width,
            block_size=1 << 20,
        )
        if not check_width:
            convert = pacsv.ConvertOptions(null_values=[spec.null], strings_can_be_null=True)  # type: ignore[list-item]
            read = pacsv.ReadOptions(autogenerate_column_names=True)
        try:
            return pacsv.read_csv(
                pa.py_buffer(chunk), read_options=read, parse_options=parse, convert_options=convert
            )
        except pa.ArrowInvalid as e:
            raise self._row_error(chunk, str(e)) from None

    def _row_error(self, chunk: bytes, detail: str) -> PgError:
        m = re.search(r"Expected (\d+) columns, got (\d+)", detail)
        line = self.line + 1
        row = re.search(r"Row #(\d+)", detail)
        if row:
            line = self.line + int(row.group(1))
        if m:
            want, got = int(m.group(1)), int(m.group(2))
            if got > want:
                return PgError(
                    BAD_COPY_FORMAT,
                    f"extra data after last expected column (COPY {self.schema.name}, line {line})",
                )
            missing = self.columns[got].name if got < len(self.columns) else "?"
            return PgError(
                BAD_COPY_FORMAT, f'missing data for column "{missing}" (COPY {self.schema.name}, line {line})'
            )
        if "CSV" in detail or "quote" in detail.lower():
            return PgError(
                BAD_COPY_FORMAT, f"unterminated CSV quoted field (COPY {self.schema.name}, line {line})"
            )
        if "UTF8" in detail or "utf8" in detail.lower():
            return PgError(
                "22021", f'invalid byte sequence for encoding "UTF8" (COPY {self.schema.name}, line {line})'
            )
        return PgError(BAD_COPY_FORMAT, f"invalid COPY data near line {line}: {detail.splitlines()[0]}")

    def _parse(self, chunk: bytes) -> pa.Table:
        table = self._parse_rows(chunk)
        first = self.line + 1
        self.line += table.num_rows
        texts = []
        for i, arr in enumerate(table.columns):
            a = arr.combine_chunks() if arr.num_chunks != 1 else arr.chunk(0)
            if pa.types.is_null(a.type):
                a = pa.nulls(len(a), pa.string())
            if self.spec.format != "csv" and b"\\" in chunk:
                a = _unescape_text(a)
            else:
                name = self.columns[i].name
                if name in self.spec.force_not_null:
                    a = pc.fill_null(a, self.spec.null)
                if name in self.spec.force_null:
                    a = pc.if_else(pc.equal(a, self.spec.null), pa.scalar(None, pa.string()), a)
            texts.append(a)
        return self._typed(texts, first, plain=b"\\" not in chunk and b'"' not in chunk)


_U16 = struct.Struct("!h")
_I32 = struct.Struct("!i")
_EPOCH_US = 946_684_800_000_000  # 2000-01-01 in Unix microseconds
_EPOCH_DAYS = 10_957


class BinaryDecoder(Decoder):
    """PostgreSQL's binary COPY format. Python only walks the field-length words; every column's
    values are then gathered and converted for all rows at once with numpy."""

    def __init__(self, spec: CopySpec, schema: TableSchema, columns: list[Column]) -> None:
        super().__init__(spec, schema, columns)
        self.header_seen = False
        self.trailer_seen = False

    def feed(self, data: bytes, final: bool = False) -> list[pa.Table]:
        buf = self.pending + data if self.pending else data
        pos = 0
        if not self.header_seen:
            if len(buf) < 19:
                if final:
                    raise PgError(BAD_COPY_FORMAT, "COPY file signature not recognized")
                self.pending = buf
                return []
            if buf[:11] != BINARY_SIGNATURE:
                raise PgError(BAD_COPY_FORMAT, "COPY file signature not recognized")
            flags = _I32.unpack_from(buf, 11)[0]
            if flags & 0x10000:
                raise PgError(BAD_COPY_FORMAT, "invalid COPY file header (WITH OIDS)")
            ext = _I32.unpack_from(buf, 15)[0]
            if ext < 0 or len(buf) < 19 + ext:
                if final or ext < 0:
                    raise PgError(BAD_COPY_FORMAT, "invalid COPY file header (missing length)")
                self.pending = buf
                return []
            pos = 19 + ext
            self.header_seen = True
        if self.trailer_seen:
            if len(buf) > pos:
                raise PgError(BAD_COPY_FORMAT, "received copy data after EOF marker")
            return []
        starts, lens, end = self._scan(buf, pos)
        self.pending = buf[end:]
        if final and self.pending:
            raise PgError(
                BAD_COPY_FORMAT,
                f"unexpected EOF in COPY data (COPY {self.schema.name}, line {self.line + 1})",
            )
        if not len(lens):
            return []
        first = self.line + 1
        self.line += len(lens)
        return [self._columns(np.frombuffer(buf, np.uint8), starts, lens, first)]

    def _scan(self, buf: bytes, pos: int) -> tuple[np.ndarray, np.ndarray, int]:
        """Walk the tuples from `pos` (compiled: `copy_scan.scan_tuples`). Returns the (rows,
        ncols) field starts and lengths, and where the complete tuples end."""
        from timefusion.protocol.pgwire.copy_scan import scan_tuples

        ncols = len(self.columns)
        starts, lens, end, rows, status = scan_tuples(np.frombuffer(buf, np.uint8), pos, ncols)
        line = self.line + rows + 1
        if status == 1:
            self.trailer_seen = True
            if len(buf) > end + 2:
                raise PgError(BAD_COPY_FORMAT, "received copy data after EOF marker")
            end += 2
        elif status == 2:
            (count,) = _U16.unpack_from(buf, end)
            raise PgError(
                BAD_COPY_FORMAT,
                f"row field count is {count}, expected {ncols} (COPY {self.schema.name}, line {line})",
            )
        elif status == 3:
            raise PgError(BAD_COPY_FORMAT, f"invalid field size (COPY {self.schema.name}, line {line})")
        return starts, lens, end

    def _columns(self, data: np.ndarray, starts: np.ndarray, lens: np.ndarray, first: int) -> pa.Table:
        arrays = []
        lines = np.arange(first, first + len(lens))
        for j, col in enumerate(self.columns):
            arrays.append(self._column(data, starts[:, j], lens[:, j], col, lines))
        return pa.Table.from_arrays(arrays, names=[c.name for c in self.columns])

    def _bad(self, col: Column, lines: np.ndarray, i: int, message: str, state: str = "22P03") -> PgError:
        return PgError(state, f"{message} (COPY {self.schema.name}, line {int(lines[i])}, column {col.name})")

    def _fixed(self, data: np.ndarray, s: np.ndarray, ln: np.ndarray, width: int) -> np.ndarray:
        idx = s[:, None] + np.arange(width)
        return data[idx].reshape(len(s), width)

    def _ints(
        self, data: np.ndarray, s: np.ndarray, ln: np.ndarray, col: Column, lines: np.ndarray
    ) -> np.ndarray:
        out = np.zeros(len(s), np.int64)
        for width, dtype in ((8, ">i8"), (4, ">i4"), (2, ">i2")):
            sel = ln == width
            if sel.any():
                out[sel] = self._fixed(data, s[sel], ln[sel], width).copy().view(dtype).ravel()
        return out

    def _column(
        self, data: np.ndarray, s: np.ndarray, ln: np.ndarray, col: Column, lines: np.ndarray
    ) -> pa.Array:
        valid = ln >= 0
        mask = ~valid if not valid.all() else None
        t = col.type_name
        widths = {
            "int32": (2, 4, 8),
            "int64": (2, 4, 8),
            "float64": (4, 8),
            "bool": (1,),
            "timestamp": (8,),
            "date32": (4,),
        }
        if t in widths:
            ok = ~valid | np.isin(ln, widths[t])
            if not ok.all():
                i = int(np.flatnonzero(~ok)[0])
                raise self._bad(
                    col, lines, i, f"incorrect binary data format: {int(ln[i])} bytes for {col.type_name}"
                )
            if t in ("int32", "int64"):
                values = self._ints(data, s, ln, col, lines)
                if t == "int32" and valid.any() and (np.abs(values[valid]) > 2**31 - 1).any():
                    i = int(np.flatnonzero(valid & (np.abs(values) > 2**31 - 1))[0])
                    raise self._bad(col, lines, i, "integer out of range", "22003")
                return pa.array(values, col.arrow_type, mask=mask)
            if t == "float64":
                out = np.zeros(len(s), np.float64)
                for width, dtype in ((8, ">f8"), (4, ">f4")):
                    sel = ln == width
                    if sel.any():
                        out[sel] = self._fixed(data, s[sel], ln[sel], width).copy().view(dtype).ravel()
                return pa.array(out, pa.float64(), mask=mask)
            safe_s = np.where(valid, s, 0)
            if t == "bool":
                return pa.array(data[safe_s] != 0, pa.bool_(), mask=mask)
            if t == "timestamp":
                raw = np.zeros(len(s), np.int64)
                if valid.any():
                    raw[valid] = self._fixed(data, s[valid], ln[valid], 8).copy().view(">i8").ravel()
                return pa.array(raw + _EPOCH_US, pa.timestamp("us", tz="UTC"), mask=mask)
            raw32 = np.zeros(len(s), np.int32)
            if valid.any():
                raw32[valid] = self._fixed(data, s[valid], ln[valid], 4).copy().view(">i4").ravel()
            return pa.array(raw32 + _EPOCH_DAYS, pa.date32(), mask=mask)
        if t in ("utf8", "json"):
            return self._strings(data, s, ln, col, lines, valid, json=t == "json")
        if t.startswith("list<"):
            return self._arrays(data, s, ln, col, lines)
        raise self._bad(
            col, lines, 0, f"binary COPY into a {t} column is not supported", FEATURE_NOT_SUPPORTED
        )

    def _strings(
        self,
        data: np.ndarray,
        s: np.ndarray,
        ln: np.ndarray,
        col: Column,
        lines: np.ndarray,
        valid: np.ndarray,
        json: bool,
    ) -> pa.Array:
        ln = np.where(valid, ln, 0)
        if json and valid.any():
            # jsonb's binary form is a version byte (1) and the text; json's is the text
            version = np.where(valid & (ln > 0), data[np.where(valid & (ln > 0), s, 0)], 1)
            if (version[valid & (ln > 0)] == 1).all():
                s = np.where(valid & (ln > 0), s + 1, s)
                ln = np.where(valid & (ln > 0), ln - 1, ln)
        offsets = np.zeros(len(s) + 1, np.int64)
        np.cumsum(ln, out=offsets[1:])
        total = int(offsets[-1])
        idx = np.repeat(s - offsets[:-1], ln) + np.arange(total)
        body = data[idx]
        mask_buf = None if valid.all() else pa.py_buffer(np.packbits(valid, bitorder="little"))
        if total < 2**31:
            arr = pa.StringArray.from_buffers(
                len(s), pa.py_buffer(offsets.astype(np.int32)), pa.py_buffer(body), mask_buf
            )
        else:
            arr = pa.LargeStringArray.from_buffers(
                len(s), pa.py_buffer(offsets), pa.py_buffer(body), mask_buf
            )
        try:
            arr.validate(full=True)
        except pa.ArrowInvalid:
            raise PgError(
                "22021",
                f'invalid byte sequence for encoding "UTF8" (COPY {self.schema.name}, column {col.name})',
            ) from None
        return arr.cast(pa.string()) if pa.types.is_large_string(arr.type) else arr

    def _arrays(
        self, data: np.ndarray, s: np.ndarray, ln: np.ndarray, col: Column, lines: np.ndarray
    ) -> pa.Array:
        """One-dimensional binary arrays (PostgreSQL's array_send layout), for all rows at once: the
        loop runs once per element position (arrays are short), each step over every row."""
        valid = ln >= 0
        n = len(s)
        limit = s + np.maximum(ln, 0)

        def be32(pos: np.ndarray) -> np.ndarray:
            return data[pos[:, None] + np.arange(4)].copy().view(">i4").ravel().astype(np.int64)

        def bad(sel: np.ndarray, what: str) -> PgError:
            return self._bad(col, lines, int(np.flatnonzero(sel)[0]), f"invalid binary array: {what}")

        short = valid & (ln < 12)
        if short.any():
            raise bad(short, "shorter than its header")
        ndim = np.zeros(n, np.int64)
        ndim[valid] = be32(s[valid])
        if (ndim[valid] > 1).any() or (ndim[valid] < 0).any():
            raise bad(valid & ((ndim > 1) | (ndim < 0)), "only one-dimensional arrays are supported")
        one = valid & (ndim == 1)
        if (one & (ln < 20)).any():
            raise bad(one & (ln < 20), "shorter than its header")
        count = np.zeros(n, np.int64)
        count[one] = be32(s[one] + 12)
        if (count < 0).any():
            raise bad(count < 0, "negative element count")
        pos = s + 20
        width = int(count.max()) if n else 0
        starts = np.zeros((n, width), np.int64)
        lens = np.zeros((n, width), np.int64)
        for k in range(width):
            act = count > k
            if (pos[act] + 4 > limit[act]).any():
                raise bad(act & (pos + 4 > limit), "element outside the value")
            lk = be32(pos[act])
            starts[act, k] = pos[act] + 4
            lens[act, k] = lk
            pos[act] += 4 + np.maximum(lk, 0)
            if (pos[act] > limit[act]).any():
                raise bad(act & (pos > limit), "element outside the value")
        take = np.arange(width) < count[:, None]
        es, el = starts[take], lens[take]
        offsets = np.zeros(n + 1, np.int32)
        np.cumsum(count, out=offsets[1:])
        elem = col.arrow_type.value_type
        elem_lines = np.repeat(lines, count)
        ev = el >= 0
        if pa.types.is_string(elem):
            values = self._strings(data, es, el, col, elem_lines, ev, json=False)
        else:
            widths = (8,) if pa.types.is_int64(elem) else (4, 8)
            if not np.isin(el[ev], widths).all():
                raise bad(np.zeros(n, bool) | valid, f"element width does not match {elem}")
            out = np.zeros(len(es), np.float64 if pa.types.is_floating(elem) else np.int64)
            for w, dtype in ((8, ">f8" if pa.types.is_floating(elem) else ">i8"), (4, ">f4")):
                sel = el == w
                if sel.any():
                    out[sel] = self._fixed(data, es[sel], el[sel], w).copy().view(dtype).ravel()
            values = pa.array(out, elem, mask=~ev if not ev.all() else None)
        return pa.ListArray.from_arrays(pa.array(offsets), values, mask=pa.array(~valid))


# -- COPY FROM: the protocol -----------------------------------------------------------------------


def _columns(spec: CopySpec, schema: TableSchema) -> list[Column]:
    if spec.columns is None:
        return list(schema.columns)
    seen: set[str] = set()
    out = []
    for name in spec.columns:
        col = schema.by_name.get(name)
        if col is None:
            raise PgError(UNDEFINED_COLUMN, f'column "{name}" of relation "{schema.name}" does not exist')
        if name in seen:
            raise PgError("42701", f'column "{name}" specified more than once')
        seen.add(name)
        out.append(col)
    for name in [*spec.force_not_null, *spec.force_null]:
        if name not in seen:
            raise PgError(
                FEATURE_NOT_SUPPORTED if name in schema.by_name else UNDEFINED_COLUMN,
                f'column "{name}" of relation "{schema.name}" does not exist'
                if name not in schema.by_name
                else f'FORCE_NOT_NULL/FORCE_NULL column "{name}" not referenced by COPY',
            )
    return out


async def copy_from_stdin(conn: Connection, spec: CopySpec) -> int:
    """Run COPY FROM STDIN on `conn`: CopyInResponse, read CopyData until CopyDone, store durably."""
    db = conn.server.db
    assert db is not None
    schema = db.schemas.get(spec.table or "")
    if schema is None:
        raise PgError(UNDEFINED_TABLE, f'relation "{spec.table}" does not exist')
    columns = _columns(spec, schema)
    decoder: Decoder = (BinaryDecoder if spec.format == "binary" else TextDecoder)(spec, schema, columns)
    projects = conn.server.projects
    # coerced to all table columns a part can be ten times its parsed size: keep it well inside the buffer
    part_limit = min(PART_BYTES, max(1 << 20, db.buffer.max_bytes // 64))
    conn.send(copy_in_response(spec.format == "binary", len(columns)))
    await conn.flush()

    parsed: list[pa.Table] = []
    parsed_bytes = 0
    stored = 0
    inflight: asyncio.Future[list[pa.Table]] | None = None

    async def collect() -> None:
        nonlocal inflight, parsed_bytes
        if inflight is None:
            return
        tables, inflight = await inflight, None
        for t in tables:
            if t.num_rows:
                _check_projects(t, projects)
                parsed.append(t)
                parsed_bytes += t.nbytes

    async def store() -> None:
        nonlocal parsed, parsed_bytes, stored
        if not parsed:
            return
        data = parsed[0] if len(parsed) == 1 else pa.concat_tables(parsed)
        parsed, parsed_bytes = [], 0
        try:
            stored += await conn.in_thread(db.ingest, schema.name, data)
        except Exception as e:
            err = as_pg_error(e)
            if stored:
                err.detail = f"{stored} rows of this COPY were stored before the error"
            raise err from None

    chunks: list[bytes] = []
    size = 0
    try:
        while True:
            kind, body = await msg.read_message(conn.reader)
            if kind == b"d":
                chunks.append(body)
                size += len(body)
                if size >= CHUNK_BYTES:
                    await collect()  # at most one chunk parses while the next one arrives
                    data = b"".join(chunks)
                    chunks, size = [], 0
                    inflight = asyncio.ensure_future(conn.in_thread(decoder.feed, data))
                    if parsed_bytes >= part_limit:
                        await store()
            elif kind == b"c":
                break
            elif kind == b"f":
                reason = Payload(body).cstring()
                raise PgError(QUERY_CANCELED, f"COPY from stdin failed: {reason}")
            elif kind in (b"H", b"S"):
                continue  # ignored during copy-in, as PostgreSQL does
            else:
                raise PgError(
                    PROTOCOL_VIOLATION, f"unexpected message type 0x{kind[0]:02X} during COPY from stdin"
                )
        await collect()
        inflight = asyncio.ensure_future(conn.in_thread(decoder.feed, b"".join(chunks), True))
        await collect()
        if spec.format == "binary" and not decoder.header_seen:  # type: ignore[attr-defined]
            raise PgError(BAD_COPY_FORMAT, "COPY file signature not recognized")
        await store()
    except Exception as e:
        if not stored or not getattr(e, "sqlstate", None):
            raise
        err = as_pg_error(e)
        if not err.detail:
            err.detail = f"{stored} rows of this COPY were stored before the error"
        raise err from None
    finally:
        if inflight is not None:
            inflight.cancel()
    return stored


def _check_projects(table: pa.Table, projects: frozenset[str] | None) -> None:
    if projects is None or "project_id" not in table.column_names:
        return
    seen = set(table.column("project_id").unique().to_pylist())
    if not seen <= projects:
        raise PgError("42501", "permission denied: COPY into a project outside this session")


# -- COPY TO ---------------------------------------------------------------------------------------

# Types whose text output is only digits, letters, white space and `-+:.`: with a delimiter, quote
# and escape from _PLAIN_PUNCT their values never need escaping or quoting, so the check is skipped.
_PLAIN_KINDS = frozenset(
    {"bool", "int2", "int4", "int8", "oid", "float4", "float8", "numeric", "uuid", "date", "time",
     "timestamp", "timestamptz", "interval"}
)  # fmt: skip
_PLAIN_PUNCT = frozenset("\t,|;\"'")


class Encoder:
    """Record batches → CopyData messages (one per row) in the COPY's format."""

    def __init__(self, spec: CopySpec, schema: pa.Schema, json_columns: frozenset[str]) -> None:
        self.spec = spec
        self.schema = schema
        self.binary = spec.format == "binary"
        self.plan = _plan(schema, 1 if self.binary else 0, json_columns)
        self.plain_punct = {spec.delimiter, spec.quote, spec.escape} <= _PLAIN_PUNCT
        if spec.force_quote is True:
            self.force = set(schema.names)
        else:
            self.force = set(spec.force_quote or [])
            missing = self.force - set(schema.names)
            if missing:
                raise PgError(
                    FEATURE_NOT_SUPPORTED, f'FORCE_QUOTE column "{sorted(missing)[0]}" not referenced by COPY'
                )

    def header(self) -> bytes:
        if self.binary:
            return copy_data(BINARY_SIGNATURE + struct.pack("!ii", 0, 0))
        if not self.spec.header:
            return b""
        names = pa.array(self.schema.names, pa.string())
        cols = [self._escape(names.slice(i, 1), "text", None) for i in range(len(self.schema.names))]
        delim = self.spec.delimiter.encode()  # type: ignore[union-attr]
        return copy_data(delim.join(c[0].as_py() for c in cols) + b"\n")

    def trailer(self) -> bytes:
        return copy_data(b"\xff\xff") if self.binary else b""

    def encode(self, batch: pa.RecordBatch) -> pa.Buffer:
        n = batch.num_rows
        if self.binary:
            cols = [_enc_binary(_normalise(arr, ct), ct) for (ct, _), arr in zip(self.plan, batch.columns)]
            rows = _assemble(n, cols)  # DataRow messages: 'D', length, then the tuple
            buf = _data_buffer(rows)
            out = np.frombuffer(buf, np.uint8).copy()
            offs = _offsets(rows)
            out[(offs[:-1] - offs[0])] = ord("d")  # a binary COPY tuple is a DataRow's body
            return pa.py_buffer(out)
        texts = []
        for i, ((ct, _), arr) in enumerate(zip(self.plan, batch.columns)):
            values = _values(_enc_text(_normalise(arr, ct), ct))
            texts.append(self._escape(values, ct.kind, i))
        spec = self.spec
        null = spec.null.encode()  # type: ignore[union-attr]
        joined = pc.binary_join_element_wise(
            *texts,
            spec.delimiter.encode(),
            null_handling="replace",
            null_replacement=null,  # type: ignore[union-attr]
        )
        lines = pc.binary_join_element_wise(joined, pa.scalar(b"\n", pa.binary()), b"")
        if pa.types.is_large_binary(lines.type) or pa.types.is_large_string(lines.type):
            lines = lines.cast(pa.large_binary())
        lengths = np.diff(_offsets(lines)) + 4
        header = np.empty(n, dtype=np.dtype([("kind", "u1"), ("length", ">i4")]))
        header["kind"] = ord("d")
        header["length"] = lengths
        framed = _join([header.view(np.uint8).reshape(n, 5), lines], n)
        return _data_buffer(framed)

    def _escape(self, values: pa.Array, kind: str, i: int | None) -> pa.Array:
        """Text: backslash escapes; CSV: quoting. `i` is the column (None: the header, never forced)."""
        spec = self.spec
        if pa.types.is_string(values.type) or pa.types.is_large_string(values.type):
            values = values.cast(pa.binary() if pa.types.is_string(values.type) else pa.large_binary())
        delim = spec.delimiter or ""
        if spec.format == "csv":
            quote, escape = spec.quote or '"', spec.escape or '"'
            forced = i is not None and self.schema.names[i] in self.force
            if not forced and kind in _PLAIN_KINDS and self.plain_punct:
                return values
            special = "[" + re.escape(delim + quote + escape) + "\\r\\n]"
            need = pc.match_substring_regex(values, special)
            if spec.null is not None:
                need = pc.or_(need, pc.equal(values, spec.null.encode()))
            if values.null_count == len(values) or not (forced or pc.any(need).as_py()):
                return values
            body = values
            if escape != quote:
                body = pc.replace_substring(body, escape, escape + escape)
            body = pc.replace_substring(body, quote, escape + quote)
            quoted = pc.binary_join_element_wise(
                pa.scalar(quote.encode()), body, pa.scalar(quote.encode()), b""
            )
            if forced:
                return quoted
            return pc.if_else(need, quoted, values)
        if kind in _PLAIN_KINDS and self.plain_punct:
            return values
        special = r"[\\\x08\x0c\n\r\t\x0b" + re.escape(delim) + "]"
        if not pc.any(pc.match_substring_regex(values, special)).as_py():
            return values
        out = pc.replace_substring(values, "\\", "\\\\")
        for char, esc in (
            ("\b", "\\b"),
            ("\f", "\\f"),
            ("\n", "\\n"),
            ("\r", "\\r"),
            ("\t", "\\t"),
            ("\v", "\\v"),
        ):
            out = pc.replace_substring(out, char, esc)
        if delim not in "\b\f\n\r\t\v\\":
            out = pc.replace_substring(out, delim, "\\" + delim)
        return out


def copy_to_sql(spec: CopySpec, schema: TableSchema | None) -> str:
    """The query a COPY TO runs: its own, or the table (and column list) as a SELECT."""
    if spec.query is not None:
        return spec.query
    if schema is None:
        raise PgError(UNDEFINED_TABLE, f'relation "{spec.table}" does not exist')
    cols = _columns(spec, schema) if spec.columns else list(schema.columns)
    quoted = ", ".join('"' + c.name.replace('"', '""') + '"' for c in cols)
    return f'SELECT {quoted} FROM "{schema.name}"'


async def copy_to_stdout(conn: Connection, spec: CopySpec) -> int:
    """Run COPY TO STDOUT on `conn`: CopyOutResponse, one CopyData per row, CopyDone."""
    db = conn.server.db
    assert db is not None
    sql = copy_to_sql(spec, db.schemas.get(spec.table or "") if spec.query is None else None)
    result = await conn.plan(sql, [])
    encoder = Encoder(spec, result.schema, conn.json_columns(result.schema))
    rows: Iterator[pa.RecordBatch] = iter(result)

    def next_chunk() -> tuple[pa.Buffer, int] | None:
        batches: list[pa.RecordBatch] = []
        n = 0
        while n < ENCODE_ROWS:
            batch = next(rows, None)
            if batch is None:
                break
            batches.append(batch)
            n += batch.num_rows
        if not batches:
            return None
        merged = batches[0] if len(batches) == 1 else pa.concat_batches(batches)
        return encoder.encode(merged), n

    conn.send(copy_out_response(encoder.binary, len(result.schema)))
    head = encoder.header()
    if head:
        conn.send(head)
    sent = 0
    while True:
        chunk = await conn.guarded(conn.in_thread(next_chunk))
        if chunk is None:
            break
        data, n = chunk
        conn.send(data)  # type: ignore[arg-type]
        sent += n
        await conn.flush()  # back-pressure: a slow client slows the query down
    tail = encoder.trailer()
    if tail:
        conn.send(tail)
    conn.send(copy_done())
    return sent


async def run_copy(conn: Connection, sql: str) -> str:
    """Run one COPY statement; returns its CommandComplete tag (`COPY n`)."""
    spec = parse_copy(sql)
    try:
        if spec.direction == "from":
            n = await copy_from_stdin(conn, spec)
        else:
            n = await copy_to_stdout(conn, spec)
    except (PgError, asyncio.CancelledError, ConnectionError, OSError, asyncio.IncompleteReadError):
        raise
    except msg.ProtocolError:
        raise
    except Exception as e:  # a bug must cost one statement, never the connection
        if getattr(e, "sqlstate", None):
            raise as_pg_error(e) from None
        log.exception("COPY failed: %s", sql[:200])
        raise PgError("XX000", f"internal error during COPY: {e}") from None
    return f"COPY {n}"


__all__ = [
    "CopySpec",
    "copy_from_stdin",
    "copy_to_stdout",
    "parse_copy",
    "run_copy",
]
