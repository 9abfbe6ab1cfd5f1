"""Tuning K-Means's k: one state finalized for k = 2..64 vs 63 separately trained models.

Data: well-separated spherical blobs (10 and 30 of them, d=20, unit variance, centers
uniform in [-8, 8]^d), 1M training rows (``--quick``: 100k) and 100k validation rows
(20k) drawn independently, float32 ``.npy``. Both ways stream the training file in
100k-row chunks (``partial_fit``) and score on the validation file with the same scorer
(BIC, lower is better).

- one state: ``KMeans(n_clusters=64)`` trained once (keeping 96 centers), then
  ``onepass.tune`` finalizes k = 2..64 from it and reads the validation file once;
- separate: 63 ``KMeans(n_clusters=k)`` models, each trained on the whole stream (the
  way a user without a tunable state would), then the same scoring.
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


def prepare(cfg: Config) -> list[Task]:
    n, n_val = _n(cfg)
    return [Task("tune.data", {"data_dir": str(cfg.data_dir), "k": k, "n": n, "n_val": n_val, "seed": cfg.seed})
            for k in TRUE_KS]


def plan(cfg: Config) -> list[Task]:
    n, _ = _n(cfg)
    tasks = []
    for k in TRUE_KS:
        p = {"data_dir": str(cfg.data_dir), "k": k, "n": n, "seed": cfg.seed}
        tasks.append(Task("tune.one_state", p, f"{k} blobs: one state (k=64), tuned k=2..64", repeat=None))
        tasks.append(Task("tune.separate", p, f"{k} blobs: 63 separate models k=2..64", repeat=1, timeout_s=1800))
    return tasks


def render(cfg: Config, results: dict[str, Result]) -> list[Table]:
    n, n_val = _n(cfg)
    rows, targets = [], []
    for k in TRUE_KS:
        mine = {t.case: results.get(t.key) or Result(t) for t in plan(cfg) if t.params["k"] == k}
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
    return [
        Table(f"Tuning K-Means's k: {fmt_int(n)} training rows, {fmt_int(n_val)} validation rows, d={D}",
              ["case", "train s", "tune / score s", "total s", "chosen k", "true k?", "cpu/wall", "others"], rows,
              notes=["tune / score: finalizing (one state only) and scoring every k on one read of the validation file, BIC."]),
        Table("Tuning: onepass vs targets", ["measure", "measured", "target", "met"], targets),
    ]


FAMILY = Family(name="tune", description=__doc__.splitlines()[0], plan=plan, render=render, prepare=prepare)
