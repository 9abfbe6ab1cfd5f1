"""Factorization Machines: onepass (1 and 8 models) vs Vowpal Wabbit --lrq, River FMClassifier, Linear Learner.

Data (generated chunk by chunk from fixed seeds, anchor report section 4): F=8
categorical fields, one-hot into ``F*V`` columns (column = field*V + value), value
frequencies Zipf-like per field (p(rank r) ~ r^-a, ranks shuffled to values per field).
The label's logit is bias + a linear term per value + the sum over the 28 field pairs of
<v_i, v_j>, with rank-4 true factors:

- ``common``: V=200 values per field (a=1), y ~ Bernoulli(sigmoid(logit)); the
  Bayes-optimal AUC (the generating model on the test set) is ~0.92;
- ``rare``: V=20,000 values per field, heavier tail (a=0.8: about half of the
  occurrences are of values seen fewer than 100 times in 1M rows); the gap to the
  ceiling is reported, not targeted;
- ``regression``: the rows of ``common``, y = logit + N(0, 1), squared loss; RMSE and
  R2 against the noise floor.

1M training rows (``--quick``: 100k) and a held-out test set of 200k rows (quick: 50k),
each written as a libsvm file (``label idx:1 ...``, 1-based indices as libsvm and
onepass's reader expect, ``--n-features F*V``) and as Vowpal Wabbit's own text format
(every feature in namespace ``f``, so ``--lrq ff8`` crosses the fields). onepass runs
through its CLI (``onepass train ... --format libsvm``, then ``onepass predict``), one
process per command: rows/s is rows over the train command's wall time (process start,
imports, parsing and the final model write included) and peak MB its ``ru_maxrss``
(``os.wait4``). A small untimed training run first fills Numba's disk cache, so no
compilation lands in the timed command. Vowpal Wabbit runs its C++ driver
(``python -m vowpalwabbit``) on its text file, timed with its parsing, the same way.
River learns the first 50k rows and is tested on the first 20k test rows. Memory:
onepass FM on 1M, 2M, 4M and 8M rows (prefixes of one generated stream; quick: 100k to
800k), peak RSS of the train process.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks._measure import system_busy_s, warm_page_cache
from benchmarks._registry import Config, Family, Result, Skip, Table, Task, case, find_result
from benchmarks.render import fmt_int, fmt_mb, fmt_rate, fmt_spread, load_cells, target_cell

N_FIELDS = 8
RANK = 4  # rank of the true pairwise factors
FACTOR_SCALE = 0.52  # std of a true factor entry: Bayes-optimal AUC ~0.92 on `common`
LINEAR_SCALE = 0.3
BIAS = -0.5
NOISE = 1.0  # regression noise std (the RMSE floor)
KINDS = {  # values per field, Zipf exponent, task
    "common": (200, 1.0, "binary"),
    "rare": (20_000, 0.8, "binary"),
    "regression": (200, 1.0, "regression"),
}
CHUNK_ROWS = 100_000
N_TRAIN, QUICK_TRAIN = 1_000_000, 100_000
N_TEST, QUICK_TEST = 200_000, 50_000
MEM_ROWS, QUICK_MEM_ROWS = (1_000_000, 2_000_000, 4_000_000, 8_000_000), (100_000, 200_000, 400_000, 800_000)
RIVER_TRAIN, RIVER_TEST = 50_000, 20_000
WARM_ROWS = 2_000

TARGET_FM_VS_LL_AUC = 0.05  # onepass FM AUC - Linear Learner AUC, at least ("the interactions are learned")
TARGET_CEILING_GAP = 0.01  # Bayes-optimal AUC - onepass FM AUC, at most (common values)
TARGET_VS_VW = 10.0  # onepass FM (1 model) rows/s / VW --lrq rows/s, at least
TARGET_MODELS_TIME = 4.0  # FM 8 models wall / FM 1 model wall, at most
TARGET_MEM_FLAT = 1.1  # peak RSS at the largest size / at the smallest, at most


# --- data --------------------------------------------------------------------------------


def _sizes(quick: bool) -> dict[str, int]:
    return {"train": QUICK_TRAIN if quick else N_TRAIN, "test": QUICK_TEST if quick else N_TEST}


def n_features(kind: str) -> int:
    return N_FIELDS * KINDS[kind][0]


def _tag(kind: str, seed: int) -> str:
    vocab, a, _ = KINDS[kind]
    return f"fm_{kind}_v{vocab}_a{a:g}_s{seed}"


def data_dir(p: dict) -> Path:
    return Path(p["data_dir"]) / _tag(p["kind"], p["seed"])


def paths(p: dict, part: str, n: int) -> dict[str, Path]:
    """The files of one part ('train', 'test', 'mem') of ``n`` rows."""
    d = data_dir(p)
    stem = f"{part}_n{n}"
    return {"libsvm": d / f"{stem}.libsvm", "vw": d / f"{stem}.vw", "truth": d / f"{stem}_truth.npz"}


def _truth(kind: str, seed: int):
    """(value of each frequency rank per field (F, V), linear terms (F, V), factors (F, V, RANK))."""
    vocab = KINDS[kind][0]
    rng = np.random.default_rng([seed, 0xF3, vocab])
    perm = np.stack([rng.permutation(vocab) for _ in range(N_FIELDS)])
    w = rng.normal(0.0, LINEAR_SCALE, (N_FIELDS, vocab))
    factors = rng.normal(0.0, FACTOR_SCALE, (N_FIELDS, vocab, RANK))
    return perm, w, factors


def _chunk(kind: str, truth, seed: int, part: str, index: int, m: int):
    """(values (m, F), logit (m,), label (m,)) of one chunk; `regression` has the rows of `common`."""
    vocab, a, task = KINDS[kind]
    perm, w, factors = truth
    rng = np.random.default_rng([seed, 0xDA7A, vocab, int(a * 100), ("train", "test", "mem").index(part), index])
    p = np.arange(1, vocab + 1, dtype=np.float64) ** -a
    ranks = np.minimum(np.searchsorted(np.cumsum(p / p.sum()), rng.random((m, N_FIELDS))), vocab - 1)
    fields = np.arange(N_FIELDS)[None, :]
    values = perm[fields, ranks]
    emb = factors[fields, values]  # (m, F, RANK)
    s = emb.sum(axis=1)
    pairwise = 0.5 * ((s * s).sum(axis=1) - (emb * emb).sum(axis=(1, 2)))
    logit = BIAS + w[fields, values].sum(axis=1) + pairwise
    u = rng.random(m)
    if task == "regression":
        noise = np.random.default_rng([seed, 0x4015E, ("train", "test", "mem").index(part), index]).normal(0, NOISE, m)
        y = logit + noise
    else:
        y = (u < 1.0 / (1.0 + np.exp(-logit))).astype(np.float64)
    return values, logit, y


class _Formatter:
    """libsvm and VW lines of a chunk, built with object-array string ops (no loop per row)."""

    def __init__(self, kind: str) -> None:
        vocab, _, self.task = KINDS[kind]
        d = N_FIELDS * vocab
        self.vocab = vocab
        self.svm_tok = np.array([f" {j + 1}:1" for j in range(d)], dtype=object)  # libsvm: 1-based
        self.vw_tok = np.array([f" {j}" for j in range(d)], dtype=object)  # VW: feature named by its column

    def lines(self, values: np.ndarray, y: np.ndarray, vw: bool = True) -> tuple[str, str]:
        """(libsvm text, VW text, '' when ``vw`` is false) of the rows ``values`` (m, F) with labels ``y``."""
        cols = values + (np.arange(N_FIELDS) * self.vocab)[None, :]
        if self.task == "regression":
            svm = np.array([f"{v:.5g}" for v in y.tolist()], dtype=object)
            vwl = svm + " |f"
        else:
            pos = y > 0.5
            svm = np.where(pos, "1", "0").astype(object)
            vwl = np.where(pos, "1 |f", "-1 |f").astype(object)
        for f in range(N_FIELDS):
            svm = svm + self.svm_tok[cols[:, f]]
            if vw:
                vwl = vwl + self.vw_tok[cols[:, f]]
        return "\n".join(svm.tolist()) + "\n", ("\n".join(vwl.tolist()) + "\n") if vw else ""


def _write_part(kind: str, truth, seed: int, part: str, n: int, files: dict[str, Path],
                marks: tuple[int, ...] = ()) -> dict[int, int]:
    """Write ``n`` rows chunk by chunk (bounded memory), each file atomically; the byte
    offset of the libsvm file after each row count in ``marks``. ``files`` may leave out
    'vw' and 'truth' (the test part keeps its labels and true logits in 'truth')."""
    fmt = _Formatter(kind)
    tmp = {k: v.with_name(v.name + ".tmp") for k, v in files.items()}
    offsets, ys, logits = {}, [], []
    with open(tmp["libsvm"], "w") as fs, open(tmp.get("vw", os.devnull), "w") as fv:
        done = 0
        for i, start in enumerate(range(0, n, CHUNK_ROWS)):
            m = min(CHUNK_ROWS, n - start)
            values, logit, y = _chunk(kind, truth, seed, part, i, m)
            svm, vw = fmt.lines(values, y, vw="vw" in files)
            fs.write(svm)
            fv.write(vw)
            done += m
            if done in marks:
                offsets[done] = fs.tell()
            if "truth" in files:
                ys.append(y.astype(np.float32))
                logits.append(logit.astype(np.float32))
    if "truth" in files:
        with open(tmp["truth"], "wb") as f:
            np.savez(f, y=np.concatenate(ys), logit=np.concatenate(logits))
    for k in tmp:
        os.replace(tmp[k], files[k])
    return offsets


def _copy_prefix(src: Path, dst: Path, nbytes: int) -> None:
    """The first ``nbytes`` of ``src`` (whole lines: a row-count boundary) as ``dst``, atomically."""
    tmp = dst.with_name(dst.name + ".tmp")
    with open(src, "rb") as fi, open(tmp, "wb") as fo:
        left = nbytes
        while left > 0:
            n = os.copy_file_range(fi.fileno(), fo.fileno(), left)
            if n == 0:
                raise OSError(f"{src}: short copy at {nbytes - left} of {nbytes} bytes")
            left -= n
    os.replace(tmp, dst)


def mem_path(p: dict, n: int) -> Path:
    return data_dir(p) / f"mem_n{n}.libsvm"


def warm_path(p: dict) -> Path:
    return data_dir(p) / f"warm_n{WARM_ROWS}.libsvm"


@case("fm.data")
def make_data(p: dict) -> dict:
    kind, seed = p["kind"], p["seed"]
    d = data_dir(p)
    d.mkdir(parents=True, exist_ok=True)
    truth = _truth(kind, seed)
    t0 = time.perf_counter()
    made: list[Path] = []
    train, test = paths(p, "train", p["train"]), paths(p, "test", p["test"])
    if not (train["libsvm"].exists() and train["vw"].exists()):
        _write_part(kind, truth, seed, "train", p["train"], {"libsvm": train["libsvm"], "vw": train["vw"]})
        made.append(train["libsvm"])
    if not all(f.exists() for f in test.values()):
        _write_part(kind, truth, seed, "test", p["test"], test)
        made.append(test["libsvm"])
    if not warm_path(p).exists():
        _write_part(kind, truth, seed, "train", WARM_ROWS, {"libsvm": warm_path(p)})
    sizes = sorted(p.get("mem") or [])
    if sizes and not all(mem_path(p, n).exists() for n in sizes):
        big = sizes[-1]
        offsets = _write_part(kind, truth, seed, "mem", big, {"libsvm": mem_path(p, big)}, marks=tuple(sizes))
        for n in sizes[:-1]:
            _copy_prefix(mem_path(p, big), mem_path(p, n), offsets[n])
        made.append(mem_path(p, big))
    if not made:
        return {"made": []}
    total = sum(f.stat().st_size for f in d.iterdir() if f.is_file())
    return {"generated": True, "path": str(d), "bytes": total, "wall_s": time.perf_counter() - t0,
            "made": [str(f) for f in made]}


def _test(p: dict) -> tuple[np.ndarray, np.ndarray]:
    """(labels, true logits) of the test set."""
    z = np.load(paths(p, "test", p["test"])["truth"])
    return z["y"].astype(np.float64), z["logit"].astype(np.float64)


def _quality(p: dict, s: np.ndarray, y: np.ndarray | None = None) -> dict:
    """Quality of scores ``s`` (probabilities, or predictions for regression) on the test set
    (or on its first ``len(s)`` rows)."""
    from sklearn.metrics import log_loss, roc_auc_score

    if y is None:
        y = _test(p)[0][: len(s)]
    s = np.asarray(s, dtype=np.float64)
    if s.shape != y.shape:
        raise RuntimeError(f"{s.shape[0]} predictions for {y.shape[0]} test rows")
    if KINDS[p["kind"]][2] == "regression":
        mse = float(np.mean((y - s) ** 2))
        return {"rmse": mse**0.5, "r2": 1.0 - mse / float(np.var(y))}
    out = {"auc": float(roc_auc_score(y, s))}
    if s.min() >= 0 and s.max() <= 1:
        out["logloss"] = float(log_loss(y, np.clip(s, 1e-7, 1 - 1e-7)))
    return out


# --- measuring a command -----------------------------------------------------------------


def run_measured(cmd: list[str]) -> dict:
    """Run ``cmd`` to its end: wall time, CPU time and peak RSS of that process (``os.wait4``:
    its own rusage, which also covers the children it waited for), and the CPU time the rest
    of the machine used meanwhile."""
    with tempfile.TemporaryFile() as err:
        busy0 = system_busy_s()
        t0 = time.perf_counter()
        proc = subprocess.Popen([str(c) for c in cmd], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=err)
        _, status, ru = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        busy = system_busy_s() - busy0
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode:
            err.seek(0)
            tail = err.read().decode(errors="replace").strip()[-1500:]
            raise RuntimeError(f"{Path(str(cmd[0])).name} {' '.join(map(str, cmd[1:5]))} ... exited "
                               f"{proc.returncode}: {tail}")
    cpu = ru.ru_utime + ru.ru_stime
    return {"wall_s": wall, "cpu_s": cpu, "other_cpu_s": max(0.0, busy - cpu), "peak_rss_mb": ru.ru_maxrss / 1024}


def _read_column(path: Path, column: str | int) -> np.ndarray:
    import pandas as pd

    if isinstance(column, int):
        return pd.read_csv(path, header=None, sep=r"\s+", usecols=[column], engine="c")[column].to_numpy()
    return pd.read_csv(path, usecols=[column])[column].to_numpy()


# --- cases -------------------------------------------------------------------------------


@case("fm.ceiling")
def ceiling(p: dict) -> dict:
    """The generating model's own predictions on the test set: the best any model can do."""
    y, logit = _test(p)
    s = logit if KINDS[p["kind"]][2] == "regression" else 1.0 / (1.0 + np.exp(-logit))
    return {"rows": len(y), **_quality(p, s, y)}


