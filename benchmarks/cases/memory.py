"""Memory flat: peak RSS of onepass K-Means streaming 1M-16M rows of .npy, and 500k vs 5M rows of every format.

Each size is its own float32 ``.npy`` file (k=10 blobs, d=50; 16M rows is 3.2 GB),
generated chunk by chunk, read back in a fresh process per case. Two ways in:
``partial_fit`` on 100k-row chunks the harness reads with ``np.fromfile`` (onepass's
estimator alone), and ``onepass.train`` given the file path (onepass's own .npy source
and training loop). Memory is flat when the peak does not grow with the rows.

Every format: the same blobs (d=20) written as CSV (``%.6f``, no header), Parquet (row
groups of 100k rows, float32 columns), JSON lines (``{"features": [...]}``), libsvm
(label 0, every column listed), .npy and RecordIO-protobuf (one record per row, as
SageMaker's SDK writes them), 500k and 5M rows each (``--quick``: 200k and 1M), and
``onepass.train`` on each file. The target: peak RSS at 5M rows / at 500k <= 1.15.
"""

from __future__ import annotations

import itertools
import shutil
import time
from pathlib import Path

import numpy as np

from benchmarks._data import blob_chunks, blob_paths, format_csv_fixed6
from benchmarks._measure import Meter, iter_npy_chunks, warm_page_cache, write_npy_chunked
from benchmarks._registry import Config, Family, Result, Table, Task, case
from benchmarks.render import fmt_int, fmt_rate, load_cells, target_cell

D = 50
K = 10
CHUNK_ROWS = 100_000
DISK_MARGIN = 2 * 2**30  # leave this much free after generating

FORMAT_D = 20
#: format -> (extension, about how many bytes a row of FORMAT_D columns takes on disk)
FORMATS = {
    "csv": (".csv", 10 * FORMAT_D),
    "parquet": (".parquet", 6 * FORMAT_D),
    "jsonl": (".jsonl", 10 * FORMAT_D + 16),
    "libsvm": (".svm", 13 * FORMAT_D + 2),
    "npy": (".npy", 4 * FORMAT_D),
    "recordio-protobuf": (".rec", 4 * FORMAT_D + 32),
}
PARQUET_GROUP_ROWS = 100_000
TARGET_GROWTH = 1.15  # peak RSS at the larger size / at the smaller, at most


def _path(p: dict) -> Path:
    return blob_paths(Path(p["data_dir"]), K, p["n"], D, p["seed"])[0]


@case("memory.onepass_partial_fit")
def onepass_partial_fit(p: dict) -> dict:
    from benchmarks.cases.kmeans import import_onepass_kmeans

    KMeans = import_onepass_kmeans()
    km = KMeans(n_clusters=K, extra_center_factor="auto", batch_size=4096, random_state=p["seed"])
    n = 0
    warm_page_cache(_path(p))
    with Meter() as m:
        for chunk in iter_npy_chunks(_path(p), CHUNK_ROWS):
            km.partial_fit(chunk)
            n += chunk.shape[0]
        np.asarray(km.cluster_centers_)
    return {**m.as_dict(), "rows": n, "rows_per_s": n / m.wall_s}


@case("memory.onepass_train")
def onepass_train(p: dict) -> dict:
    from benchmarks.cases.kmeans import import_onepass_train

    train = import_onepass_train()
    warm_page_cache(_path(p))
    with Meter() as m:
        res = train(
            "kmeans", data=str(_path(p)), params={"n_clusters": K}, batch_size=4096, seed=p["seed"], progress=False
        )
        np.asarray(res.model.cluster_centers_)
    n = int(res.n_rows_seen)
    if n != p["n"]:
        raise RuntimeError(f"onepass.train saw {n} rows of {p['n']}")
    return {**m.as_dict(), "rows": n, "rows_per_s": n / m.wall_s}


def format_path(data_dir: Path, fmt: str, n: int, seed: int) -> Path:
    return Path(data_dir) / f"memfmt_k{K}_d{FORMAT_D}_n{n}_s{seed}{FORMATS[fmt][0]}"


