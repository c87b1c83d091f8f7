"""SIGKILL a writing process at random moments, many times: no acknowledged row is lost or duplicated.

The child (tests/crash_writer.py) prints `ACK <batch>` only after `ingest` returned. Kills land
during start-up and replay, between group commits, during flushes and between a Delta commit and
the WAL release. `TIMEFUSION_CRASH_KILLS` sets the number of kills (default 50).
"""

from __future__ import annotations

import collections
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from conftest import make_config

from timefusion.app import TimeFusion

ROWS = 20
WRITER = Path(__file__).with_name("crash_writer.py")


def run_and_kill(data_dir: Path, cycle: int, delay: float) -> list[str]:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    proc = subprocess.Popen(
        [sys.executable, str(WRITER), str(data_dir), str(cycle)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    lines: list[str] = []
    ready = threading.Event()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("READY"):
                ready.set()
            lines.append(line.strip())

    reader = threading.Thread(target=read)
    reader.start()
    ready.wait(timeout=60)
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    reader.join()
    return [line.split()[1] for line in lines if line.startswith("ACK ")]


def test_sigkill_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    kills = int(os.environ.get("TIMEFUSION_CRASH_KILLS", "50"))
    rng = random.Random(1234)
    data_dir = tmp_path / "data"
    acked: list[str] = []
    for cycle in range(kills):
        # mostly kill while writing; sometimes right at start-up (during replay / first flush)
        delay = rng.choice([0.0, 0.01]) if cycle % 5 == 0 else rng.uniform(0.05, 0.8)
        acked += run_and_kill(data_dir, cycle, delay)
    assert len(acked) > kills, "the writer must have acknowledged batches"

    db = TimeFusion(make_config(tmp_path)).open()
    try:
        ids = db.sql("SELECT id FROM otel_logs_and_spans").to_table().column("id").to_pylist()
    finally:
        db.close()
    counts = collections.Counter(ids)
    duplicated = [i for i, c in counts.items() if c > 1]
    assert not duplicated, f"{len(duplicated)} ids stored more than once, e.g. {duplicated[:5]}"
    missing = [f"{b}-{i}" for b in acked for i in range(ROWS) if f"{b}-{i}" not in counts]
    assert not missing, f"{len(missing)} acknowledged rows lost, e.g. {missing[:5]}"
