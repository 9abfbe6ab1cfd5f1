"""Memory flat: peak RSS of onepass K-Means streaming 1M, 4M and 16M rows from disk.

Each size is its own float32 ``.npy`` file (k=10 blobs, d=50; 16M rows is 3.2 GB),
generated chunk by chunk, read back in a fresh process per case. Two ways in:
``partial_fit`` on 100k-row chunks the harness reads with ``np.fromfile`` (onepass's
estimator alone), and ``onepass.train`` given the file path (onepass's own .npy source
and training loop). Memory is flat when the peak does not grow with the rows.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from benchmarks._data import blob_paths
from benchmarks._measure import Meter, iter_npy_chunks, warm_page_cache
from benchmarks._registry import Config, Family, Result, Table, Task, case
from benchmarks.render import fmt_int, fmt_rate, load_cells

D = 50
K = 10
CHUNK_ROWS = 100_000
DISK_MARGIN = 2 * 2**30  # leave this much free after generating


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


_SIZES: dict[tuple, list[int]] = {}


def sizes(cfg: Config) -> list[int]:
    """The row counts to run, scaled down (with a note) if the disk cannot hold them."""
    key = (cfg.quick, str(cfg.data_dir))
    if key in _SIZES:
        return _SIZES[key]
    wanted = [50_000, 100_000, 200_000] if cfg.quick else [1_000_000, 4_000_000, 16_000_000]
    probe = cfg.data_dir
    while not probe.exists():
        probe = probe.parent
    free = shutil.disk_usage(probe).free

    def missing_bytes(ns: list[int]) -> int:
        return sum(n * D * 4 for n in ns if not blob_paths(cfg.data_dir, K, n, D, cfg.seed)[0].exists())

    got = list(wanted)
    while missing_bytes(got) + DISK_MARGIN > free and len(got) > 1:
        if got[-1] > got[-2] * 2:
            got[-1] //= 2  # 16M -> 8M still shows growth against 4M
        else:
            got.pop()
    if got != wanted:
        cfg.notes.append(
            f"memory: only {free / 2**30:.1f} GiB free in {probe}; ran {', '.join(fmt_int(n) for n in got)} rows "
            f"instead of {', '.join(fmt_int(n) for n in wanted)}"
        )
    _SIZES[key] = got
    return got


def prepare(cfg: Config) -> list[Task]:
    return [
        Task("data.blobs", {"data_dir": str(cfg.data_dir), "k": K, "n": n, "d": D, "seed": cfg.seed}, timeout_s=1800)
        for n in sizes(cfg)
    ]


MODES = {
    "memory.onepass_partial_fit": "onepass KMeans.partial_fit on 100k-row chunks",
    "memory.onepass_train": "onepass.train(data=file.npy)",
}


def plan(cfg: Config) -> list[Task]:
    return [
        Task(c, {"data_dir": str(cfg.data_dir), "n": n, "seed": cfg.seed}, f"{label}, {fmt_int(n)} rows", repeat=1)
        for c, label in MODES.items()
        for n in sizes(cfg)
    ]


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


FAMILY = Family(name="memory", description=__doc__.splitlines()[0], plan=plan, render=render, prepare=prepare)