def _text_rows(fmt: str, X: np.ndarray) -> bytes:
    """Rows of ``X`` as CSV, JSON lines or libsvm text (``%.6f`` values)."""
    csv = format_csv_fixed6(X)
    if fmt == "csv":
        return csv
    if fmt == "jsonl":
        return b'{"features":[' + csv[:-1].replace(b"\n", b']}\n{"features":[') + b"]}\n"
    fields = csv[:-1].replace(b"\n", b",").split(b",")  # libsvm: label 0, then j:value, j from 1
    heads = [b"\n0 1:"] + [b" %d:" % (j + 1) for j in range(1, X.shape[1])]
    return b"".join(h + v for h, v in zip(itertools.cycle(heads), fields, strict=False))[1:] + b"\n"


def make_format_file(data_dir: Path, fmt: str, n: int, seed: int) -> dict:
    """Write the blobs (k=K, d=FORMAT_D) as ``fmt`` unless the file exists, atomically."""
    path = format_path(data_dir, fmt, n, seed)
    if path.exists():
        return {"path": str(path), "generated": False, "bytes": path.stat().st_size}
    path.parent.mkdir(parents=True, exist_ok=True)
    chunks = (X for X, _ in blob_chunks(K, n, FORMAT_D, seed))
    tmp = path.with_name(path.name + ".tmp")
    if fmt == "npy":
        write_npy_chunked(path, (n, FORMAT_D), np.float32, chunks)
    elif fmt == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        names = [f"x{j}" for j in range(FORMAT_D)]
        schema = pa.schema([(c, pa.float32()) for c in names])
        with pq.ParquetWriter(tmp, schema) as w:  # blob_chunks yields 100k rows: one row group each
            for X in chunks:
                w.write_table(
                    pa.Table.from_arrays([pa.array(X[:, j]) for j in range(FORMAT_D)], schema=schema),
                    row_group_size=PARQUET_GROUP_ROWS,
                )
        tmp.replace(path)
    else:
        from onepass.io.recordio_protobuf import encode_rows

        with open(tmp, "wb") as f:
            for X in chunks:
                f.write(encode_rows(X) if fmt == "recordio-protobuf" else _text_rows(fmt, X))
        tmp.replace(path)
    return {"path": str(path), "generated": True, "bytes": path.stat().st_size}


@case("memory.format_file")
def format_file(p: dict) -> dict:
    t = time.perf_counter()
    out = make_format_file(Path(p["data_dir"]), p["format"], p["n"], p["seed"])
    return {**out, "wall_s": time.perf_counter() - t}


@case("memory.format_train")
def format_train(p: dict) -> dict:
    from benchmarks.cases.kmeans import import_onepass_train

    train = import_onepass_train()
    path = format_path(Path(p["data_dir"]), p["format"], p["n"], p["seed"])
    warm_page_cache(path)
    with Meter() as m:
        res = train("kmeans", data=str(path), params={"n_clusters": K}, batch_size=4096, seed=p["seed"], progress=False)
        np.asarray(res.model.cluster_centers_)
    n = int(res.n_rows_seen)
    if n != p["n"]:
        raise RuntimeError(f"onepass.train saw {n} rows of {p['n']} in {path.name}")
    return {**m.as_dict(), "rows": n, "rows_per_s": n / m.wall_s, "file_mb": path.stat().st_size / 1e6}


_SIZES: dict[tuple, list[int]] = {}


def _fit_to_disk(cfg: Config, what: str, wanted: list[int], missing_bytes, shrink) -> list[int]:
    """``wanted`` row counts, cut down by ``shrink(got)`` (which returns False when it can cut
    no more) while the files still to write (``missing_bytes(got)``) do not fit on the disk;
    a note says so. Memoized per (what, quick, data dir)."""
    key = (what, cfg.quick, str(cfg.data_dir))
    if key in _SIZES:
        return _SIZES[key]
    probe = cfg.data_dir
    while not probe.exists():
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    got = list(wanted)
    while missing_bytes(got) + DISK_MARGIN > free and shrink(got):
        pass
    if got != wanted:
        cfg.notes.append(
            f"memory: only {free / 2**30:.1f} GiB free in {probe}; {what} ran {', '.join(fmt_int(n) for n in got)} "
            f"rows instead of {', '.join(fmt_int(n) for n in wanted)}"
        )
    _SIZES[key] = got
    return got


