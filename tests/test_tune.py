"""Tuning: from one state (choose k, the number of components) and by successive
halving search (trials pause and resume from their checkpoints; a killed search goes
on without redoing finished work)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from onepass.errors import InvalidParameterError
from onepass.training import train
from onepass.tune import parse_param, tune


def _blobs(path: Path, k: int, seed: int, n_train: int = 60_000, n_val: int = 20_000, d: int = 8) -> Path:
    rng = np.random.default_rng(seed)
    centers = rng.uniform(-12, 12, size=(k, d))
    labels = rng.integers(0, k, n_train + n_val)
    X = (centers[labels] + rng.normal(size=(labels.size, d))).astype(np.float32)
    path.mkdir(parents=True, exist_ok=True)
    np.save(path / "train.npy", X[:n_train])
    np.save(path / "val.npy", X[n_train:])
    return path


@pytest.mark.parametrize("true_k", [10, 30])
def test_choosing_k_from_one_state_finds_the_true_number_of_blobs(tmp_path, true_k):
    data = _blobs(tmp_path / "blobs", true_k, seed=true_k)
    model_dir = tmp_path / "model"
    train("kmeans", data / "train.npy", params={"n_clusters": 64}, seed=0, out=model_dir)
    board = tune(model_dir, validation=data / "val.npy", params=["n_clusters=2:64"], out=tmp_path / "best",
                 plot=tmp_path / "k.png")
    assert len(board) == 63
    assert board.chosen["n_clusters"] == true_k, board.table()
    assert board.metric == "bic" and board.chosen["place"] == 1
    # The silhouette (on a 2,000-row sample) is near: it may merge two close blobs of 30.
    by_silhouette = tune(model_dir, validation=data / "val.npy", params=["n_clusters=2:64"], metric="silhouette")
    assert abs(by_silhouette.chosen["n_clusters"] - true_k) <= true_k // 10
    # The chosen model was written with the leaderboard.
    manifest = json.loads((tmp_path / "best" / "manifest.json").read_text())
    assert manifest["arrays"]["cluster_centers"]["shape"][0] == true_k
    assert len(manifest["tune"]["records"]) == 63
    assert (tmp_path / "k.png").stat().st_size > 1000


def test_pca_components_by_explained_variance_target(tmp_path):
    rng = np.random.default_rng(0)
    scales = np.array([10, 8, 6, 4, 2] + [0.1] * 15)
    X = (rng.normal(size=(30_000, 20)) * scales).astype(np.float32)
    np.save(tmp_path / "t.npy", X[:20_000])
    np.save(tmp_path / "v.npy", X[20_000:])
    result = train("pca", tmp_path / "t.npy", params={"n_components": 20}, seed=0)
    board = tune(result.state, validation=tmp_path / "v.npy", params=["n_components=1:20"],
                 metric="explained_variance_ratio", select="target", target=0.99)
    # The five large directions hold 220/220.15 of the variance: 5 components reach 99%.
    assert board.chosen["n_components"] == 5
    errors = [r["reconstruction_error"] for r in sorted(board, key=lambda r: r["n_components"])]
    assert all(a >= b - 1e-9 for a, b in zip(errors, errors[1:], strict=False))  # more components, less error
    elbow = tune(result.state, validation=tmp_path / "v.npy", params=["n_components=1:20"], select="elbow")
    assert elbow.chosen["n_components"] in (4, 5, 6)


def test_bad_settings_name_the_valid_range(tmp_path):
    data = _blobs(tmp_path / "b", 4, seed=1, n_train=5000, n_val=1000)
    state = train("kmeans", data / "train.npy", params={"n_clusters": 4}, seed=0).state
    kept = state.n_centers
    with pytest.raises(InvalidParameterError, match=rf"n_clusters={kept + 1}.*n_clusters <= {kept}"):
        tune(state, validation=data / "val.npy", params=[f"n_clusters=2:{kept + 1}"])
    with pytest.raises(InvalidParameterError, match="range 9:2 is empty"):
        tune(state, validation=data / "val.npy", params=["n_clusters=9:2"])
    with pytest.raises(InvalidParameterError, match="not a finalize setting of kmeans; from a state, tune: n_clusters"):
        tune(state, validation=data / "val.npy", params=["speed=1:2"])
    with pytest.raises(InvalidParameterError, match="offers bic, inertia, inertia_per_row, silhouette"):
        tune(state, validation=data / "val.npy", params=["n_clusters=2:4"], metric="auc")
    with pytest.raises(InvalidParameterError, match="not a setting of kmeans training; tunable: n_clusters"):
        tune(search="kmeans", data=data / "train.npy", validation=data / "val.npy", params=["nope=1:2"],
             budget_rows=1000, workdir=tmp_path / "w")
    with pytest.raises(InvalidParameterError, match="extra_center_factor=0.5 must be 'auto' or a number >= 1"):
        tune(search="kmeans", data=data / "train.npy", validation=data / "val.npy",
             params=["extra_center_factor=0.5:2"], budget_rows=1000, workdir=tmp_path / "w")


def test_param_ranges_parse():
    assert parse_param("k=2:5").values == (2, 3, 4, 5)
    assert parse_param("k=2:9:3").values == (2, 5, 8)
    assert parse_param("lr=log:1e-3:1e-1:3").values == pytest.approx((1e-3, 1e-2, 1e-1))
    assert parse_param("x=0.1:0.5:0.2").values == pytest.approx((0.1, 0.3, 0.5))
    assert parse_param("m=a,b").values == ("a", "b")
    cont = parse_param("lr=log:1e-4:1e-1")
    assert cont.log and not cont.is_grid
    for bad in ("k", "k=", "k=5:1", "k=log:0:1", "k=1:2:0", "k=a:b"):
        with pytest.raises(InvalidParameterError):
            parse_param(bad)


SEARCH_ARGS = ["--search", "kmeans", "--param", "extra_center_factor=1:4", "--param", "half_life=log:2e4:1e6",
               "--set", "n_clusters=6", "--budget-rows", "120000", "--trials", "4", "--jobs", "2",
               "--batch-size", "2048", "--metric", "inertia", "--json"]


def _search(data: Path, workdir: Path, **popen) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "onepass.cli", "tune", "--data", str(data / "train.npy"),
           "--validation", str(data / "val.npy"), "--workdir", str(workdir), *SEARCH_ARGS]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen)


def _records(out: str) -> dict[int, dict]:
    return {r["trial"]: r for r in json.loads(out)["records"]}


def test_halving_search_resumes_survivors_and_survives_sigkill(tmp_path):
    data = _blobs(tmp_path / "b", 6, seed=2, n_train=40_000, n_val=5_000)
    # Uninterrupted reference search.
    ref = _search(data, tmp_path / "ref")
    out, err = ref.communicate(timeout=300)
    assert ref.returncode == 0, err
    reference = _records(out)
    assert len(reference) == 4
    survivors = [r for r in reference.values() if r["rounds"] > 1]
    assert survivors, reference
    for rec in survivors:  # resumed, not restarted: each round starts where the last stopped
        trial_dir = tmp_path / "ref" / "trials" / f"{rec['trial']:04d}"
        rounds = [json.loads((trial_dir / f"rung-{r}.json").read_text()) for r in range(rec["rounds"])]
        for before, after in zip(rounds, rounds[1:], strict=False):
            assert after["resumed_from_rows"] == before["rows"] > 0
            assert after["rows"] > before["rows"]
    total = sum(r["rows"] for r in reference.values())
    assert total <= 120_000 + 4 * 2048  # the budget, up to a batch per trial

    # The same search, killed (the whole process group, SIGKILL) once its first round is
    # partly done, then started again: it finishes with the same leaderboard and does not
    # redo a round that had finished.
    work = tmp_path / "killed"
    proc = _search(data, work, start_new_session=True)
    deadline = time.monotonic() + 120
    while not list(work.glob("trials/*/rung-0.json")) and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    finished = {p: p.stat().st_mtime_ns for p in work.glob("trials/*/rung-*.json")}
    assert finished, "the search was killed before any round finished"
    again = _search(data, work)
    out, err = again.communicate(timeout=300)
    assert again.returncode == 0, err
    resumed = _records(out)
    for p, mtime in finished.items():
        assert p.stat().st_mtime_ns == mtime, f"{p} was redone"
    assert {t: (r["rows"], r["rounds"], r["place"]) for t, r in resumed.items()} == {
        t: (r["rows"], r["rounds"], r["place"]) for t, r in reference.items()}
    for t, r in resumed.items():
        assert r["inertia"] == pytest.approx(reference[t]["inertia"], rel=1e-9)


def test_a_workdir_holding_another_search_is_refused(tmp_path):
    data = _blobs(tmp_path / "b", 3, seed=3, n_train=8000, n_val=1000)
    kw = dict(search="kmeans", data=data / "train.npy", validation=data / "val.npy", budget_rows=8000,
              workdir=tmp_path / "w", n_trials=2, jobs=1, fixed={"n_clusters": 3})
    tune(params=["half_life=1e4,1e5"], **kw)
    with pytest.raises(InvalidParameterError, match="holds another search.*params"):
        tune(params=["half_life=1e3,1e5"], **kw)


def test_grid_sampler_takes_every_grid_point_once(tmp_path):
    data = _blobs(tmp_path / "b", 3, seed=4, n_train=8000, n_val=1000)
    board = tune(search="kmeans", data=data / "train.npy", validation=data / "val.npy",
                 params=["extra_center_factor=1,2", "half_life=1e4,1e5,none"], budget_rows=40_000,
                 workdir=tmp_path / "w", sampler="grid", jobs=2, fixed={"n_clusters": 3}, batch_size=1000)
    points = sorted((r["extra_center_factor"], str(r["half_life"])) for r in board)
    assert points == sorted((e, str(h)) for e in (1, 2) for h in (1e4, 1e5, None))
    with pytest.raises(InvalidParameterError, match="sampler='grid' needs every range as a grid.*half_life"):
        tune(search="kmeans", data=data / "train.npy", validation=data / "val.npy", params=["half_life=1e3:1e5"],
             budget_rows=1000, workdir=tmp_path / "w2", sampler="grid")


def _labelled(tmp_path: Path, kind: str, n: int = 30_000, d: int = 10, seed: int = 0) -> tuple[Path, Path, np.ndarray, np.ndarray]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)).astype(np.float32)
    W = rng.normal(size=(d, 3))
    if kind == "binary_classifier":
        y = (X @ W[:, 0] + rng.logistic(size=n) > 0).astype(np.float32)
    elif kind == "multiclass_classifier":
        y = np.argmax(X @ W + rng.gumbel(size=(n, 3)), axis=1).astype(np.float32)
    else:
        y = (X @ W[:, 0] + rng.normal(size=n)).astype(np.float32)
    cut = n * 4 // 5
    paths = []
    for name, rows in (("train", slice(0, cut)), ("val", slice(cut, n))):
        path = tmp_path / f"{kind}-{name}.parquet"
        pq.write_table(pa.table({**{f"x{j}": X[rows, j] for j in range(d)}, "y": y[rows]}), path)
        paths.append(path)
    return paths[0], paths[1], X[cut:], y[cut:]


@pytest.mark.parametrize("kind", ["binary_classifier", "multiclass_classifier", "regressor"])
def test_linear_learner_leaderboard_from_one_state_matches_direct_scores(tmp_path, kind):
    from sklearn.metrics import accuracy_score, mean_squared_error, roc_auc_score

    train_path, val_path, Xv, yv = _labelled(tmp_path, kind)
    params = {"predictor_type": kind, "num_models": 6, **({"num_classes": 3} if kind == "multiclass_classifier" else {})}
    state = train("linear-learner", train_path, label_column="y", params=params, seed=0).state
    board = tune(state, validation=val_path, params=["rank=0:5"], label_column="y", out=tmp_path / "best")
    assert len(board) == 6 and board.metric == {"binary_classifier": "auc", "multiclass_classifier": "accuracy",
                                                "regressor": "rmse"}[kind]
    for rec in board:
        model = state.model(rec["rank"])
        if kind == "binary_classifier":
            assert rec["auc"] == pytest.approx(roc_auc_score(yv, model.decision_function(Xv)), abs=2e-4)
        elif kind == "multiclass_classifier":
            assert rec["accuracy"] == pytest.approx(accuracy_score(yv, model.predict(Xv)), abs=1e-9)
        else:
            assert rec["rmse"] == pytest.approx(mean_squared_error(yv, model.predict(Xv)) ** 0.5, rel=1e-4)
    values = [r[board.metric] for r in board]
    best = max(values) if board.direction == "max" else min(values)
    assert board.chosen[board.metric] == best


def test_linear_learner_threshold_is_tuned_on_validation(tmp_path):
    import onepass

    train_path, val_path, Xv, yv = _labelled(tmp_path, "binary_classifier", seed=3)
    state = train("linear-learner", train_path, label_column="y", params={"num_models": 4}, seed=0).state
    board = tune(state, validation=val_path, params=["rank=0:3"], label_column="y", metric="f1", out=tmp_path / "m")
    model = onepass.load(tmp_path / "m")
    # the leaderboard shows the threshold as the probability predict writes; the model keeps its logit
    assert 0 < board.chosen["threshold_f1"] < 1
    assert 1 / (1 + np.exp(-model.threshold_)) == pytest.approx(board.chosen["threshold_f1"], rel=1e-9)
    pred = model.predict(Xv)
    tp = float(((pred == 1) & (yv == 1)).sum())
    f1 = 2 * tp / (2 * tp + float(((pred == 1) & (yv == 0)).sum()) + float(((pred == 0) & (yv == 1)).sum()))
    assert f1 == pytest.approx(board.chosen["f1"], abs=2e-3)  # the tuned threshold gives the F1 reported


def test_kmeans_scores_match_a_direct_computation():
    from sklearn.metrics import silhouette_score

    from onepass.algorithms.kmeans import KMeansModel
    from onepass.batch import Batch
    from onepass.tune._scorers import KMeansScorer

    rng = np.random.default_rng(5)
    X = (rng.normal(size=(20_000, 6)) * 2 + 40).astype(np.float32)
    centers = [X[rng.choice(len(X), k, replace=False)] for k in (2, 5, 40)]
    centers.append(np.vstack([centers[1], centers[1][:2]]))  # duplicate centers: every row of theirs is a tie
    models = [KMeansModel(c, cluster_weights=np.ones(len(c)), inertia=0.0) for c in centers]
    dense, sparse = KMeansScorer(models, seed=1), KMeansScorer(models, seed=1)
    for start in range(0, len(X), 9000):  # row blocks in parallel, and a short last batch
        dense.update(Batch(X[start : start + 9000]))
        sparse.update(Batch(sp.csr_matrix(X[start : start + 9000])))
    got, got_sparse = dense.results(), sparse.results()
    assert not dense.counts[-1][5:].any()  # a tie goes to the first closest center, as argmin does
    sample = dense.sample.array()
    for model, rec, rec_sparse, counts in zip(models, got, got_sparse, dense.counts, strict=True):
        d2 = ((X[:, None, :].astype(np.float64) - model.cluster_centers_[None]) ** 2).sum(axis=2)
        labels = d2.argmin(axis=1)
        # one definition with the model's: inertia is the total, inertia_per_row the mean
        assert rec["inertia"] == pytest.approx(d2.min(axis=1).sum(), rel=1e-5)
        assert rec["inertia"] == pytest.approx(model.inertia(X), rel=1e-5)
        assert rec["inertia_per_row"] == pytest.approx(d2.min(axis=1).mean(), rel=1e-5)
        assert counts.sum() == len(X) and np.abs(counts - np.bincount(labels, minlength=model.n_clusters)).max() <= 2
        # Sparse rows take each model's own sparse product (float32 products of rows far from 0).
        assert rec_sparse["inertia"] == pytest.approx(rec["inertia"], rel=1e-4)
        assert rec_sparse["bic"] == pytest.approx(rec["bic"], rel=1e-5)
        expected = silhouette_score(sample, model.predict(sample))
        assert rec["silhouette"] == pytest.approx(expected, abs=1e-5)
