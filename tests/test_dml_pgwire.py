"""UPDATE, DELETE and idempotent INSERT through the real `timefusion serve` with psycopg: command
tags, UPDATE … FROM (VALUES …) / unnest with parameters, errors with SQLSTATEs, prepared
statements, and visibility after a SIGTERM and a SIGKILL restart."""

from __future__ import annotations

import signal

import psycopg
import pytest
from pgwire_server import TimeFusionServer, fresh_server, server  # noqa: F401

T = "otel_logs_and_spans"
INSERT = (
    f"INSERT INTO {T} (timestamp, id, project_id, name) VALUES "
    "('2025-01-17 12:00:00+00', 'a', 'p1', 'x'), ('2025-01-17 12:00:01+00', 'b', 'p1', 'x'), "
    "('2025-01-17 12:00:02+00', 'c', 'p2', 'x')"
)


def rows(conn: psycopg.Connection) -> list[tuple[str, str, list[str] | None]]:
    return conn.execute(f"SELECT project_id, id, hashes FROM {T} ORDER BY project_id, id").fetchall()


def test_update_delete_tags_and_values(server: TimeFusionServer) -> None:  # noqa: F811
    with server.connect() as conn:
        conn.execute(f"DELETE FROM {T}")
        cur = conn.execute(INSERT)
        assert cur.statusmessage == "INSERT 0 3"
        cur = conn.execute(
            f"UPDATE {T} SET hashes = %s WHERE project_id = %s AND id = %s", (["h1"], "p1", "a")
        )
        assert (cur.statusmessage, cur.rowcount) == ("UPDATE 1", 1)
        cur = conn.execute(
            f"UPDATE {T} AS t SET hashes = ARRAY[v.h] FROM (VALUES ('a', 'va'), ('c', 'vc')) AS v(id, h) "
            "WHERE t.id = v.id"
        )
        assert cur.statusmessage == "UPDATE 2"
        cur = conn.execute(
            f"UPDATE {T} t SET hashes = ARRAY[u.h] FROM unnest(%s::text[], %s::text[]) AS u(id, h) "
            "WHERE t.id = u.id AND t.project_id = 'p1'",
            (["a", "b"], ["ua", "ub"]),
        )
        assert cur.statusmessage == "UPDATE 2"
        assert rows(conn) == [("p1", "a", ["ua"]), ("p1", "b", ["ub"]), ("p2", "c", ["vc"])]
        cur = conn.execute(f"DELETE FROM {T} WHERE id = %s", ("b",))
        assert (cur.statusmessage, cur.rowcount) == ("DELETE 1", 1)
        assert conn.execute(f"DELETE FROM {T} WHERE id = 'b'").statusmessage == "DELETE 0"
        assert rows(conn) == [("p1", "a", ["ua"]), ("p2", "c", ["vc"])]


def test_prepared_update(server: TimeFusionServer) -> None:  # noqa: F811
    with server.connect() as conn:
        conn.execute(f"DELETE FROM {T}")
        conn.execute(INSERT)
        for value in ("one", "two", "three", "four", "five", "six"):  # psycopg prepares after 5 runs
            cur = conn.execute(f"UPDATE {T} SET hashes = ARRAY[%s] WHERE id = %s", (value, "a"), prepare=True)
            assert cur.statusmessage == "UPDATE 1"
        assert rows(conn)[0] == ("p1", "a", ["six"])


def test_errors_have_sqlstates(server: TimeFusionServer) -> None:  # noqa: F811
    with server.connect() as conn:
        with pytest.raises(psycopg.errors.FeatureNotSupported) as e:
            conn.execute(f"UPDATE {T} SET name = 'no' WHERE id = 'a'")
        assert "mutable" in str(e.value)
        with pytest.raises(psycopg.errors.FeatureNotSupported):  # also at Parse (extended protocol)
            conn.execute(f"UPDATE {T} SET name = %s WHERE id = 'a'", ("no",))
        with pytest.raises(psycopg.errors.UndefinedColumn):
            conn.execute(f"UPDATE {T} SET nope = 1")
        with pytest.raises(psycopg.errors.UndefinedTable):
            conn.execute("DELETE FROM nope")
        assert conn.execute("SELECT 1").fetchone() == (1,)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_dml_and_duplicates_survive_restart(fresh_server: TimeFusionServer, sig: int) -> None:  # noqa: F811
    srv = fresh_server
    with srv.connect() as conn:
        conn.execute(INSERT)
        conn.execute(INSERT)  # a retried batch: still three rows
        conn.execute(f"UPDATE {T} SET hashes = ARRAY['u'] WHERE id = 'a'")
        conn.execute(f"DELETE FROM {T} WHERE id = 'c'")
        expect = [("p1", "a", ["u"]), ("p1", "b", None)]
        assert rows(conn) == expect
    srv.restart(sig)
    with srv.connect() as conn:
        assert rows(conn) == expect
        conn.execute(INSERT)  # retried once more after the restart: c comes back, a loses its hash
        assert conn.execute(f"SELECT count(*) FROM {T}").fetchone() == (3,)
        assert rows(conn)[0] == ("p1", "a", None)
    srv.restart(signal.SIGTERM)  # SIGTERM flushes: now everything comes from Delta
    with srv.connect() as conn:
        assert conn.execute(f"SELECT count(*) FROM {T}").fetchone() == (3,)