def sizes(cfg: Config) -> list[int]:
    """The row counts to run, scaled down (with a note) if the disk cannot hold them."""

    def missing_bytes(ns: list[int]) -> int:
        return sum(n * D * 4 for n in ns if not blob_paths(cfg.data_dir, K, n, D, cfg.seed)[0].exists())

    def shrink(got: list[int]) -> bool:
        if len(got) <= 1:
            return False
        if got[-1] > got[-2] * 2:
            got[-1] //= 2  # 16M -> 8M still shows growth against 4M
        else:
            got.pop()
        return True

    wanted = [50_000, 100_000, 200_000] if cfg.quick else [1_000_000, 4_000_000, 16_000_000]
    return _fit_to_disk(cfg, ".npy", wanted, missing_bytes, shrink)


def format_sizes(cfg: Config) -> list[int]:
    """The two row counts every format runs at (5M halved, with a note, while the disk cannot hold it)."""

    def missing_bytes(ns: list[int]) -> int:
        return sum(n * row_bytes for fmt, (_, row_bytes) in FORMATS.items() for n in ns
                   if not format_path(cfg.data_dir, fmt, n, cfg.seed).exists())

    def shrink(got: list[int]) -> bool:
        if got[-1] <= 2 * got[0]:
            return False
        got[-1] //= 2
        return True

    wanted = [200_000, 1_000_000] if cfg.quick else [500_000, 5_000_000]
    return _fit_to_disk(cfg, "every format", wanted, missing_bytes, shrink)


def prepare(cfg: Config) -> list[Task]:
    return [
        Task("data.blobs", {"data_dir": str(cfg.data_dir), "k": K, "n": n, "d": D, "seed": cfg.seed}, timeout_s=1800)
        for n in sizes(cfg)
    ] + [
        Task(
            "memory.format_file",
            {"data_dir": str(cfg.data_dir), "format": fmt, "n": n, "seed": cfg.seed},
            timeout_s=1800,
        )
        for fmt in FORMATS
        for n in format_sizes(cfg)
    ]


MODES = {
    "memory.onepass_partial_fit": "onepass KMeans.partial_fit on 100k-row chunks",
    "memory.onepass_train": "onepass.train(data=file.npy)",
}


def format_plan(cfg: Config) -> list[Task]:
    return [
        Task(
            "memory.format_train",
            {"data_dir": str(cfg.data_dir), "format": fmt, "n": n, "seed": cfg.seed},
            f"onepass.train, {fmt}, {fmt_int(n)} rows",
        )
        for fmt in FORMATS
        for n in format_sizes(cfg)
    ]


def plan(cfg: Config) -> list[Task]:
    return [
        Task(c, {"data_dir": str(cfg.data_dir), "n": n, "seed": cfg.seed}, f"{label}, {fmt_int(n)} rows", repeat=1)
        for c, label in MODES.items()
        for n in sizes(cfg)
    ] + format_plan(cfg)


def _anon_file(r: Result) -> str:
    anon, file = r.med("end_rss_anon_mb"), r.med("end_rss_file_mb")
    return "" if anon is None or file is None else f"{anon:,.0f} / {file:,.0f}"


def render(cfg: Config, results: dict[str, Result]) -> list[Table]:
    rows, summary = [], []
    for c, label in MODES.items():
        peaks, ns = [], []
        for t in plan(cfg):
            if t.case != c:
                continue
            r = results.get(t.key) or Result(t)
            n = t.params["n"]
            if r.problem:
                rows.append([label, fmt_int(n), r.problem])
                continue
            peak, base = r.med("peak_rss_mb"), r.med("base_rss_mb")
            peaks.append(peak)
            ns.append(n)
            rows.append(
                [
                    label,
                    fmt_int(n),
                    f"{n * D * 4 / 1e6:,.0f}",
                    f"{r.med('wall_s'):.1f}",
                    fmt_rate(r.med("rows_per_s")),
                    f"{peak:,.0f}",
                    f"{base:,.0f}",
                    f"{peak - base:,.0f}",
                    _anon_file(r),
                    *load_cells(r),
                ]
            )
        if len(peaks) >= 2:
            spread = max(peaks) - min(peaks)
            slope = np.polyfit(np.array(ns) / 1e6, peaks, 1)[0]
            summary.append(
                [
                    label,
                    " / ".join(f"{p:,.0f}" for p in peaks),
                    f"{spread:,.1f} MB ({100 * spread / min(peaks):.1f} %)",
                    f"{slope:+.2f} MB per 1M rows",
                ]
            )
        else:
            summary.append([label, "n/a", "n/a", "n/a"])
    return npy_tables(rows, summary) + format_tables(cfg, results)


