"""PostgreSQL type system as seen by our clients: Arrow type ⇄ PostgreSQL type OID, and parameter decoding.

Query results are Arrow record batches; clients (psql, psycopg, JDBC, pgx, …) need every column described
with a PostgreSQL type OID, its ``typlen`` and ``typmod`` in RowDescription, and they send Bind
parameters as PostgreSQL text or binary values. This module owns both directions:

* :func:`column_type` maps an Arrow type to the :class:`ColumnType` we report (and that
  :mod:`.encode` uses to pick the value encoder);
* :func:`arrow_type_for_oid` and :func:`decode_param` turn a parameter's OID and wire bytes into an
  Arrow type and a Python value (parsed the way PostgreSQL's ``*in``/``*recv`` functions do).

We write this ourselves because there is no usable PostgreSQL-wire server library for Python here
(DESIGN.md §3: riffq has no Linux wheel, buenavista is unmaintained and slow, pg-mimic encodes row by
row).
"""

from __future__ import annotations

import datetime as dt
import decimal
import re
import struct
import uuid
from dataclasses import dataclass

import pyarrow as pa

__all__ = [
    "BY_OID",
    "ColumnType",
    "PgType",
    "UnsupportedType",
    "arrow_type_for_oid",
    "column_type",
    "decode_param",
    "is_json_field",
]


class UnsupportedType(TypeError):
    """An Arrow type (or PostgreSQL OID) that has no PostgreSQL wire representation here."""


@dataclass(frozen=True, slots=True)
class PgType:
    """One row of ``pg_type`` that we speak."""

    oid: int
    name: str
    typlen: int  # -1 = variable length (varlena)
    array_oid: int = 0  # OID of the array type whose elements are this type (0 for array types)
    element_oid: int = 0  # for array types: the element type's OID


def _t(oid: int, name: str, typlen: int, array_oid: int) -> tuple[PgType, PgType]:
    return PgType(oid, name, typlen, array_oid), PgType(array_oid, "_" + name, -1, 0, oid)


BOOL, BOOL_ARRAY = _t(16, "bool", 1, 1000)
BYTEA, BYTEA_ARRAY = _t(17, "bytea", -1, 1001)
CHAR, CHAR_ARRAY = _t(18, "char", 1, 1002)
NAME, NAME_ARRAY = _t(19, "name", 64, 1003)
INT8, INT8_ARRAY = _t(20, "int8", 8, 1016)
INT2, INT2_ARRAY = _t(21, "int2", 2, 1005)
INT4, INT4_ARRAY = _t(23, "int4", 4, 1007)
TEXT, TEXT_ARRAY = _t(25, "text", -1, 1009)
OID, OID_ARRAY = _t(26, "oid", 4, 1028)
JSON, JSON_ARRAY = _t(114, "json", -1, 199)
FLOAT4, FLOAT4_ARRAY = _t(700, "float4", 4, 1021)
FLOAT8, FLOAT8_ARRAY = _t(701, "float8", 8, 1022)
BPCHAR, BPCHAR_ARRAY = _t(1042, "bpchar", -1, 1014)
VARCHAR, VARCHAR_ARRAY = _t(1043, "varchar", -1, 1015)
DATE, DATE_ARRAY = _t(1082, "date", 4, 1182)
TIME, TIME_ARRAY = _t(1083, "time", 8, 1183)
TIMESTAMP, TIMESTAMP_ARRAY = _t(1114, "timestamp", 8, 1115)
TIMESTAMPTZ, TIMESTAMPTZ_ARRAY = _t(1184, "timestamptz", 8, 1185)
INTERVAL, INTERVAL_ARRAY = _t(1186, "interval", 16, 1187)
NUMERIC, NUMERIC_ARRAY = _t(1700, "numeric", -1, 1231)
UUID, UUID_ARRAY = _t(2950, "uuid", 16, 2951)
JSONB, JSONB_ARRAY = _t(3802, "jsonb", -1, 3807)
UNKNOWN = PgType(705, "unknown", -2)

BY_OID: dict[int, PgType] = {
    t.oid: t for name, t in list(globals().items()) if isinstance(t, PgType) and name.isupper()
}


