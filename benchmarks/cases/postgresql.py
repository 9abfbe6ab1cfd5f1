"""PostgreSQL: onepass reading a query vs ``COPY ... TO STDOUT`` alone vs the same rows from Parquet; memory flat.

A real server (PostgreSQL from the machine, started by ``tests/transports/postgres_server.py``)
keeps its data in ``benchmarks/data/postgresql-cluster`` (loaded once, reused), and is
started for each case and stopped after it. Its tables hold the memory family's blobs
(k=10, d=20 float32 columns as ``real``, the same rows as that family's Parquet files)
with an ``id bigint`` primary key, one table per size.

Throughput (1M rows; ``--quick`` 200k), no training, each read once untimed first so
the server's cache is warm: ``COPY (SELECT * FROM t) TO STDOUT (FORMAT binary)`` drained
by ``psql`` to /dev/null (libpq in C: the server's pace) and by psycopg's documented loop
(``for data in copy``); ``onepass.open_source`` on the query with ``key_column="id"``
(keyset order: ``ORDER BY id`` over the primary key) and without; and ``open_source`` on
the same rows from a local Parquet file. The target: onepass (with the key) at >= 50% of
the rows/s of the COPY drained by psycopg, and by psql.

Memory: peak RSS of ``onepass.train`` (K-Means, k=10) on the query with
``key_column="id"`` at 500k and 5M rows (``--quick``: 200k and 1M); the target, as for
files: peak at 5M / at 500k <= 1.15.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import numpy as np

from benchmarks._measure import Meter, warm_page_cache
from benchmarks._registry import Config, Family, Result, Table, Task, case
from benchmarks.render import fmt_int, fmt_mb, fmt_rate, load_cells, target_cell

K = 10
D = 20
BATCH_SIZE = 4096
TARGET_VS_COPY = 0.5
TARGET_GROWTH = 1.15
#: server settings for the benchmark: its tables fit in its cache
SETTINGS = ("shared_buffers=1GB", "max_wal_size=4GB", "checkpoint_timeout=30min")


def _folder(p: dict) -> Path:
    return Path(p["data_dir"]) / "postgresql-cluster"


def _table(n: int, seed: int) -> str:
    return f"blobs_k{K}_d{D}_n{n}_s{seed}"


def _server(p: dict):
    from tests.transports.postgres_server import persistent_server

    return persistent_server(_folder(p), settings=SETTINGS)


def _copy_rows(n: int, seed: int):
    """The blobs as ``COPY ... FROM STDIN (FORMAT binary)`` data, a chunk at a time."""
    from benchmarks._data import blob_chunks

    row = np.dtype([("nf", ">i2"), ("kl", ">i4"), ("k", ">i8"), ("v", [("l", ">i4"), ("x", ">f4")], (D,))])
    yield b"PGCOPY\n\xff\r\n\x00" + (0).to_bytes(4, "big") + (0).to_bytes(4, "big")
    first = 1
    for X, _ in blob_chunks(K, n, D, seed):
        rows = np.empty(len(X), dtype=row)
        rows["nf"], rows["kl"], rows["k"] = D + 1, 8, np.arange(first, first + len(X))
        rows["v"]["l"], rows["v"]["x"] = 4, X
        first += len(X)
        yield rows.tobytes()
    yield b"\xff\xff"


@case("postgresql.table")
def make_table(p: dict) -> dict:
    """Load the blobs of ``n`` rows into their table unless it is there."""
    t = time.perf_counter()
    name = _table(p["n"], p["seed"])
    with _server(p) as server, server.connect() as conn:
        there = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (name,)).fetchone()[0]
        if there:
            rows = conn.execute(f"SELECT count(*) FROM {name}").fetchone()[0]
            if rows == p["n"]:
                return {"path": name, "generated": False, "wall_s": time.perf_counter() - t}
            conn.execute(f"DROP TABLE {name}")
        cols = ", ".join(f"x{j} real" for j in range(D))
        conn.execute(f"CREATE TABLE {name} (id bigint, {cols})")
        with conn.cursor().copy(f"COPY {name} FROM STDIN (FORMAT binary)") as copy:
            for data in _copy_rows(p["n"], p["seed"]):
                copy.write(data)
        conn.execute(f"ALTER TABLE {name} ADD PRIMARY KEY (id)")
        conn.execute(f"VACUUM ANALYZE {name}")
        size = conn.execute("SELECT pg_total_relation_size(%s)", (name,)).fetchone()[0]
    return {"path": f"table {name}", "bytes": size, "generated": True, "wall_s": time.perf_counter() - t}


def _query(p: dict) -> str:
    return f"SELECT * FROM {_table(p['n'], p['seed'])}"


def _psql_drain(server, p: dict) -> int:
    """Rows of the COPY, drained by psql to /dev/null (C, libpq)."""
    sql = f"COPY ({_query(p)}) TO STDOUT (FORMAT binary)"
    with open(os.devnull, "wb") as out:
        subprocess.run([str(server.bin_dir / "psql"), "-X", "-q", "-h", server.host, "-p", str(server.port), "-U",
                        server.user, "-d", server.dbname, "-c", sql], stdout=out, check=True)
    return p["n"]


def _psycopg_drain(server, p: dict) -> int:
    """Rows of the COPY, drained by psycopg's documented loop."""
    with server.connect() as conn, conn.cursor().copy(f"COPY ({_query(p)}) TO STDOUT (FORMAT binary)") as copy:
        messages = 0
        for _ in copy:
            messages += 1
    return messages - 1  # the last message is the trailer


