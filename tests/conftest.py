"""Shared fixtures: an in-process TimeFusion on a temporary directory."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from timefusion.app import TimeFusion

from timefusion.config import Config


def make_config(tmp: Path, **overrides: object) -> Config:
    values: dict[str, object] = {
        "data_dir": tmp / "data",
        "flush_interval_secs": 3600.0,  # tests flush explicitly
        "wal_fsync_mode": "sync_each",
    }
    values.update(overrides)
    return Config(**values)  # type: ignore[arg-type]


@pytest.fixture
def db(tmp_path: Path) -> Iterator[TimeFusion]:
    from timefusion.app import TimeFusion

    instance = TimeFusion(make_config(tmp_path)).open()
    try:
        yield instance
    finally:
        instance.close()