@dataclass(frozen=True, slots=True)
class ColumnType:
    """How one Arrow column is presented to clients.

    ``kind`` is the scalar PostgreSQL type name (``"int8"``, ``"timestamptz"``, …) or ``"array"``;
    for arrays ``element`` describes the elements (itself an array for nested lists), and ``oid`` is
    the array type's OID (PostgreSQL arrays of arrays are the same type, just more dimensions).
    """

    kind: str
    oid: int
    typlen: int
    typmod: int = -1
    element: ColumnType | None = None

    @property
    def leaf(self) -> ColumnType:
        """The scalar element type of a (possibly nested) array; the type itself for scalars."""
        t = self
        while t.element is not None:
            t = t.element
        return t

    @property
    def ndim(self) -> int:
        """Number of array dimensions (0 for scalars)."""
        n, t = 0, self
        while t.element is not None:
            n, t = n + 1, t.element
        return n


def _scalar(t: PgType, typmod: int = -1) -> ColumnType:
    return ColumnType(t.name, t.oid, t.typlen, typmod)


def _numeric_typmod(precision: int, scale: int) -> int:
    # PostgreSQL: ((precision << 16) | (scale & 0x7ff)) + VARHDRSZ
    return ((precision << 16) | (scale & 0x7FF)) + 4


def is_json_field(field: pa.Field) -> bool:
    """True when a field is marked as holding JSON text (Arrow's ``arrow.json`` extension type)."""
    t = field.type
    return isinstance(t, pa.BaseExtensionType) and t.extension_name == "arrow.json"


def column_type(dtype: pa.DataType, *, json: bool = False) -> ColumnType:
    """The PostgreSQL type we report for an Arrow type.

    ``json=True`` reports text columns (and text elements of lists) as ``jsonb`` (OID 3802): the text
    is sent as is, and in binary format prefixed with jsonb's version byte.
    Raises :class:`UnsupportedType` for Arrow types without a PostgreSQL counterpart (struct, map, …).
    """
    if isinstance(dtype, pa.BaseExtensionType):
        name = dtype.extension_name
        if name == "arrow.uuid":
            return _scalar(UUID)
        if name == "arrow.json":
            return _scalar(JSONB)
        return column_type(dtype.storage_type, json=json)
    if pa.types.is_dictionary(dtype):
        return column_type(dtype.value_type, json=json)
    t = pa.types
    if t.is_boolean(dtype):
        return _scalar(BOOL)
    if t.is_int8(dtype) or t.is_int16(dtype) or t.is_uint8(dtype):
        return _scalar(INT2)
    if t.is_int32(dtype) or t.is_uint16(dtype):
        return _scalar(INT4)
    if t.is_int64(dtype) or t.is_uint32(dtype):
        return _scalar(INT8)
    if t.is_uint64(dtype):
        return _scalar(NUMERIC, _numeric_typmod(20, 0))
    if t.is_float16(dtype) or t.is_float32(dtype):
        return _scalar(FLOAT4)
    if t.is_float64(dtype):
        return _scalar(FLOAT8)
    if t.is_decimal(dtype):  # a negative scale is sent as its integer values: numeric(p - s, 0)
        scale = dtype.scale
        return _scalar(NUMERIC, _numeric_typmod(dtype.precision - min(scale, 0), max(scale, 0)))
    if t.is_string(dtype) or t.is_large_string(dtype) or t.is_string_view(dtype) or t.is_null(dtype):
        return _scalar(JSONB if json else TEXT)
    if t.is_fixed_size_binary(dtype) and dtype.byte_width == 16:
        return _scalar(UUID)
    if (
        t.is_binary(dtype)
        or t.is_large_binary(dtype)
        or t.is_binary_view(dtype)
        or t.is_fixed_size_binary(dtype)
    ):
        return _scalar(BYTEA)
    if t.is_date(dtype):
        return _scalar(DATE)
    if t.is_time(dtype):
        return _scalar(TIME)
    if t.is_timestamp(dtype):
        return _scalar(TIMESTAMPTZ if dtype.tz is not None else TIMESTAMP)
    if t.is_duration(dtype) or dtype == pa.month_day_nano_interval():
        return _scalar(INTERVAL)
    if t.is_list(dtype) or t.is_large_list(dtype) or t.is_fixed_size_list(dtype) or _is_list_view(dtype):
        element = column_type(dtype.value_type, json=json)
        leaf = element.leaf
        pg = BY_OID[leaf.oid]
        return ColumnType("array", pg.array_oid, -1, leaf.typmod, element)
    raise UnsupportedType(f"no PostgreSQL type for Arrow type {dtype}")


