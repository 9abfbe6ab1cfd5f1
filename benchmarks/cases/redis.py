"""Redis Streams: onepass K-Means (d=20) fed by a Redis stream vs by a local Parquet file, same rows; memory flat.

A real ``redis-server`` (from the machine, started by ``tests/transports/redis_server.py``)
on loopback, one per case, loading a snapshot written once into ``benchmarks/data``
(``redis_{fields,csv}_k10_d20_n{N}_s{seed}.rdb``): the memory family's blobs (k=10, d=20,
the same rows as its Parquet files) as the entries of one stream, each value written
``%.6f`` (zero-padded to a fixed width): one field per column (``x0``...``x19``, the
default "fields" format), or one field ``data`` holding the row as CSV (``format="csv"``).

Throughput: ``onepass.train("kmeans", k=10, batch_size=4096)`` on the stream (a fresh
consumer group each time, no checkpoints: the entries are acknowledged at the end, timed),
1M entries (``--quick`` 100k), next to the same call on the Parquet file; the server's own
CPU time per entry (``INFO cpu``) and the consumer's are shown too: redis-server shares the
2 cores with the consumer. Each layout read twice: through the consumer group (every entry
in the server's pending lists until acknowledged: what lets several workers split a stream)
and by an exclusive reader (``?exclusive=1``: ``XREAD`` after the checkpoint's ID, nothing
pending, for a stream read by one job). The target: >= 300k rows/s.

Memory: peak RSS of the consumer process (the server is another process) training on
the fields stream at 500k and 5M entries (``--quick``: 100k and 500k); the target, as
for files: peak at the larger size / at the smaller <= 1.15.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks._measure import Meter
from benchmarks._registry import Config, Family, Result, Table, Task, case
from benchmarks.render import fmt_int, fmt_mb, fmt_rate, load_cells, target_cell

K = 10
D = 20
BATCH_SIZE = 4096
STREAM = b"bench"
TARGET_ROWS_PER_S = 300_000
TARGET_GROWTH = 1.15
FORMATS = {"fields": None, "csv": "csv"}  # name -> open_source's format
FILL_ROWS = 20_000  # entries sent to the server at once while filling


def rdb_path(data_dir: Path, fmt: str, n: int, seed: int) -> Path:
    return Path(data_dir) / f"redis_{fmt}_k{K}_d{D}_n{n}_s{seed}.rdb"


def _fixed_text(X: np.ndarray) -> np.ndarray:
    """``X`` as 12-byte text a value: sign (or 0), 4 integer digits, '.', 6 decimals."""
    q = np.rint(np.abs(X.astype(np.float64)) * 1e6).astype(np.int64)
    if q.size and q.max() >= 10**10:
        raise ValueError("values must be below 10,000 in magnitude")
    ip, fp = np.divmod(q, 10**6)
    out = np.empty((*X.shape, 12), np.uint8)
    out[..., 0] = np.where(X < 0, ord("-"), ord("0"))
    for j in range(4):
        out[..., 1 + j] = 48 + (ip // 10 ** (3 - j)) % 10
    out[..., 5] = ord(".")
    for j in range(6):
        out[..., 6 + j] = 48 + (fp // 10 ** (5 - j)) % 10
    return out


def xadd_commands(X: np.ndarray, fmt: str) -> bytes:
    """``XADD bench * ...`` for each row of ``X``, as RESP, built vectorized (every row has
    the same layout, so one template is filled in)."""
    n, d = X.shape
    text = _fixed_text(X)
    if fmt == "fields":
        args = [b"XADD", STREAM, b"*"] + [x for j in range(d) for x in (b"x%d" % j, b"V" * 12)]
    else:
        args = [b"XADD", STREAM, b"*", b"data", b"V" * (13 * d - 1)]
    template = b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args)
    rows = np.tile(np.frombuffer(template, np.uint8), (n, 1))
    at = template.index(b"V")
    for j in range(d):
        if fmt == "fields":
            at = template.index(b"V" * 12, at)
            rows[:, at:at + 12] = text[:, j]
            at += 12
        else:
            rows[:, at + 13 * j:at + 13 * j + 12] = text[:, j]
            if j < d - 1:
                rows[:, at + 13 * j + 12] = ord(",")
    return rows.tobytes()


def _send(sock: socket.socket, commands: bytes, n: int) -> None:
    """Send ``n`` commands and read their ``n`` replies (bulk strings: two lines each)."""
    sock.sendall(commands)
    lines = 0
    while lines < 2 * n:
        got = sock.recv(1 << 20)
        if not got:
            raise RuntimeError("redis-server closed the connection while the stream was filled")
        if b"-ERR" in got or got.startswith(b"-"):
            raise RuntimeError(f"XADD failed: {got[:200]!r}")
        lines += got.count(b"\n")


def _start(folder: Path, rdb: Path | None = None):
    """A redis-server on a free port with its files in ``folder`` (loading ``rdb``)."""
    from tests.transports._install import free_port
    from tests.transports.redis_server import RedisServer, find_binary

    if rdb is not None:
        os.link(rdb, folder / "dump.rdb")  # read at start, never written: the server is killed after
    server = RedisServer(find_binary(), folder, free_port(), start_seconds=600)
    server.start()
    return server


@case("redis.fill")
def fill(p: dict) -> dict:
    """Write the stream's snapshot unless it exists."""
    from benchmarks._data import blob_chunks

    path = rdb_path(Path(p["data_dir"]), p["format"], p["n"], p["seed"])
    if path.exists():
        return {"path": str(path), "generated": False, "bytes": path.stat().st_size}
    path.parent.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="redis-fill-", dir=path.parent))
    t = time.perf_counter()
    server = _start(folder)
    try:
        with socket.create_connection((server.host, server.port)) as sock:
            for X, _ in blob_chunks(K, p["n"], D, p["seed"]):
                for a in range(0, len(X), FILL_ROWS):
                    part = X[a:a + FILL_ROWS]
                    _send(sock, xadd_commands(part, p["format"]), len(part))
        length = server.client().xlen(STREAM)
        if length != p["n"]:
            raise RuntimeError(f"the stream holds {length} entries, expected {p['n']}")
        server.stop(save=True)
        os.replace(folder / "dump.rdb", path)
    finally:
        server.kill()
        shutil.rmtree(folder, ignore_errors=True)
    return {"path": str(path), "generated": True, "bytes": path.stat().st_size, "wall_s": time.perf_counter() - t}


