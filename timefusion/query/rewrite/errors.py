"""The one exception type of the rewrite layer, carrying a PostgreSQL SQLSTATE.

The wire layer sends `sqlstate` to the client as the error's code, so every failure a user can cause
here maps to the code PostgreSQL itself would use (`42601` syntax, `22P02` bad literal, `0A000`
unsupported, `08P01`/`42P02` wrong parameters).
"""

from __future__ import annotations


class RewriteError(ValueError):
    """A statement cannot be prepared; `sqlstate` is the PostgreSQL error code for clients."""

    def __init__(self, message: str, sqlstate: str = "42601") -> None:
        super().__init__(message)
        self.sqlstate = sqlstate
        self.message = message