def _is_list_view(dtype: pa.DataType) -> bool:
    return pa.types.is_list_view(dtype) or pa.types.is_large_list_view(dtype)


# ---------------------------------------------------------------------------------------------------
# Parameters: OID → Arrow type, and wire bytes → Python value
# ---------------------------------------------------------------------------------------------------

_ARROW_FOR_OID: dict[int, pa.DataType] = {
    BOOL.oid: pa.bool_(),
    BYTEA.oid: pa.binary(),
    CHAR.oid: pa.string(),
    NAME.oid: pa.string(),
    INT8.oid: pa.int64(),
    INT2.oid: pa.int16(),
    INT4.oid: pa.int32(),
    TEXT.oid: pa.string(),
    OID.oid: pa.int64(),
    JSON.oid: pa.string(),
    FLOAT4.oid: pa.float32(),
    FLOAT8.oid: pa.float64(),
    UNKNOWN.oid: pa.string(),
    BPCHAR.oid: pa.string(),
    VARCHAR.oid: pa.string(),
    DATE.oid: pa.date32(),
    TIME.oid: pa.time64("us"),
    TIMESTAMP.oid: pa.timestamp("us"),
    TIMESTAMPTZ.oid: pa.timestamp("us", tz="UTC"),
    INTERVAL.oid: pa.month_day_nano_interval(),
    NUMERIC.oid: pa.decimal128(38, 10),
    UUID.oid: pa.uuid(),
    JSONB.oid: pa.string(),
}


def arrow_type_for_oid(oid: int) -> pa.DataType:
    """The Arrow type a parameter of PostgreSQL type ``oid`` becomes.

    OID 0 (unspecified) and ``unknown`` become strings; ``numeric`` becomes ``decimal128(38, 10)``;
    arrays become lists of their element type.
    """
    if oid == 0:
        return pa.string()
    found = _ARROW_FOR_OID.get(oid)
    if found is not None:
        return found
    pg = BY_OID.get(oid)
    if pg is not None and pg.element_oid:
        return pa.list_(arrow_type_for_oid(pg.element_oid))
    raise UnsupportedType(f"unsupported parameter type OID {oid}")


_PG_EPOCH = dt.datetime(2000, 1, 1)
_PG_EPOCH_DATE = dt.date(2000, 1, 1)
_UTC = dt.UTC
_TEXT_OIDS = frozenset({0, TEXT.oid, VARCHAR.oid, BPCHAR.oid, NAME.oid, CHAR.oid, UNKNOWN.oid, JSON.oid})


def decode_param(oid: int, fmt: int, raw: bytes | None) -> object:
    """Decode one Bind parameter value the way PostgreSQL's input (text) or receive (binary) function would.

    Returns ``None`` for SQL NULL (``raw is None``); ``bool``, ``int``, ``float``,
    :class:`decimal.Decimal`, ``str``, ``bytes``, :class:`datetime.date`, :class:`datetime.time`,
    naive (``timestamp``) or UTC-aware (``timestamptz``) :class:`datetime.datetime`,
    :class:`pyarrow.MonthDayNano` for ``interval``, :class:`uuid.UUID`, or a (nested) list for arrays.
    Raises ``ValueError`` for malformed input and :class:`UnsupportedType` for unknown OIDs.
    """
    if raw is None:
        return None
    if fmt == 0:
        return _parse_text(oid, bytes(raw).decode("utf-8"))
    if fmt == 1:
        return _parse_binary(oid, bytes(raw))
    raise ValueError(f"invalid parameter format code {fmt}")


# --- text format ------------------------------------------------------------------------------------

