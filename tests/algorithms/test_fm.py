"""Factorization Machines: the compiled training against a NumPy reference, interactions
learned where a linear model cannot, model selection, bad input, the command line."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.metrics import roc_auc_score

from onepass import Batch, FactorizationMachinesClassifier, FactorizationMachinesState, LinearLearnerState
from onepass.errors import BadRecordError, DataError, FeatureCountError, InvalidParameterError


def one_hot_pairs(n: int, seed: int = 0, values: int = 30, fields: int = 3, rank: int = 3):
    """Categorical fields, one-hot; the label's logit is a sum of pairwise factor terms
    (no linear part a linear model could use alone) and small linear terms."""
    rng = np.random.default_rng(seed)
    truth = np.random.default_rng(42)
    V = truth.normal(0, 1.2, (fields, values, rank))
    lin = truth.normal(0, 0.2, (fields, values))
    vals = rng.integers(0, values, (n, fields))
    logit = sum(lin[f, vals[:, f]] for f in range(fields))
    for i in range(fields):
        for j in range(i + 1, fields):
            logit = logit + (V[i, vals[:, i]] * V[j, vals[:, j]]).sum(axis=1)
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.float32)
    idx = (vals + np.arange(fields) * values).ravel()
    X = sp.csr_matrix((np.ones(n * fields, np.float32), idx, np.arange(0, n * fields + 1, fields)),
                      shape=(n, fields * values))
    return X, y, logit


def stream(state, X, y, size: int = 5000, w=None):
    for i in range(0, X.shape[0], size):
        state.update(Batch(X[i:i + size], y[i:i + size], None if w is None else w[i:i + size]))
    return state


def reference(state: FactorizationMachinesState, X: sp.csr_matrix, y: np.ndarray, w: np.ndarray, step_rows: int):
    """The same training in plain float64 NumPy, row by row or in steps of ``step_rows``:
    Adagrad on w0, w and V of every model, lazily decayed; returns (bias, params, scores)."""
    P = state.params_.astype(np.float64)
    B = state.bias_.astype(np.float64)
    M, K = P.shape[0], P.shape[3] - 1
    lr, wd = state.lrs_, state.wds_
    acc0, eps = state.initial_accumulator_, state.epsilon
    F = np.zeros((X.shape[0], M))

    def adagrad(value, moment, g, rate):
        moment = moment + g * g
        return value - rate / (np.sqrt(moment + acc0) + eps) * g, moment

    for m in range(M):
        for r0 in range(0, X.shape[0], step_rows):
            rows = range(r0, min(X.shape[0], r0 + step_rows))
            grads, sums = {}, {}
            total = sum(w[r] for r in rows)
            for r in rows:
                i, x = X.indices[X.indptr[r]:X.indptr[r + 1]], X.data[X.indptr[r]:X.indptr[r + 1]].astype(np.float64)
                s = (P[m, i, 0, 1:] * x[:, None]).sum(axis=0)
                F[r, m] = B[m, 0] + P[m, i, 0, 0] @ x + 0.5 * (s @ s - ((P[m, i, 0, 1:] * x[:, None]) ** 2).sum())
                g = (1 / (1 + np.exp(-F[r, m])) - y[r]) * w[r]
                sums[r] = (i, x, s, g)
            for r in rows:
                i, x, s, g = sums[r]
                g = g / total if step_rows > 1 else g
                grads.setdefault("bias", 0.0)
                grads["bias"] += g
                for f, xv in zip(i, x, strict=True):
                    gv = np.concatenate([[g * xv], g * xv * (s - P[m, f, 0, 1:] * xv)])
                    grads[f] = grads.get(f, 0) + gv
                if step_rows == 1:
                    B[m, 0], B[m, 1] = adagrad(B[m, 0], B[m, 1], grads.pop("bias") + wd[m, 0] * B[m, 0], lr[m, 0])
                    for f in list(grads):
                        gv = grads.pop(f) + np.r_[wd[m, 1], np.full(K, wd[m, 2])] * P[m, f, 0]
                        P[m, f, 0], P[m, f, 1] = adagrad(P[m, f, 0], P[m, f, 1], gv, np.r_[lr[m, 1], np.full(K, lr[m, 2])])
            if step_rows > 1:
                B[m, 0], B[m, 1] = adagrad(B[m, 0], B[m, 1], grads.pop("bias") + wd[m, 0] * B[m, 0], lr[m, 0])
                for f in grads:
                    gv = grads[f] + np.r_[wd[m, 1], np.full(K, wd[m, 2])] * P[m, f, 0]
                    P[m, f, 0], P[m, f, 1] = adagrad(P[m, f, 0], P[m, f, 1], gv, np.r_[lr[m, 1], np.full(K, lr[m, 2])])
    return B, P, F


@pytest.mark.parametrize("step_rows", [1, 7])
def test_compiled_training_equals_the_numpy_reference(step_rows: int) -> None:
    X, y, _ = one_hot_pairs(300, seed=1, values=8)
    X = X.tolil()
    X[5, 3] = 2.5  # a value other than 1
    X = X.tocsr()
    w = np.random.default_rng(0).uniform(0, 2, 300).astype(np.float32)
    w[10:20] = 0  # rows of weight 0 teach nothing
    state = FactorizationMachinesState(num_factors=3, num_models=3, mini_batch_size=step_rows, linear_wd=1e-3,
                                       factors_wd=1e-3, bias_wd=1e-3, validation_every_rows=10**6, seed=0)
    state.update(Batch(X[:1], y[:1], np.zeros(1, np.float32)))  # starts the state, learns nothing
    B, P, F = reference(state, X, y, w, step_rows)
    state.update(Batch(X, y, w))
    # float32 against float64 over 300 sequential steps
    np.testing.assert_allclose(state.bias_, B, rtol=5e-3, atol=2e-4)
    np.testing.assert_allclose(state.params_, P, rtol=5e-3, atol=2e-4)
    # the progressive scores are the reference's, taken before each row was learned (the
    # ring's first slot holds the row that started the state)
    ring = state.selection_.recent_scores_[1: X.shape[0] + 1]
    np.testing.assert_allclose(ring, F, rtol=1e-3, atol=1e-4)


def test_interactions_are_learned_where_a_linear_model_cannot() -> None:
    X, y, logit = one_hot_pairs(120_000)
    Xt, yt, logit_t = one_hot_pairs(20_000, seed=1)
    state = stream(FactorizationMachinesState(num_factors=6, seed=0), X, y)
    fm = state.model()
    linear = stream(LinearLearnerState(num_models=1, seed=0), X, y).model()
    auc_fm = roc_auc_score(yt, fm.decision_function(Xt))
    auc_linear = roc_auc_score(yt, linear.decision_function(Xt))
    ceiling = roc_auc_score(yt, logit_t)
    assert auc_fm > auc_linear + 0.1, (auc_fm, auc_linear)
    assert auc_fm > ceiling - 0.02, (auc_fm, ceiling)
    # the model's vectorized scores are the state's compiled ones
    np.testing.assert_allclose(fm.decision_function(Xt[:100]), state.raw_scores(Xt[:100])[:, 0], rtol=1e-4,
                               atol=1e-4)


def test_regression_recovers_a_pairwise_target() -> None:
    rng = np.random.default_rng(5)
    X = rng.normal(size=(60_000, 4)).astype(np.float32)
    y = (1.0 + X[:, 0] - 2 * X[:, 1] * X[:, 2] + 0.5 * X[:, 3] + rng.normal(0, 0.1, 60_000)).astype(np.float32)
    state = stream(FactorizationMachinesState("regressor", num_factors=2, num_models=4, seed=0), X[:50_000], y[:50_000])
    model = state.model()
    assert model.score(X[50_000:], y[50_000:]) > 0.97
    assert [e["rank"] for e in model.leaderboard_] == [0, 1, 2, 3]
    assert model.outputs(X[:3]).keys() == {"score"}


def test_many_models_rank_and_finalize_by_criterion() -> None:
    X, y, _ = one_hot_pairs(60_000)
    state = stream(FactorizationMachinesState(num_factors=4, num_models=4, seed=0), X, y)
    board = state.leaderboard()
    assert sorted(e["model"] for e in board) == [0, 1, 2, 3]
    assert board[0]["model"] == state.model().chosen_["model"]
    assert state.model(model_index=0).chosen_["factors_lr"] == state.lrs_[0, 2]
    assert len({e["factors_lr"] for e in board}) == 4  # each model its own step size
    by_loss = state.model(binary_classifier_model_selection_criteria="cross_entropy_loss")
    assert by_loss.chosen_["criterion"] == "cross_entropy_loss" and by_loss.threshold_ == 0.0
    with pytest.raises(InvalidParameterError, match="binary_classifier_model_selection_criteria"):
        state.model(binary_classifier_model_selection_criteria="auc")


def test_weights_are_honoured() -> None:
    X, y, _ = one_hot_pairs(4000)
    w = np.ones(4000, np.float32)
    w[::2] = 0
    a = stream(FactorizationMachinesState(num_factors=3, seed=0), X, y, w=w)
    b = stream(FactorizationMachinesState(num_factors=3, seed=0), X[1::2], y[1::2])
    np.testing.assert_allclose(a.params_, b.params_, rtol=1e-5, atol=1e-7)


def test_merge_of_two_halves_is_close_to_one_pass() -> None:
    """The documented tolerance: halves trained apart, merged, within 0.015 AUC of one pass."""
    X, y, _ = one_hot_pairs(100_000)
    Xt, yt, _ = one_hot_pairs(20_000, seed=1)
    whole = stream(FactorizationMachinesState(num_factors=6, seed=0), X, y)
    a = stream(FactorizationMachinesState(num_factors=6, seed=0), X[:50_000], y[:50_000])
    b = stream(FactorizationMachinesState(num_factors=6, seed=1), X[50_000:], y[50_000:])
    a.merge(b)
    assert a.n_rows_seen_ == 100_000
    auc_whole = roc_auc_score(yt, whole.model().decision_function(Xt))
    auc_merged = roc_auc_score(yt, a.model().decision_function(Xt))
    assert auc_merged > auc_whole - 0.015, (auc_merged, auc_whole)


def test_bad_input_names_the_row() -> None:
    X, y, _ = one_hot_pairs(100)
    state = FactorizationMachinesState(num_factors=2, feature_dim=200, seed=0)
    state.update(Batch(X, y))  # 90 features: narrower sparse rows are taken as they are
    assert state.feature_dim_ == 200
    wide = sp.csr_matrix((np.ones(2, np.float32), [3, 250], [0, 1, 2]), shape=(2, 300))
    with pytest.raises(FeatureCountError, match="row 1 of the batch has feature index 250, past feature_dim=200"):
        state.update(Batch(wide, np.zeros(2, np.float32)))
    with pytest.raises(BadRecordError, match="label 2.0"):
        state.update(Batch(X[:3], np.array([0, 2, 1], np.float32)))
    bad = X[:5].toarray()
    bad[3, 1] = np.nan
    with pytest.raises(DataError, match="row 3 of the batch holds NaN"):
        state.update(Batch(sp.csr_matrix(bad), y[:5]))
    with pytest.raises(FeatureCountError, match="feature_dim=200"):
        state.update(Batch(np.ones((2, 90), np.float32), np.zeros(2, np.float32)))
    with pytest.raises(InvalidParameterError, match="predictor_type"):
        FactorizationMachinesState("multiclass_classifier")


def test_estimator_learns_a_dense_interaction() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(20_000, 4)).astype(np.float32)
    y = np.where(X[:, 0] * X[:, 1] > 0, "same", "different")
    clf = FactorizationMachinesClassifier(num_factors=3, epochs=2, random_state=0).fit(X[:16_000], y[:16_000])
    assert clf.score(X[16_000:], y[16_000:]) > 0.9
    assert clf.classes_.tolist() == ["different", "same"]
    assert clf.factors_.shape == (4, 3)


def test_cli_trains_from_libsvm_predicts_finalizes_and_inspects(tmp_path) -> None:
    X, y, _ = one_hot_pairs(30_000)
    lines = [f"{int(label)} " + " ".join(f"{i}:1" for i in X.indices[X.indptr[r]:X.indptr[r + 1]])
             for r, label in enumerate(y)]
    (tmp_path / "train.libsvm").write_text("\n".join(lines[:25_000]) + "\n")
    (tmp_path / "test.libsvm").write_text("\n".join(lines[25_000:]) + "\n")

    def onepass(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "onepass.cli", *args], capture_output=True, text=True,
                              cwd=tmp_path, timeout=300)

    r = onepass("train", "factorization-machines", "--predictor-type", "binary_classifier", "--num-factors", "4",
                "--num-models", "3", "--data", "train.libsvm", "--zero-based", "--n-features", "90",
                "--out", "m", "-q")
    assert r.returncode == 0, r.stderr
    r = onepass("predict", "m", "--data", "test.libsvm", "--zero-based", "--n-features", "90", "--out", "p.csv")
    assert r.returncode == 0, r.stderr
    out = np.genfromtxt(tmp_path / "p.csv", delimiter=",", names=True)
    assert out.dtype.names == ("score", "predicted_label")
    assert roc_auc_score(y[25_000:], out["score"]) > 0.8
    r = onepass("finalize", "m", "--rank", "2", "--out", "m2")
    assert r.returncode == 0, r.stderr
    chosen = json.loads((tmp_path / "m2" / "manifest.json").read_text())["meta"]["chosen"]
    assert chosen["rank"] == 2
    r = onepass("inspect", "m")
    assert r.returncode == 0 and "factors_lr" in r.stdout + r.stderr, r.stdout + r.stderr
    # an index past the declared width is a bad record that names its line
    (tmp_path / "bad.libsvm").write_text("1 3:1 7:1\n0 3:1 95:1\n")
    r = onepass("train", "factorization-machines", "--data", "bad.libsvm", "--zero-based", "--n-features", "90",
                "--out", "m3")
    assert r.returncode == 3 and "line 2" in r.stderr and "95" in r.stderr, r.stderr
