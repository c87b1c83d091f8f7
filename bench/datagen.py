"""Deterministic, vectorised generator of realistic `otel_logs_and_spans` span rows.

Used by the benchmarks (and reusable by tests): `generate_spans(n)` yields Arrow record batches that
`timefusion.write.coerce.coerce` accepts unchanged.

What the rows look like
-----------------------
- Traces of 1–~10 spans (4 on average): a root SERVER span of one of 12 HTTP endpoints
  (`GET /api/users`, `POST /api/orders`, …) and CLIENT/INTERNAL children (`SELECT users`,
  `redis GET`, `POST payments-gateway`, `render_response`, …). Roots and children each pick their
  endpoint from a Zipf-like (s = 1.2) distribution, so `GET /api/users` and `SELECT users` dominate.
- `duration` (ns) is log-normal per endpoint; a few endpoints have a tail above 1 s (about 1–2 % of
  all rows are > 1 s). `start_time = timestamp`, `end_time = timestamp + duration`.
- `status_code` is "ERROR" with a per-endpoint probability, otherwise "OK" (SERVER) or "UNSET".
  HTTP spans carry `attributes___http___response___status_code`: 2xx mostly, some 4xx on non-errors,
  and 5xx (75 %) / 4xx (25 %) on errors. Errors get `attributes___error___type` (the status code or
  an exception class), exception type/message, `status_message`, an `events` and `errors` JSON.
- `level` / `severity___*`: ERROR for errors, WARN for 4xx, INFO otherwise.
- `attributes` and `resource` are JSON text with *nested* objects (`attributes.http.response.
  status_code` ↔ `{"http":{"response":{"status_code":200}}}`); every flattened `attributes___*` /
  `resource___*` column has the same value as the JSON (the JSON holds a few extra keys such as
  `http.route`). `context` JSON matches `context___*`.
- `hashes` = `["trace_<t>"]` (+ the session id for SERVER spans), where t = trace number mod
  `trace_tags` (default 1000): every trace tag recurs through the whole time span, so a fixed
  literal such as `'trace_124' = ANY(hashes)` finds about n / 1000 rows spread over the day.
  `context___trace_id` is a unique 32-hex-digit id per trace.
- `id` is a unique UUID-like string (deterministic); `parent_id` is the root span's
  `context___span_id` for children and NULL for roots.
- `timestamp`: uniform over [start, start + span). With `ordered=True` (default) the rows come out
  sorted ascending by `timestamp` (stratified: row i falls in slot i of n equal slots), like a
  live feed; with `ordered=False` timestamps are i.i.d. uniform (unsorted).
- `summary`: `[name, "<http status or status_code>", "<duration ms>ms"]`.

Determinism: the rows depend only on (n, project_id, start, span, seed, ordered, trace_tags), not on
`batch_size` — rows are generated in fixed chunks of 65,536 from `np.random.default_rng([seed,
crc32(project_id), chunk])` and re-sliced. 1M rows take about 2–3 s on one core.
"""

from __future__ import annotations

import datetime as dt
import functools
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

CHUNK = 1 << 16
TIMESTAMP = pa.timestamp("us", tz="UTC")
STR = pa.string()

# -- endpoints ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Endpoint:
    name: str
    cls: str  # http_server | http_client | db | internal
    median_ms: float
    sigma: float
    error_rate: float
    service: str = ""  # roots only: the service (resource) that serves it
    method: str | None = None
    route: str | None = None  # http_server: route template; http_client: URL path
    server: tuple[str, int] | None = None  # peer address for client spans
    db_system: str | None = None
    db_collection: str | None = None
    db_operation: str | None = None
    db_text: str | None = None
    code_function: str | None = None
    code_file: str | None = None
    code_line: int | None = None

    @property
    def kind(self) -> str:
        return {"http_server": "SERVER", "internal": "INTERNAL"}.get(self.cls, "CLIENT")


def _srv(name: str, median: float, sigma: float, err: float, service: str) -> Endpoint:
    method, route = name.split(" ", 1)
    return Endpoint(name, "http_server", median, sigma, err, service, method, route)