_BOOL_WORDS = {"true": True, "yes": True, "on": True, "false": False, "no": False, "off": False}


def _parse_bool(s: str) -> bool:
    v = s.strip().lower()
    if v in ("1", "0"):
        return v == "1"
    # PostgreSQL accepts any unique prefix ("t", "tr", "ye", …), at least two letters for on/off.
    hits = {val for word, val in _BOOL_WORDS.items() if v and word.startswith(v)}
    if len(hits) == 1 and v != "o":
        return hits.pop()
    raise ValueError(f'invalid input syntax for type boolean: "{s}"')


_INT_RANGES = {INT2.oid: 16, INT4.oid: 32, INT8.oid: 64}


def _parse_int(oid: int, s: str) -> int:
    try:
        v = int(s.strip())
    except ValueError:
        try:
            v = int(s.strip(), 0)  # PostgreSQL 16 also takes 0x…, 0o…, 0b… and underscores
        except ValueError:
            raise ValueError(f'invalid input syntax for type {BY_OID[oid].name}: "{s}"') from None
    if oid == OID.oid:
        if not 0 <= v < 2**32:
            raise ValueError(f'value "{s}" is out of range for type oid')
        return v
    bits = _INT_RANGES[oid]
    if not -(2 ** (bits - 1)) <= v < 2 ** (bits - 1):
        raise ValueError(f'value "{s}" is out of range for type {BY_OID[oid].name}')
    return v


def _to_float4(v: float) -> float:
    try:
        return struct.unpack("f", struct.pack("f", v))[0]
    except OverflowError:
        raise ValueError(f'"{v}" is out of range for type real') from None


def _parse_float(oid: int, s: str) -> float:
    try:
        v = float(s.strip())
    except ValueError:
        raise ValueError(f'invalid input syntax for type {BY_OID[oid].name}: "{s}"') from None
    return _to_float4(v) if oid == FLOAT4.oid else v


def _parse_numeric(s: str) -> decimal.Decimal:
    try:
        v = decimal.Decimal(s.strip())
    except decimal.InvalidOperation:
        raise ValueError(f'invalid input syntax for type numeric: "{s}"') from None
    return v


def _parse_bytea(s: str) -> bytes:
    if s.startswith("\\x"):
        try:
            return bytes.fromhex(s[2:])
        except ValueError:
            raise ValueError("invalid hexadecimal data for type bytea") from None
    out = bytearray()
    i, n = 0, len(s)
    while i < n:
        c = s[i]
        if c != "\\":
            out += c.encode()
            i += 1
        elif s[i + 1 : i + 2] == "\\":
            out.append(0x5C)
            i += 2
        elif re.fullmatch(r"[0-3][0-7][0-7]", s[i + 1 : i + 4]):
            out.append(int(s[i + 1 : i + 4], 8))
            i += 4
        else:
            raise ValueError("invalid input syntax for type bytea")
    return bytes(out)


_BC = re.compile(r"\s+BC$", re.IGNORECASE)


def _parse_date(s: str) -> dt.date:
    v = s.strip()
    if _BC.search(v):
        raise ValueError(f'date "{s}" is before year 1, which Python cannot represent')
    try:
        return dt.date.fromisoformat(v[:10]) if len(v) > 10 and v[10] in " T" else dt.date.fromisoformat(v)
    except ValueError:
        raise ValueError(f'invalid input syntax for type date: "{s}"') from None


def _parse_time(s: str) -> dt.time:
    try:
        return dt.time.fromisoformat(s.strip())
    except ValueError:
        raise ValueError(f'invalid input syntax for type time: "{s}"') from None


_TZ_NAMES = re.compile(r"\s*(?:Z|UTC|GMT|z|utc|gmt)$")


def _parse_timestamp(oid: int, s: str) -> dt.datetime:
    v = s.strip()
    if _BC.search(v):
        raise ValueError(f'timestamp "{s}" is before year 1, which Python cannot represent')
    v = _TZ_NAMES.sub("+00:00", v)
    try:
        ts = dt.datetime.fromisoformat(v)
    except ValueError:
        raise ValueError(f'invalid input syntax for type {BY_OID[oid].name}: "{s}"') from None
    if oid == TIMESTAMPTZ.oid:
        # A value without an offset is in the session time zone, which is always UTC.
        return ts.replace(tzinfo=_UTC) if ts.tzinfo is None else ts.astimezone(_UTC)
    return ts.replace(tzinfo=None)  # PostgreSQL ignores an offset given for timestamp without time zone


