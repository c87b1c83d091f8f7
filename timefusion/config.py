"""Every setting TimeFusion reads, from environment variables, validated once at startup.

A bad value raises `ConfigError` naming the variable, the value and what is expected, so that
`timefusion serve` fails with a message a user can act on instead of a traceback deep inside.
The table of variables in the README is generated from `SETTINGS` (a test checks they agree).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any


class ConfigError(ValueError):
    """A setting has a value we cannot use."""


@dataclass(frozen=True)
class Setting:
    env: str
    default: str | None
    parse: Callable[[str], Any]
    doc: str


def _int(lo: int, hi: int | None = None) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        try:
            value = int(raw.strip())
        except ValueError:
            raise ValueError("expected an integer") from None
        if value < lo or (hi is not None and value > hi):
            raise ValueError(f"expected an integer between {lo} and {hi}" if hi else f"expected >= {lo}")
        return value

    return parse


def _float(lo: float) -> Callable[[str], float]:
    def parse(raw: str) -> float:
        try:
            value = float(raw.strip())
        except ValueError:
            raise ValueError("expected a number") from None
        if value < lo:
            raise ValueError(f"expected a number >= {lo}")
        return value

    return parse


def _bool(raw: str) -> bool:
    v = raw.strip().lower()
    if v in ("1", "true", "yes", "on"):
        return True
    if v in ("0", "false", "no", "off", ""):
        return False
    raise ValueError("expected true or false")


def _choice(*options: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        v = raw.strip().lower()
        if v not in options:
            raise ValueError(f"expected one of: {', '.join(options)}")
        return v

    return parse


def _str(raw: str) -> str:
    return raw


def _opt_str(raw: str) -> str | None:
    return raw or None


SETTINGS: tuple[Setting, ...] = (
    Setting("TIMEFUSION_DATA_DIR", "./data", _str, "Local directory for Delta tables when no bucket is set."),
    Setting("TIMEFUSION_WAL_DIR", None, _opt_str, "Write-ahead log directory (default: `<data dir>/wal`)."),
    Setting("TIMEFUSION_TABLE_PREFIX", "timefusion", _str, "Path prefix of the tables inside the bucket."),
    Setting("AWS_S3_BUCKET", None, _opt_str, "S3 bucket for the Delta tables; unset = local directory."),
    Setting("AWS_ACCESS_KEY_ID", None, _opt_str, "S3 access key."),
    Setting("AWS_SECRET_ACCESS_KEY", None, _opt_str, "S3 secret key."),
    Setting("AWS_S3_ENDPOINT", None, _opt_str, "S3-compatible endpoint URL (MinIO, R2, …)."),
    Setting("AWS_DEFAULT_REGION", "us-east-1", _str, "S3 region."),
    Setting("AWS_ALLOW_HTTP", "false", _bool, "Allow plain-HTTP S3 endpoints."),
    Setting("TIMEFUSION_S3_CONNECT_TIMEOUT_SECS", "5", _float(0.1), "S3: timeout to open a connection."),
    Setting("TIMEFUSION_S3_REQUEST_TIMEOUT_SECS", "60", _float(0.1), "S3: timeout of one request."),
    Setting("PGWIRE_PORT", "5432", _int(0, 65535), "PostgreSQL wire protocol port."),
    Setting("PGWIRE_USER", "postgres", _str, "User name PostgreSQL clients log in as."),
    Setting("PGWIRE_PASSWORD", None, _opt_str, "Password for PGWIRE_USER (required unless insecure auth)."),
    Setting("TIMEFUSION_ALLOW_INSECURE_AUTH", "false", _bool, "Allow serving without a password/token."),
    Setting("TIMEFUSION_PGWIRE_HOST", "0.0.0.0", _str, "Address the PostgreSQL port listens on."),
    Setting(
        "TIMEFUSION_PGWIRE_AUTH",
        "scram-sha-256",
        _choice("scram-sha-256", "password"),
        "Password method: `scram-sha-256`, or `password` (cleartext; only behind TLS termination).",
    ),
    Setting(
        "TIMEFUSION_PGWIRE_MAX_CONNECTIONS", "500", _int(1, 100000), "Connections beyond this get 53300."
    ),
    Setting(
        "TIMEFUSION_SHUTDOWN_GRACE_SECS",
        "30",
        _float(0),
        "On SIGTERM, how long running statements may finish before connections are closed.",
    ),
    Setting("GRPC_PORT", "50051", _int(0, 65535), "Arrow Flight (gRPC) port."),
    Setting("GRPC_TOKEN", None, _opt_str, "Bearer token Arrow Flight and OTLP clients must send."),
    Setting("TIMEFUSION_GRPC_HOST", "0.0.0.0", _str, "Address the Arrow Flight port listens on."),
    Setting("TIMEFUSION_FLIGHT_ENABLED", "true", _bool, "Serve Arrow Flight on GRPC_PORT."),
    Setting("TIMEFUSION_OTLP_ENABLED", "true", _bool, "Serve the OpenTelemetry OTLP receivers."),
    Setting("TIMEFUSION_OTLP_HOST", "0.0.0.0", _str, "Address the OTLP ports listen on."),
    Setting("TIMEFUSION_OTLP_HTTP_PORT", "4318", _int(0, 65535), "OTLP/HTTP port (`/v1/traces`, …)."),
    Setting("TIMEFUSION_OTLP_GRPC_PORT", "4317", _int(0, 65535), "OTLP/gRPC port."),
    Setting(
        "TIMEFUSION_OTLP_PROJECT_HEADER",
        "x-project-id",
        _str,
        "Request header naming the tenant of OTLP data (empty: do not look at headers).",
    ),
    Setting(
        "TIMEFUSION_OTLP_PROJECT_ATTRIBUTE",
        "timefusion.project_id",
        _str,
        "Resource attribute naming the tenant when the header is absent (empty: ignore).",
    ),
    Setting("TIMEFUSION_OTLP_DEFAULT_PROJECT", "default", _str, "Tenant of OTLP data that names none."),
    Setting("TIMEFUSION_BUFFER_MAX_MEMORY_MB", "4096", _int(1), "Memory the in-memory buffer may hold."),
    Setting("TIMEFUSION_FLUSH_INTERVAL_SECS", "60", _float(0.05), "How often completed buckets go to Delta."),
    Setting("TIMEFUSION_BUCKET_DURATION_SECS", "300", _int(1, 86400), "Width of a buffer time bucket."),
    Setting(
        "TIMEFUSION_BUFFER_RETENTION_MINS",
        "70",
        _int(1),
        "Oldest bucket age kept in memory; older ones are flushed at the next tick whatever their state.",
    ),
    Setting(
        "TIMEFUSION_WAL_FSYNC_MODE",
        "sync_each",
        _choice("sync_each", "ms", "none"),
        "`sync_each`: fsync before every ack (group commit); `ms`: fsync every "
        "TIMEFUSION_WAL_FSYNC_MS, ack on write; `none`: leave it to the OS.",
    ),
    Setting("TIMEFUSION_WAL_FSYNC_MS", "100", _int(1, 60000), "fsync period in `ms` mode."),
    Setting("TIMEFUSION_WAL_SEGMENT_MB", "64", _int(1, 4096), "Size at which a WAL segment file is rotated."),
    Setting(
        "TIMEFUSION_BUFFER_BUSY_WAIT_MS",
        "2000",
        _int(0, 600000),
        "How long a writer waits for buffer memory before it gets 'server busy, retry'.",
    ),
    Setting(
        "TIMEFUSION_FOYER_MEMORY_MB",
        "512",
        _int(0),
        "S3 read cache: memory tier (LRU of whole data files) in MB.",
    ),
    Setting(
        "TIMEFUSION_FOYER_DISK_GB",
        "10",
        _float(0),
        "S3 read cache: disk tier (LRU of whole data files, kept across restarts) in GB.",
    ),
    Setting(
        "TIMEFUSION_FOYER_TTL_SECONDS",
        "604800",
        _int(0),
        "S3 read cache: lifetime of a file in the disk tier (0 = no expiry).",
    ),
    Setting("TIMEFUSION_CACHE_DIR", None, _opt_str, "Read cache directory (default: `<data dir>/cache`)."),
    Setting("TIMEFUSION_LOG_LEVEL", "INFO", _choice("debug", "info", "warning", "error"), "Log level."),
)


@dataclass(frozen=True)
class Config:
    """Validated settings; build with `Config.from_env()` or directly in tests."""

    data_dir: Path = Path("./data")
    wal_dir: Path | None = None
    table_prefix: str = "timefusion"
    s3_bucket: str | None = None
    aws_access_key_id: str | None = None
    aws_secret_access_key: str | None = None
    s3_endpoint: str | None = None
    aws_region: str = "us-east-1"
    aws_allow_http: bool = False
    s3_connect_timeout_secs: float = 5.0
    s3_request_timeout_secs: float = 60.0
    pgwire_port: int = 5432
    pgwire_user: str = "postgres"
    pgwire_password: str | None = None
    allow_insecure_auth: bool = False
    pgwire_host: str = "0.0.0.0"
    pgwire_auth: str = "scram-sha-256"
    pgwire_max_connections: int = 500
    shutdown_grace_secs: float = 30.0
    grpc_port: int = 50051
    grpc_token: str | None = None
    grpc_host: str = "0.0.0.0"
    flight_enabled: bool = True
    otlp_enabled: bool = True
    otlp_host: str = "0.0.0.0"
    otlp_http_port: int = 4318
    otlp_grpc_port: int = 4317
    otlp_project_header: str = "x-project-id"
    otlp_project_attribute: str = "timefusion.project_id"
    otlp_default_project: str = "default"
    buffer_max_memory_mb: int = 4096
    flush_interval_secs: float = 60.0
    bucket_duration_secs: int = 300
    buffer_retention_mins: int = 70
    wal_fsync_mode: str = "sync_each"
    wal_fsync_ms: int = 100
    wal_segment_mb: int = 64
    buffer_busy_wait_ms: int = 2000
    foyer_memory_mb: int = 512
    foyer_disk_gb: float = 10.0
    foyer_ttl_seconds: int = 604800
    cache_dir: Path | None = None
    log_level: str = "info"

    @property
    def wal_path(self) -> Path:
        return self.wal_dir if self.wal_dir is not None else self.data_dir / "wal"

    @property
    def cache_path(self) -> Path:
        return self.cache_dir if self.cache_dir is not None else self.data_dir / "cache"

    def check_serving(self) -> None:
        """Settings that `serve` needs on top of the engine's."""
        if not self.pgwire_password and not self.allow_insecure_auth:
            raise ConfigError(
                "PGWIRE_PASSWORD is not set: set a password for PGWIRE_USER, or set "
                "TIMEFUSION_ALLOW_INSECURE_AUTH=true to accept connections without one"
            )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Config:
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for s in SETTINGS:
            raw = env.get(s.env)
            if raw is None or (raw == "" and s.default is not None):
                raw = s.default
            if raw is None:
                values[s.env] = None
                continue
            try:
                values[s.env] = s.parse(raw)
            except ValueError as e:
                raise ConfigError(f"{s.env}={raw!r} is not valid: {e}") from None
        return cls(
            data_dir=Path(values["TIMEFUSION_DATA_DIR"]),
            wal_dir=Path(values["TIMEFUSION_WAL_DIR"]) if values["TIMEFUSION_WAL_DIR"] else None,
            table_prefix=values["TIMEFUSION_TABLE_PREFIX"].strip("/"),
            s3_bucket=values["AWS_S3_BUCKET"],
            aws_access_key_id=values["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=values["AWS_SECRET_ACCESS_KEY"],
            s3_endpoint=values["AWS_S3_ENDPOINT"],
            aws_region=values["AWS_DEFAULT_REGION"],
            aws_allow_http=values["AWS_ALLOW_HTTP"],
            s3_connect_timeout_secs=values["TIMEFUSION_S3_CONNECT_TIMEOUT_SECS"],
            s3_request_timeout_secs=values["TIMEFUSION_S3_REQUEST_TIMEOUT_SECS"],
            pgwire_port=values["PGWIRE_PORT"],
            pgwire_user=values["PGWIRE_USER"],
            pgwire_password=values["PGWIRE_PASSWORD"],
            allow_insecure_auth=values["TIMEFUSION_ALLOW_INSECURE_AUTH"],
            pgwire_host=values["TIMEFUSION_PGWIRE_HOST"],
            pgwire_auth=values["TIMEFUSION_PGWIRE_AUTH"],
            pgwire_max_connections=values["TIMEFUSION_PGWIRE_MAX_CONNECTIONS"],
            shutdown_grace_secs=values["TIMEFUSION_SHUTDOWN_GRACE_SECS"],
            grpc_port=values["GRPC_PORT"],
            grpc_token=values["GRPC_TOKEN"],
            grpc_host=values["TIMEFUSION_GRPC_HOST"],
            flight_enabled=values["TIMEFUSION_FLIGHT_ENABLED"],
            otlp_enabled=values["TIMEFUSION_OTLP_ENABLED"],
            otlp_host=values["TIMEFUSION_OTLP_HOST"],
            otlp_http_port=values["TIMEFUSION_OTLP_HTTP_PORT"],
            otlp_grpc_port=values["TIMEFUSION_OTLP_GRPC_PORT"],
            otlp_project_header=values["TIMEFUSION_OTLP_PROJECT_HEADER"].strip().lower(),
            otlp_project_attribute=values["TIMEFUSION_OTLP_PROJECT_ATTRIBUTE"].strip(),
            otlp_default_project=values["TIMEFUSION_OTLP_DEFAULT_PROJECT"],
            buffer_max_memory_mb=values["TIMEFUSION_BUFFER_MAX_MEMORY_MB"],
            flush_interval_secs=values["TIMEFUSION_FLUSH_INTERVAL_SECS"],
            bucket_duration_secs=values["TIMEFUSION_BUCKET_DURATION_SECS"],
            buffer_retention_mins=values["TIMEFUSION_BUFFER_RETENTION_MINS"],
            wal_fsync_mode=values["TIMEFUSION_WAL_FSYNC_MODE"],
            wal_fsync_ms=values["TIMEFUSION_WAL_FSYNC_MS"],
            wal_segment_mb=values["TIMEFUSION_WAL_SEGMENT_MB"],
            buffer_busy_wait_ms=values["TIMEFUSION_BUFFER_BUSY_WAIT_MS"],
            foyer_memory_mb=values["TIMEFUSION_FOYER_MEMORY_MB"],
            foyer_disk_gb=values["TIMEFUSION_FOYER_DISK_GB"],
            foyer_ttl_seconds=values["TIMEFUSION_FOYER_TTL_SECONDS"],
            cache_dir=Path(values["TIMEFUSION_CACHE_DIR"]) if values["TIMEFUSION_CACHE_DIR"] else None,
            log_level=values["TIMEFUSION_LOG_LEVEL"],
        )


def settings_table() -> str:
    """The README's table of variables (Markdown), generated from SETTINGS."""
    rows = ["| Variable | Default | Meaning |", "|---|---|---|"]
    for s in SETTINGS:
        default = f"`{s.default}`" if s.default not in (None, "") else "(unset)"
        rows.append(f"| `{s.env}` | {default} | {s.doc} |")
    return "\n".join(rows)
