"""CSV: the fastest plain CSV-to-float32 parse vs onepass training from the same CSV.

Data: a headerless CSV of ``%.6f`` floats (d=50, k=10 blobs x10, ~500 MB; ``--quick``
~25 MB) and a float32 ``.npy`` twin holding the same values. Plain parses (each yields
(n, 50) float32 arrays, as a trainer would consume them): pandas' C engine in 100k-row
chunks, pyarrow's streaming ``open_csv``, pyarrow ``read_csv`` on whole in-memory
blocks, and raw ``np.fromfile`` of the twin as the ceiling. Then onepass: its source
alone (``onepass.sources.open_source`` iterated), ``onepass.train`` K-Means (k=10) on
the CSV, and, to split the time, onepass ``KMeans.partial_fit`` fed by the pandas parse
and by the binary twin. MB/s is always CSV bytes / wall s (for the binary cases: the CSV
bytes the same rows take), so every row of the table is on one scale.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from benchmarks._data import csv_paths
from benchmarks._measure import Meter, iter_npy_chunks, warm_page_cache
from benchmarks._registry import Config, Family, Result, Skip, Table, Task, case
from benchmarks.render import fmt_int, fmt_mb, fmt_rate, fmt_spread, load_cells, target_cell

D = 50
K = 10
CHUNK_ROWS = 100_000
BATCH_SIZE = 4096
ARROW_BLOCK = 1 << 20  # streaming reader block size: pyarrow's default, fastest here (1-64 MB tried)
READ_BLOCK = 16 << 20  # whole-block read_csv size (8-64 MB tried: 16 MB best)
TARGET_TRAIN_VS_PARSE = 0.5


def _paths(p: dict) -> tuple[Path, Path]:
    return csv_paths(Path(p["data_dir"]), p["n"], D, p["seed"])


def _finish(p: dict, m: Meter, n: int, first: np.ndarray | None) -> dict:
    csv_path, twin = _paths(p)
    if n != p["n"]:
        raise RuntimeError(f"read {n} rows, expected {p['n']}")
    if first is not None:  # the parse is right, not just fast
        ref = next(iter_npy_chunks(twin, first.shape[0]))
        if not np.array_equal(first, ref):
            raise RuntimeError("first rows differ from the float32 twin")
    csv_mb = csv_path.stat().st_size / 1e6
    return {**m.as_dict(), "rows": n, "rows_per_s": n / m.wall_s, "csv_mb": csv_mb, "mb_per_s": csv_mb / m.wall_s}


def _arrow_types():
    import pyarrow as pa
    import pyarrow.csv as pacsv

    names = [f"f{i}" for i in range(D)]
    read = dict(column_names=names)
    convert = pacsv.ConvertOptions(column_types={c: pa.float32() for c in names})
    return pacsv, read, convert


def _table_to_numpy(t) -> np.ndarray:
    """(n, d) float32 C-order array from an Arrow table/record batch of float32 columns."""
    out = np.empty((t.num_rows, t.num_columns), dtype=np.float32)
    for j, col in enumerate(t.columns):
        out[:, j] = col.to_numpy()
    return out


@case("csv.pandas_chunks")
def pandas_chunks(p: dict) -> dict:
    import pandas as pd

    path, _ = _paths(p)
    n, first = 0, None
    warm_page_cache(*_paths(p))
    with Meter() as m:
        for df in pd.read_csv(path, header=None, dtype=np.float32, chunksize=CHUNK_ROWS, engine="c"):
            X = df.to_numpy(dtype=np.float32)
            first = X[:100].copy() if first is None else first
            n += X.shape[0]
    return _finish(p, m, n, first)


@case("csv.arrow_stream")
def arrow_stream(p: dict) -> dict:
    pacsv, read, convert = _arrow_types()
    path, _ = _paths(p)
    n, first = 0, None
    warm_page_cache(*_paths(p))
    with Meter() as m:
        reader = pacsv.open_csv(
            path,
            read_options=pacsv.ReadOptions(block_size=p.get("block", ARROW_BLOCK), **read),
            convert_options=convert,
        )
        for rb in reader:
            X = _table_to_numpy(rb)
            first = X[:100].copy() if first is None else first
            n += X.shape[0]
    return {**_finish(p, m, n, first), "block_bytes": p.get("block", ARROW_BLOCK)}


@case("csv.arrow_blocks")
def arrow_blocks(p: dict) -> dict:
    """Read fixed-size byte blocks, cut at the last newline, parse each with read_csv (threaded)."""
    import pyarrow as pa

    pacsv, read, convert = _arrow_types()
    path, _ = _paths(p)
    block = p.get("block", READ_BLOCK)
    opts = pacsv.ReadOptions(use_threads=True, block_size=max(1 << 20, block // 8), **read)
    n, first = 0, None
    warm_page_cache(*_paths(p))
    with Meter() as m, open(path, "rb") as f:
        rest = b""
        while True:
            data = f.read(block)
            buf = rest + data
            if not data:
                cut = len(buf)
            else:
                cut = buf.rfind(b"\n") + 1
            if cut:
                t = pacsv.read_csv(pa.BufferReader(memoryview(buf)[:cut]), read_options=opts, convert_options=convert)
                X = _table_to_numpy(t)
                first = X[:100].copy() if first is None else first
                n += X.shape[0]
            rest = buf[cut:]
            if not data:
                break
    return {**_finish(p, m, n, first), "block_bytes": block}


@case("csv.binary_f32")
def binary_f32(p: dict) -> dict:
    _, twin = _paths(p)
    n, first = 0, None
    warm_page_cache(*_paths(p))
    with Meter() as m:
        for X in iter_npy_chunks(twin, CHUNK_ROWS):
            first = X[:100].copy() if first is None else first
            n += X.shape[0]
    out = _finish(p, m, n, first)
    return {**out, "binary_mb_per_s": twin.stat().st_size / 1e6 / out["wall_s"]}


def _onepass(attr: str):
    try:
        import onepass

        obj = onepass
        for part in attr.split("."):
            obj = getattr(obj, part) if hasattr(obj, part) else __import__(f"{obj.__name__}.{part}", fromlist=["_"])
        return obj
    except (ImportError, AttributeError) as e:
        raise Skip(f"onepass.{attr} not available ({type(e).__name__}: {e})") from None


@case("csv.onepass_source")
def onepass_source(p: dict) -> dict:
    open_source = _onepass("sources.open_source")
    path, _ = _paths(p)
    n, first = 0, None
    warm_page_cache(*_paths(p))
    with Meter() as m:
        for batch in open_source(str(path), batch_size=BATCH_SIZE):
            X = batch.X
            first = np.asarray(X[:100]).copy() if first is None else first
            n += X.shape[0]
    return _finish(p, m, n, first)


@case("csv.onepass_train")
def onepass_train(p: dict) -> dict:
    from benchmarks.cases.kmeans import import_onepass_train

    train = import_onepass_train()
    path, _ = _paths(p)
    warm_page_cache(*_paths(p))
    with Meter() as m:
        res = train(
            "kmeans", data=str(path), params={"n_clusters": K}, batch_size=BATCH_SIZE, seed=p["seed"], progress=False
        )
        np.asarray(res.model.cluster_centers_)
    return _finish(p, m, int(res.n_rows_seen), None)


@case("csv.pandas_onepass_kmeans")
def pandas_onepass_kmeans(p: dict) -> dict:
    import pandas as pd

    KMeans = _onepass("KMeans")
    path, _ = _paths(p)
    km = KMeans(n_clusters=K, batch_size=BATCH_SIZE, random_state=p["seed"])
    n = 0
    warm_page_cache(*_paths(p))
    with Meter() as m:
        for df in pd.read_csv(path, header=None, dtype=np.float32, chunksize=CHUNK_ROWS, engine="c"):
            km.partial_fit(df.to_numpy(dtype=np.float32))
            n += len(df)
        np.asarray(km.cluster_centers_)
    return _finish(p, m, n, None)


@case("csv.binary_onepass_kmeans")
def binary_onepass_kmeans(p: dict) -> dict:
    KMeans = _onepass("KMeans")
    _, twin = _paths(p)
    km = KMeans(n_clusters=K, batch_size=BATCH_SIZE, random_state=p["seed"])
    n = 0
    warm_page_cache(*_paths(p))
    with Meter() as m:
        for X in iter_npy_chunks(twin, CHUNK_ROWS):
            km.partial_fit(X)
            n += X.shape[0]
        np.asarray(km.cluster_centers_)
    return _finish(p, m, n, None)


PARSES = {
    "csv.pandas_chunks": "pandas read_csv C engine, 100k-row chunks, float32",
    "csv.arrow_stream": f"pyarrow.csv.open_csv streaming, {ARROW_BLOCK >> 20} MB blocks, float32",
    "csv.arrow_blocks": f"pyarrow.csv.read_csv on {READ_BLOCK >> 20} MB in-memory blocks, threaded, float32",
}
CEILING = {"csv.binary_f32": "ceiling: np.fromfile of the float32 twin (no parsing)"}
ONEPASS = {
    "csv.onepass_source": f"onepass.sources.open_source, batch_size={BATCH_SIZE} (no training)",
    "csv.onepass_train": f"onepass.train('kmeans', k={K}) from the CSV",
    "csv.pandas_onepass_kmeans": f"pandas chunks -> onepass KMeans.partial_fit (k={K})",
    "csv.binary_onepass_kmeans": f"float32 twin -> onepass KMeans.partial_fit (k={K}): compute alone",
}


def _n(cfg: Config) -> int:
    return 50_000 if cfg.quick else 1_000_000


def prepare(cfg: Config) -> list[Task]:
    return [Task("data.csv", {"data_dir": str(cfg.data_dir), "n": _n(cfg), "d": D, "seed": cfg.seed})]


def plan(cfg: Config) -> list[Task]:
    p = {"data_dir": str(cfg.data_dir), "n": _n(cfg), "seed": cfg.seed}
    return [Task(c, p, label) for c, label in {**PARSES, **CEILING, **ONEPASS}.items()]


def render(cfg: Config, results: dict[str, Result]) -> list[Table]:
    by = {t.case: (t, results.get(t.key) or Result(t)) for t in plan(cfg)}
    rows = []
    for t, r in by.values():
        if r.problem:
            rows.append([t.label, r.problem])
            continue
        rows.append(
            [
                t.label,
                fmt_int(r.first("rows")),
                fmt_spread(r.values("mb_per_s"), lambda v: f"{v:,.1f}"),
                fmt_rate(r.med("rows_per_s")),
                f"{r.med('wall_s'):.2f}",
                fmt_mb(r.med("peak_rss_mb"), r.med("base_rss_mb")),
                *load_cells(r),
            ]
        )
    csv_mb = next((r.first("csv_mb") for _, r in by.values() if r.first("csv_mb")), None)
    title = f"CSV of floats: d={D}, {fmt_int(_n(cfg))} rows" + (f", {csv_mb:,.0f} MB" if csv_mb else "")
    notes = [
        "Inputs are pulled into the page cache (sendfile to /dev/null) right before each case, so this is CPU-bound parsing. MB/s = CSV MB / wall s for every row."
    ]
    binary = by["csv.binary_f32"][1]
    if not binary.problem:
        notes.append(f"The ceiling's own rate is {binary.med('binary_mb_per_s'):,.0f} MB/s of float32.")

    ok_parses = [(by[c][1].med("mb_per_s"), c) for c in PARSES if not by[c][1].problem]
    summary = []
    if ok_parses:
        best_mbps, best = max(ok_parses)
        summary.append(["fastest plain parse", f"{best_mbps:,.1f} MB/s: {PARSES[best]}", "", ""])
        train = by["csv.onepass_train"][1]
        if train.problem:
            summary.append(["onepass training MB/s / fastest parse", train.problem, f">= {TARGET_TRAIN_VS_PARSE}", ""])
        else:
            ratio = train.med("mb_per_s") / best_mbps
            summary.append(
                [
                    "onepass training MB/s / fastest parse",
                    f"{ratio:.2f}x ({train.med('mb_per_s'):,.1f} MB/s)",
                    f">= {TARGET_TRAIN_VS_PARSE}",
                    target_cell(ratio >= TARGET_TRAIN_VS_PARSE),
                ]
            )
        src = by["csv.onepass_source"][1]
        if not src.problem:
            summary.append(
                [
                    "onepass source alone MB/s / fastest parse",
                    f"{src.med('mb_per_s') / best_mbps:.2f}x ({src.med('mb_per_s'):,.1f} MB/s)",
                    "(info)",
                    "",
                ]
            )
        # Where the time of onepass.train goes: its source, and the rest (training, loop).
        comp = by["csv.binary_onepass_kmeans"][1]
        if not train.problem and not src.problem:
            tw, sw = train.med("wall_s"), src.med("wall_s")
            if sw <= tw:
                parts = f"source {sw:.2f} s ({100 * sw / tw:.0f} %), the rest {tw - sw:.2f} s"
            else:  # read-ahead overlaps parsing and training; medians of noisy runs can cross
                parts = f"source alone {sw:.2f} s >= training {tw:.2f} s: training hides behind parsing"
            if not comp.problem:
                parts += f"; K-Means compute alone (from binary) {comp.med('wall_s'):.2f} s"
            summary.append([f"onepass.train wall {tw:.2f} s", parts, "(info)", ""])
    return [
        Table(
            title,
            ["case", "rows", "MB/s median (min-max)", "rows/s", "wall s", "peak MB (base MB)", "cpu/wall", "others"],
            rows,
            notes,
        ),
        Table("CSV: onepass vs the fastest parse", ["measure", "measured", "target", "met"], summary),
    ]


FAMILY = Family(name="csv", description=__doc__.splitlines()[0], plan=plan, render=render, prepare=prepare)
