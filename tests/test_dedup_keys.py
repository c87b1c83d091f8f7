"""Key fingerprints (`storage/keys.py`): a function of the key alone, and the per-bucket index."""

from __future__ import annotations

import uuid

import numpy as np
import pyarrow as pa

from timefusion.storage.keys import KeyIndex, key_hashes

TS = pa.timestamp("us", tz="UTC")


def test_fingerprint_does_not_depend_on_the_other_ids_of_the_batch() -> None:
    ids = ["a", "bb", "k113", "k114", "", "x" * 9, "y" * 40, str(uuid.uuid4()), "ümlaut", "k113"]
    ts = pa.array([7, 7, 1, 1, 0, 3, 4, 5, 6, 2], TS)
    whole = key_hashes(ts, pa.array(ids))
    for i in range(len(ids)):  # alone (fixed-width path) vs in a mixed batch (general path)
        assert key_hashes(ts.slice(i, 1), pa.array(ids).slice(i, 1))[0] == whole[i]
    same_width = pa.array(["k113", "k114", "k115"])
    assert list(key_hashes(pa.array([1, 1, 9], TS), same_width)[:2]) == list(whole[2:4])
    assert whole[2] != whole[9]  # same id, other timestamp: another key
    assert len(set(whole.tolist())) == len(ids)


def test_fingerprints_of_many_uuids_are_distinct() -> None:
    n = 50_000
    ids = pa.array([str(uuid.uuid4()) for _ in range(n)])
    hashes = key_hashes(pa.array(np.zeros(n, np.int64), TS), ids)
    assert len(np.unique(hashes)) == n


def test_key_index_reports_repeats() -> None:
    index = KeyIndex()
    values = np.arange(1, 1001, dtype=np.uint64) * np.uint64(2654435761)
    for chunk in np.array_split(values, 37):
        assert not index.add(chunk)
    assert len(index) == 1000 and len(index.runs) < 12
    assert index.add(values[500:501])
    assert KeyIndex().add(np.array([5, 5], np.uint64))  # a repeat inside one batch
    assert not KeyIndex().add(np.array([5, 6], np.uint64))