def _onepass_read(server, p: dict) -> int:
    from onepass.sources import open_source

    n, first = 0, None
    kw = {"key_column": "id"} if p.get("key") else {}
    with open_source(server.uri, query=_query(p), batch_size=BATCH_SIZE, **kw) as src:
        for batch in src:
            first = batch.X[:100].copy() if first is None else first
            n += batch.X.shape[0]
    if p.get("key"):
        from benchmarks._data import blob_chunks

        want = next(blob_chunks(K, p["n"], D, p["seed"]))[0][:100]
        if not np.array_equal(first, want):
            raise RuntimeError("onepass read rows unlike the ones loaded")
    return n


READERS = {"psql": _psql_drain, "psycopg": _psycopg_drain, "onepass": _onepass_read}


@case("postgresql.read")
def read(p: dict) -> dict:
    import psycopg  # noqa: F401  (imported before the timed region, as onepass is)

    import onepass.sources.transports.postgresql  # noqa: F401
    from onepass.sources import open_source  # noqa: F401

    with _server(p) as server:
        _psql_drain(server, p)  # untimed: the table into the server's cache
        with Meter() as m:
            n = READERS[p["reader"]](server, p)
    if n != p["n"]:
        raise RuntimeError(f"{p['reader']} read {n} rows, the table has {p['n']}")
    return {**m.as_dict(), "rows": n, "rows_per_s": n / m.wall_s}


@case("postgresql.parquet")
def parquet(p: dict) -> dict:
    from benchmarks.cases.memory import format_path
    from onepass.sources import open_source

    path = format_path(Path(p["data_dir"]), "parquet", p["n"], p["seed"])
    warm_page_cache(path)
    n = 0
    with Meter() as m:
        with open_source(str(path), batch_size=BATCH_SIZE) as src:
            for batch in src:
                n += batch.X.shape[0]
    if n != p["n"]:
        raise RuntimeError(f"read {n} rows of {p['n']} from {path.name}")
    return {**m.as_dict(), "rows": n, "rows_per_s": n / m.wall_s}


@case("postgresql.train")
def train(p: dict) -> dict:
    """Peak RSS of K-Means trained on the query (the consumer of a 500k / 5M-row read)."""
    from dataclasses import replace

    from onepass.training import TrainingRun

    with _server(p) as server:
        _psql_drain(server, p)
        # onepass.train takes no query yet: the run it describes, given one
        spec = TrainingRun.of("kmeans", server.uri, params={"n_clusters": K}, batch_size=BATCH_SIZE, seed=p["seed"],
                              progress=False)
        spec = replace(spec, data=replace(spec.data, query=_query(p), key_column="id"))
        with Meter() as m:
            res = spec.run()
            np.asarray(res.model.cluster_centers_)
    n = int(res.n_rows_seen)
    if n != p["n"]:
        raise RuntimeError(f"onepass.train saw {n} rows of {p['n']}")
    return {**m.as_dict(), "rows": n, "rows_per_s": n / m.wall_s}


def _rate_n(cfg: Config) -> int:
    return 200_000 if cfg.quick else 1_000_000


def _memory_ns(cfg: Config) -> list[int]:
    return [200_000, 1_000_000] if cfg.quick else [500_000, 5_000_000]


def _sizes(cfg: Config) -> list[int]:
    return sorted({_rate_n(cfg), *_memory_ns(cfg)})


def prepare(cfg: Config) -> list[Task]:
    base = {"data_dir": str(cfg.data_dir), "seed": cfg.seed}
    return [Task("postgresql.table", {**base, "n": n}, timeout_s=3600) for n in _sizes(cfg)] + [
        Task("memory.format_file", {**base, "format": "parquet", "n": _rate_n(cfg)}, timeout_s=1800)]


