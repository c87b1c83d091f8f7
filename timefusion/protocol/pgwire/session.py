"""Per-connection session settings: defaults, SET/RESET/SHOW, and which ones are reported.

The server announces `server_version` 16.x and `TimeZone=UTC` (DESIGN.md §2: psycopg then builds
fast UTC datetimes). Settings a client changes with SET that PostgreSQL reports are sent back as
ParameterStatus.
"""

from __future__ import annotations

import re

from timefusion import __version__
from timefusion.protocol.pgwire.errors import INVALID_PARAMETER_VALUE, PgError

SERVER_VERSION = "16.4"
VERSION_STRING = (
    f"PostgreSQL {SERVER_VERSION} (TimeFusion {__version__}) on x86_64-pc-linux-gnu, "
    "compiled by Apache DataFusion, 64-bit"
)

# name (lower case) → (canonical name, default)
DEFAULTS: dict[str, tuple[str, str]] = {
    "server_version": ("server_version", SERVER_VERSION),
    "server_version_num": ("server_version_num", "160004"),
    "server_encoding": ("server_encoding", "UTF8"),
    "client_encoding": ("client_encoding", "UTF8"),
    "datestyle": ("DateStyle", "ISO, MDY"),
    "timezone": ("TimeZone", "UTC"),
    "integer_datetimes": ("integer_datetimes", "on"),
    "standard_conforming_strings": ("standard_conforming_strings", "on"),
    "intervalstyle": ("IntervalStyle", "postgres"),
    "application_name": ("application_name", ""),
    "is_superuser": ("is_superuser", "on"),
    "session_authorization": ("session_authorization", "postgres"),
    "default_transaction_read_only": ("default_transaction_read_only", "off"),
    "in_hot_standby": ("in_hot_standby", "off"),
    "statement_timeout": ("statement_timeout", "0"),
    "search_path": ("search_path", '"$user", public'),
    "extra_float_digits": ("extra_float_digits", "1"),
    "client_min_messages": ("client_min_messages", "notice"),
    "transaction_isolation": ("transaction_isolation", "read committed"),
    "max_identifier_length": ("max_identifier_length", "63"),
    "lc_messages": ("lc_messages", "C.UTF-8"),
}

REPORTED = {
    "server_version",
    "server_encoding",
    "client_encoding",
    "datestyle",
    "timezone",
    "integer_datetimes",
    "standard_conforming_strings",
    "intervalstyle",
    "application_name",
    "is_superuser",
    "session_authorization",
    "default_transaction_read_only",
    "in_hot_standby",
}

READ_ONLY = {
    "server_version",
    "server_version_num",
    "server_encoding",
    "integer_datetimes",
    "max_identifier_length",
}


class Settings:
    def __init__(self, user: str, startup: dict[str, str]) -> None:
        self._values: dict[str, str] = {k: v for k, (_, v) in DEFAULTS.items()}
        self._values["session_authorization"] = user
        self._names: dict[str, str] = {k: name for k, (name, _) in DEFAULTS.items()}
        for key, value in startup.items():
            if key in ("user", "database", "options", "replication"):
                continue
            try:
                self.set(key.lower(), value)
            except PgError:
                pass  # an unusable startup setting is ignored, as PostgreSQL ignores unknown ones

    def get(self, name: str) -> str | None:
        return self._values.get(name.lower())

    def canonical(self, name: str) -> str:
        return self._names.get(name.lower(), name.lower())

    def set(self, name: str, value: str | None) -> bool:
        """Apply SET; returns True when the change must be reported to the client."""
        name = name.lower()
        if name in READ_ONLY:
            raise PgError("55P02", f'parameter "{name}" cannot be changed')
        if value is None:
            value = DEFAULTS[name][1] if name in DEFAULTS else ""
        if name == "statement_timeout":
            timeout_ms(value)  # validate
        if name == "client_encoding" and value.replace("-", "").upper() not in ("UTF8", "UNICODE"):
            raise PgError(INVALID_PARAMETER_VALUE, f'conversion to encoding "{value}" is not supported')
        changed = self._values.get(name) != value
        self._values[name] = value
        self._names.setdefault(name, name)
        return changed and name in REPORTED

    def reset(self, name: str) -> list[str]:
        """RESET name|ALL; returns the names whose reported value changed."""
        names = list(self._values) if name == "all" else [name]
        changed = []
        for n in names:
            if n in READ_ONLY or n == "session_authorization":
                continue
            if self.set(n, None):
                changed.append(n)
        return changed

    def reported(self) -> list[tuple[str, str]]:
        return [(self.canonical(k), self._values[k]) for k in sorted(REPORTED)]

    def all(self) -> list[tuple[str, str]]:
        return sorted((self.canonical(k), v) for k, v in self._values.items())

    @property
    def statement_timeout_ms(self) -> int:
        return timeout_ms(self._values["statement_timeout"])


_UNITS = {"": 1, "ms": 1, "s": 1000, "min": 60_000, "h": 3_600_000, "d": 86_400_000}


def timeout_ms(value: str) -> int:
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|min|h|d)?\s*", value)
    if not m:
        raise PgError(INVALID_PARAMETER_VALUE, f'invalid value for parameter "statement_timeout": "{value}"')
    return int(float(m.group(1)) * _UNITS[m.group(2) or ""])