@case("fm.vw")
def vw_case(p: dict) -> dict:
    try:
        import vowpalwabbit  # noqa: F401
    except ImportError:
        raise Skip("vowpalwabbit is not installed (pip install -e '.[bench]')") from None
    binary = KINDS[p["kind"]][2] == "binary"
    train, test = paths(p, "train", p["train"])["vw"], paths(p, "test", p["test"])["vw"]
    vw = [sys.executable, "-m", "vowpalwabbit", "--quiet"]
    bits = max(18, int(np.ceil(np.log2(n_features(p["kind"])))) + 4)  # few hash collisions
    with tempfile.TemporaryDirectory() as tmp:
        model, preds = Path(tmp) / "model.vw", Path(tmp) / "preds.txt"
        cmd = [*vw, "-d", train, "-b", bits, "--loss_function", "logistic" if binary else "squared",
               *(["--lrq", f"ff{p['lrq']}"] if p.get("lrq") else []), "-f", model]
        warm_page_cache(train)
        m = run_measured(cmd)
        run_measured([*vw, "-d", test, "-t", "-i", model, "-p", preds, *(["--link", "logistic"] if binary else [])])
        s = _read_column(preds, 0)
    return {**m, "rows": p["train"], "rows_per_s": p["train"] / m["wall_s"], **_quality(p, s),
            "command": " ".join(map(str, cmd[1:]))}


