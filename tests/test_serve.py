"""`timefusion serve`: bad configuration fails clearly; SIGTERM flushes the buffer and exits 0."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
from conftest import make_config

from timefusion.app import TimeFusion

T = "otel_logs_and_spans"


def serve(env: dict[str, str]) -> subprocess.Popen[str]:
    base = {
        "PGWIRE_PORT": "0",
        "TIMEFUSION_PGWIRE_HOST": "127.0.0.1",
        "TIMEFUSION_ALLOW_INSECURE_AUTH": "true",
        "TIMEFUSION_FLIGHT_ENABLED": "false",  # its fixed default port may be taken by a parallel run
    }
    return subprocess.Popen(
        [sys.executable, "-m", "timefusion.cli", "serve"],
        env={**os.environ, **base, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_bad_setting_is_a_clear_error(tmp_path: Path) -> None:
    proc = serve({"TIMEFUSION_DATA_DIR": str(tmp_path), "TIMEFUSION_WAL_FSYNC_MODE": "sometimes"})
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 2
    assert "TIMEFUSION_WAL_FSYNC_MODE='sometimes' is not valid" in out


def test_no_password_refuses_to_start(tmp_path: Path) -> None:
    proc = serve(
        {
            "TIMEFUSION_DATA_DIR": str(tmp_path),
            "TIMEFUSION_ALLOW_INSECURE_AUTH": "false",
            "PGWIRE_PASSWORD": "",
        }
    )
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 2
    assert "PGWIRE_PASSWORD is not set" in out


def test_sigterm_flushes_replayed_rows_and_exits_zero(tmp_path: Path) -> None:
    db = TimeFusion(make_config(tmp_path)).open()
    stamps = [dt.datetime(2025, 1, 17, 12, tzinfo=dt.UTC) + dt.timedelta(seconds=i) for i in range(100)]
    db.ingest(T, pa.table({"timestamp": stamps, "id": [str(i) for i in range(100)]}))
    db.close(flush=False)  # leave the rows only in the WAL

    proc = serve({"TIMEFUSION_DATA_DIR": str(tmp_path / "data"), "TIMEFUSION_FLUSH_INTERVAL_SECS": "3600"})
    assert proc.stdout is not None
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if "ready" in line:
            break
    assert any("WAL replay: 1 records, 100 rows" in line for line in lines), lines
    time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
    assert "flushed 100 rows" in out

    db = TimeFusion(make_config(tmp_path)).open()
    try:
        assert db.replay_stats["rows_restored"] == 0
        assert db.sql("SELECT COUNT(*) FROM otel_logs_and_spans").to_table().column(0)[0].as_py() == 100
    finally:
        db.close()
