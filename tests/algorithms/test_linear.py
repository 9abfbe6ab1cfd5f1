"""Linear Learner: quality against scikit-learn, the stacked models, selection, bad input."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.metrics import roc_auc_score

from onepass import Batch, LinearLearnerClassifier, LinearLearnerRegressor, LinearLearnerState, load
from onepass.algorithms._losses import loss_values, rank_binary
from onepass.errors import BadRecordError, DataError, InvalidParameterError, NotFittedError


def logistic_data(n: int, d: int = 20, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    w = np.random.default_rng(99).normal(0, 1, d) / np.sqrt(d) * 3
    X = (rng.standard_normal((n, d)) * 2 + 1).astype(np.float32)  # off-center, off-scale
    y = (rng.random(n) < 1 / (1 + np.exp(-((X - 1) / 2) @ w))).astype(np.float32)
    return X, y


def stream(state: LinearLearnerState, X, y, size: int = 5000, w=None) -> LinearLearnerState:
    for i in range(0, X.shape[0], size):
        state.update(Batch(X[i : i + size], y[i : i + size], None if w is None else w[i : i + size]))
    return state


def test_dense_binary_auc_close_to_full_logistic_regression() -> None:
    X, y = logistic_data(80_000)
    Xt, yt = logistic_data(20_000, seed=1)
    state = stream(LinearLearnerState(num_models=16, seed=0), X, y)
    model = state.model()
    ref = LogisticRegression(max_iter=1000).fit(X, y)
    auc, auc_ref = roc_auc_score(yt, model.decision_function(Xt)), roc_auc_score(yt, ref.decision_function(Xt))
    assert auc >= auc_ref - 0.003, (auc, auc_ref)
    # the model lives in the original feature space: same scores as by hand
    np.testing.assert_allclose(model.decision_function(Xt[:5]), Xt[:5] @ model.coef_[:, 0] + model.intercept_[0],
                               rtol=1e-4, atol=1e-4)


def test_regression_and_multiclass_close_to_full_sklearn() -> None:
    rng = np.random.default_rng(3)
    X = (rng.standard_normal((60_000, 10)) * 3).astype(np.float32)
    y = (X @ rng.normal(0, 1, 10) + 50 + rng.normal(0, 1, 60_000)).astype(np.float32)
    reg = stream(LinearLearnerState("regressor", num_models=8, seed=0), X[:50_000], y[:50_000]).model()
    ref = LinearRegression().fit(X[:50_000], y[:50_000])
    mse = np.mean((reg.predict(X[50_000:]) - y[50_000:]) ** 2)
    mse_ref = np.mean((ref.predict(X[50_000:]) - y[50_000:]) ** 2)
    assert mse <= 1.01 * mse_ref, (mse, mse_ref)

    W = rng.normal(0, 1, (10, 4))
    z = X @ W / 3
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    c = (p.cumsum(axis=1) < rng.random((60_000, 1))).sum(axis=1).clip(0, 3).astype(np.float32)
    mc = stream(LinearLearnerState("multiclass_classifier", num_classes=4, num_models=8, seed=0),
                X[:50_000], c[:50_000]).model()
    ref_acc = LogisticRegression(max_iter=500).fit(X[:50_000], c[:50_000]).score(X[50_000:], c[50_000:])
    assert mc.score(X[50_000:], c[50_000:]) >= ref_acc - 0.01
    out = mc.outputs(X[:3])
    assert out["score"].shape == (3, 4) and np.allclose(out["score"].sum(axis=1), 1, atol=1e-5)
    assert out["predicted_label"].tolist() == out["score"].argmax(axis=1).tolist()


def test_stacked_model_equals_the_same_model_trained_alone() -> None:
    """Model 0 of a stack of 16 (the user's exact values) = a stack of one with those values."""
    X, y = logistic_data(20_000)
    params = {"learning_rate": 0.02, "l1": 1e-4, "wd": 1e-3, "early_stopping_patience": 0}
    many = stream(LinearLearnerState(num_models=16, seed=0, **params), X, y)
    one = stream(LinearLearnerState(num_models=1, seed=0, **params), X, y)
    np.testing.assert_allclose(many.coef_[:, :1], one.coef_, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(many.model(model_index=0).coef_, one.model().coef_, rtol=1e-4, atol=1e-6)
    assert many.learning_rates_[0] == 0.02 and many.l1s_[0] == 1e-4 and many.wds_[0] == 1e-3
    # the others are spread log-uniformly over the ranges
    lr = many.learning_rates_[1:]
    assert lr.min() >= 1e-3 and lr.max() <= 1e-1 and lr.max() / lr.min() > 10


def test_l1_makes_exact_zeros_on_irrelevant_features() -> None:
    rng = np.random.default_rng(0)
    X = rng.standard_normal((30_000, 20)).astype(np.float32)
    y = (X[:, 0] - X[:, 1] + rng.logistic(0, 0.3, 30_000) > 0).astype(np.float32)
    state = stream(LinearLearnerState(num_models=1, l1=0.01, learning_rate=0.01, mini_batch_size=100, seed=0), X, y)
    coef = state.model().coef_[:, 0]
    assert abs(coef[0]) > 0.5 and abs(coef[1]) > 0.5
    assert (coef[2:] == 0).sum() >= 12, coef
    plain = stream(LinearLearnerState(num_models=1, learning_rate=0.01, mini_batch_size=100, seed=0), X, y)
    plain = plain.model().coef_[:, 0]
    assert (plain[2:] == 0).sum() == 0


@pytest.mark.parametrize("optimizer", ["adam", "adagrad"])
def test_sparse_updates_touch_only_the_features_present(optimizer: str) -> None:
    rng = np.random.default_rng(0)
    n, width = 20_000, 1 << 16
    cols = rng.integers(0, 1000, size=(n, 8)) * 7  # only multiples of 7 below 7000 ever appear
    cols.sort(axis=1)
    X = sp.csr_matrix((np.ones(n * 8, dtype=np.float32), cols.ravel(), np.arange(0, n * 8 + 1, 8)),
                      shape=(n, width))
    X.sum_duplicates()
    truth = rng.normal(0, 1, width)
    y = (rng.random(n) < 1 / (1 + np.exp(-(X @ truth)))).astype(np.float32)
    state = stream(LinearLearnerState(num_models=4, seed=0, num_point_for_scaler=2000, optimizer=optimizer), X, y,
                   size=4096)
    present = np.zeros(width, dtype=bool)
    present[np.unique(cols)] = True
    for arr in (state.coef_, state.moment1_, state.moment2_):
        if arr.size:  # adagrad keeps no second moment
            assert not arr[~present].any()
    assert np.count_nonzero(state.coef_[present].any(axis=1)) > 0.9 * present.sum()
    model = state.model()
    auc = roc_auc_score(y[-5000:], model.decision_function(X[-5000:]))
    assert auc > 0.75, auc


@pytest.mark.parametrize("optimizer", ["adam", "sgd", "adagrad"])
@pytest.mark.parametrize("predictor", ["binary_classifier", "multiclass_classifier"])
def test_compiled_sparse_training_equals_the_dense_step(optimizer: str, predictor: str) -> None:
    # The same rows as CSR (compiled step: grouping by feature, records of weights and
    # moments) and as a dense array (NumPy matrix products) give the same models, L1 and
    # L2 included; steps large enough to run on two threads. Half the entries are non-zero,
    # so every feature is in every step (the sparse step is lazy: absent features wait).
    rng = np.random.default_rng(3)
    n, width = 30_000, 400
    X = sp.random(n, width, density=0.5, format="csr", random_state=4, dtype=np.float32)
    X.data = rng.normal(0, 1, X.nnz).astype(np.float32)
    truth = rng.normal(0, 1, (width, 3))
    if predictor == "binary_classifier":
        y = (rng.random(n) < 1 / (1 + np.exp(-(X @ truth[:, 0])))).astype(np.float32)
        extra = {}
    else:
        y = np.argmax(np.asarray(X @ truth) + rng.gumbel(size=(n, 3)), axis=1).astype(np.float32)
        extra = {"num_classes": 3}
    kw = dict(predictor_type=predictor, num_models=6, seed=0, optimizer=optimizer, normalize_data=False,
              num_point_for_scaler=1000, mini_batch_size=10_000, l1_range=(1e-6, 1e-3), wd_range=(1e-6, 1e-2),
              **extra)
    sparse = stream(LinearLearnerState(**kw), X, y, size=15_000)
    dense = stream(LinearLearnerState(**kw), X.toarray(), y, size=15_000)
    assert sparse.n_steps_ == dense.n_steps_ > 10
    scale = np.abs(dense.coef_).max()
    assert scale > 0.05
    np.testing.assert_allclose(sparse.coef_, dense.coef_, atol=2e-4 * scale, rtol=0)
    np.testing.assert_allclose(sparse.moment1_, dense.moment1_, atol=1e-3 * np.abs(dense.moment1_).max(), rtol=0)
    np.testing.assert_allclose(sparse.intercept_, dense.intercept_, atol=2e-4 * scale, rtol=0)


def _reference_rows(state: LinearLearnerState, X, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row-by-row training written out plainly (float64), to check the compiled kernel."""
    M, C = state.num_models, state.n_outputs
    col = np.repeat(np.arange(M), C)
    lr, wd, l1 = state.learning_rates_[col], state.wds_[col], state.l1s_[col]
    d, k = X.shape[1], M * C
    W, m1, m2 = np.zeros((d, k)), np.zeros((d, k)), np.zeros((d, k))
    b, bm1, bm2 = np.zeros(k), np.zeros(k), np.zeros(k)
    b1, b2, eps, acc0 = state.beta_1, state.beta_2, state.epsilon, state.initial_accumulator_
    opt = state.optimizer_

    def step(w, g, a, v, t, decay):
        g = g + decay * w
        if opt == "adam":
            a[:] = b1 * a + (1 - b1) * g
            v[:] = b2 * v + (1 - b2) * g * g
            size = lr * np.sqrt(1 - b2**t) / (1 - b1**t) / (np.sqrt(v) + eps * np.sqrt(1 - b2**t))
            return w - size * a, size
        if opt == "sgd":
            a[:] = state.momentum * a + g
            return w - lr * a, lr
        a[:] = a + g * g
        size = lr / (np.sqrt(a + acc0) + eps)
        return w - size * g, size

    for r in range(X.shape[0]):
        cols, vals = X.indices[X.indptr[r]:X.indptr[r + 1]], X.data[X.indptr[r]:X.indptr[r + 1]]
        z = b + vals @ W[cols]
        if state.loss_ == "logistic":
            g = 1 / (1 + np.exp(-z)) - y[r]
        elif state.loss_ == "softmax_loss":
            e = np.exp(z.reshape(M, C) - z.reshape(M, C).max(axis=1, keepdims=True))
            p = e / e.sum(axis=1, keepdims=True)
            p[:, int(y[r])] -= 1
            g = p.ravel()
        else:
            g = z - y[r]
        t = r + 1
        b, _ = step(b, g, bm1, bm2, t, 0.0)
        for f, x in zip(cols, vals, strict=True):
            w, size = step(W[f], x * g, m1[f], m2[f], t, wd)
            W[f] = np.sign(w) * np.maximum(np.abs(w) - size * l1, 0)
    return W, b


@pytest.mark.parametrize("num_models", [5, 1, 33])
@pytest.mark.parametrize("optimizer", ["adagrad", "adam", "sgd"])
@pytest.mark.parametrize("predictor", ["binary_classifier", "multiclass_classifier", "regressor"])
def test_row_by_row_kernel_matches_a_plain_reference(optimizer: str, predictor: str, num_models: int) -> None:
    # mini_batch_size=1 (the default for sparse input): the compiled kernel, on two threads
    # (half the models each; one model of one output takes the scalar path; 33 models give
    # each thread whole vectors of 16 columns and a remainder, binary 17 + 16, multiclass
    # 51 + 48), against the same arithmetic written out in NumPy
    rng = np.random.default_rng(5)
    n, width = 400, 60
    X = sp.random(n, width, density=0.1, format="csr", random_state=6, dtype=np.float32)
    X.data = rng.normal(0, 1, X.nnz).astype(np.float32)
    extra = {"num_classes": 3} if predictor == "multiclass_classifier" else {}
    if predictor == "binary_classifier":
        y = (rng.random(n) < 0.4).astype(np.float32)
    elif predictor == "multiclass_classifier":
        y = rng.integers(0, 3, n).astype(np.float32)
    else:
        y = (X @ rng.normal(0, 1, width)).astype(np.float32)
    state = LinearLearnerState(predictor, num_models=num_models, seed=0, optimizer=optimizer, normalize_data=False,
                               normalize_label=False, num_point_for_scaler=50, early_stopping_patience=0,
                               l1_range=(1e-4, 1e-2), wd_range=(1e-4, 1e-2), **extra)
    stream(state, X, y, size=150)
    assert state.mini_batch_size_ == 1 and state.n_steps_ == n
    W, b = _reference_rows(state, X, y)
    np.testing.assert_allclose(state.coef_, W, atol=2e-4 * max(1.0, np.abs(W).max()), rtol=0)
    np.testing.assert_allclose(state.intercept_, b, atol=2e-4 * max(1.0, np.abs(b).max()), rtol=0)
    assert (state.coef_ != 0).sum() > 0.5 * (W != 0).sum() > 0


def test_logistic_loss_values_match_logaddexp_in_both_precisions() -> None:
    f = np.array([[-100.0, -20.0, -1e-3, 0.0, 1e-3, 3.0, 20.0, 100.0]] * 2)
    y = np.array([0.0, 1.0])
    want = np.logaddexp(0.0, f) - y[:, None] * f
    for dtype, rtol in ((np.float64, 1e-12), (np.float32, 1e-6)):
        got = loss_values("logistic", f.astype(dtype), y)
        assert got.dtype == np.float64 and np.isfinite(got).all()
        np.testing.assert_allclose(got, want, rtol=rtol, atol=1e-7)


def test_rank_binary_thresholds() -> None:
    scores = np.array([[0.9, 0.8, 0.7, 0.6, 0.5, 0.4]])
    y = np.array([1, 1, 0, 1, 1, 0], dtype=float)
    w = np.ones(6)
    acc, thr = rank_binary("accuracy", scores, y, w)
    assert acc[0] == pytest.approx(5 / 6) and thr[0] == pytest.approx(0.5)  # predict the top 5
    rec, thr = rank_binary("recall_at_target_precision", scores, y, w, target_precision=0.99)
    assert rec[0] == pytest.approx(2 / 4) and thr[0] == pytest.approx(0.8)
    prec, thr = rank_binary("precision_at_target_recall", scores, y, w, target_recall=1.0)
    assert prec[0] == pytest.approx(4 / 5) and thr[0] == pytest.approx(0.5)
    f1, thr = rank_binary("f1", scores, y, w)
    assert f1[0] == pytest.approx(2 * 4 / (2 * 4 + 1)) and thr[0] == pytest.approx(0.5)
    # tied scores are never split by a threshold
    tied = np.array([[0.5, 0.5, 0.5, 0.1]])
    acc, thr = rank_binary("accuracy", tied, np.array([1, 0, 1, 0.0]), np.ones(4))
    assert thr[0] in (0.5, 0.1, np.inf)


def test_validation_source_selection_and_threshold() -> None:
    X, y = logistic_data(30_000)
    Xv, yv = logistic_data(5_000, seed=7)
    state = LinearLearnerState(num_models=8, seed=0, binary_classifier_model_selection_criteria="f1",
                               max_validation_rows=4_000)
    assert state.add_validation(Batch(Xv, yv)) == 4_000
    assert state.add_validation(Batch(Xv, yv)) == 0
    stream(state, X, y)
    board = state.leaderboard()
    assert [r["rank"] for r in board] == list(range(8))
    assert all(r["scored_on"] == "validation" and r["criterion"] == "f1" for r in board)
    values = [r["value"] for r in board]
    assert values == sorted(values, reverse=True)
    model = state.model()
    assert model.chosen_["model"] == board[0]["model"]
    raw = model.decision_function(Xv)
    assert model.outputs(Xv)["predicted_label"].tolist() == (raw >= model.threshold_).astype(int).tolist()
    assert state.model(rank=3).chosen_ == board[3]
    with pytest.raises(InvalidParameterError, match="rank=8"):
        state.model(rank=8)


def test_held_out_fraction_is_not_trained_on() -> None:
    X, y = logistic_data(20_000)
    state = stream(LinearLearnerState(num_models=2, seed=0, validation_fraction=0.1, max_validation_rows=1000), X, y)
    assert state.selection_.n_rows_held_out_ == state.selection_.validation_.n_rows == 1000
    assert state.n_rows_trained_ + state.selection_.n_rows_held_out_ == state.n_rows_seen_ == 20_000
    assert state.leaderboard()[0]["scored_on"] == "validation"


def test_early_stopping_freezes_models_that_stop_improving() -> None:
    X, y = logistic_data(60_000)
    state = LinearLearnerState(num_models=8, seed=0, validation_every_rows=2_000, early_stopping_patience=2,
                               early_stopping_tolerance=0.01, learning_rate_range=(0.05, 0.5))
    stream(state, X[:30_000], y[:30_000])
    stopped = ~state.selection_.is_active_
    assert stopped.any() and state.selection_.is_active_.any()
    assert (state.selection_.stopped_at_rows_[stopped] > 0).all()
    frozen = state.coef_.copy()
    stream(state, X[30_000:], y[30_000:])
    cols = np.flatnonzero(stopped)  # one output per model (binary)
    np.testing.assert_array_equal(state.coef_[:, cols], frozen[:, cols])
    entries = {r["model"]: r for r in state.leaderboard()}
    assert all(entries[m]["is_active"] is False and entries[m]["stopped_at_rows"] for m in cols)


def test_positive_weight_raises_recall() -> None:
    X, y = logistic_data(30_000)
    plain = stream(LinearLearnerState(num_models=1, seed=0), X, y).model(model_index=0)
    heavy = stream(LinearLearnerState(num_models=1, seed=0, positive_example_weight_mult=5.0,
                                      binary_classifier_model_selection_criteria="cross_entropy_loss"), X, y).model()
    p_plain = (plain.decision_function(X) >= 0).mean()
    p_heavy = (heavy.decision_function(X) >= 0).mean()
    assert p_heavy > p_plain + 0.1


def test_bad_labels_and_features_are_refused_with_where() -> None:
    X, y = logistic_data(1_000)
    state = LinearLearnerState(num_models=2, seed=0)
    bad = y.copy()
    bad[17] = 2.0
    cursor = {"path": "data.csv", "rows": 1_000, "line": 1001}
    with pytest.raises(BadRecordError, match=r"row 18 of the stream .*data.csv.*label 2\.0.*0 or 1"):
        state.update(Batch(X, bad, cursor=cursor))
    with pytest.raises(DataError, match="label_column"):
        state.update(Batch(X))
    Xn = X.copy()
    Xn[5, 3] = np.nan
    with pytest.raises(DataError, match="row 5 of the batch holds NaN"):
        state.update(Batch(Xn, y))
    assert state.n_rows_seen_ == 0
    mc = LinearLearnerState("multiclass_classifier", num_classes=3)
    with pytest.raises(BadRecordError, match=r"integer in 0\.\.2"):
        mc.update(Batch(X[:3], np.array([0, 1.5, 2], dtype=np.float32)))
    with pytest.raises(NotFittedError):
        LinearLearnerState().model()
    with pytest.raises(InvalidParameterError, match="num_classes"):
        LinearLearnerState("multiclass_classifier")
    with pytest.raises(InvalidParameterError, match="does not fit"):
        LinearLearnerState("regressor", loss="logistic")
    with pytest.raises(InvalidParameterError, match="learning_rate_range"):
        LinearLearnerState(learning_rate_range="0.1")


def test_small_data_converges_in_one_pass() -> None:
    """Steps start small and grow: 20k rows (20 steps of the default 1000) still converge."""
    rng = np.random.default_rng(5)
    X = rng.standard_normal((20_000, 4)).astype(np.float32)
    y = (X @ [1.0, 2.0, -1.0, 0.5] + 10 + rng.normal(0, 0.1, 20_000)).astype(np.float32)
    model = stream(LinearLearnerState("regressor", num_models=8, seed=0), X, y).model()
    np.testing.assert_allclose(model.coef_[:, 0], [1.0, 2.0, -1.0, 0.5], atol=0.02)
    assert abs(model.intercept_[0] - 10) < 0.02


def test_finalize_during_warm_up_leaves_the_state_alone() -> None:
    X, y = logistic_data(500)
    state = stream(LinearLearnerState(num_models=2, seed=0), X, y, size=100)
    assert not state.is_started
    before = state.to_arrays()
    model = state.model()
    assert model.coef_.shape == (20, 1)
    after = state.to_arrays()
    assert before[1].keys() == after[1].keys()
    assert all(np.array_equal(before[1][k], after[1][k]) for k in before[1])


def test_estimators_with_labels_of_any_kind() -> None:
    X, y = logistic_data(6_000)
    names = np.where(y > 0, "yes", "no")
    clf = LinearLearnerClassifier(num_models=4, random_state=0)
    clf.partial_fit(X[:3000], names[:3000], classes=["no", "yes"]).partial_fit(X[3000:], names[3000:])
    assert set(clf.predict(X[:50])) <= {"no", "yes"}
    assert clf.score(X, names) > 0.75
    assert clf.predict_proba(X[:4]).shape == (4, 2)
    with pytest.raises(ValueError, match="not in classes"):
        clf.partial_fit(X[:10], np.array(["maybe"] * 10))
    sw = np.where(y > 0, 1.0, 0.0)
    reg = LinearLearnerRegressor(num_models=2, random_state=0).fit(X, y * 3, sample_weight=sw + 1)
    assert reg.coef_.shape == (20,)


def test_cli_train_validation_inspect_and_bad_label(tmp_path) -> None:
    X, y = logistic_data(6_000)
    header = "label," + ",".join(f"f{j}" for j in range(20))
    train_csv, val_csv = tmp_path / "train.csv", tmp_path / "val.csv"
    np.savetxt(train_csv, np.column_stack([y, X]), delimiter=",", fmt="%.5f", header=header, comments="")
    np.savetxt(val_csv, np.column_stack([y[:1000], X[:1000]]), delimiter=",", fmt="%.5f", header=header,
               comments="")
    base = [sys.executable, "-m", "onepass.cli", "train", "linear-learner", "--predictor-type", "binary_classifier",
            "--label-column", "label", "--num-models", "4", "--seed", "0", "--quiet"]
    done = subprocess.run([*base, "--data", str(train_csv), "--validation", str(val_csv), "--out",
                           str(tmp_path / "m")], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    shown = subprocess.run([sys.executable, "-m", "onepass.cli", "inspect", str(tmp_path / "m"), "--json"],
                           capture_output=True, text=True)
    manifest = json.loads(shown.stdout)
    board = manifest["meta"]["leaderboard"]
    summary = subprocess.run([sys.executable, "-m", "onepass.cli", "inspect", str(tmp_path / "m")],
                             capture_output=True, text=True).stdout.splitlines()
    table = summary[summary.index("leaderboard (validation scores; thresholds on predict's score)") + 1:]
    table = table[1:] if table[0].startswith("  same for every model") else table
    assert table[0].split()[:2] == ["rank", "model"]  # and a table for people, on stdout
    assert table[5] == ""  # a header and the 4 models
    assert len(board) == 4 and board[0]["scored_on"] == "validation"
    assert load(tmp_path / "m").chosen_ == board[0]

    bad = train_csv.read_text().splitlines()
    bad[101] = "3" + bad[101][bad[101].index(","):]
    (tmp_path / "bad.csv").write_text("\n".join(bad) + "\n")
    failed = subprocess.run([*base, "--data", str(tmp_path / "bad.csv"), "--out", str(tmp_path / "bad-model")],
                            capture_output=True, text=True)
    assert failed.returncode == 3
    assert f"line 102 of {tmp_path / 'bad.csv'}" in failed.stderr and "label 3.0" in failed.stderr  # the file's line
