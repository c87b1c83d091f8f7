"""`timefusion serve` processes on an S3 bucket: startup errors and concurrent writers.

Each server is the real command in a subprocess (pgwire_server.py) pointed at moto's HTTP server
(s3_server.py) through the AWS_* variables users set.
"""

from __future__ import annotations

import threading
from collections import Counter
from pathlib import Path

import pytest
from conftest import make_config
from pgwire_server import TimeFusionServer
from s3_server import S3Endpoint, running_endpoint, s3_endpoint  # noqa: F401

from timefusion.app import TimeFusion
from timefusion.storage.delta import META_WAL_ID

TABLE = "otel_logs_and_spans"


def start_error(env: dict[str, str]) -> str:
    """Start a server that must fail; returns its log."""
    srv = TimeFusionServer(env=env)
    try:
        with pytest.raises(RuntimeError, match="exited with code 1") as info:
            srv.start(timeout=60)
        return str(info.value)
    finally:
        srv.close()


def test_wrong_credentials_are_named() -> None:
    with running_endpoint(auth=True) as ep:
        bucket = ep.create_bucket("tf-auth")
        log = start_error({**ep.env(bucket), "AWS_SECRET_ACCESS_KEY": "not-the-secret"})
        assert "S3 rejected the credentials" in log and "AWS_SECRET_ACCESS_KEY" in log
        log = start_error({**ep.env(bucket), "AWS_ACCESS_KEY_ID": "AKIANOSUCHKEY"})
        assert "S3 rejected the credentials" in log
        # the right keys work against the same endpoint
        with TimeFusionServer(env=ep.env(bucket)) as srv, srv.connect() as conn:
            assert conn.execute(f"SELECT COUNT(*) FROM {TABLE}").fetchone() == (0,)


def test_missing_bucket_and_wrong_endpoint_are_named(s3_endpoint: S3Endpoint) -> None:  # noqa: F811
    log = start_error(s3_endpoint.env("tf-no-such-bucket"))
    assert "S3 bucket 'tf-no-such-bucket' does not exist" in log
    bucket = s3_endpoint.create_bucket("tf-endpoint-check")
    log = start_error({**s3_endpoint.env(bucket), "AWS_S3_ENDPOINT": "http://127.0.0.1:9"})
    assert "cannot reach the S3 endpoint http://127.0.0.1:9" in log and "AWS_S3_ENDPOINT" in log


def test_two_servers_commit_to_one_table_concurrently(
    s3_endpoint: S3Endpoint,  # noqa: F811
    tmp_path: Path,
) -> None:
    bucket = s3_endpoint.create_bucket("tf-two-writers")
    env = {**s3_endpoint.env(bucket), "TIMEFUSION_BUCKET_DURATION_SECS": "60"}
    servers = [TimeFusionServer(flush_interval_secs=0.2, env=env) for _ in range(2)]
    statements, per_statement = 30, 40
    errors: list[BaseException] = []

    def write(srv: TimeFusionServer, who: int) -> None:
        try:
            with srv.connect() as conn:
                for s in range(statements):
                    values = ", ".join(
                        f"('w{who}-{s}-{i}', 'p1', '2025-01-17 {s % 24:02d}:{i % 60:02d}:00', 'op')"
                        for i in range(per_statement)
                    )
                    conn.execute(f"INSERT INTO {TABLE} (id, project_id, timestamp, name) VALUES {values}")
        except BaseException as e:
            errors.append(e)

    try:
        for srv in servers:
            srv.start()
        threads = [threading.Thread(target=write, args=(srv, i)) for i, srv in enumerate(servers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors, errors
        for srv in servers:
            rc, log = srv.stop()  # SIGTERM flushes what is left
            assert rc == 0, log
    finally:
        for srv in servers:
            srv.close()
    reader = TimeFusion(make_config(tmp_path, **s3_endpoint.config_overrides(bucket))).open()
    try:
        expected = 2 * statements * per_statement
        got = (
            reader.sql(f"SELECT COUNT(*) AS n, COUNT(DISTINCT id) AS ids FROM {TABLE}")
            .to_table()
            .to_pylist()[0]
        )
        assert list(got.values()) == [expected, expected]
        history = reader.stores[TABLE]._table.history()
        writers = Counter(e[META_WAL_ID] for e in history if META_WAL_ID in e)
        assert len(writers) == 2, writers
        assert all(n >= 2 for n in writers.values()), f"commits must interleave: {writers}"
    finally:
        reader.close()