@case("redis.train")
def train(p: dict) -> dict:
    """onepass.train K-Means on the stream; the consumer's time and memory, the server's CPU."""
    from benchmarks.cases.kmeans import import_onepass_train

    run = import_onepass_train()
    path = rdb_path(Path(p["data_dir"]), p["format"], p["n"], p["seed"])
    folder = Path(tempfile.mkdtemp(prefix="redis-case-", dir=path.parent))
    server = _start(folder, path)
    try:
        client = server.client()

        def server_cpu() -> float:
            info = client.info("cpu")
            return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])

        uri = f"{server.uri}?stream={STREAM.decode()}&group=bench&consumer=c"
        if p.get("exclusive"):
            uri += "&exclusive=1"
        cpu0 = server_cpu()
        with Meter() as m:
            res = run("kmeans", data=uri, format=FORMATS[p["format"]], params={"n_clusters": K},
                      batch_size=BATCH_SIZE, seed=p["seed"], progress=False)
            np.asarray(res.model.cluster_centers_)
        server_s = server_cpu() - cpu0
    finally:
        server.kill()
        shutil.rmtree(folder, ignore_errors=True)
    n = int(res.n_rows_seen)
    if n != p["n"]:
        raise RuntimeError(f"onepass.train saw {n} entries of {p['n']}")
    # the Meter counts every other process's CPU as contention, redis-server's included: it is the case's own
    measured = {**m.as_dict(), "other_cpu_s": max(0.0, m.other_cpu_s - server_s)}
    return {**measured, "rows": n, "rows_per_s": n / m.wall_s, "server_cpu_s": server_s,
            "server_us_per_row": server_s / n * 1e6, "client_us_per_row": m.cpu_s / n * 1e6}


@case("redis.parquet")
def parquet(p: dict) -> dict:
    """The same call on the same rows from the memory family's Parquet file."""
    from benchmarks.cases.memory import format_train

    return format_train({**p, "format": "parquet"})


def _rate_n(cfg: Config) -> int:
    return 100_000 if cfg.quick else 1_000_000


def _memory_ns(cfg: Config) -> list[int]:
    return [100_000, 500_000] if cfg.quick else [500_000, 5_000_000]


def prepare(cfg: Config) -> list[Task]:
    base = {"data_dir": str(cfg.data_dir), "seed": cfg.seed}
    fills = {(fmt, _rate_n(cfg)) for fmt in FORMATS} | {("fields", n) for n in _memory_ns(cfg)}
    return [Task("redis.fill", {**base, "format": fmt, "n": n}, timeout_s=3600) for fmt, n in sorted(fills)] + [
        Task("memory.format_file", {**base, "format": "parquet", "n": _rate_n(cfg)}, timeout_s=1800)]


def _rate_tasks(cfg: Config) -> dict[str, Task]:
    base = {"data_dir": str(cfg.data_dir), "seed": cfg.seed, "n": _rate_n(cfg)}
    return {
        "fields": Task("redis.train", {**base, "format": "fields"}, "Redis stream, a field per column (x0..x19)"),
        "csv": Task("redis.train", {**base, "format": "csv"}, "Redis stream, one field holding a CSV row"),
        "fields-exclusive": Task("redis.train", {**base, "format": "fields", "exclusive": True},
                                 "Redis stream, a field per column, exclusive reader"),
        "csv-exclusive": Task("redis.train", {**base, "format": "csv", "exclusive": True},
                              "Redis stream, one CSV field, exclusive reader"),
        "parquet": Task("redis.parquet", base, "local Parquet file (row groups of 100k)"),
    }


