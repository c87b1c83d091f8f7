"""Numba kernels that walk JSON text straight in an Arrow string array's buffers.

Why: DataFusion's Python bindings have no JSON functions, and a per-row Python UDF (orjson) costs
about 1 s per million rows (DESIGN.md §3). These kernels scan the bytes of a whole batch in compiled
code, skipping values they do not need, and only hand the rare rows they cannot decide (escaped keys,
values that PostgreSQL would re-format) back to Python.

`json_spans` finds, for every row, the byte span of the value at a path (object keys / array
indexes), like PostgreSQL's `#>`. Status per row: 0 = NULL (SQL NULL, path missing, not a container,
invalid JSON), 1 = found (`starts`/`ends`), 2 = undecided (a key with escapes: Python decides).

Duplicate keys in one object: the scan stops at the first member with the key (PostgreSQL's jsonb
keeps the last). Checking for a later duplicate means reading the rest of every row, which cost more
than the lookup itself; OpenTelemetry exporters serialise maps and never write duplicate keys. Where
the kernel hands a row to Python (escaped keys), the last duplicate wins as in jsonb.
"""

from __future__ import annotations

import numpy as np
from numba import njit

NULL, FOUND, SLOW = 0, 1, 2
NO_INDEX = np.iinfo(np.int64).min  # a path step that is not an integer (never an array index)
# byte classes for skipping containers: 1 quote, 2 opening bracket, 3 closing bracket, 0 anything else
_CLASS = np.zeros(256, dtype=np.uint8)
_CLASS[34] = 1
_CLASS[123] = _CLASS[91] = 2
_CLASS[125] = _CLASS[93] = 3


@njit(cache=True, nogil=True)
def _ws(d, i, end):  # pragma: no cover - compiled
    while i < end:
        c = d[i]
        if c != 32 and c != 9 and c != 10 and c != 13:
            break
        i += 1
    return i


@njit(cache=True, nogil=True)
def _string_end(d, i, end):  # pragma: no cover - compiled
    """`d[i]` is an opening quote: (index after the closing quote or -1, whether it has escapes)."""
    i += 1
    escaped = False
    while i < end:
        c = d[i]
        if c == 92:
            escaped = True
            i += 2
        elif c == 34:
            return i + 1, escaped
        else:
            i += 1
    return -1, escaped


@njit(cache=True, nogil=True)
def _value_end(d, i, end):  # pragma: no cover - compiled
    """Index after the JSON value starting at `d[i]`, or -1."""
    if i >= end:
        return -1
    c = d[i]
    if c == 34:
        j, _ = _string_end(d, i, end)
        return j
    if c == 123 or c == 91:
        depth = 0
        cls = _CLASS
        while i < end:
            k = cls[d[i]]
            if k == 0:
                i += 1
            elif k == 1:
                i += 1
                while i < end:  # inside a string: only a backslash or the closing quote matter
                    c = d[i]
                    if c == 92:
                        i += 2
                    elif c == 34:
                        break
                    else:
                        i += 1
                if i >= end:
                    return -1
                i += 1
            elif k == 2:
                depth += 1
                i += 1
            else:
                depth -= 1
                i += 1
                if depth == 0:
                    return i
        return -1
    j = i
    while j < end:
        c = d[j]
        if c == 44 or c == 125 or c == 93 or c == 32 or c == 9 or c == 10 or c == 13:
            break
        j += 1
    return j if j > i else -1


