"""S3-compatible object storage: client settings, the startup bucket check, and object I/O.

Two clients talk to the bucket, both built on the Rust `object_store` crate so they behave alike
(timeouts, retries, signing, conditional puts): delta-rs (the Delta log, through the storage
options built here) and `obstore` (the Parquet uploads, cache downloads and the startup probe).
`obstore` was chosen over boto3 (a second, much slower signing/HTTP stack with different retry
rules) and over `pyarrow.fs.S3FileSystem` (its AWS SDK can abort the interpreter at exit, DESIGN.md
§3). Nothing here falls back to local disk: when a bucket is configured, an unreachable or
unwritable bucket is an error.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from dataclasses import dataclass
from typing import Any

import obstore
from obstore.store import S3Store

from timefusion.config import Config


class BucketError(RuntimeError):
    """The configured bucket cannot be used; the message says which setting to check."""


@dataclass(frozen=True)
class S3Settings:
    """Everything needed to reach the bucket, taken from `Config` once."""

    bucket: str
    prefix: str
    region: str
    endpoint: str | None
    access_key_id: str | None
    secret_access_key: str | None
    allow_http: bool
    connect_timeout_secs: float
    request_timeout_secs: float

    @classmethod
    def from_config(cls, config: Config) -> S3Settings:
        if not config.s3_bucket:
            raise ValueError("no bucket configured (AWS_S3_BUCKET is unset)")
        bucket = config.s3_bucket.strip()
        if not re.fullmatch(r"[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]", bucket):
            raise BucketError(
                f"AWS_S3_BUCKET={bucket!r} is not a valid bucket name: expected 3-63 characters of "
                "lower-case letters, digits, '.' and '-', starting and ending with a letter or digit"
            )
        endpoint = config.s3_endpoint.rstrip("/") if config.s3_endpoint else None
        if endpoint is not None:
            if not re.match(r"^https?://[^/\s]+", endpoint):
                raise BucketError(
                    f"AWS_S3_ENDPOINT={endpoint!r} is not a URL: expected e.g. https://s3.example.com "
                    "or http://127.0.0.1:9000"
                )
            if endpoint.startswith("http://") and not config.aws_allow_http:
                raise BucketError(
                    f"AWS_S3_ENDPOINT={endpoint!r} is plain HTTP: set AWS_ALLOW_HTTP=true to allow it"
                )
        if bool(config.aws_access_key_id) != bool(config.aws_secret_access_key):
            raise BucketError("set both AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or neither")
        return cls(
            bucket=bucket,
            prefix=config.table_prefix.strip("/"),
            region=config.aws_region,
            endpoint=endpoint,
            access_key_id=config.aws_access_key_id,
            secret_access_key=config.aws_secret_access_key,
            allow_http=config.aws_allow_http,
            connect_timeout_secs=config.s3_connect_timeout_secs,
            request_timeout_secs=config.s3_request_timeout_secs,
        )

    def table_uri(self, table: str) -> str:
        prefix = f"{self.prefix}/" if self.prefix else ""
        return f"s3://{self.bucket}/{prefix}{table}"

    def delta_options(self) -> dict[str, str]:
        """Storage options for delta-rs (object_store configuration keys)."""
        opts: dict[str, str] = {
            "AWS_REGION": self.region,
            "connect_timeout": _duration(self.connect_timeout_secs),
            "timeout": _duration(self.request_timeout_secs),
            # bound the whole retry loop of one request, so an outage surfaces as an error the
            # flusher retries later instead of a call that hangs for object_store's default 3 min
            "retry_timeout": _duration(max(2 * self.request_timeout_secs, 5.0)),
        }
        if self.access_key_id and self.secret_access_key:
            opts["AWS_ACCESS_KEY_ID"] = self.access_key_id
            opts["AWS_SECRET_ACCESS_KEY"] = self.secret_access_key
        if self.endpoint:
            opts["AWS_ENDPOINT_URL"] = self.endpoint
        if self.allow_http:
            opts["AWS_ALLOW_HTTP"] = "true"
        return opts

    def store(self, prefix: str | None = None, max_retries: int = 3) -> S3Store:
        """An `obstore` client rooted at `prefix` (default: the table prefix) inside the bucket."""
        kwargs: dict[str, Any] = {
            "region": self.region,
            "client_options": {
                "allow_http": self.allow_http,
                "connect_timeout": dt.timedelta(seconds=self.connect_timeout_secs),
                "timeout": dt.timedelta(seconds=self.request_timeout_secs),
            },
            "retry_config": {
                "max_retries": max_retries,
                "backoff": {
                    "init_backoff": dt.timedelta(milliseconds=100),
                    "max_backoff": dt.timedelta(seconds=2),
                    "base": 2.0,
                },
                "retry_timeout": dt.timedelta(seconds=max(2 * self.request_timeout_secs, 5.0)),
            },
        }
        if self.endpoint:
            kwargs["endpoint"] = self.endpoint
        if self.access_key_id and self.secret_access_key:
            kwargs["access_key_id"] = self.access_key_id
            kwargs["secret_access_key"] = self.secret_access_key
        root = self.prefix if prefix is None else prefix
        return S3Store(self.bucket, prefix=root or None, **kwargs)


def _duration(secs: float) -> str:
    return f"{max(1, round(secs * 1000))}ms"


def split_uri(uri: str) -> tuple[str, str]:
    """`s3://bucket/a/b` → (`bucket`, `a/b`)."""
    if not uri.startswith("s3://"):
        raise ValueError(f"not an s3:// URI: {uri!r}")
    bucket, _, key = uri[5:].partition("/")
    return bucket, key


def describe_error(settings: S3Settings, exc: BaseException) -> str:
    """A message that names the likely cause: endpoint, credentials, bucket, or permissions."""
    text = str(exc)
    where = settings.endpoint or f"AWS S3 in region {settings.region}"
    if "NoSuchBucket" in text or ("404" in text and isinstance(exc, FileNotFoundError)):
        return (
            f"S3 bucket {settings.bucket!r} does not exist at {where}: create it, or fix AWS_S3_BUCKET "
            "(and AWS_S3_ENDPOINT / AWS_DEFAULT_REGION if it lives elsewhere)"
        )
    if any(s in text for s in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken", "Expired")):
        return (
            f"S3 rejected the credentials for bucket {settings.bucket!r} at {where}: check "
            "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
        )
    if "AccessDenied" in text or "403" in text:
        return (
            f"S3 credentials are valid but may not read and write bucket {settings.bucket!r} at {where}: "
            "grant s3:GetObject, s3:PutObject, s3:DeleteObject and s3:ListBucket on it"
        )
    if any(s in text.lower() for s in ("error sending request", "connect", "dns", "timed out", "timeout")):
        return (
            f"cannot reach the S3 endpoint {where}: check AWS_S3_ENDPOINT (and AWS_ALLOW_HTTP for "
            f"http:// endpoints) and that the service is running ({_first_line(text)})"
        )
    return f"S3 bucket {settings.bucket!r} at {where} is not usable: {_first_line(text)}"


def _first_line(text: str) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line[:300]


def check_bucket(settings: S3Settings) -> None:
    """Prove the bucket is reachable and writable: put, read back and delete a probe object.

    Raises `BucketError` with a message naming the cause (endpoint, credentials, missing bucket,
    permissions). Uses one retry so a wrong endpoint fails in about the connect timeout.
    """
    store = settings.store(max_retries=1)
    key = f"_timefusion_probe/{uuid.uuid4().hex}"
    payload = b"timefusion startup check"
    try:
        obstore.put(store, key, payload)
        got = bytes(obstore.get(store, key).bytes())
        obstore.delete(store, key)
    except Exception as e:
        raise BucketError(describe_error(settings, e)) from None
    if got != payload:
        raise BucketError(
            f"S3 bucket {settings.bucket!r}: a probe object read back differently from what was written"
        )