_INTERVAL_UNITS: dict[str, tuple[int, int, float]] = {}  # unit → (months, days, microseconds) per 1


def _units(names: str, months: int = 0, days: int = 0, us: float = 0) -> None:
    for name in names.split():
        _INTERVAL_UNITS[name] = (months, days, us)


_units("microsecond microseconds us usec usecs useconds", us=1)
_units("millisecond milliseconds ms msec msecs mseconds", us=1_000)
_units("second seconds s sec secs", us=1_000_000)
_units("minute minutes m min mins", us=60_000_000)
_units("hour hours h hr hrs", us=3_600_000_000)
_units("day days d", days=1)
_units("week weeks w", days=7)
_units("month months mon mons", months=1)
_units("year years y yr yrs", months=12)
_units("decade decades", months=120)
_units("century centuries", months=1200)
_units("millennium millennia millenniums", months=12000)

_ISO_INTERVAL = re.compile(
    r"^(?P<sign>-)?P(?:(?P<y>-?[\d.]+)Y)?(?:(?P<mo>-?[\d.]+)M)?(?:(?P<w>-?[\d.]+)W)?(?:(?P<d>-?[\d.]+)D)?"
    r"(?:T(?:(?P<h>-?[\d.]+)H)?(?:(?P<mi>-?[\d.]+)M)?(?:(?P<s>-?[\d.]+)S)?)?$"
)
_CLOCK = re.compile(r"^([+-])?(\d+):(\d+)(?::(\d+(?:\.\d*)?))?$")
_NUMBER_UNIT = re.compile(r"^([+-]?(?:\d+\.?\d*|\.\d+))([a-z]*)$")


def _parse_interval(s: str) -> pa.MonthDayNano:
    """PostgreSQL interval input: the ``postgres``/verbose styles (``1 year 2 mons -3 days 04:05:06.5``,
    ``@ 1 hour ago``), ISO 8601 (``P1Y2M3DT4H5M6S``) and a bare number of seconds."""
    text = s.strip().lower()
    months = days = 0
    us = 0.0

    def add(amount: float, unit: tuple[int, int, float]) -> None:
        nonlocal months, days, us
        m, d, u = unit
        whole_m = amount * m
        months += int(whole_m)
        frac_days = (whole_m - int(whole_m)) * 30 + amount * d
        days += int(frac_days)
        us += (frac_days - int(frac_days)) * 86_400_000_000 + amount * u

    iso = _ISO_INTERVAL.match(s.strip())
    if iso and s.strip() != "P":
        for key, unit in (("y", "year"), ("mo", "month"), ("w", "week"), ("d", "day")):
            if iso[key]:
                add(float(iso[key]), _INTERVAL_UNITS[unit])
        for key, unit in (("h", "hour"), ("mi", "minute"), ("s", "second")):
            if iso[key]:
                add(float(iso[key]), _INTERVAL_UNITS[unit])
        sign = -1 if iso["sign"] else 1
        return pa.MonthDayNano([sign * months, sign * days, sign * round(us) * 1000])
    tokens = text.replace("@", " ").split()
    ago = bool(tokens) and tokens[-1] == "ago"
    if ago:
        tokens.pop()
    if not tokens:
        raise ValueError(f'invalid input syntax for type interval: "{s}"')
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        clock = _CLOCK.match(tok)
        if clock:
            sign = -1 if clock[1] == "-" else 1
            secs = float(clock[4]) if clock[4] else 0.0
            us += sign * ((int(clock[2]) * 60 + int(clock[3])) * 60_000_000 + secs * 1_000_000)
            i += 1
            continue
        num = _NUMBER_UNIT.match(tok)
        if not num:
            raise ValueError(f'invalid input syntax for type interval: "{s}"')
        unit_name = num[2]
        if not unit_name and i + 1 < len(tokens) and tokens[i + 1] in _INTERVAL_UNITS:
            unit_name = tokens[i + 1]
            i += 1
        unit = _INTERVAL_UNITS.get(unit_name or "second")
        if unit is None:
            raise ValueError(f'invalid input syntax for type interval: "{s}"')
        add(float(num[1]), unit)
        i += 1
    sign = -1 if ago else 1
    return pa.MonthDayNano([sign * months, sign * days, sign * round(us) * 1000])


