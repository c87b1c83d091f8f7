"""A real S3 endpoint for tests: moto's server on 127.0.0.1 behind a pausable TCP proxy.

:class:`S3Endpoint` starts ``python -m moto.server`` (real HTTP, the same requests AWS gets) on a
free port, and a small TCP proxy in front of it that tests point TimeFusion at. The proxy is what
``stop()``/``resume()`` act on: moto keeps its objects in memory, so "the endpoint is down" is
simulated by closing the proxy's listener and cutting its connections (clients get "connection
refused"), and bringing it back needs no data to be restored. Requests are counted on the server
side, from moto's request log (``requests("GET", ".parquet")``).

With ``auth=True`` moto checks signatures and access keys (``INITIAL_NO_AUTH_ACTION_COUNT``): the
fixture creates an IAM user with full access in the first unauthenticated requests and hands out
its keys; any other key is rejected like AWS does.

Fixtures (import into a test module)::

    from s3_server import s3_endpoint  # noqa: F401
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from timefusion.config import Config

ACCESS_KEY = "tf-test-access"
SECRET_KEY = "tf-test-secret"
REGION = "us-east-1"
_LOG_LINE = re.compile(r'"(GET|PUT|POST|HEAD|DELETE) (\S+) HTTP/[\d.]+" (\d{3})')


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Proxy:
    """Forwards TCP connections to `target`, from a process of its own.

    A separate process, not a thread: some deltalake calls (``DeltaTable.history``) hold the GIL
    while they wait on the network, which would starve an in-process proxy until they time out.
    ``pause()`` ends the process (listener and every connection go away: "connection refused"),
    ``resume()`` starts it again on the same port.
    """

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def running(self) -> bool:
        return self.proc is not None

    def resume(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "proxy", str(self.port), self.target[0], str(self.target[1])],
            stdin=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the S3 test proxy did not start") from None
                time.sleep(0.02)

    def pause(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None:
            proc.kill()
            proc.wait()


def _serve_proxy(port: int, host: str, target_port: int) -> None:
    """The proxy process: accept on `port`, copy bytes both ways to (host, target_port)."""

    def pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(1 << 16):
                dst.sendall(data)
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def serve(client: socket.socket) -> None:
        try:
            upstream = socket.create_connection((host, target_port))
        except OSError:
            client.close()
            return
        back = threading.Thread(target=pipe, args=(upstream, client), daemon=True)
        back.start()
        pipe(client, upstream)
        back.join()
        for s in (client, upstream):
            with contextlib.suppress(OSError):
                s.close()

    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(128)
    while True:
        client, _ = listener.accept()
        threading.Thread(target=serve, args=(client,), daemon=True).start()


class S3Endpoint:
    """moto's S3 server plus the proxy (see the module docstring)."""

    def __init__(self, auth: bool = False) -> None:
        self.auth = auth
        self._tmp = Path(tempfile.mkdtemp(prefix="tf-moto-"))
        self.log_path = self._tmp / "moto.log"
        self.moto_port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.proxy = _Proxy(("127.0.0.1", self.moto_port))
        self.access_key = ACCESS_KEY
        self.secret_key = SECRET_KEY

    @property
    def url(self) -> str:
        """The address clients use (through the proxy)."""
        return f"http://127.0.0.1:{self.proxy.port}"

    @property
    def direct_url(self) -> str:
        return f"http://127.0.0.1:{self.moto_port}"

    def start(self) -> S3Endpoint:
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        if self.auth:
            env["INITIAL_NO_AUTH_ACTION_COUNT"] = "3"  # create user, key, policy; then enforce
        with open(self.log_path, "wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.moto_port)],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
            )
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.moto_port), timeout=1).close()
                break
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"moto server did not start:\n{self.log_path.read_text()}") from None
                time.sleep(0.1)
        if self.auth:
            self._create_user()
        self.proxy.resume()
        return self

    def client(self, service: str = "s3", key: str | None = None, secret: str | None = None) -> Any:
        import boto3

        return boto3.client(
            service,
            endpoint_url=self.direct_url,
            aws_access_key_id=key or self.access_key,
            aws_secret_access_key=secret or self.secret_key,
            region_name=REGION,
        )

    def _create_user(self) -> None:
        iam = self.client("iam", "bootstrap", "bootstrap")
        iam.create_user(UserName="timefusion")
        key = iam.create_access_key(UserName="timefusion")["AccessKey"]
        policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
        iam.put_user_policy(UserName="timefusion", PolicyName="all", PolicyDocument=json.dumps(policy))
        self.access_key, self.secret_key = key["AccessKeyId"], key["SecretAccessKey"]

    def create_bucket(self, name: str) -> str:
        self.client().create_bucket(Bucket=name)
        return name

    def env(self, bucket: str, prefix: str = "timefusion") -> dict[str, str]:
        """TimeFusion settings for `bucket` on this endpoint."""
        return {
            "AWS_S3_BUCKET": bucket,
            "AWS_S3_ENDPOINT": self.url,
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_ALLOW_HTTP": "true",
            "TIMEFUSION_TABLE_PREFIX": prefix,
            "TIMEFUSION_S3_CONNECT_TIMEOUT_SECS": "2",
            "TIMEFUSION_S3_REQUEST_TIMEOUT_SECS": "10",
        }

    def config_overrides(self, bucket: str, prefix: str = "timefusion") -> dict[str, object]:
        """The same settings as `Config` field overrides (for in-process tests)."""
        return {
            "s3_bucket": bucket,
            "s3_endpoint": self.url,
            "aws_access_key_id": self.access_key,
            "aws_secret_access_key": self.secret_key,
            "aws_region": REGION,
            "aws_allow_http": True,
            "table_prefix": prefix,
            "s3_connect_timeout_secs": 2.0,
            "s3_request_timeout_secs": 10.0,
        }

    # -- request counting --------------------------------------------------------------------------
    def requests(self, method: str | None = None, contains: str = "") -> list[str]:
        """Requests moto has answered so far: 'METHOD path status' lines, filtered."""
        out = []
        for m in _LOG_LINE.finditer(self.log_path.read_text(errors="replace")):
            if (method is None or m.group(1) == method) and contains in m.group(2):
                out.append(f"{m.group(1)} {m.group(2)} {m.group(3)}")
        return out

    def count(self, method: str | None = None, contains: str = "") -> int:
        return len(self.requests(method, contains))

    # -- outages -----------------------------------------------------------------------------------
    def stop(self) -> None:
        """The endpoint goes away: connections are refused (moto keeps its data)."""
        self.proxy.pause()

    def resume(self) -> None:
        self.proxy.resume()

    def close(self) -> None:
        self.proxy.pause()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@contextlib.contextmanager
