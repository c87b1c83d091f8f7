"""Settings come from the environment, are validated once, and are all documented in the README."""

from pathlib import Path

import pytest

from timefusion.config import SETTINGS, Config, ConfigError

ROOT = Path(__file__).resolve().parent.parent


def test_defaults_need_no_configuration() -> None:
    cfg = Config.from_env({})
    assert cfg.data_dir == Path("./data")
    assert cfg.wal_path == Path("./data/wal")
    assert cfg.s3_bucket is None
    assert cfg.pgwire_port == 5432
    assert cfg.bucket_duration_secs == 300
    assert cfg.buffer_max_memory_mb == 4096
    assert cfg.wal_fsync_mode == "sync_each"


def test_values_are_parsed() -> None:
    cfg = Config.from_env(
        {
            "TIMEFUSION_DATA_DIR": "/srv/tf",
            "TIMEFUSION_WAL_DIR": "/fast/wal",
            "TIMEFUSION_WAL_FSYNC_MODE": "MS",
            "AWS_ALLOW_HTTP": "true",
            "TIMEFUSION_FLUSH_INTERVAL_SECS": "2.5",
        }
    )
    assert cfg.wal_path == Path("/fast/wal")
    assert cfg.wal_fsync_mode == "ms"
    assert cfg.aws_allow_http is True
    assert cfg.flush_interval_secs == 2.5


@pytest.mark.parametrize(
    ("env", "value", "expected"),
    [
        ("PGWIRE_PORT", "fivefourthreetwo", "expected an integer"),
        ("PGWIRE_PORT", "70000", "between 0 and 65535"),
        ("TIMEFUSION_WAL_FSYNC_MODE", "always", "sync_each, ms, none"),
        ("AWS_ALLOW_HTTP", "maybe", "true or false"),
        ("TIMEFUSION_BUFFER_MAX_MEMORY_MB", "0", ">= 1"),
    ],
)
def test_bad_values_name_the_variable(env: str, value: str, expected: str) -> None:
    with pytest.raises(ConfigError) as err:
        Config.from_env({env: value})
    assert env in str(err.value)
    assert value in str(err.value)
    assert expected in str(err.value)


def test_every_setting_is_documented_in_the_readme() -> None:
    readme = (ROOT / "README.md").read_text()
    missing = [s.env for s in SETTINGS if f"`{s.env}`" not in readme]
    assert not missing, f"README lacks these settings: {missing}"