def _parse_array(elem_oid: int, s: str) -> list[object]:
    text = s.strip()
    if text.startswith("["):  # explicit bounds "[1:3]={...}": the bounds carry no data we keep
        text = text[text.index("=") + 1 :].strip()
    pos = 0

    def parse_list() -> list[object]:
        nonlocal pos
        if text[pos : pos + 1] != "{":
            raise ValueError(f'malformed array literal: "{s}"')
        pos += 1
        items: list[object] = []
        while True:
            while pos < len(text) and text[pos].isspace():
                pos += 1
            if text[pos : pos + 1] == "}" and not items:
                pos += 1
                return items
            if text[pos : pos + 1] == "{":
                items.append(parse_list())
            elif text[pos : pos + 1] == '"':
                pos += 1
                buf = []
                while pos < len(text) and text[pos] != '"':
                    if text[pos] == "\\":
                        pos += 1
                    buf.append(text[pos])
                    pos += 1
                pos += 1
                items.append(_parse_text(elem_oid, "".join(buf)))
            else:
                start = pos
                buf = []
                while pos < len(text) and text[pos] not in ",}":
                    if text[pos] == "\\":
                        pos += 1
                    buf.append(text[pos])
                    pos += 1
                word = "".join(buf).strip()
                if not word and start == pos:
                    raise ValueError(f'malformed array literal: "{s}"')
                items.append(None if word.upper() == "NULL" else _parse_text(elem_oid, word))
            while pos < len(text) and text[pos].isspace():
                pos += 1
            sep = text[pos : pos + 1]
            pos += 1
            if sep == "}":
                return items
            if sep != ",":
                raise ValueError(f'malformed array literal: "{s}"')

    result = parse_list()
    if text[pos:].strip():
        raise ValueError(f'malformed array literal: "{s}"')
    return result


def _parse_text(oid: int, s: str) -> object:
    try:
        return _input(oid, s)
    except OverflowError as exc:
        raise ValueError(f"value out of range for type OID {oid}: {exc}") from None


def _input(oid: int, s: str) -> object:
    if oid in _TEXT_OIDS or oid == JSONB.oid:
        return s
    if oid == BOOL.oid:
        return _parse_bool(s)
    if oid in _INT_RANGES or oid == OID.oid:
        return _parse_int(oid, s)
    if oid in (FLOAT4.oid, FLOAT8.oid):
        return _parse_float(oid, s)
    if oid == NUMERIC.oid:
        return _parse_numeric(s)
    if oid == BYTEA.oid:
        return _parse_bytea(s)
    if oid == DATE.oid:
        return _parse_date(s)
    if oid == TIME.oid:
        return _parse_time(s)
    if oid in (TIMESTAMP.oid, TIMESTAMPTZ.oid):
        return _parse_timestamp(oid, s)
    if oid == INTERVAL.oid:
        return _parse_interval(s)
    if oid == UUID.oid:
        try:
            return uuid.UUID(s.strip())
        except ValueError:
            raise ValueError(f'invalid input syntax for type uuid: "{s}"') from None
    pg = BY_OID.get(oid)
    if pg is not None and pg.element_oid:
        return _parse_array(pg.element_oid, s)
    raise UnsupportedType(f"unsupported parameter type OID {oid}")


# --- binary format ----------------------------------------------------------------------------------

_NUMERIC_SIGNS = {0x0000: 1, 0x4000: -1}
_NUMERIC_SPECIAL = {0xC000: "NaN", 0xD000: "Infinity", 0xF000: "-Infinity"}