def running_endpoint(auth: bool = False) -> Iterator[S3Endpoint]:
    ep = S3Endpoint(auth=auth)
    try:
        yield ep.start()
    finally:
        ep.close()


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[S3Endpoint]:
    """One moto server per test module (tests use their own buckets or prefixes)."""
    with running_endpoint() as ep:
        yield ep


STORAGE_KINDS = ["local", "s3"]
_buckets = iter(range(1, 1_000_000))


def storage_config(request: pytest.FixtureRequest, tmp: Path, **overrides: object) -> Config:
    """`make_config(tmp)` for the storage kind the test is parametrized with (`request.param`).

    "local" is the zero-config directory; "s3" is a fresh bucket on the module's moto endpoint
    (the `s3_endpoint` fixture must be imported into the test module).
    """
    from conftest import make_config

    kind = getattr(request, "param", "local")
    if kind == "local":
        return make_config(tmp, **overrides)
    if kind != "s3":
        raise ValueError(f"unknown storage kind {kind!r}")
    endpoint: S3Endpoint = request.getfixturevalue("s3_endpoint")
    bucket = endpoint.create_bucket(f"tf-test-{os.getpid()}-{next(_buckets)}")
    return make_config(tmp, **{**endpoint.config_overrides(bucket), **overrides})


if __name__ == "__main__" and len(sys.argv) == 5 and sys.argv[1] == "proxy":
    _serve_proxy(int(sys.argv[2]), sys.argv[3], int(sys.argv[4]))