def _libsvm_rows(path: Path, n: int) -> tuple[list[dict], np.ndarray]:
    """The first ``n`` rows of a libsvm file as River feature dicts (0-based columns) and labels."""
    xs, ys = [], []
    with open(path) as f:
        for line, _ in zip(f, range(n), strict=False):
            label, *pairs = line.split()
            ys.append(float(label))
            xs.append({int(t.split(":", 1)[0]) - 1: 1.0 for t in pairs})
    return xs, np.array(ys)


@case("fm.river")
def river_case(p: dict) -> dict:
    try:
        from river import facto
    except ImportError:
        raise Skip("river is not installed (pip install -e '.[bench]')") from None
    from benchmarks._measure import Meter

    xs, ys = _libsvm_rows(paths(p, "train", p["train"])["libsvm"], RIVER_TRAIN)
    model = facto.FMClassifier(n_factors=p["num_factors"], seed=p["seed"])
    with Meter() as m:
        for x, t in zip(xs, ys.tolist(), strict=True):
            model.learn_one(x, t > 0.5)
    xt, yt = _libsvm_rows(paths(p, "test", p["test"])["libsvm"], RIVER_TEST)
    s = np.array([model.predict_proba_one(x).get(True, 0.0) for x in xt])
    return {**m.as_dict(), "rows": len(xs), "rows_per_s": len(xs) / m.wall_s, **_quality(p, s, yt),
            "test_rows": len(xt)}