ROOTS: tuple[Endpoint, ...] = (
    _srv("GET /api/users", 30, 0.5, 0.01, "users-service"),
    _srv("GET /api/products", 40, 0.6, 0.01, "catalog-service"),
    _srv("POST /api/orders", 150, 0.7, 0.03, "orders-service"),
    _srv("GET /api/orders", 60, 0.6, 0.015, "orders-service"),
    _srv("GET /api/users/{id}", 20, 0.5, 0.01, "users-service"),
    _srv("POST /api/auth/login", 120, 0.5, 0.06, "users-service"),
    _srv("GET /api/search", 350, 1.0, 0.02, "catalog-service"),
    _srv("POST /api/payments", 500, 0.9, 0.04, "payments-service"),
    _srv("PUT /api/users/{id}", 50, 0.6, 0.02, "users-service"),
    _srv("DELETE /api/orders/{id}", 45, 0.6, 0.02, "orders-service"),
    _srv("GET /api/reports/daily", 1500, 0.6, 0.05, "reports-service"),
    _srv("GET /health", 2, 0.3, 0.0, "api-gateway"),
)

_PG = ("postgres.internal", 5432)


def _db(name: str, median: float, sigma: float, err: float, coll: str, text: str) -> Endpoint:
    system, server, op = (
        ("redis", ("redis.internal", 6379), "GET")
        if name.startswith("redis")
        else ("postgresql", _PG, name.split()[0])
    )
    return Endpoint(
        name,
        "db",
        median,
        sigma,
        err,
        server=server,
        db_system=system,
        db_collection=coll or None,
        db_operation=op,
        db_text=text,
    )


def _client(name: str, median: float, sigma: float, err: float, path: str, host: str, port: int) -> Endpoint:
    return Endpoint(
        name, "http_client", median, sigma, err, method=name.split()[0], route=path, server=(host, port)
    )


def _code(name: str, median: float, sigma: float, err: float, file: str, line: int) -> Endpoint:
    return Endpoint(name, "internal", median, sigma, err, code_function=name, code_file=file, code_line=line)


CHILDREN: tuple[Endpoint, ...] = (
    _db("SELECT users", 4, 0.8, 0.002, "users", "SELECT id, email, name FROM users WHERE id = $1"),
    _db("redis GET", 0.8, 0.6, 0.001, "", "GET session:*"),
    _db("SELECT orders", 8, 0.9, 0.003, "orders", "SELECT * FROM orders WHERE user_id = $1 LIMIT 50"),
    _code("render_response", 3, 0.7, 0.001, "app/views/render.py", 88),
    _db("INSERT orders", 12, 0.7, 0.01, "orders", "INSERT INTO orders (user_id, total) VALUES ($1, $2)"),
    _db("SELECT products", 6, 0.8, 0.002, "products", "SELECT * FROM products WHERE category = $1"),
    _client("POST payments-gateway", 250, 1.0, 0.03, "/v1/charges", "api.payments.example", 443),
    _code("validate_request", 1, 0.5, 0.005, "app/middleware/validate.py", 31),
    _db("UPDATE users", 10, 0.7, 0.005, "users", "UPDATE users SET last_seen = now() WHERE id = $1"),
    _client("GET inventory-service", 40, 0.7, 0.01, "/v2/stock", "inventory.internal", 8080),
)

ENDPOINTS: tuple[Endpoint, ...] = ROOTS + CHILDREN
ENDPOINT_NAMES: tuple[str, ...] = tuple(e.name for e in ENDPOINTS)
CLASSES = ("http_server", "http_client", "db", "internal")


def _zipf(k: int, s: float = 1.2) -> np.ndarray:
    w = 1.0 / np.arange(1, k + 1) ** s
    return w / w.sum()


ROOT_P = _zipf(len(ROOTS))
CHILD_P = _zipf(len(CHILDREN))

# -- resources ------------------------------------------------------------------------------------

SERVICES: dict[str, tuple[str, tuple[str, str]]] = {  # name -> (sdk language, two versions in rollout)
    "users-service": ("python", ("2.14.0", "2.15.1")),
    "catalog-service": ("go", ("1.8.3", "1.9.0")),
    "orders-service": ("java", ("3.2.7", "3.3.0")),
    "payments-service": ("nodejs", ("0.9.12", "1.0.0")),
    "reports-service": ("python", ("5.0.2", "5.0.3")),
    "api-gateway": ("go", ("1.21.4", "1.21.5")),
}
SERVICE_NAMES = tuple(SERVICES)
INSTANCES = 3
SDK_VERSION = {"python": "1.29.0", "go": "1.33.0", "java": "1.45.0", "nodejs": "1.30.1"}


