"""Where a table lives: a local directory (the zero-config default) or `s3://bucket/prefix/table`."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from timefusion.config import Config
from timefusion.storage.s3 import S3Settings


@dataclass(frozen=True)
class TableLocation:
    uri: str
    storage_options: dict[str, str] = field(default_factory=dict)
    local_dir: Path | None = None
    s3: S3Settings | None = None

    @property
    def is_local(self) -> bool:
        return self.local_dir is not None

    def prepare(self) -> None:
        if self.local_dir is not None:
            self.local_dir.mkdir(parents=True, exist_ok=True)


def s3_storage_options(config: Config) -> dict[str, str]:
    """delta-rs storage options for the configured bucket (credentials, endpoint, timeouts)."""
    return S3Settings.from_config(config).delta_options()


def table_location(config: Config, table: str) -> TableLocation:
    if config.s3_bucket:
        s3 = S3Settings.from_config(config)
        return TableLocation(s3.table_uri(table), s3.delta_options(), None, s3)
    path = (config.data_dir / table).resolve()
    return TableLocation(str(path), {}, path)