FM_ALGO, LL_ALGO = "factorization-machines", "linear-learner"


@case("fm.onepass")
def onepass_case(p: dict) -> dict:
    """``onepass train`` (FM or Linear Learner) through the CLI, then ``onepass predict``."""
    from onepass.state import ALGORITHMS, get_algorithm

    get_algorithm(LL_ALGO)  # fills the registry
    if p["algo"] not in ALGORITHMS:
        raise Skip(f"{p['algo']} is not in this tree yet")
    kind = p["kind"]
    d = n_features(kind)
    data = mem_path(p, p["rows"]) if "rows" in p else paths(p, "train", p["train"])["libsvm"]
    n = p.get("rows", p["train"])
    cli = [sys.executable, "-m", "onepass.cli"]
    train = [*cli, "train", p["algo"], "--predictor-type",
             "regressor" if KINDS[kind][2] == "regression" else "binary_classifier",
             "--num-models", p["num_models"], *(["--num-factors", p["num_factors"]] if p["algo"] == FM_ALGO else []),
             "--format", "libsvm", "--n-features", d, "--seed", p["seed"], "--quiet"]
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "model"
        # untimed: fills Numba's disk cache (compiled kernels), so the timed run only loads them
        warm = run_measured([*train, "--data", warm_path(p), "--out", Path(tmp) / "warm"])
        warm_page_cache(data)
        m = run_measured([*train, *(["--workers", p["workers"]] if p.get("workers") else []), "--data", data,
                          "--out", out])
        # the same command on 2,000 rows: about the fixed cost (start-up, imports, model write)
        result = {**m, "rows": n, "rows_per_s": n / m["wall_s"], "small_run_s": warm["wall_s"]}
        if not p.get("speed_only"):
            csv = Path(tmp) / "predictions.csv"
            pm = run_measured([*cli, "predict", out, "--data", paths(p, "test", p["test"])["libsvm"], "--format",
                               "libsvm", "--n-features", d, "--out", csv])
            result.update(_quality(p, _read_column(csv, "score")), predict_s=pm["wall_s"])
    return result


