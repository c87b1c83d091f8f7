"""Child process for the crash test: writes batches forever and prints `ACK <batch>` after each ack.

Run as `python tests/crash_writer.py <data_dir> <cycle>`; the parent SIGKILLs it at random moments.
"""

from __future__ import annotations

import datetime as dt
import sys
import threading
from pathlib import Path

import pyarrow as pa

from timefusion.app import TimeFusion
from timefusion.config import Config

ROWS = 20


def main() -> None:
    data_dir, cycle = Path(sys.argv[1]), int(sys.argv[2])
    db = TimeFusion(
        Config(data_dir=data_dir, flush_interval_secs=0.3, bucket_duration_secs=60, wal_segment_mb=1)
    ).open()
    print("READY", flush=True)
    out_lock = threading.Lock()
    base = dt.datetime(2025, 1, 17, 12, tzinfo=dt.UTC)

    def writer(t: int) -> None:
        n = 0
        while True:
            name = f"c{cycle}-t{t}-{n}"
            now = dt.datetime.now(dt.UTC)
            stamps = [
                base + dt.timedelta(seconds=(cycle * 7919 + n * 31 + i * 13) % 7200) for i in range(ROWS - 2)
            ]
            stamps += [now, now]  # some rows land in the current, unfinished bucket
            db.ingest(
                "otel_logs_and_spans",
                pa.table(
                    {
                        "timestamp": pa.array(stamps, pa.timestamp("us", tz="UTC")),
                        "id": [f"{name}-{i}" for i in range(ROWS)],
                        "project_id": [f"p{(n + i) % 3}" for i in range(ROWS)],
                        "name": [name] * ROWS,
                    }
                ),
            )
            with out_lock:
                print(f"ACK {name}", flush=True)
            n += 1

    threads = [threading.Thread(target=writer, args=(t,), daemon=True) for t in range(2)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()


if __name__ == "__main__":
    main()