def _resource_vocab() -> tuple[list[str], ...]:
    """Every (service, version, instance) combination: flattened values and the JSON text."""
    names, versions, instances, languages, sdk_versions, jsons = [], [], [], [], [], []
    for svc, (lang, vers) in SERVICES.items():
        for ver in vers:
            for inst in range(INSTANCES):
                iid = f"{svc}-{zlib.crc32(f'{svc}{inst}'.encode()):08x}"
                names.append(svc)
                versions.append(ver)
                instances.append(iid)
                languages.append(lang)
                sdk_versions.append(SDK_VERSION[lang])
                jsons.append(
                    f'{{"service":{{"name":"{svc}","version":"{ver}","instance":{{"id":"{iid}"}},'
                    f'"namespace":"shop"}},"deployment":{{"environment":{{"name":"production"}}}},'
                    f'"telemetry":{{"sdk":{{"language":"{lang}","name":"opentelemetry",'
                    f'"version":"{SDK_VERSION[lang]}"}}}}}}'
                )
    return names, versions, instances, languages, sdk_versions, jsons


_RES = _resource_vocab()

USER_AGENTS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/131.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_2) AppleWebKit/605.1.15 Version/17.2 Safari/605.1.15",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_2 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148",
    "okhttp/4.12.0",
    "python-requests/2.32.3",
    "curl/8.5.0",
)
SEARCH_TERMS = ("shoes", "laptop", "coffee", "headphones", "desk", "lamp", "backpack", "watch")
OK_4XX = np.array([400, 401, 403, 404, 404, 404, 409, 422, 429])
ERR_5XX = np.array([500, 500, 500, 502, 503, 504])
ERR_4XX = np.array([400, 401, 403, 429])
EXC = {  # exception classes per span class, with a message each
    "http_server": (("TimeoutError", "upstream request timed out"), ("ValueError", "invalid order state")),
    "http_client": (("ConnectionResetError", "connection reset by peer"), ("TimeoutError", "read timed out")),
    "db": (
        ("DeadlockDetected", "deadlock detected"),
        ("QueryCanceled", "canceling statement due to statement timeout"),
        ("UniqueViolation", "duplicate key value violates unique constraint"),
    ),
    "internal": (("KeyError", "missing key: user_id"), ("TypeError", "unsupported operand type")),
}
LEVELS = ("INFO", "WARN", "ERROR")
SEVERITY_NUMBER = (9, 13, 17)
SEVERITY_JSON = [f'{{"severity_text":"{t}","severity_number":{s}}}' for t, s in zip(LEVELS, SEVERITY_NUMBER)]


# -- small vectorised helpers ---------------------------------------------------------------------
# Arrow's element-wise string concatenation costs ~12 ns per row per argument, so string columns are
# mostly `take`s from precomputed vocabularies and JSON is assembled from few, large fragments.

_HEX = np.frombuffer(b"0123456789abcdef", np.uint8)


def _fixed_strings(chars: np.ndarray) -> pa.Array:
    """An (n, w) uint8 array of ASCII → a string array of n values of width w."""
    n, w = chars.shape
    offsets = np.arange(0, (n + 1) * w, w, dtype=np.int32)
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(np.ascontiguousarray(chars)))


def _hex(raw: np.ndarray) -> np.ndarray:
    """(n, k) bytes → (n, 2k) ASCII hex digits."""
    out = np.empty((raw.shape[0], raw.shape[1] * 2), np.uint8)
    out[:, 0::2] = _HEX[raw >> 4]
    out[:, 1::2] = _HEX[raw & 15]
    return out


def _template(n: int, parts: Sequence[str | np.ndarray]) -> pa.Array:
    """Fixed-width strings: literal parts and (n, w) ASCII arrays laid side by side."""
    widths = [len(p) if isinstance(p, str) else p.shape[1] for p in parts]
    out = np.empty((n, sum(widths)), np.uint8)
    pos = 0
    for p, w in zip(parts, widths):
        out[:, pos : pos + w] = np.frombuffer(p.encode(), np.uint8) if isinstance(p, str) else p
        pos += w
    return _fixed_strings(out)


def _uuid(raw: np.ndarray) -> pa.Array:
    """(n, 16) bytes → 'xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx' strings."""
    raw = raw.copy()
    raw[:, 6] = (raw[:, 6] & 0x0F) | 0x40
    h = _hex(raw)
    parts = [h[:, 0:8], "-", h[:, 8:12], "-", h[:, 12:16], "-", h[:, 16:20], "-", h[:, 20:32]]
    return _template(len(raw), parts)


def _take(vocab: pa.Array, idx: np.ndarray, keep: np.ndarray | None = None) -> pa.Array:
    """vocab[idx], NULL where `keep` is False."""
    return vocab.take(pa.array(idx, mask=None if keep is None else ~keep))