# --- plan and render ---------------------------------------------------------------------


def _base(cfg: Config, kind: str) -> dict:
    return {"data_dir": str(cfg.data_dir), "kind": kind, "seed": cfg.seed, **_sizes(cfg.quick)}


def prepare(cfg: Config) -> list[Task]:
    mem = list(QUICK_MEM_ROWS if cfg.quick else MEM_ROWS)
    return [Task("fm.data", {**_base(cfg, k), **({"mem": mem} if k == "common" else {})}, timeout_s=3600.0)
            for k in KINDS]


def _fm(base: dict, factors: int = 8, models: int = 1, **extra) -> dict:
    return {**base, "algo": FM_ALGO, "num_factors": factors, "num_models": models, **extra}


def plan(cfg: Config) -> list[Task]:
    tasks = []
    for kind in KINDS:
        base = _base(cfg, kind)
        lrq = "--lrq ff8, logistic" if kind != "regression" else "--lrq ff8, squared"
        tasks += [
            Task("fm.ceiling", base, f"{kind}: the generating model (ceiling)", repeat=1),
            Task("fm.vw", {**base, "lrq": 8}, f"{kind}: Vowpal Wabbit {lrq} (C++ driver, text file)", repeat=1),
        ]
        if kind == "common":
            tasks += [
                Task("fm.vw", base, f"{kind}: Vowpal Wabbit linear (C++ driver, text file)", repeat=1),
                Task("fm.river", {**base, "num_factors": 8},
                     f"{kind}: River FMClassifier k=8 (first {RIVER_TRAIN:,} rows; test {RIVER_TEST:,})", repeat=1),
            ]
        tasks.append(Task("fm.onepass", {**base, "algo": LL_ALGO, "num_models": 1},
                          f"{kind}: onepass Linear Learner 1 model (CLI)", repeat=None if kind == "common" else 1))
        tasks.append(Task("fm.onepass", _fm(base), f"{kind}: onepass FM k=8, 1 model (CLI)",
                          repeat=None if kind == "common" else 1))
        if kind == "common":
            tasks += [
                Task("fm.onepass", _fm(base, factors=16), f"{kind}: onepass FM k=16, 1 model (CLI)", repeat=1),
                Task("fm.onepass", _fm(base, models=8), f"{kind}: onepass FM k=8, 8 models (CLI)"),
                Task("fm.onepass", _fm(base, workers=2),
                     f"{kind}: onepass FM k=8, 1 model, Ray --workers 2 (CLI, local cluster start included)",
                     repeat=1),
            ]
            for rows in QUICK_MEM_ROWS if cfg.quick else MEM_ROWS:
                tasks.append(Task("fm.onepass", _fm(base, rows=rows, speed_only=True),
                                  f"memory: onepass FM k=8, 1 model, {rows:,} rows (speed and RSS only)", repeat=1))
    return tasks