READS = {
    "psql": ("postgresql.read", {"reader": "psql"}, "COPY ... TO STDOUT (FORMAT binary), drained by psql"),
    "psycopg": ("postgresql.read", {"reader": "psycopg"}, "COPY ... TO STDOUT (FORMAT binary), drained by psycopg"),
    "onepass": ("postgresql.read", {"reader": "onepass", "key": True}, "onepass open_source, key_column=id"),
    "onepass_nokey": ("postgresql.read", {"reader": "onepass", "key": False}, "onepass open_source, no key"),
    "parquet": ("postgresql.parquet", {}, "onepass open_source, the same rows from Parquet"),
}


def _read_tasks(cfg: Config) -> dict[str, Task]:
    base = {"data_dir": str(cfg.data_dir), "seed": cfg.seed, "n": _rate_n(cfg)}
    return {k: Task(c, {**base, **extra}, label) for k, (c, extra, label) in READS.items()}


def _train_tasks(cfg: Config) -> list[Task]:
    return [Task("postgresql.train", {"data_dir": str(cfg.data_dir), "seed": cfg.seed, "n": n},
                 f"onepass.train K-Means on the query, {fmt_int(n)} rows", repeat=1) for n in _memory_ns(cfg)]


def plan(cfg: Config) -> list[Task]:
    return [*_read_tasks(cfg).values(), *_train_tasks(cfg)]


def render(cfg: Config, results: dict[str, Result]) -> list[Table]:
    reads = {k: (t, results.get(t.key) or Result(t)) for k, t in _read_tasks(cfg).items()}
    rows = []
    for t, r in reads.values():
        if r.problem:
            rows.append([t.label, r.problem])
            continue
        rows.append([t.label, fmt_int(r.first("rows")), fmt_rate(r.med("rows_per_s")), f"{r.med('wall_s'):.2f}",
                     fmt_mb(r.med("peak_rss_mb"), r.med("base_rss_mb")), *load_cells(r)])
    summary = []
    onepass = reads["onepass"][1]
    for k in ("psycopg", "psql"):
        copy = reads[k][1]
        if not onepass.problem and not copy.problem:
            ratio = onepass.med("rows_per_s") / copy.med("rows_per_s")
            summary.append([f"onepass (key_column) rows/s / COPY drained by {k}", f"{ratio:.2f}", f">= {TARGET_VS_COPY}",
                            target_cell(ratio >= TARGET_VS_COPY)])
    parq = reads["parquet"][1]
    if not onepass.problem and not parq.problem:
        ratio = onepass.med("rows_per_s") / parq.med("rows_per_s")
        summary.append(["onepass (key_column) rows/s / the same rows from Parquet", f"{ratio:.2f}", "", ""])
    mem_rows = []
    trains = [(t, results.get(t.key) or Result(t)) for t in _train_tasks(cfg)]
    for t, r in trains:
        if r.problem:
            mem_rows.append([t.label, r.problem])
            continue
        mem_rows.append([t.label, fmt_int(r.first("rows")), fmt_rate(r.med("rows_per_s")),
                         fmt_mb(r.med("peak_rss_mb"), r.med("base_rss_mb")), *load_cells(r)])
    (_, small), (_, large) = trains
    if not small.problem and not large.problem:
        growth = large.med("peak_rss_mb") / small.med("peak_rss_mb")
        summary.append([f"peak RSS at {fmt_int(large.first('rows'))} rows / at {fmt_int(small.first('rows'))}",
                        f"{growth:.2f}", f"<= {TARGET_GROWTH}", target_cell(growth <= TARGET_GROWTH)])
    n = _rate_n(cfg)
    return [
        Table(f"PostgreSQL: reading {fmt_int(n)} rows (d={D} real + bigint id) from a query vs COPY alone vs Parquet",
              ["case", "rows", "rows/s", "wall s", "peak MB (base MB)", "cpu/wall", "others"], rows,
              ["Server on loopback, its cache warmed by one untimed read; no training. The server takes one "
               "vCPU (COPY's own pace), the reader the other: `others` is mostly the server (psql's own CPU is "
               "there too, its case's cpu/wall being the harness's)."]),
        Table("PostgreSQL: memory of a consumer (K-Means, k=10, on the query with key_column=id)",
              ["case", "rows", "rows/s", "peak MB (base MB)", "cpu/wall", "others"], mem_rows),
        Table("PostgreSQL: targets", ["measure", "measured", "target", "met"], summary),
    ]


FAMILY = Family(name="postgresql", description=__doc__.splitlines()[0], plan=plan, render=render, prepare=prepare)