def _vocab(values: Sequence[object], idx: np.ndarray, keep: np.ndarray | None = None, typ=STR) -> pa.Array:
    return _take(pa.array(values, typ), idx, keep)


def _const(value: object, n: int, typ: pa.DataType = STR, keep: np.ndarray | None = None) -> pa.Array:
    return _take(pa.array([value], typ), np.zeros(n, np.int64), keep)


@functools.cache
def _numbered(prefix: str, k: int, suffix: str = "") -> pa.Array:
    """[f"{prefix}{i}{suffix}" for i in range(k)], built once."""
    nums = pa.array(np.arange(k)).cast(STR)
    return pc.binary_join_element_wise(pa.scalar(prefix), nums, pa.scalar(suffix), "")


@functools.cache
def _client_ips() -> pa.Array:
    r = np.random.default_rng(7)
    return pa.array([f"10.{a}.{b}.{c}" for a, b, c in r.integers([0, 0, 1], [8, 256, 255], (4096, 3))], STR)


def _cat(*parts: object) -> pa.Array:
    """Element-wise concatenation of string arrays and literals; NULL if any array part is NULL."""
    args = [pa.scalar(p, STR) if isinstance(p, str) else p for p in parts]
    return pc.binary_join_element_wise(*args, "")


def _cat_where(keep: np.ndarray, *parts: object) -> pa.Array:
    """`_cat(*parts)` computed only on rows where `keep` (array parts are full length); "" elsewhere."""
    sel = np.flatnonzero(keep)
    take = pa.array(sel)
    sub = _cat(*[p.take(take) if isinstance(p, pa.Array) else p for p in parts])
    pos = np.where(keep, np.cumsum(keep) - 1, len(sel))
    return pa.concat_arrays([sub, pa.array([""], STR)]).take(pa.array(pos))


def _interleave_lists(first: pa.Array, second: pa.Array, has_second: np.ndarray) -> pa.Array:
    """list<utf8> rows [first[i]] or [first[i], second[i]] where has_second[i]."""
    n = len(first)
    lengths = 1 + has_second.astype(np.int32)
    offsets = np.zeros(n + 1, np.int32)
    np.cumsum(lengths, out=offsets[1:])
    take = np.empty(offsets[-1], np.int64)
    take[offsets[:-1]] = np.arange(n)
    sel = np.flatnonzero(has_second)
    take[offsets[:-1][sel] + 1] = n + sel
    values = pa.concat_arrays([first, second]).take(pa.array(take))
    return pa.ListArray.from_arrays(pa.array(offsets), values)


def _fixed_lists(*columns: pa.Array) -> pa.Array:
    """list<utf8> rows [c0[i], c1[i], …]."""
    n, k = len(columns[0]), len(columns)
    take = (np.arange(n)[:, None] + np.arange(k)[None, :] * n).reshape(-1)
    values = pa.concat_arrays(list(columns)).take(pa.array(take))
    return pa.ListArray.from_arrays(pa.array(np.arange(0, n * k + 1, k, dtype=np.int32)), values)


# -- per-endpoint and per-error vocabularies -------------------------------------------------------


def _json_head(e: Endpoint) -> str:
    """The start of an endpoint's attributes JSON: everything that is constant for the endpoint."""
    if e.cls == "internal":
        return (
            f'{{"code":{{"function":{{"name":"{e.code_function}"}},"file":{{"path":"{e.code_file}"}},'
            f'"line":{{"number":{e.code_line}}}}}'
        )
    host, port = e.server or ("api.shop.example", 443)
    head = f'{{"server":{{"address":"{host}","port":{port}}}'
    if e.cls == "db":
        coll = f',"collection":{{"name":"{e.db_collection}"}}' if e.db_collection else ""
        return (
            f'{head},"db":{{"system":{{"name":"{e.db_system}"}}{coll},"namespace":"shop",'
            f'"operation":{{"name":"{e.db_operation}"}},"query":{{"summary":"{e.name}","text":"{e.db_text}"}}}}'
        )
    route = f'"route":"{e.route}",' if e.cls == "http_server" else ""
    return f'{head},"http":{{{route}"request":{{"method":"{e.method}"'  # left open for body/response


def _server(e: Endpoint) -> tuple[str | None, int | None]:
    if e.cls == "internal":
        return None, None
    return e.server or ("api.shop.example", 443)