def _memory_tasks(cfg: Config) -> list[Task]:
    base = {"data_dir": str(cfg.data_dir), "seed": cfg.seed, "format": "fields"}
    return [Task("redis.train", {**base, "n": n}, f"Redis stream (fields), {fmt_int(n)} entries", repeat=1,
                 timeout_s=1800) for n in _memory_ns(cfg)]


def plan(cfg: Config) -> list[Task]:
    rates = list(_rate_tasks(cfg).values())
    keys = {t.key for t in rates}
    return rates + [t for t in _memory_tasks(cfg) if t.key not in keys]


def render(cfg: Config, results: dict[str, Result]) -> list[Table]:
    def result(t: Task) -> Result:
        return results.get(t.key) or Result(t)

    rates = {k: (t, result(t)) for k, t in _rate_tasks(cfg).items()}
    rows = []
    for t, r in rates.values():
        if r.problem:
            rows.append([t.label, r.problem])
            continue
        server = r.med("server_us_per_row")
        client = r.med("client_us_per_row")
        rows.append([t.label, fmt_int(r.first("rows")), fmt_rate(r.med("rows_per_s")), f"{r.med('wall_s'):.2f}",
                     fmt_mb(r.med("peak_rss_mb"), r.med("base_rss_mb")), "" if client is None else f"{client:.2f}",
                     "" if server is None else f"{server:.2f}", *load_cells(r)])
    summary = []
    parquet = rates["parquet"][1]
    for key in ("fields", "csv", "fields-exclusive", "csv-exclusive"):
        r = rates[key][1]
        if r.problem:
            continue
        rate = r.med("rows_per_s")
        summary.append([f"{rates[key][0].label}: rows/s into K-Means (d={D})", fmt_rate(rate),
                        f">= {fmt_int(TARGET_ROWS_PER_S)}", target_cell(rate >= TARGET_ROWS_PER_S)])
        if not parquet.problem:
            summary.append([f"{rates[key][0].label}: rows/s / Parquet rows/s",
                            f"{rate / parquet.med('rows_per_s'):.2f}x", "(info)", ""])
    memory = []
    peaks = []
    for t in _memory_tasks(cfg):
        r = result(t)
        if r.problem:
            memory.append([t.label, r.problem])
            continue
        peaks.append(r.med("peak_rss_mb"))
        memory.append([t.label, fmt_rate(r.med("rows_per_s")), fmt_mb(r.med("peak_rss_mb"), r.med("base_rss_mb")),
                       f"{r.med('end_rss_anon_mb'):,.0f}"])
    if len(peaks) == 2 and all(peaks):
        growth = peaks[1] / peaks[0]
        summary.append([f"peak RSS at {fmt_int(_memory_ns(cfg)[1])} / at {fmt_int(_memory_ns(cfg)[0])} entries",
                        f"{growth:.3f}x", f"<= {TARGET_GROWTH}", target_cell(growth <= TARGET_GROWTH)])
    return [
        Table(f"Redis Streams vs Parquet into onepass K-Means (k={K}, d={D}), {fmt_int(_rate_n(cfg))} rows",
              ["case", "rows", "rows/s", "wall s", "peak MB (base MB)", "client us/row", "server us/entry",
               "cpu/wall", "others"],
              rows, ["redis-server runs on the same 2 cores as the consumer; 'server us/entry' is its own CPU "
                     "time (INFO cpu) per entry read, 'client us/row' the consumer's (reading, decoding, "
                     "K-Means, and the ~0.6 s of loading Numba once a process), 'cpu/wall' the consumer's "
                     "alone, 'others' the rest of the machine's (redis-server not counted). "
                     "CPU times are less moved by a busy machine than rows/s: 300k rows/s on 2 cores needs "
                     "client + server <= ~6.6 us, and the server (one thread) <= 3.3.",
                     "No checkpoints: the run acknowledges every entry at its end (timed; on the server, the "
                     "group, whose only consumer holds everything, recreated where it was). 'exclusive reader': "
                     "?exclusive=1, XREAD after the checkpoint's ID, no pending list (the group's position moved "
                     "at each commit): a stream read by one job; through the group, each entry delivered is "
                     "also inserted in two pending lists on the server (what lets workers split a stream)."]),
        Table("Redis Streams: peak RSS of the consumer", ["case", "rows/s", "peak MB (base MB)",
                                                          "end RSS anon MB"], memory),
        Table("Redis Streams: onepass vs targets", ["measure", "measured", "target", "met"], summary),
    ]


FAMILY = Family(name="redis", description=__doc__.splitlines()[0], plan=plan, render=render, prepare=prepare)
