"""PostgreSQL's `to_char(timestamp, format)` → DataFusion's native (chrono) `to_char`, vectorised.

DataFusion's own to_char takes chrono's `%Y-%m-%d` patterns, so a PostgreSQL format (`YYYY-MM-DD
HH24:MI:SS.MS`) would come back verbatim. The format, a constant, is translated here once: each
PostgreSQL pattern becomes a chrono specifier; names whose case PostgreSQL follows (`MONTH`, `Mon`,
`mon`, `DAY`, `Dy`, `am`, …) become upper()/lower() of a piece, and `Month`/`Day` are blank-padded
to 9 characters as PostgreSQL does (not with the FM prefix). Quoted text ("T") and other characters
are copied. `TZ` prints UTC (the server's only time zone; empty for a timestamp without time zone).
Other first arguments (numbers, intervals) are left to DataFusion.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from sqlglot import exp

from timefusion.query.rewrite.errors import RewriteError
from timefusion.query.rewrite.literals import ARROW_TS_UTC, arrow_cast
from timefusion.query.rewrite.pgtypes import TypeResolver
from timefusion.schema.tables import TableSchema

# pattern → (chrono spec, case: None | "upper" | "lower", pad to 9)
_NAMES: dict[str, tuple[str, str | None, bool]] = {
    "MONTH": ("%B", "upper", True),
    "Month": ("%B", None, True),
    "month": ("%B", "lower", True),
    "MON": ("%b", "upper", False),
    "Mon": ("%b", None, False),
    "mon": ("%b", "lower", False),
    "DAY": ("%A", "upper", True),
    "Day": ("%A", None, True),
    "day": ("%A", "lower", True),
    "DY": ("%a", "upper", False),
    "Dy": ("%a", None, False),
    "dy": ("%a", "lower", False),
    "AM": ("%p", None, False),
    "PM": ("%p", None, False),
    "am": ("%p", "lower", False),
    "pm": ("%p", "lower", False),
    "A.M.": ("%p", "dots", False),
    "P.M.": ("%p", "dots", False),
    "a.m.": ("%p", "ldots", False),
    "p.m.": ("%p", "ldots", False),
}
# case-insensitive numeric patterns → (chrono, chrono without padding for FM)
_NUMBERS: dict[str, tuple[str, str]] = {
    "YYYY": ("%Y", "%Y"),
    "Y,YYY": ("%Y", "%Y"),
    "YYY": ("%Y", "%Y"),  # trimmed below
    "YY": ("%y", "%y"),
    "IYYY": ("%G", "%G"),
    "HH24": ("%H", "%-H"),
    "HH12": ("%I", "%-I"),
    "HH": ("%I", "%-I"),
    "MI": ("%M", "%-M"),
    "SS": ("%S", "%-S"),
    "MS": ("%3f", "%3f"),
    "US": ("%6f", "%6f"),
    "MM": ("%m", "%-m"),
    "DDD": ("%j", "%-j"),
    "DD": ("%d", "%-d"),
    "ID": ("%u", "%u"),
    "IW": ("%V", "%-V"),
}
_TOKEN = re.compile(
    r'"((?:[^"\\]|\\.)*)"|(FM)?(MONTH|Month|month|MON|Mon|mon|DAY|Day|day|DY|Dy|dy|A\.M\.|P\.M\.|a\.m\.|'
    r"p\.m\.|AM|PM|am|pm)|(FM)?(Y,YYY|YYYY|IYYY|YYY|YY|HH24|HH12|HH|MI|SS|MS|US|MM|DDD|DD|ID|IW|Q|D|Y|TZ|tz|OF)"
    r'|\\(")|(.)',  # a backslash escapes only a double quote (other backslashes are printed)
    re.DOTALL | re.IGNORECASE,
)


PROTECTED = "tf_pg_to_char"
_CALL = re.compile(r"""'(?:[^']|'')*'|"(?:[^"]|"")*"|--[^\n]*|\b(to_char)\s*\(""", re.IGNORECASE)


def protect_to_char(sql: str) -> str:
    """Rename `to_char(` outside strings before sqlglot parses the statement: sqlglot translates the
    format of a to_char it knows into strftime codes, losing PostgreSQL's distinctions (`ID` vs `D`,
    `Month` padding); an unknown function keeps its literal verbatim."""
    if "to_char" not in sql.lower():
        return sql
    return _CALL.sub(lambda m: m.group(0) if m.group(1) is None else PROTECTED + m.group(0)[7:], sql)