ERR_CODES = tuple(sorted({*ERR_5XX.tolist(), *ERR_4XX.tolist()}))


@functools.cache
def _error_vocab() -> dict[str, pa.Array]:
    """Index 0: no error; 1 + cls*6 + k: an exception; 1 + 24 + j: HTTP status ERR_CODES[j]."""
    kinds: list[tuple[str | None, str | None, str | None, str | None]] = [(None, None, None, None)]
    for c in CLASSES:
        opts = EXC[c]
        for k in range(6):
            t, m = opts[k % len(opts)]
            kinds.append((t, t, m, m))  # error.type, exception.type, exception.message, status_message
    kinds += [(str(code), None, None, f"HTTP {code}") for code in ERR_CODES]
    frag, events, errors = [], [], []
    for et, xt, xm, sm in kinds:
        f = "" if et is None else f',"error":{{"type":"{et}"}}'
        if xt is not None:
            f += f',"exception":{{"type":"{xt}","message":"{xm}"}}'
        frag.append(f)
        attrs = f'{{"exception.type":"{xt}","exception.message":"{xm}"}}'
        events.append(None if xt is None else f'[{{"name":"exception","attributes":{attrs}}}]')
        errors.append(None if et is None else f'[{{"type":"{et}","message":"{sm}"}}]')
    cols = list(zip(*kinds))
    return {
        "error_type": pa.array(cols[0], STR),
        "exception_type": pa.array(cols[1], STR),
        "exception_message": pa.array(cols[2], STR),
        "status_message": pa.array(cols[3], STR),
        "frag": pa.array(frag, STR),
        "events": pa.array(events, STR),
        "errors": pa.array(errors, STR),
    }


_NET_UA = pa.array(
    [
        f'"network":{{"protocol":{{"name":"http","version":"{v}"}}}},"user_agent":{{"original":"{ua}"}}'
        for v in ("1.1", "2")
        for ua in USER_AGENTS
    ],
    STR,
)
_QUERIES = [f"q={t}&page={p}" for t in SEARCH_TERMS for p in range(1, 6)]


# -- one chunk ------------------------------------------------------------------------------------