def _recv_numeric(raw: bytes) -> decimal.Decimal:
    ndigits, weight, sign, dscale = struct.unpack_from("!hhHh", raw)
    if sign in _NUMERIC_SPECIAL:
        return decimal.Decimal(_NUMERIC_SPECIAL[sign])
    if sign not in _NUMERIC_SIGNS or len(raw) != 8 + 2 * ndigits:
        raise ValueError("invalid external numeric value")
    digits = struct.unpack_from(f"!{ndigits}h", raw, 8)
    unscaled = 0
    for d in digits:
        if not 0 <= d < 10000:
            raise ValueError("invalid digit in external numeric value")
        unscaled = unscaled * 10000 + d
    exponent = 4 * (weight - ndigits + 1)
    with decimal.localcontext() as ctx:
        ctx.prec = max(4 * ndigits + dscale + 8, 28)
        value = decimal.Decimal(_NUMERIC_SIGNS[sign] * unscaled).scaleb(exponent)
        return value.quantize(decimal.Decimal(1).scaleb(-dscale))


def _recv_array(raw: bytes) -> list[object]:
    ndim, _flags, elem_oid = struct.unpack_from("!iii", raw)
    if ndim == 0:
        return []
    dims = [struct.unpack_from("!ii", raw, 12 + 8 * i)[0] for i in range(ndim)]
    pos = 12 + 8 * ndim
    flat: list[object] = []
    count = 1
    for d in dims:
        count *= d
    for _ in range(count):
        (length,) = struct.unpack_from("!i", raw, pos)
        pos += 4
        if length < 0:
            flat.append(None)
        else:
            flat.append(_parse_binary(elem_oid, raw[pos : pos + length]))
            pos += length

    def shape(level: int, items: list[object]) -> list[object]:
        if level == ndim - 1:
            return items
        step = len(items) // dims[level]
        return [shape(level + 1, items[i * step : (i + 1) * step]) for i in range(dims[level])]

    return shape(0, flat)


def _parse_binary(oid: int, raw: bytes) -> object:
    try:
        return _recv(oid, raw)
    except (struct.error, OverflowError, UnicodeDecodeError) as exc:
        raise ValueError(f"invalid binary value for type OID {oid}: {exc}") from None


def _recv(oid: int, raw: bytes) -> object:
    if oid in _TEXT_OIDS:
        return raw.decode("utf-8")
    if oid == JSONB.oid:
        if raw[:1] != b"\x01":
            raise ValueError("unsupported jsonb version number")
        return raw[1:].decode("utf-8")
    if oid == BYTEA.oid:
        return raw
    fixed = {
        BOOL.oid: "?",
        INT2.oid: "!h",
        INT4.oid: "!i",
        INT8.oid: "!q",
        OID.oid: "!I",
        FLOAT4.oid: "!f",
        FLOAT8.oid: "!d",
    }.get(oid)
    if fixed is not None:
        if len(raw) != struct.calcsize(fixed):
            raise ValueError(f"invalid binary value length {len(raw)} for type {BY_OID[oid].name}")
        return struct.unpack(fixed, raw)[0]
    if oid == NUMERIC.oid:
        return _recv_numeric(raw)
    if oid == DATE.oid:
        return _PG_EPOCH_DATE + dt.timedelta(days=struct.unpack("!i", raw)[0])
    if oid == TIME.oid:
        us = struct.unpack("!q", raw)[0]
        return (dt.datetime.min + dt.timedelta(microseconds=us)).time()
    if oid in (TIMESTAMP.oid, TIMESTAMPTZ.oid):
        ts = _PG_EPOCH + dt.timedelta(microseconds=struct.unpack("!q", raw)[0])
        return ts.replace(tzinfo=_UTC) if oid == TIMESTAMPTZ.oid else ts
    if oid == INTERVAL.oid:
        us, days, months = struct.unpack("!qii", raw)
        return pa.MonthDayNano([months, days, us * 1000])
    if oid == UUID.oid:
        return uuid.UUID(bytes=raw)
    pg = BY_OID.get(oid)
    if pg is not None and pg.element_oid:
        return _recv_array(raw)
    raise UnsupportedType(f"unsupported parameter type OID {oid}")