def rewrite_to_char(
    tree: exp.Expression,
    schemas: Mapping[str, TableSchema] | None = None,
    *,
    copy: bool = True,
    resolver: TypeResolver | None = None,
) -> exp.Expression:
    """Replace every `to_char(<timestamp or date>, '<constant format>')` in `tree`."""
    calls = [n for n in tree.find_all(exp.Anonymous) if _is_to_char(n)]
    if not calls:
        return tree
    if copy:
        tree = tree.copy()
    if resolver is None or copy:
        resolver = TypeResolver(tree, schemas or {})
    for call in [n for n in tree.find_all(exp.Anonymous, bfs=False) if _is_to_char(n)][::-1]:
        args = call.expressions
        if len(args) != 2:
            raise RewriteError("function to_char() takes 2 arguments", "42883")
        value, fmt = args
        kind = resolver.type_of(value)
        if kind not in ("timestamptz", "timestamp", "date", "unknown"):
            call.replace(exp.Anonymous(this="to_char", expressions=[a.copy() for a in args]))
            continue
        if isinstance(fmt, exp.Null):
            replacement: exp.Expression = exp.Cast(this=exp.Null(), to=exp.DataType.build("TEXT"))
        elif not (isinstance(fmt, exp.Literal) and fmt.is_string):
            raise RewriteError("to_char() needs a constant format", "0A000")
        else:
            if kind == "unknown":
                value = arrow_cast(value.copy(), ARROW_TS_UTC)
            replacement = translate(value, fmt.name, zone=kind != "timestamp")
        if call is tree:
            return replacement
        call.replace(replacement)
    return tree


def _is_to_char(node: exp.Expression) -> bool:
    return isinstance(node, exp.Anonymous) and node.name.lower() == PROTECTED


def _piece(value: exp.Expression, spec: str) -> exp.Expression:
    return exp.Anonymous(this="to_char", expressions=[value.copy(), exp.Literal.string(spec)])


def translate(value: exp.Expression, fmt: str, zone: bool = True) -> exp.Expression:
    """SQL computing PostgreSQL's `to_char(value, fmt)` from native pieces."""
    if fmt == "":
        return exp.Cast(this=exp.Null(), to=exp.DataType.build("TEXT"))
    pieces: list[exp.Expression] = []
    spec = ""  # consecutive plain specifiers go into one native call

    def flush() -> None:
        nonlocal spec
        if spec:
            pieces.append(_piece(value, spec))
            spec = ""

    for m in _TOKEN.finditer(fmt):
        quoted, fm1, name, fm2, number, escaped, other = m.groups()
        if quoted is not None:
            spec += re.sub(r"\\(.)", r"\1", quoted).replace("%", "%%")
        elif name is not None:
            chrono, case, pad = _NAMES[name]
            if case is None and not (pad and not fm1):
                spec += chrono
                continue
            flush()
            piece = _piece(value, chrono)
            if pad and not fm1:
                piece = exp.Anonymous(this="rpad", expressions=[piece, exp.Literal.number(9)])
            if case in ("upper", "lower"):
                piece = exp.Anonymous(this=case, expressions=[piece])
            elif case in ("dots", "ldots"):
                piece = exp.Anonymous(
                    this="regexp_replace",
                    expressions=[piece, exp.Literal.string("(.)M"), exp.Literal.string("${1}.M.")],
                )
                if case == "ldots":
                    piece = exp.Anonymous(this="lower", expressions=[piece])
            pieces.append(piece)
        elif number is not None:
            upper = number.upper()
            if upper in ("TZ", "OF"):
                text = ("UTC" if upper == "TZ" else "+00") if zone else ""
                spec += text.lower() if number == "tz" else text
            elif upper == "Q":
                flush()
                q = exp.Anonymous(this="date_part", expressions=[exp.Literal.string("quarter"), value.copy()])
                pieces.append(
                    exp.Cast(
                        this=exp.Cast(this=q, to=exp.DataType.build("BIGINT")), to=exp.DataType.build("TEXT")
                    )
                )
            elif upper == "D":  # day of the week, Sunday = 1
                flush()
                d = exp.Anonymous(this="date_part", expressions=[exp.Literal.string("dow"), value.copy()])
                one = exp.Add(
                    this=exp.Cast(this=d, to=exp.DataType.build("BIGINT")), expression=exp.Literal.number(1)
                )
                pieces.append(exp.Cast(this=one, to=exp.DataType.build("TEXT")))
            elif upper in ("Y", "YYY"):
                flush()
                width = len(upper)
                pieces.append(
                    exp.Anonymous(this="right", expressions=[_piece(value, "%Y"), exp.Literal.number(width)])
                )
            elif upper == "Y,YYY":
                flush()
                year = _piece(value, "%Y")
                pieces.append(
                    exp.DPipe(
                        this=exp.DPipe(
                            this=exp.Anonymous(this="left", expressions=[year, exp.Literal.number(-3)]),
                            expression=exp.Literal.string(","),
                        ),
                        expression=exp.Anonymous(
                            this="right", expressions=[year.copy(), exp.Literal.number(3)]
                        ),
                    )
                )
            else:
                padded, bare = _NUMBERS[upper]
                spec += bare if fm2 else padded
        elif escaped is not None:
            spec += escaped.replace("%", "%%")
        else:
            spec += other.replace("%", "%%")
    flush()
    out = pieces[0]
    for p in pieces[1:]:
        out = exp.DPipe(this=out, expression=p)
    return out