def _chunk(
    chunk_no: int,
    lo: int,
    hi: int,
    n_total: int,
    project_id: str,
    start_us: int,
    span_us: int,
    seed: int,
    ordered: bool,
    trace_tags: int,
) -> pa.RecordBatch:
    """Rows lo..hi (global row numbers) of the data set, all from one RNG stream."""
    n = hi - lo
    rng = np.random.default_rng([seed, zlib.crc32(project_id.encode()), chunk_no])
    rows = np.arange(n)
    E = ENDPOINTS

    # traces: a root starts on average every 4th row; each row knows its root
    is_root = rng.random(n) < 0.25
    is_root[0] = True
    root = np.maximum.accumulate(np.where(is_root, rows, 0))
    trace_local = np.cumsum(is_root) - 1
    trace_no = chunk_no * CHUNK + trace_local

    ep = np.where(
        is_root,
        rng.choice(len(ROOTS), n, p=ROOT_P),
        len(ROOTS) + rng.choice(len(CHILDREN), n, p=CHILD_P),
    )
    cls = np.array([CLASSES.index(e.cls) for e in E])[ep]
    is_server, is_http, is_db, is_internal = cls == 0, cls <= 1, cls == 2, cls == 3
    service = np.array([SERVICE_NAMES.index(e.service) if e.service else 0 for e in E])[ep[root]]
    res_idx = ((service * 2 + rng.integers(0, 2, n)) * INSTANCES + rng.integers(0, INSTANCES, n))[root]

    # time, duration
    if ordered:
        ts = start_us + ((lo + rows + rng.random(n)) * (span_us / n_total)).astype(np.int64)
    else:
        ts = start_us + (rng.random(n) * span_us).astype(np.int64)
    mu = np.log(np.array([e.median_ms for e in E]) * 1e6)[ep]
    sigma = np.array([e.sigma for e in E])[ep]
    duration = np.exp(mu + sigma * rng.standard_normal(n)).astype(np.int64) + 1000
    end = ts + duration // 1000
    observed = end + rng.integers(5_000, 2_000_000, n)

    # outcome
    is_err = rng.random(n) < np.array([e.error_rate for e in E])[ep]
    methods = [e.method for e in E]
    ok_code = np.array([{"POST": 201, "DELETE": 204}.get(m or "", 200) for m in methods])[ep]
    http_status = np.where(rng.random(n) < 0.04, OK_4XX[rng.integers(0, len(OK_4XX), n)], ok_code)
    err_5xx = rng.random(n) < 0.75
    err_code_pos = np.where(
        err_5xx,
        np.searchsorted(ERR_CODES, ERR_5XX)[rng.integers(0, len(ERR_5XX), n)],
        np.searchsorted(ERR_CODES, ERR_4XX)[rng.integers(0, len(ERR_4XX), n)],
    )
    http_status = np.where(is_err, np.array(ERR_CODES)[err_code_pos], http_status)
    is_4xx = is_http & ~is_err & (http_status >= 400)
    status_idx = np.where(is_err, 1, np.where(is_server & ~is_4xx, 0, 2))  # OK, ERROR, UNSET
    level_idx = np.where(is_err, 2, np.where(is_4xx, 1, 0))
    code_as_type = is_http & (rng.random(n) < 0.6)  # error.type = "500" rather than an exception class
    exc_kind = 1 + cls * 6 + rng.integers(0, 6, n)
    err_kind = np.where(~is_err, 0, np.where(code_as_type, 1 + 6 * len(CLASSES) + err_code_pos, exc_kind))
    errv = _error_vocab()

    # ids
    raw_id = rng.integers(0, 256, (n, 16), dtype=np.uint8)
    unique = ((lo + rows).astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)) & np.uint64((1 << 62) - 1)
    raw_id[:, 8:16] = unique.astype(">u8").view(np.uint8).reshape(n, 8)
    raw_id[:, 8] |= 0x80  # the UUID variant bits; the low 62 bits are a bijection of the row number
    ids = _uuid(raw_id)
    span_hex = _hex(rng.integers(0, 256, (n, 8), dtype=np.uint8))
    trace_hex = _hex(rng.integers(0, 256, (int(trace_local[-1]) + 1, 16), dtype=np.uint8))[trace_local]
    span_ids = _fixed_strings(span_hex)
    trace_ids = _fixed_strings(trace_hex)
    parent = _take(span_ids, root, ~is_root)
    context_json = _template(
        n, ['{"trace_id":"', trace_hex, '","span_id":"', span_hex, '","trace_flags":"01","is_remote":false}']
    )

    name = _vocab(ENDPOINT_NAMES, ep)
    status_code = _vocab(("OK", "ERROR", "UNSET"), status_idx)
    level = _vocab(LEVELS, level_idx)
    http_status_arr = pa.array(http_status.astype(np.int32), mask=~is_http)
    http_status_str = http_status_arr.cast(STR)

    # HTTP attributes (server and client spans)
    has_id = np.array(["{id}" in (e.route or "") for e in E])[ep]
    route_prefix = _vocab([(e.route or "").replace("{id}", "") for e in E], ep)
    path_id = _take(_numbered("", 100_000), rng.integers(1, 100_000, n))
    path = pc.if_else(pa.array(has_id), _cat(route_prefix, path_id), route_prefix)
    path = _take(path, rows, is_http)
    is_search = ep == ENDPOINT_NAMES.index("GET /api/search")
    q_idx = rng.integers(0, len(_QUERIES), n)
    query = _vocab(_QUERIES, q_idx, is_search)
    url_full = _cat_where(
        is_http,
        _vocab([f"https://{_server(e)[0]}" for e in E], ep),
        path,
        _vocab(["", *(f"?{q}" for q in _QUERIES)], np.where(is_search, 1 + q_idx, 0)),
    )
    url_full = _take(url_full, rows, is_http)
    method = _vocab(methods, ep, is_http)
    client_addr = _take(_client_ips(), rng.integers(0, 4096, n), is_server)
    client_port = pa.array(rng.integers(32768, 61000, n).astype(np.int32), mask=~is_server)
    net_ua = rng.integers(0, len(_NET_UA), n)
    proto_ver = _vocab(["1.1"] * len(USER_AGENTS) + ["2"] * len(USER_AGENTS), net_ua, is_server)
    user_agent = _vocab(USER_AGENTS * 2, net_ua, is_server)
    session = _take(_numbered("sess_", 50_000), rng.integers(0, 50_000, n), is_server)
    user_id = _take(_numbered("user_", 20_000), rng.zipf(1.3, n) % 20_000, is_server)
    has_body = is_http & np.isin(ep, [i for i, m in enumerate(methods) if m in ("POST", "PUT")])
    body_size = pa.array(np.exp(rng.normal(6.5, 1.0, n)).astype(np.int64), mask=~has_body)
    server_addr = _vocab([_server(e)[0] for e in E], ep)
    server_port = _vocab([_server(e)[1] for e in E], ep, typ=pa.int32())

    query_frag = _vocab(["", *(f',"query":"{q}"' for q in _QUERIES)], np.where(is_search, 1 + q_idx, 0))
    # attributes JSON: endpoint head + optional fragments, from exactly the values above
    attributes = _cat(
        _vocab([_json_head(e) for e in E], ep),
        _cat_where(has_body, ',"body":{"size":', body_size.cast(STR), "}"),
        _cat_where(
            is_http,
            '},"response":{"status_code":',
            http_status_str,
            '}},"url":{"scheme":"https","path":"',
            path,
            '","full":"',
            url_full,
            '"',
            query_frag,
            "}",
        ),
        _cat_where(
            is_server,
            ',"client":{"address":"',
            client_addr,
            '","port":',
            client_port.cast(STR),
            "},",
            _take(_NET_UA, net_ua),
            ',"session":{"id":"',
            session,
            '"},"user":{"id":"',
            user_id,
            '"}',
        ),
        _take(errv["frag"], err_kind),
        "}",
    )

    res = _RES
    resource = _vocab(res[5], res_idx)
    dur_ms = _cat(pa.array(duration // 1_000_000).cast(STR), "ms")
    summary = _fixed_lists(name, pc.coalesce(http_status_str, status_code), dur_ms)
    trace_tag = _take(_numbered("trace_", trace_tags), trace_no % trace_tags)
    hashes = _interleave_lists(trace_tag, session.fill_null(""), is_server)
    ts_arr = pa.array(ts, pa.int64()).cast(TIMESTAMP)

    cols: dict[str, pa.Array] = {
        "date": ts_arr.cast(pa.date32()),
        "timestamp": ts_arr,
        "observed_timestamp": pa.array(observed, pa.int64()).cast(TIMESTAMP),
        "id": ids,
        "parent_id": parent,
        "hashes": hashes,
        "name": name,
        "kind": _vocab([e.kind for e in E], ep),
        "status_code": status_code,
        "status_message": _take(errv["status_message"], err_kind),
        "level": level,
        "severity": _vocab(SEVERITY_JSON, level_idx),
        "severity___severity_text": level,
        "severity___severity_number": _vocab(SEVERITY_NUMBER, level_idx, typ=pa.int32()),
        "duration": pa.array(duration, pa.int64()),
        "start_time": ts_arr,
        "end_time": pa.array(end, pa.int64()).cast(TIMESTAMP),
        "context": context_json,
        "context___trace_id": trace_ids,
        "context___span_id": span_ids,
        "context___trace_flags": _const("01", n),
        "context___is_remote": _const(False, n, pa.bool_()),
        "events": _take(errv["events"], err_kind),
        "attributes": attributes,
        "attributes___client___address": client_addr,
        "attributes___client___port": client_port,
        "attributes___server___address": _take(server_addr, rows, ~is_internal),
        "attributes___server___port": _take(server_port, rows, ~is_internal),
        "attributes___network___protocol___name": _const("http", n, keep=is_server),
        "attributes___network___protocol___version": proto_ver,
        "attributes___code___file___path": _vocab([e.code_file for e in E], ep),
        "attributes___code___function___name": _vocab([e.code_function for e in E], ep),
        "attributes___code___line___number": _vocab([e.code_line for e in E], ep, typ=pa.int32()),
        "attributes___error___type": _take(errv["error_type"], err_kind),
        "attributes___exception___type": _take(errv["exception_type"], err_kind),
        "attributes___exception___message": _take(errv["exception_message"], err_kind),
        "attributes___url___full": url_full,
        "attributes___url___path": path,
        "attributes___url___query": query,
        "attributes___url___scheme": _const("https", n, keep=is_http),
        "attributes___user_agent___original": user_agent,
        "attributes___http___request___method": method,
        "attributes___http___response___status_code": http_status_arr,
        "attributes___http___request___body___size": body_size,
        "attributes___session___id": session,
        "attributes___db___system___name": _vocab([e.db_system for e in E], ep),
        "attributes___db___collection___name": _vocab([e.db_collection for e in E], ep),
        "attributes___db___namespace": _const("shop", n, keep=is_db),
        "attributes___db___operation___name": _vocab([e.db_operation for e in E], ep),
        "attributes___db___query___summary": _take(name, rows, is_db),
        "attributes___db___query___text": _vocab([e.db_text for e in E], ep),
        "attributes___user___id": user_id,
        "resource": resource,
        "resource___service___name": _vocab(res[0], res_idx),
        "resource___service___version": _vocab(res[1], res_idx),
        "resource___service___instance___id": _vocab(res[2], res_idx),
        "resource___service___namespace": _const("shop", n),
        "resource___deployment___environment___name": _const("production", n),
        "resource___telemetry___sdk___language": _vocab(res[3], res_idx),
        "resource___telemetry___sdk___name": _const("opentelemetry", n),
        "resource___telemetry___sdk___version": _vocab(res[4], res_idx),
        "project_id": _const(project_id, n),
        "summary": summary,
        "errors": _take(errv["errors"], err_kind),
        "message_size_bytes": pc.add(
            pc.binary_length(attributes).cast(pa.int64()), pc.binary_length(resource).cast(pa.int64())
        ),
        "deleted": _const(False, n, pa.bool_()),
    }
    return pa.RecordBatch.from_pydict(cols)


def _parse_time(value: str | dt.datetime) -> int:
    t = value if isinstance(value, dt.datetime) else dt.datetime.fromisoformat(value)
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.UTC)
    return int(t.timestamp()) * 1_000_000 + t.microsecond


def generate_spans(
    n: int,
    *,
    project_id: str = "prod-api-001",
    start: str | dt.datetime = "2025-01-17 00:00:00",
    span: dt.timedelta = dt.timedelta(days=1),
    seed: int = 42,
    batch_size: int = 100_000,
    ordered: bool = True,
    trace_tags: int = 1000,
) -> Iterator[pa.RecordBatch]:
    """Yield `n` span rows of `project_id` over [start, start + span) in batches of `batch_size`.

    `start` is naive UTC (or an aware datetime). Rows come out sorted by timestamp when `ordered`.
    """
    if n <= 0:
        return
    if batch_size <= 0:
        raise ValueError("batch_size must be positive")
    start_us = _parse_time(start)
    span_us = int(span.total_seconds() * 1_000_000)
    pending: list[pa.RecordBatch] = []  # zero-copy slices of generated chunks
    pending_rows = 0
    for chunk_no, lo in enumerate(range(0, n, CHUNK)):
        hi = min(lo + CHUNK, n)
        pending.append(_chunk(chunk_no, lo, hi, n, project_id, start_us, span_us, seed, ordered, trace_tags))
        pending_rows += hi - lo
        while pending_rows >= batch_size or (hi == n and pending_rows):
            want = min(batch_size, pending_rows)
            parts, got = [], 0
            while got < want:
                b = pending.pop(0)
                if got + b.num_rows > want:
                    pending.insert(0, b.slice(want - got))
                    b = b.slice(0, want - got)
                parts.append(b)
                got += b.num_rows
            pending_rows -= want
            yield parts[0] if len(parts) == 1 else pa.concat_batches(parts)


DEFAULT_PROJECTS: tuple[tuple[str, float], ...] = (
    ("prod-api-001", 0.6),
    ("prod-web-002", 0.3),
    ("staging-api-003", 0.1),
)


def generate_project_mix(
    n: int,
    *,
    projects: Sequence[tuple[str, float]] = DEFAULT_PROJECTS,
    start: str | dt.datetime = "2025-01-17 00:00:00",
    span: dt.timedelta = dt.timedelta(days=1),
    seed: int = 42,
    batch_size: int = 100_000,
    ordered: bool = True,
    trace_tags: int = 1000,
) -> Iterator[pa.RecordBatch]:
    """`n` rows shared among `projects` by weight; batches (one project each) alternate round-robin.

    Each project's rows are exactly `generate_spans(share, project_id=p, seed=seed, …)`.
    """
    total = sum(w for _, w in projects)
    shares = [int(n * w / total) for _, w in projects]
    shares[0] += n - sum(shares)
    gens = [
        generate_spans(
            k,
            project_id=p,
            start=start,
            span=span,
            seed=seed,
            batch_size=batch_size,
            ordered=ordered,
            trace_tags=trace_tags,
        )
        for (p, _), k in zip(projects, shares)
    ]
    while gens:
        for g in list(gens):
            batch = next(g, None)
            if batch is None:
                gens.remove(g)
            else:
                yield batch


def as_table(batches: Iterator[pa.RecordBatch]) -> pa.Table:
    """Collect a generator's batches into one table."""
    batches = list(batches)
    return pa.Table.from_batches(batches) if batches else pa.table({})
