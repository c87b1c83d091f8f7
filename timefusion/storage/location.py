"""Where a table lives: a local directory (the zero-config default) or `s3://bucket/prefix/table`."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from timefusion.config import Config


@dataclass(frozen=True)
class TableLocation:
    uri: str
    storage_options: dict[str, str] = field(default_factory=dict)
    local_dir: Path | None = None

    @property
    def is_local(self) -> bool:
        return self.local_dir is not None

    def prepare(self) -> None:
        if self.local_dir is not None:
            self.local_dir.mkdir(parents=True, exist_ok=True)


def s3_storage_options(config: Config) -> dict[str, str]:
    opts: dict[str, str] = {"AWS_REGION": config.aws_region}
    if config.aws_access_key_id:
        opts["AWS_ACCESS_KEY_ID"] = config.aws_access_key_id
    if config.aws_secret_access_key:
        opts["AWS_SECRET_ACCESS_KEY"] = config.aws_secret_access_key
    if config.s3_endpoint:
        opts["AWS_ENDPOINT_URL"] = config.s3_endpoint
    if config.aws_allow_http:
        opts["AWS_ALLOW_HTTP"] = "true"
    return opts


def table_location(config: Config, table: str) -> TableLocation:
    if config.s3_bucket:
        prefix = f"{config.table_prefix}/" if config.table_prefix else ""
        return TableLocation(f"s3://{config.s3_bucket}/{prefix}{table}", s3_storage_options(config))
    path = (config.data_dir / table).resolve()
    return TableLocation(str(path), {}, path)
