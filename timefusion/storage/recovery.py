"""What a Delta commit covers of the WAL, and the replay filter that skips it.

A commit records, per bucket key `project\\x1fbucket_start`, the highest LSN it holds of that key,
plus the bucket width it was cut with (the width is a setting and may change between restarts)
and the highest LSN applied to the buffer when it was sealed (non-decreasing from commit to
commit, so recovery can stop reading history at the first commit below the oldest WAL record).
A replayed row is already in Delta iff some commit holds its key, under that commit's width, up
to an LSN ≥ the row's LSN.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

SEP = "\x1f"

# bucket width in µs → key string → highest committed LSN
Committed = dict[int, dict[str, int]]


def key_string(project: str, bucket_start_us: int) -> str:
    return f"{project}{SEP}{bucket_start_us}"


def bucket_starts(ts: pa.Array, width_us: int) -> pa.Array:
    """Start of each timestamp's bucket (µs since epoch), floor division so pre-1970 works too."""
    us = ts.cast(pa.int64())
    return pc.multiply(pc.floor(pc.divide(us.cast(pa.float64()), width_us)), width_us).cast(pa.int64())


def merge(into: Committed, width_us: int, keys: dict[str, int]) -> None:
    target = into.setdefault(width_us, {})
    for k, lsn in keys.items():
        if lsn > target.get(k, 0):
            target[k] = lsn


def uncommitted(batch: pa.RecordBatch, lsn: int, committed: Committed) -> pa.RecordBatch:
    """The rows of WAL record `lsn` that no commit covers."""
    if not committed or batch.num_rows == 0:
        return batch
    ts = batch.column(batch.schema.get_field_index("timestamp"))
    projects = batch.column(batch.schema.get_field_index("project_id"))
    done = pa.array([False] * batch.num_rows)
    for width, keys in committed.items():
        covering = [k for k, max_lsn in keys.items() if max_lsn >= lsn]
        if not covering:
            continue
        row_keys = pc.binary_join_element_wise(projects, bucket_starts(ts, width).cast(pa.string()), SEP)
        done = pc.or_(done, pc.is_in(row_keys, pa.array(covering, pa.string())))
    if not pc.any(done).as_py():
        return batch
    return batch.filter(pc.invert(done))
