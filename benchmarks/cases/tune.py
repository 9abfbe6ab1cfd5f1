"""Tuning: K-Means's k from one state vs 63 trainings; a halving search vs a full grid.

Data: well-separated spherical blobs (10 and 30 of them, d=20, unit variance, centers
uniform in [-8, 8]^d), 1M training rows (``--quick``: 100k) and 100k validation rows
(20k) drawn independently, float32 ``.npy``. Both ways stream the training file in
100k-row chunks (``partial_fit``) and score on the validation file with the same scorer
(BIC, lower is better).

- one state: ``KMeans(n_clusters=64)`` trained once (keeping 96 centers), then
  ``onepass.tune`` finalizes k = 2..64 from it and reads the validation file once;
- separate: 63 ``KMeans(n_clusters=k)`` models, each trained on the whole stream (the
  way a user without a tunable state would), then the same scoring.

Halving vs grid: Linear Learner (one model a trial) on the linear family's dense binary
data (2M x 100, logistic labels; ``--quick``: 200k), stored as one ``.npy`` with the label
as its last column, validation 200k rows drawn the same way. The grid is
``learning_rate`` in 4 log-spaced values from 1e-4 to 1e-1 times ``wd`` in {0, 1e-6,
1e-4, 1e-2}: 16 settings, each trained on every row and scored (AUC) on validation. The
search is ``onepass tune --search`` over the same 16 points (grid sampler), eta=2,
with a budget of a third of the grid's rows.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from benchmarks._measure import Meter, iter_npy_chunks, warm_page_cache, write_npy_chunked
from benchmarks._registry import Config, Family, Result, Table, Task, case
from benchmarks.render import fmt_int, load_cells, target_cell

D = 20
TRUE_KS = (10, 30)
K_RANGE = (2, 64)
CHUNK_ROWS = 100_000
TARGET_RATIO = 0.10  # (train one state + tune) / (train 63 models), at most


def paths(data_dir: Path, k: int, n: int, seed: int) -> tuple[Path, Path]:
    tag = f"tuneblobs_k{k}_d{D}_n{n}_s{seed}"
    return data_dir / f"{tag}_train.npy", data_dir / f"{tag}_val.npy"


def _n(cfg: Config) -> tuple[int, int]:
    return (100_000, 20_000) if cfg.quick else (1_000_000, 100_000)


@case("tune.data")
def make_data(p: dict) -> dict:
    train_path, val_path = paths(Path(p["data_dir"]), p["k"], p["n"], p["seed"])
    if train_path.exists() and val_path.exists():
        return {"path": str(train_path), "generated": False}
    import time

    t0 = time.perf_counter()
    rng = np.random.default_rng([p["seed"], p["k"], 0x7E])
    centers = rng.uniform(-8, 8, size=(p["k"], D)).astype(np.float32)

    def chunks(n: int, stream: int):
        for i, start in enumerate(range(0, n, CHUNK_ROWS)):
            r = np.random.default_rng([p["seed"], p["k"], stream, i])
            m = min(CHUNK_ROWS, n - start)
            yield centers[r.integers(0, p["k"], m)] + r.standard_normal((m, D), dtype=np.float32)

    Path(p["data_dir"]).mkdir(parents=True, exist_ok=True)
    write_npy_chunked(train_path, (p["n"], D), np.float32, chunks(p["n"], 1))
    write_npy_chunked(val_path, (p["n_val"], D), np.float32, chunks(p["n_val"], 2))
    return {"path": str(train_path), "generated": True, "bytes": train_path.stat().st_size + val_path.stat().st_size,
            "wall_s": time.perf_counter() - t0}


def _stream(model, path: Path) -> int:
    n = 0
    for chunk in iter_npy_chunks(path, CHUNK_ROWS):
        model.partial_fit(chunk)
        n += chunk.shape[0]
    return n


@case("tune.one_state")
def one_state(p: dict) -> dict:
    import onepass

    train_path, val_path = paths(Path(p["data_dir"]), p["k"], p["n"], p["seed"])
    warm_page_cache(train_path, val_path)
    km = onepass.KMeans(n_clusters=K_RANGE[1], random_state=p["seed"])
    with Meter() as m_train:
        _stream(km, train_path)
    with Meter() as m_tune:
        board = onepass.tune(km.state_, validation=str(val_path), params=[f"n_clusters={K_RANGE[0]}:{K_RANGE[1]}"])
    return {
        **m_tune.as_dict(), "train_s": m_train.wall_s, "tune_s": m_tune.wall_s,
        "total_s": m_train.wall_s + m_tune.wall_s, "chosen_k": int(board.chosen["n_clusters"]),
        "kept_centers": int(km.state_.n_centers),
    }


@case("tune.separate")
def separate(p: dict) -> dict:
    import onepass
    from onepass.tune._from_state import score_models

    train_path, val_path = paths(Path(p["data_dir"]), p["k"], p["n"], p["seed"])
    warm_page_cache(train_path, val_path)
    models = []
    with Meter() as m_train:
        for k in range(K_RANGE[0], K_RANGE[1] + 1):
            km = onepass.KMeans(n_clusters=k, random_state=p["seed"])
            _stream(km, train_path)
            models.append(km.model_)
    with Meter() as m_score:
        scores = score_models(models, str(val_path))
    bics = [s["bic"] for s in scores]
    return {
        **m_train.as_dict(), "train_s": m_train.wall_s, "score_s": m_score.wall_s,
        "total_s": m_train.wall_s + m_score.wall_s, "chosen_k": K_RANGE[0] + int(np.nanargmin(bics)),
    }


LR_GRID = "learning_rate=log:1e-4:1e-1:4"
WD_GRID = "wd=0,1e-6,1e-4,1e-2"
TARGET_AUC_GAP = 0.002  # halving's best validation AUC >= the grid's best - this
TARGET_ROWS_SHARE = 1 / 3  # rows the halving search trains on / rows the grid trains on, at most


def _linear_n(cfg_or_quick) -> int:
    quick = cfg_or_quick if isinstance(cfg_or_quick, bool) else cfg_or_quick.quick
    return 200_000 if quick else 2_000_000


def linear_paths(data_dir: Path, n: int, seed: int) -> tuple[Path, Path]:
    tag = f"tunelinear_n{n}_s{seed}"
    return data_dir / f"{tag}_train.npy", data_dir / f"{tag}_val.npy"


@case("tune.linear_data")
def make_linear_data(p: dict) -> dict:
    from benchmarks.cases.linear import SIZES, _dense_chunk, _truth

    train_path, val_path = linear_paths(Path(p["data_dir"]), p["n"], p["seed"])
    if train_path.exists() and val_path.exists():
        return {"path": str(train_path), "generated": False}
    import time

    t0 = time.perf_counter()
    truth = _truth("dense", p["seed"])
    d = SIZES["dense"][1]

    def chunks(n: int, offset: int):
        for i, start in enumerate(range(0, n, CHUNK_ROWS)):
            X, y = _dense_chunk("dense", truth, p["seed"], offset + i, min(CHUNK_ROWS, n - start))
            yield np.column_stack([X, y])

    Path(p["data_dir"]).mkdir(parents=True, exist_ok=True)
    write_npy_chunked(train_path, (p["n"], d + 1), np.float32, chunks(p["n"], 0))
    write_npy_chunked(val_path, (200_000, d + 1), np.float32, chunks(200_000, 10_000))
    return {"path": str(train_path), "generated": True, "wall_s": time.perf_counter() - t0,
            "bytes": train_path.stat().st_size + val_path.stat().st_size}


def _linear_source() -> dict:
    from benchmarks.cases.linear import SIZES

    return {"label_column": SIZES["dense"][1]}


@case("tune.linear_grid")
def linear_grid(p: dict) -> dict:
    import itertools

    from onepass.training import train
    from onepass.tune import parse_param
    from onepass.tune._from_state import score_models

    train_path, val_path = linear_paths(Path(p["data_dir"]), p["n"], p["seed"])
    warm_page_cache(train_path, val_path)
    grid = list(itertools.product(parse_param(LR_GRID).values, parse_param(WD_GRID).values))
    rows, best = 0, None
    with Meter() as m:
        for lr, wd in grid:
            res = train("linear-learner", str(train_path), params={"num_models": 1, "learning_rate": lr, "wd": wd},
                        seed=p["seed"], **_linear_source())
            rows += res.n_rows_seen
            auc = score_models([res.model], str(val_path), **_linear_source())[0]["auc"]
            if best is None or auc > best[0]:
                best = (auc, lr, wd)
    return {**m.as_dict(), "rows_trained": rows, "auc": best[0], "learning_rate": best[1], "wd": best[2],
            "settings": len(grid)}


@case("tune.linear_halving")
def linear_halving(p: dict) -> dict:
    import shutil
    import tempfile

    import onepass

    train_path, val_path = linear_paths(Path(p["data_dir"]), p["n"], p["seed"])
    warm_page_cache(train_path, val_path)
    work = Path(tempfile.mkdtemp(prefix="onepass-halving-"))
    try:
        with Meter() as m:
            board = onepass.tune(search="linear-learner", data=str(train_path), validation=str(val_path),
                                 params=[LR_GRID, WD_GRID], budget_rows=16 * p["n"] // 3, workdir=work,
                                 sampler="grid", eta=2, fixed={"num_models": 1}, seed=p["seed"],
                                 source=_linear_source(), validation_source=_linear_source())
    finally:
        shutil.rmtree(work, ignore_errors=True)
    chosen = board.chosen
    resumed = sum(r["rounds"] - 1 for r in board)
    return {**m.as_dict(), "rows_trained": int(board.rows_trained), "auc": chosen["auc"],
            "learning_rate": chosen["learning_rate"], "wd": chosen["wd"], "trials": len(board),
            "resumed_rounds": resumed}


def prepare(cfg: Config) -> list[Task]:
    n, n_val = _n(cfg)
    return [Task("tune.data", {"data_dir": str(cfg.data_dir), "k": k, "n": n, "n_val": n_val, "seed": cfg.seed})
            for k in TRUE_KS] + [
        Task("tune.linear_data", {"data_dir": str(cfg.data_dir), "n": _linear_n(cfg), "seed": cfg.seed}, timeout_s=1800)]


def plan(cfg: Config) -> list[Task]:
    n, _ = _n(cfg)
    tasks = []
    for k in TRUE_KS:
        p = {"data_dir": str(cfg.data_dir), "k": k, "n": n, "seed": cfg.seed}
        tasks.append(Task("tune.one_state", p, f"{k} blobs: one state (k=64), tuned k=2..64", repeat=None))
        tasks.append(Task("tune.separate", p, f"{k} blobs: 63 separate models k=2..64", repeat=1, timeout_s=1800))
    lp = {"data_dir": str(cfg.data_dir), "n": _linear_n(cfg), "seed": cfg.seed}
    tasks.append(Task("tune.linear_grid", lp, "Linear Learner: full grid, 16 settings", repeat=1, timeout_s=3600))
    tasks.append(Task("tune.linear_halving", lp, "Linear Learner: halving search, same 16 settings", repeat=1,
                      timeout_s=3600))
    return tasks


def render(cfg: Config, results: dict[str, Result]) -> list[Table]:
    n, n_val = _n(cfg)
    rows, targets = [], []
    for k in TRUE_KS:
        mine = {t.case: results.get(t.key) or Result(t) for t in plan(cfg) if t.params.get("k") == k}
        one, sep = mine["tune.one_state"], mine["tune.separate"]
        for label, r, train_key, eval_key in ((f"{k} blobs: one state, tune k=2..64", one, "train_s", "tune_s"),
                                              (f"{k} blobs: 63 separate models", sep, "train_s", "score_s")):
            if r.problem:
                rows.append([label, r.problem])
                continue
            rows.append([label, f"{r.med(train_key):.2f}", f"{r.med(eval_key):.2f}", f"{r.med('total_s'):.2f}",
                         str(r.first("chosen_k")), "yes" if r.first("chosen_k") == k else "**NO**", *load_cells(r)])
        if not one.problem and not sep.problem:
            ratio = one.med("total_s") / sep.med("train_s")
            targets.append([f"{k} blobs: (one state + tune) / 63 trainings", f"{ratio:.3f}",
                            f"<= {TARGET_RATIO}", target_cell(ratio <= TARGET_RATIO)])
            targets.append([f"{k} blobs: k chosen from one state", str(one.first("chosen_k")), str(k),
                            target_cell(one.first("chosen_k") == k)])
    lin = {t.case: results.get(t.key) or Result(t) for t in plan(cfg) if t.case.startswith("tune.linear")}
    grid, halving = lin.get("tune.linear_grid"), lin.get("tune.linear_halving")
    lrows = []
    for label, r in (("full grid (16 settings x every row)", grid), ("successive halving (eta=2, grid sampler)", halving)):
        if r is None or r.problem:
            lrows.append([label, r.problem if r else "not run"])
            continue
        lrows.append([label, fmt_int(r.first("rows_trained")), f"{r.first('auc'):.4f}",
                      f"{r.first('learning_rate'):.3g}", f"{r.first('wd'):g}", f"{r.med('wall_s'):.1f}", *load_cells(r)])
    if grid and halving and not grid.problem and not halving.problem:
        gap = grid.first("auc") - halving.first("auc")
        share = halving.first("rows_trained") / grid.first("rows_trained")
        targets.append(["halving: grid's best AUC - halving's best AUC", f"{gap:.4f}", f"<= {TARGET_AUC_GAP}",
                        target_cell(gap <= TARGET_AUC_GAP)])
        targets.append(["halving: rows trained / grid's rows", f"{share:.3f}", f"<= {TARGET_ROWS_SHARE:.3f}",
                        target_cell(share <= TARGET_ROWS_SHARE)])
        targets.append(["halving: rounds resumed from a checkpoint (not restarted)", str(halving.first("resumed_rounds")),
                        "> 0", target_cell(halving.first("resumed_rounds") > 0)])
    return [
        Table(f"Tuning K-Means's k: {fmt_int(n)} training rows, {fmt_int(n_val)} validation rows, d={D}",
              ["case", "train s", "tune / score s", "total s", "chosen k", "true k?", "cpu/wall", "others"], rows,
              notes=["tune / score: finalizing (one state only) and scoring every k on one read of the validation file, BIC."]),
        Table(f"Tuning Linear Learner's learning_rate x wd: halving search vs full grid ({fmt_int(_linear_n(cfg))} rows, dense binary)",
              ["case", "rows trained", "best validation AUC", "learning_rate", "wd", "wall s", "cpu/wall", "others"], lrows,
              notes=["Both score on the same 200k validation rows; the search's trials pause at each round's row count and resume from their checkpoints."]),
        Table("Tuning: onepass vs targets", ["measure", "measured", "target", "met"], targets),
    ]


FAMILY = Family(name="tune", description=__doc__.splitlines()[0], plan=plan, render=render, prepare=prepare)
