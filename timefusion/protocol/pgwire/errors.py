"""PostgreSQL errors as the wire sends them: SQLSTATE, severity, message, optional detail/hint.

Everything raised below the protocol layer that carries a `sqlstate` attribute (ingest, query and
rewrite errors) becomes an ErrorResponse with that code; anything else is an internal error
(XX000) with its message, and the connection stays usable.
"""

from __future__ import annotations

from dataclasses import dataclass

# The SQLSTATEs the server uses, by name, so code reads as what happened.
SYNTAX_ERROR = "42601"
UNDEFINED_TABLE = "42P01"
UNDEFINED_COLUMN = "42703"
UNDEFINED_OBJECT = "42704"
UNDEFINED_FUNCTION = "42883"
INVALID_TEXT_REPRESENTATION = "22P02"
TOO_MANY_CONNECTIONS = "53300"
QUERY_CANCELED = "57014"
ADMIN_SHUTDOWN = "57P01"
CANNOT_CONNECT_NOW = "57P03"
OUT_OF_MEMORY = "53200"
PROTOCOL_VIOLATION = "08P01"
INVALID_PASSWORD = "28P01"
INVALID_AUTHORIZATION = "28000"
FEATURE_NOT_SUPPORTED = "0A000"
INVALID_PREPARED_STATEMENT = "26000"
INVALID_CURSOR_NAME = "34000"
DUPLICATE_PREPARED_STATEMENT = "42P05"
UNDEFINED_PARAMETER = "42P02"
INVALID_PARAMETER_VALUE = "22023"
CANT_CHANGE_RUNTIME_PARAM = "55P02"
INTERNAL_ERROR = "XX000"
IN_FAILED_TRANSACTION = "25P02"


@dataclass
class PgError(Exception):
    sqlstate: str
    message: str
    severity: str = "ERROR"
    detail: str | None = None
    hint: str | None = None
    position: int | None = None

    def __str__(self) -> str:
        return f"{self.severity} {self.sqlstate}: {self.message}"


def as_pg_error(exc: BaseException) -> PgError:
    """Translate any exception from the layers below into a PgError."""
    if isinstance(exc, PgError):
        return exc
    code = getattr(exc, "sqlstate", None)
    message = str(exc) or type(exc).__name__
    if isinstance(code, str) and len(code) == 5:
        return PgError(code, message)
    if isinstance(exc, MemoryError):
        return PgError(OUT_OF_MEMORY, "out of memory")
    return PgError(INTERNAL_ERROR, message)