def _quality_cell(kind: str, r: Result) -> str:
    if KINDS[kind][2] == "regression":
        return f"RMSE {r.med('rmse'):.4f}; R2 {r.med('r2'):.4f}" if r.med("rmse") is not None else ""
    if r.med("auc") is None:
        return ""
    ll = r.med("logloss")
    return f"AUC {r.med('auc'):.4f}" + (f"; logloss {ll:.4f}" if ll is not None else "")


def render(cfg: Config, results: dict[str, Result]) -> list[Table]:
    tasks = plan(cfg)

    def get(case_name: str, kind: str, **match) -> Result | None:
        return find_result(tasks, results, case_name, kind=kind, **match)

    rows = []
    for t in tasks:
        r = results.get(t.key) or Result(t)
        if r.problem:
            rows.append([t.label, r.problem])
            continue
        quality = _quality_cell(t.params["kind"], r)
        if t.case == "fm.ceiling":
            rows.append([t.label, fmt_int(r.first("rows")) + " (test)", "", "", "", quality, "", "", "1"])
            continue
        rows.append([t.label, fmt_int(r.first("rows")), fmt_spread(r.values("rows_per_s"), fmt_rate),
                     f"{r.med('wall_s'):.2f}", fmt_mb(r.med("peak_rss_mb"), r.med("base_rss_mb")), quality,
                     *load_cells(r), str(len(r.ok_runs))])
    n_test = _sizes(cfg.quick)["test"]
    tables = [Table(f"Factorization Machines: every case side by side (test set: {n_test:,} held-out rows)",
                    ["case", "rows", "rows/s median (min-max)", "wall s", "peak MB (base MB)", "quality",
                     "cpu/wall", "others", "runs"], rows,
                    notes=["onepass and Vowpal Wabbit cases: wall s is the whole train command (process start, "
                           "imports, parsing the text file, training, writing the model); peak MB is that "
                           "process's ru_maxrss (os.wait4). River: the learn_one loop only, peak of its process "
                           "(base MB: before the loop).",
                           "Vowpal Wabbit --lrq runs with its defaults (as in the anchor report). On the rare-values "
                           "data it diverges (logloss above the 0.67 of a constant prediction); on 100k rows so did "
                           "-l 0.1, -l 0.05, --lrqdropout and -b 18.",
                           "Ray case: the driver's peak only (the workers are Ray's processes), and the wall time "
                           "includes starting a local Ray cluster and the workers."]
                    )]

    targets = []
    fm1, ll = get("fm.onepass", "common", algo=FM_ALGO, num_factors=8, num_models=1, rows=None, workers=None), \
        get("fm.onepass", "common", algo=LL_ALGO)
    fm8 = get("fm.onepass", "common", algo=FM_ALGO, num_models=8)
    vw_lrq, ceil = get("fm.vw", "common", lrq=8), get("fm.ceiling", "common")
    if fm1 and vw_lrq:
        x = fm1.med("auc") - vw_lrq.med("auc")
        targets.append(["common: onepass FM (k=8, 1 model) AUC - VW --lrq ff8 AUC", f"{x:+.4f}", ">= 0",
                        target_cell(x >= 0)])
    if fm1 and ll:
        x = fm1.med("auc") - ll.med("auc")
        targets.append(["common: onepass FM AUC - onepass Linear Learner AUC (the interactions are learned)",
                        f"{x:+.4f}", f">= {TARGET_FM_VS_LL_AUC}", target_cell(x >= TARGET_FM_VS_LL_AUC)])
    if fm1 and ceil:
        x = ceil.med("auc") - fm1.med("auc")
        targets.append(["common: Bayes-optimal AUC - onepass FM AUC", f"{x:+.4f}", f"<= {TARGET_CEILING_GAP}",
                        target_cell(x <= TARGET_CEILING_GAP)])
    for kind in ("rare",):
        f, c, v = (get("fm.onepass", kind, algo=FM_ALGO), get("fm.ceiling", kind), get("fm.vw", kind, lrq=8))
        if f and c:
            targets.append([f"{kind}: Bayes-optimal AUC - onepass FM AUC (VW --lrq: "
                            f"{c.med('auc') - v.med('auc'):+.4f})" if v else
                            f"{kind}: Bayes-optimal AUC - onepass FM AUC", f"{c.med('auc') - f.med('auc'):+.4f}",
                            "(reported)", "-"])
    f, c, v = (get("fm.onepass", "regression", algo=FM_ALGO), get("fm.ceiling", "regression"),
               get("fm.vw", "regression", lrq=8))
    if f and c:
        targets.append(["regression: onepass FM RMSE / noise floor (generating model's RMSE)",
                        f"{f.med('rmse') / c.med('rmse'):.3f}x", "(reported)", "-"])
        targets.append(["regression: ceiling R2 - onepass FM R2", f"{c.med('r2') - f.med('r2'):+.4f}", "(reported)",
                        "-"])
    if f and v:
        targets.append(["regression: onepass FM R2 - VW --lrq ff8 R2", f"{f.med('r2') - v.med('r2'):+.4f}", ">= 0",
                        target_cell(f.med("r2") >= v.med("r2"))])
    if fm1 and vw_lrq:
        x = fm1.med("rows_per_s") / vw_lrq.med("rows_per_s")
        targets.append(["common: onepass FM (1 model) rows/s / VW --lrq rows/s (both: whole train command)",
                        f"{x:.1f}x", f">= {TARGET_VS_VW:.0f}x", target_cell(x >= TARGET_VS_VW)])
    mem_sizes = QUICK_MEM_ROWS if cfg.quick else MEM_ROWS
    lo, hi = (get("fm.onepass", "common", rows=n) for n in (mem_sizes[0], mem_sizes[-1]))
    if lo and hi and vw_lrq:
        per_row = (mem_sizes[-1] - mem_sizes[0]) / (hi.med("wall_s") - lo.med("wall_s"))
        targets.append([f"common: onepass FM per-row rate, ({mem_sizes[-1]:,} - {mem_sizes[0]:,} rows) / (their wall "
                        f"difference) = {per_row:,.0f} rows/s, / VW --lrq rows/s", f"{per_row / vw_lrq.med('rows_per_s'):.1f}x",
                        "(reported)", "-"])
    if fm1 and fm1.med("small_run_s") is not None:
        targets.append(["common: onepass FM train command on 2,000 rows (about its fixed cost: start-up, imports, "
                        "model write), s", f"{fm1.med('small_run_s'):.2f}", "(reported)", "-"])
    if fm1 and fm8:
        x = fm8.med("wall_s") / fm1.med("wall_s")
        targets.append(["common: onepass FM 8 models wall / 1 model wall", f"{x:.2f}x", f"<= {TARGET_MODELS_TIME:.0f}x",
                        target_cell(x <= TARGET_MODELS_TIME)])
    fm16 = get("fm.onepass", "common", algo=FM_ALGO, num_factors=16)
    if fm1 and fm16:
        targets.append(["common: onepass FM k=16 AUC - k=8 AUC; wall k=16 / k=8",
                        f"{fm16.med('auc') - fm1.med('auc'):+.4f}; {fm16.med('wall_s') / fm1.med('wall_s'):.2f}x",
                        "(reported)", "-"])
    ray = get("fm.onepass", "common", workers=2)
    if fm1 and ray:
        targets.append(["common: onepass FM Ray 2 workers rows/s / 1 process rows/s; AUC difference",
                        f"{ray.med('rows_per_s') / fm1.med('rows_per_s'):.2f}x; {ray.med('auc') - fm1.med('auc'):+.4f}",
                        "(reported)", "-"])
    if lo and hi:
        x = hi.med("peak_rss_mb") / lo.med("peak_rss_mb")
        peaks = [get("fm.onepass", "common", rows=n) for n in mem_sizes]
        shown = ", ".join(f"{n / 1e6:g}M {r.med('peak_rss_mb'):.0f}" for n, r in zip(mem_sizes, peaks, strict=True) if r)
        targets.append([f"memory: onepass FM peak RSS at {mem_sizes[-1]:,} rows / at {mem_sizes[0]:,} rows "
                        f"(peak MB by rows: {shown})",
                        f"{x:.2f}x", f"about 1 (<= {TARGET_MEM_FLAT})", target_cell(x <= TARGET_MEM_FLAT)])
    tables.append(Table("Factorization Machines: onepass vs targets", ["measure", "measured", "target", "met"],
                        targets,
                        notes=[*(["--quick: 100k training rows, where start-up is most of a command's wall time and "
                                  "no model is near the ceiling; the targets are set for the full sizes."]
                                 if cfg.quick else []),
                               f"rows/s ratios compare whole train commands (start-up and parsing included) on the "
                               f"same {_sizes(cfg.quick)['train']:,} rows (libsvm for onepass, VW's own text format "
                               "for VW).",
                               "Quality of onepass is its finalized model (with several models: the one it chose) on "
                               "the held-out test set; the ceiling is the generating model's own probabilities."]))
    return tables


FAMILY = Family(name="fm", description=__doc__.splitlines()[0], plan=plan, render=render, prepare=prepare)
