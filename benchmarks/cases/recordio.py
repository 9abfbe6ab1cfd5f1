"""RecordIO-protobuf: onepass's reader of SageMaker's binary format vs its CSV and libsvm readers, same rows.

Dense data: the csv family's rows (d=50 floats, ~1M rows; ``--quick`` 50k) as a headerless
CSV, and the same float32 values as RecordIO-protobuf, one ``Record`` per row under
``features['values']`` as the SageMaker SDK's ``write_numpy_to_dense_tensor`` writes them
(byte for byte; written once from the float32 twin). Sparse data: 250k rows (``--quick``
50k) of d=1000 with 20 non-zeros each (seeded), a label 0/1, as RecordIO-protobuf records
of keys, values and shape as ``write_spmatrix_to_sparse_tensor`` writes them, and as
libsvm text (values printed with 9 significant digits: the same float32). The same sparse
rows as CSV would be 1000 columns of mostly zeros (over 2 KB a row), so they are compared
with libsvm, the text format made for them. Every file is read by
``onepass.sources.open_source`` alone (no training), after being pulled into the page
cache. The targets: RecordIO-protobuf rows/s at least the CSV reader's (dense) and the
libsvm reader's (sparse).
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
SPARSE_D = 1000
SPARSE_NNZ = 20
TARGET_VS_LIBSVM = 1.0


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


def _sparse_chunks(n: int, seed: int, chunk: int = 10_000):
    """The sparse rows, ``(X csr float32, y)`` a chunk at a time."""
    import scipy.sparse as sp

    rng = np.random.default_rng(seed)
    for a in range(0, n, chunk):
        m = min(chunk, n - a)
        cols = np.sort(np.argpartition(rng.random((m, SPARSE_D)), SPARSE_NNZ, axis=1)[:, :SPARSE_NNZ], axis=1)
        values = rng.standard_normal(m * SPARSE_NNZ).astype(np.float32)
        X = sp.csr_matrix((values, cols.ravel(), np.arange(0, (m + 1) * SPARSE_NNZ, SPARSE_NNZ)), shape=(m, SPARSE_D))
        yield X, rng.integers(0, 2, m).astype(np.float32)


def _sparse_paths(p: dict) -> tuple[Path, Path]:
    """The sparse rows as RecordIO-protobuf and as libsvm, written once."""
    from onepass.io.recordio_protobuf import encode_rows

    stem = Path(p["data_dir"]) / f"recordio_sparse_n{p['n_sparse']}_d{SPARSE_D}_k{SPARSE_NNZ}_s{p['seed']}"
    rec, svm = stem.with_suffix(".rec"), stem.with_suffix(".svm")
    if not (rec.exists() and svm.exists()):
        stem.parent.mkdir(parents=True, exist_ok=True)
        tmp_rec, tmp_svm = rec.with_name(rec.name + ".tmp"), svm.with_name(svm.name + ".tmp")
        with open(tmp_rec, "wb") as fr, open(tmp_svm, "w") as fs:
            for X, y in _sparse_chunks(p["n_sparse"], p["seed"]):
                fr.write(encode_rows(X, y))
                for i in range(X.shape[0]):
                    a, b = X.indptr[i], X.indptr[i + 1]
                    pairs = " ".join(f"{c + 1}:{v:.9g}" for c, v in zip(X.indices[a:b].tolist(),
                                                                         X.data[a:b].tolist(), strict=True))
                    fs.write(f"{y[i]:g} {pairs}\n")
        tmp_rec.replace(rec)
        tmp_svm.replace(svm)
    return rec, svm


def _read_sparse(path: Path, p: dict, **kw) -> dict:
    from onepass.sources import open_source

    warm_page_cache(path)
    n, first = 0, None
    with Meter() as m:
        with open_source(str(path), batch_size=BATCH_SIZE, n_features=SPARSE_D, **kw) as src:
            for batch in src:
                first = batch.X[:100].toarray() if first is None else first
                n += batch.X.shape[0]
    X, _ = next(_sparse_chunks(p["n_sparse"], p["seed"]))
    if n != p["n_sparse"] or not np.array_equal(first, X[:100].toarray()):
        raise RuntimeError(f"read {n} rows (expected {p['n_sparse']}) or rows unlike the ones written")
    mb = path.stat().st_size / 1e6
    return {**m.as_dict(), "rows": n, "rows_per_s": n / m.wall_s, "file_mb": mb, "mb_per_s": mb / m.wall_s}


@case("recordio.sparse_libsvm_source")
def sparse_libsvm_source(p: dict) -> dict:
    return _read_sparse(_sparse_paths(p)[1], p, format="libsvm")


@case("recordio.sparse_recordio_source")
def sparse_recordio_source(p: dict) -> dict:
    return _read_sparse(_sparse_paths(p)[0], p)


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
    "recordio.sparse_libsvm_source": "sparse rows: open_source on the libsvm file",
    "recordio.sparse_recordio_source": "sparse rows: open_source on the RecordIO-protobuf file",
}


def _n(cfg: Config) -> int:
    return 50_000 if cfg.quick else 1_000_000


def _n_sparse(cfg: Config) -> int:
    return 50_000 if cfg.quick else 250_000


def prepare(cfg: Config) -> list[Task]:
    return [Task("data.csv", {"data_dir": str(cfg.data_dir), "n": _n(cfg), "d": D, "seed": cfg.seed})]


def plan(cfg: Config) -> list[Task]:
    p = {"data_dir": str(cfg.data_dir), "n": _n(cfg), "n_sparse": _n_sparse(cfg), "seed": cfg.seed}
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
    svm, srec = by["recordio.sparse_libsvm_source"][1], by["recordio.sparse_recordio_source"][1]
    if not svm.problem and not srec.problem:
        ratio = srec.med("rows_per_s") / svm.med("rows_per_s")
        summary.append(["sparse: RecordIO-protobuf rows/s / libsvm rows/s", f"{ratio:.2f}x",
                        f">= {TARGET_VS_LIBSVM}", target_cell(ratio >= TARGET_VS_LIBSVM)])
    return [
        Table(f"RecordIO-protobuf vs CSV (dense: d={D}, {fmt_int(_n(cfg))} rows) and vs libsvm (sparse: "
              f"d={SPARSE_D}, {SPARSE_NNZ} non-zeros a row, {fmt_int(_n_sparse(cfg))} rows), same rows",
              ["case", "rows", "file MB", "rows/s", "wall s", "peak MB (base MB)", "cpu/wall", "others"], rows,
              ["Files are pulled into the page cache right before each case: CPU-bound decoding."]),
        Table("RecordIO-protobuf: onepass's reader vs its CSV and libsvm readers", ["measure", "measured", "target", "met"],
              summary),
    ]


FAMILY = Family(name="recordio", description=__doc__.splitlines()[0], plan=plan, render=render, prepare=prepare)