def npy_tables(rows: list[list[str]], summary: list[list[str]]) -> list[Table]:
    return [
        Table(
            f"Memory flat: onepass K-Means (k={K}, d={D}) streaming from a float32 .npy on disk",
            [
                "case",
                "rows",
                "file MB",
                "wall s",
                "rows/s",
                "peak MB",
                "base MB",
                "peak - base MB",
                "end RSS anon / file MB",
                "cpu/wall",
                "others",
            ],
            rows,
            notes=[
                "Each file is pulled into the page cache (sendfile to /dev/null, no process memory) right before its case, so this measures the process, not the disk.",
                "end RSS anon / file: resident memory at the end of training, anonymous (the process's own) vs file-backed "
                "(pages of a memory-mapped input, which count in RSS and in the peak although the kernel can drop them).",
            ],
        ),
        Table(
            "Memory flat: peaks and their spread",
            ["case", "peak MB per size", "spread (max - min)", "growth (least squares)"],
            summary,
            notes=[
                "Flat means the spread is noise (a few MB) and the growth per 1M rows is ~0; a leak or a buffered file shows up as MB per 1M rows."
            ],
        ),
    ]


def format_tables(cfg: Config, results: dict[str, Result]) -> list[Table]:
    """Per run, then per format: peak at the larger size over the peak at the smaller."""
    small, large = format_sizes(cfg)
    runs, summary = [], []
    for fmt in FORMATS:
        peaks: dict[int, float] = {}
        rates: dict[int, float] = {}
        for t in format_plan(cfg):
            if t.params["format"] != fmt:
                continue
            n = t.params["n"]
            r = results.get(t.key) or Result(t)
            if r.problem:
                runs.append([fmt, fmt_int(n), r.problem])
                continue
            peaks[n], rates[n] = r.med("peak_rss_mb"), r.med("rows_per_s")
            base = r.med("base_rss_mb")
            runs.append(
                [
                    fmt,
                    fmt_int(n),
                    f"{r.med('file_mb'):,.0f}",
                    f"{r.med('wall_s'):.1f}",
                    fmt_rate(rates[n]),
                    f"{peaks[n]:,.0f}",
                    f"{base:,.0f}",
                    f"{peaks[n] - base:,.0f}",
                    *load_cells(r),
                ]
            )
        if small in peaks and large in peaks:
            ratio = peaks[large] / peaks[small]
            summary.append(
                [
                    fmt,
                    f"{peaks[small]:,.0f}",
                    f"{peaks[large]:,.0f}",
                    f"{ratio:.3f}",
                    f"<= {TARGET_GROWTH}",
                    target_cell(ratio <= TARGET_GROWTH),
                    fmt_rate(rates[large]),
                ]
            )
        else:
            summary.append([fmt, *(["n/a"] * 6)])
    return [
        Table(
            f"Memory flat, every format: onepass.train K-Means (k={K}, d={FORMAT_D}, batch 4096) from each format on disk",
            [
                "format",
                "rows",
                "file MB",
                "wall s",
                "rows/s",
                "peak MB",
                "base MB",
                "peak - base MB",
                "cpu/wall",
                "others",
            ],
            runs,
            notes=[
                "One fresh process per run; the file is pulled into the page cache first. Parquet: row groups of "
                f"{PARQUET_GROUP_ROWS:,} rows, float32 columns (snappy); CSV, JSON lines and libsvm values are %.6f text.",
            ],
        ),
        Table(
            f"Memory flat, every format: peak RSS at {fmt_int(large)} rows over {fmt_int(small)}",
            [
                "format",
                f"peak MB, {fmt_int(small)}",
                f"peak MB, {fmt_int(large)}",
                "ratio",
                "target",
                "met",
                f"rows/s, {fmt_int(large)}",
            ],
            summary,
            notes=[
                "Flat means the ratio is ~1: memory fixed by the hyperparameters and the reader's buffers, not the rows."
            ]
            + (
                [
                    "--quick: the smaller file barely fills the readers' buffers (16 MB text blocks, 100k-row Parquet "
                    "groups), so its ratio overstates growth; the target is judged at 500k vs 5M rows."
                ]
                if cfg.quick
                else []
            ),
        ),
    ]


FAMILY = Family(name="memory", description=__doc__.splitlines()[0], plan=plan, render=render, prepare=prepare)
