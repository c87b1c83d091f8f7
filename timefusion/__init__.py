"""TimeFusion: an observability database on Delta Lake, queried with DataFusion over PostgreSQL wire."""

import os

__version__ = "0.1.0"

# DataFusion's Python bindings run every query on one global tokio runtime with one worker per
# core. A CPU-bound query then occupies all workers and other connections' streams wait behind it
# (measured: SELECT 1 took 270-540 ms during a 3 s query on 2 cores; with 16 workers 0.6 ms, and
# the long query was no slower, since its parallelism is set by target_partitions, not workers).
# Set before DataFusion starts its runtime; an explicit TOKIO_WORKER_THREADS wins.
os.environ.setdefault("TOKIO_WORKER_THREADS", str(max(16, 4 * (os.cpu_count() or 1))))
