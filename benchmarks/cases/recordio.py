"""RecordIO-protobuf: onepass's reader of SageMaker's binary format vs its CSV reader, same rows.

Data: the csv family's rows (d=50 floats, ~1M rows; ``--quick`` 50k) as a headerless
CSV, and the same float32 values as RecordIO-protobuf, one ``Record`` per row under
``features['values']`` as the SageMaker SDK's ``write_numpy_to_dense_tensor`` writes them
(byte for byte; written once from the float32 twin). Both are read by
``onepass.sources.open_source`` alone (no training), after being pulled into the page
cache. The target: RecordIO-protobuf rows/s at least the CSV reader's.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from benchmarks._data import csv_paths
from benchmarks._measure import Meter, iter_npy_chunks, warm_page_cache
from benchmarks._registry import Config, Family, Result, Table, Task, case
from benchmarks.render import fmt_int, fmt_mb, fmt_rate, load_cells, target_cell

D = 50
BATCH_SIZE = 4096
TARGET_VS_CSV = 1.0


def _paths(p: dict) -> tuple[Path, Path, Path]:
    csv, twin = csv_paths(Path(p["data_dir"]), p["n"], D, p["seed"])
    return csv, twin, twin.with_suffix(".rec")


def _recordio(p: dict) -> Path:
    from onepass.io.recordio_protobuf import encode_rows

    _, twin, rec = _paths(p)
    if not rec.exists():
        tmp = rec.with_name(rec.name + ".tmp")
        with open(tmp, "wb") as f:
            for X in iter_npy_chunks(twin, 100_000):
                f.write(encode_rows(X))
        tmp.replace(rec)
    return rec


def _read(path: Path, p: dict, **kw) -> dict:
    from onepass.sources import open_source

    _, twin, _ = _paths(p)
    warm_page_cache(path)
    n, first = 0, None
    with Meter() as m:
        with open_source(str(path), batch_size=BATCH_SIZE, **kw) as src:
            for batch in src:
                first = batch.X[:100].copy() if first is None else first
                n += batch.X.shape[0]
    if n != p["n"] or not np.array_equal(first, next(iter_npy_chunks(twin, first.shape[0]))):
        raise RuntimeError(f"read {n} rows (expected {p['n']}) or rows unlike the float32 twin")
    mb = path.stat().st_size / 1e6
    return {**m.as_dict(), "rows": n, "rows_per_s": n / m.wall_s, "file_mb": mb, "mb_per_s": mb / m.wall_s}


@case("recordio.csv_source")
def csv_source(p: dict) -> dict:
    csv, _, _ = _paths(p)
    return _read(csv, p, header=False)


@case("recordio.recordio_source")
def recordio_source(p: dict) -> dict:
    return _read(_recordio(p), p)


CASES = {
    "recordio.csv_source": "onepass.sources.open_source on the CSV",
    "recordio.recordio_source": "onepass.sources.open_source on the RecordIO-protobuf file",
}


def _n(cfg: Config) -> int:
    return 50_000 if cfg.quick else 1_000_000


def prepare(cfg: Config) -> list[Task]:
    return [Task("data.csv", {"data_dir": str(cfg.data_dir), "n": _n(cfg), "d": D, "seed": cfg.seed})]


def plan(cfg: Config) -> list[Task]:
    p = {"data_dir": str(cfg.data_dir), "n": _n(cfg), "seed": cfg.seed}
    return [Task(c, p, label) for c, label in CASES.items()]


def render(cfg: Config, results: dict[str, Result]) -> list[Table]:
    by = {t.case: (t, results.get(t.key) or Result(t)) for t in plan(cfg)}
    rows = []
    for t, r in by.values():
        if r.problem:
            rows.append([t.label, r.problem])
            continue
        rows.append([t.label, fmt_int(r.first("rows")), f"{r.med('file_mb'):,.0f}", fmt_rate(r.med("rows_per_s")),
                     f"{r.med('wall_s'):.2f}", fmt_mb(r.med("peak_rss_mb"), r.med("base_rss_mb")), *load_cells(r)])
    summary = []
    csv, rec = by["recordio.csv_source"][1], by["recordio.recordio_source"][1]
    if not csv.problem and not rec.problem:
        ratio = rec.med("rows_per_s") / csv.med("rows_per_s")
        summary.append(["RecordIO-protobuf rows/s / CSV rows/s", f"{ratio:.2f}x", f">= {TARGET_VS_CSV}",
                        target_cell(ratio >= TARGET_VS_CSV)])
    return [
        Table(f"RecordIO-protobuf vs CSV, same rows: d={D}, {fmt_int(_n(cfg))} rows",
              ["case", "rows", "file MB", "rows/s", "wall s", "peak MB (base MB)", "cpu/wall", "others"], rows,
              ["Files are pulled into the page cache right before each case: CPU-bound decoding."]),
        Table("RecordIO-protobuf: onepass's reader vs its CSV reader", ["measure", "measured", "target", "met"],
              summary),
    ]


FAMILY = Family(name="recordio", description=__doc__.splitlines()[0], plan=plan, render=render, prepare=prepare)