@njit(cache=True, nogil=True)
def _lookup(d, start, end, keys, key_offs, is_key, idx, nsteps):  # pragma: no cover - compiled
    """(status, value start, value end) of the path in one document."""
    i = _ws(d, start, end)
    if i >= end:
        return NULL, 0, 0
    vend = -1
    if nsteps == 0:
        vend = _value_end(d, i, end)
        if vend < 0:
            return NULL, 0, 0
    for step in range(nsteps):
        c = d[i]
        if c == 123:  # object: the member with this key
            if not is_key[step]:
                return NULL, 0, 0
            k0 = key_offs[step]
            klen = key_offs[step + 1] - k0
            found_s = -1
            found_e = -1
            slow = False
            i = _ws(d, i + 1, end)
            if i < end and d[i] == 125:
                return NULL, 0, 0
            while True:
                if i >= end or d[i] != 34:
                    return NULL, 0, 0
                kend, escaped = _string_end(d, i, end)
                if kend < 0:
                    return NULL, 0, 0
                if escaped:
                    slow = True
                elif kend - i - 2 == klen:
                    same = True
                    for k in range(klen):
                        if d[i + 1 + k] != keys[k0 + k]:
                            same = False
                            break
                    if same:
                        found_s = -2
                j = _ws(d, kend, end)
                if j >= end or d[j] != 58:
                    return NULL, 0, 0
                vs = _ws(d, j + 1, end)
                ve = _value_end(d, vs, end)
                if ve < 0:
                    return NULL, 0, 0
                if found_s == -2:
                    found_s = vs
                    found_e = ve
                    if not slow:
                        break  # the first match: see the module docstring on duplicate keys
                i = _ws(d, ve, end)
                if i < end and d[i] == 44:
                    i = _ws(d, i + 1, end)
                    continue
                if i < end and d[i] == 125:
                    break
                return NULL, 0, 0
            if slow:
                return SLOW, 0, 0
            if found_s < 0:
                return NULL, 0, 0
            i = found_s
            vend = found_e
        elif c == 91:  # array: the idx[step]-th element (negative counts from the end)
            want = idx[step]
            if want == NO_INDEX:
                return NULL, 0, 0
            if want < 0:
                count = 0
                j = _ws(d, i + 1, end)
                if j < end and d[j] != 93:
                    while True:
                        ve = _value_end(d, j, end)
                        if ve < 0:
                            return NULL, 0, 0
                        count += 1
                        j = _ws(d, ve, end)
                        if j < end and d[j] == 44:
                            j = _ws(d, j + 1, end)
                            continue
                        break
                want += count
                if want < 0:
                    return NULL, 0, 0
            j = _ws(d, i + 1, end)
            if j < end and d[j] == 93:
                return NULL, 0, 0
            n = 0
            while True:
                ve = _value_end(d, j, end)
                if ve < 0:
                    return NULL, 0, 0
                if n == want:
                    i = j
                    vend = ve
                    break
                n += 1
                j = _ws(d, ve, end)
                if j < end and d[j] == 44:
                    j = _ws(d, j + 1, end)
                    continue
                return NULL, 0, 0
        else:
            return NULL, 0, 0
    return FOUND, i, vend


@njit(cache=True, nogil=True)
def json_spans(d, offs, valid, keys, key_offs, is_key, idx, nsteps, starts, ends, status):  # pragma: no cover
    n = offs.shape[0] - 1
    for r in range(n):
        if not valid[r]:
            status[r] = NULL
            continue
        st, s, e = _lookup(d, offs[r], offs[r + 1], keys, key_offs, is_key, idx, nsteps)
        status[r] = st
        starts[r] = s
        ends[r] = e


@njit(cache=True, nogil=True)
def text_spans(d, starts, ends, status, as_text):  # pragma: no cover - compiled
    """Turn found value spans into output spans. `as_text` (`->>`): strings lose their quotes and
    JSON null is SQL NULL. Values PostgreSQL re-formats (objects, arrays, strings with escapes,
    numbers in exponent form) become SLOW for Python."""
    n = status.shape[0]
    for r in range(n):
        if status[r] != FOUND:
            continue
        s = starts[r]
        e = ends[r]
        c = d[s]
        if c == 34:
            for k in range(s + 1, e - 1):
                if d[k] == 92:
                    status[r] = SLOW
                    break
            if status[r] == FOUND and as_text:
                starts[r] = s + 1
                ends[r] = e - 1
        elif c == 123 or c == 91:
            status[r] = SLOW
        elif c == 110:  # null
            if as_text:
                status[r] = NULL
        elif c != 116 and c != 102:  # a number
            for k in range(s, e):
                if d[k] == 101 or d[k] == 69:
                    status[r] = SLOW
                    break


@njit(cache=True, nogil=True)
def gather(d, starts, ends, status, out_offs, out):  # pragma: no cover - compiled
    n = status.shape[0]
    for r in range(n):
        if status[r] == FOUND:
            o = out_offs[r]
            s = starts[r]
            for k in range(ends[r] - s):
                out[o + k] = d[s + k]


@njit(cache=True, nogil=True)
def equal_spans(d, starts, ends, status, needle, kind, result):  # pragma: no cover - compiled
    """Containment of one scalar needle leaf: result 1 = equal, 0 = not, 2 = undecided (escapes in a
    string, numbers spelled differently). `kind`: 0 string/bool/null (byte equality), 1 number,
    2 an empty object (the value must be an object), 3 an empty array (must be an array)."""
    n = status.shape[0]
    m = needle.shape[0]
    for r in range(n):
        if status[r] == SLOW:
            result[r] = 2
            continue
        if status[r] != FOUND:
            result[r] = 0
            continue
        s = starts[r]
        e = ends[r]
        c = d[s]
        if kind == 2:
            result[r] = 1 if c == 123 else 0
            continue
        if kind == 3:
            result[r] = 1 if c == 91 else 0
            continue
        same = e - s == m
        if same:
            for k in range(m):
                if d[s + k] != needle[k]:
                    same = False
                    break
        if same:
            result[r] = 1
        elif kind == 0 and c == 34:
            slow = False
            for k in range(s + 1, e - 1):
                if d[k] == 92:
                    slow = True
                    break
            result[r] = 2 if slow else 0
        elif kind == 1 and (c == 45 or (c >= 48 and c <= 57)):
            result[r] = 2
        else:
            result[r] = 0
