"""linear._dense_training: the compiled dense steps against the NumPy step they replace."""

from __future__ import annotations

import numpy as np
import pytest

from onepass import Batch, LinearLearnerState
from onepass.algorithms._losses import gradient, softmax_loss_and_gradient
from onepass.algorithms._optimizers import numpy_step
from onepass.algorithms.linear import _dense_training


class NumpySteps(LinearLearnerState):
    """Linear Learner with its dense steps taken one at a time in NumPy, as before they
    were compiled: the reference the compiled steps are checked against."""

    def _train_dense(self, X: np.ndarray, y: np.ndarray, w: np.ndarray) -> None:
        start = 0
        while start < X.shape[0]:
            stop = min(start + self._step_size(self.n_rows_trained_), X.shape[0])
            self._numpy_step(X[start:stop], y[start:stop], w[start:stop])
            self._learned(stop - start)
            start = stop

    def _numpy_step(self, X: np.ndarray, y: np.ndarray, w: np.ndarray) -> None:
        n, M, C = X.shape[0], self.num_models, self.n_outputs
        Xn = self._normalized(X)
        yn = self._labels(y)
        rw = self._row_weights(y, w)
        total = float(rw.sum())
        F = Xn @ self.coef_
        F += self.intercept_
        if self.predictor_type == "multiclass_classifier":
            losses, G = softmax_loss_and_gradient(F.reshape(n, M, C), yn)
            self._remember(F, y, w, losses)
            G = G.reshape(n, M * C)
        else:
            self._remember(F, y, w)
            G = gradient(self.loss_, F, yn, **self._loss_kwargs())
        if total <= 0:
            return
        G *= (rw / np.float32(total))[:, None]
        grad_b = G.sum(axis=0)
        self.n_steps_ += 1
        lr, wd, l1 = self._per_column()
        grad_W = Xn.T @ G
        if wd.any():
            grad_W += self.coef_ * wd
        adam = self.optimizer_ == "adam"
        kw = dict(t=self.n_steps_, beta_1=self.beta_1, beta_2=self.beta_2, epsilon=self.epsilon,
                  momentum=self.momentum, initial_accumulator=self.initial_accumulator_)
        W, m1, m2 = self.coef_.copy(), self.moment1_.copy(), self.moment2_.copy() if adam else None
        W, step = numpy_step(self.optimizer_, W, grad_W, m1, m2, lr, **kw)
        if l1.any():
            np.copysign(np.maximum(np.abs(W) - step * l1, 0), W, out=W)
        self.coef_, self.moment1_ = W, m1
        if adam:
            self.moment2_ = m2
        if self.use_bias:
            numpy_step(self.optimizer_, self.intercept_, grad_b, self.moment1_bias_,
                       self.moment2_bias_ if adam else None, lr, **kw)


def _data(n: int = 12_000, d: int = 9, seed: int = 5) -> tuple[np.ndarray, dict[str, np.ndarray], np.ndarray]:
    rng = np.random.default_rng(seed)
    X = (rng.standard_normal((n, d)) * 2 + 1).astype(np.float32)
    X[:, 3] = 5.0  # a constant column
    z = (X - 1) / 2 @ rng.normal(size=(d, 3))
    y = {"binary_classifier": (rng.random(n) < 1 / (1 + np.exp(-z[:, 0]))).astype(np.float32),
         "regressor": (z[:, 0] * 3 + 10 + rng.normal(size=n)).astype(np.float32),
         "multiclass_classifier": np.argmax(z + rng.gumbel(size=(n, 3)), axis=1).astype(np.float32)}
    w = rng.uniform(0, 2, n).astype(np.float32)
    w[:40] = 0  # a first step of weight 0: scored, not learned
    return X, y, w


CASES = [
    *({"optimizer": opt, "num_models": 5, "l1_range": (1e-5, 1e-2), "wd_range": (1e-5, 1e-2)}
      for opt in ("adam", "sgd", "adagrad")),
    *({"predictor_type": "multiclass_classifier", "num_classes": 3, "optimizer": opt, "num_models": 3}
      for opt in ("adam", "adagrad")),
    *({"predictor_type": "regressor", "loss": loss, "num_models": 3} for loss in
      ("squared_loss", "absolute_loss", "huber_loss", "quantile_loss")),
    {"loss": "hinge_loss", "num_models": 1, "l1": 1e-3, "wd": 1e-3},
    {"predictor_type": "regressor", "normalize_label": False, "use_bias": False, "normalize_data": False},
    # steps larger than the ring, scored often, models stopped early
    {"num_models": 4, "mini_batch_size": 700, "max_validation_rows": 300, "validation_every_rows": 1000,
     "early_stopping_patience": 1, "positive_example_weight_mult": "balanced"},
]


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("params", CASES, ids=lambda p: "-".join(f"{v}" for v in p.values())[:60])
def test_compiled_dense_steps_equal_the_numpy_step(params: dict, weighted: bool) -> None:
    X, ys, w = _data()
    y = ys[params.get("predictor_type", "binary_classifier")]
    states = []
    for cls in (LinearLearnerState, NumpySteps):
        state = cls(**{"seed": 0, "num_point_for_scaler": 1500, "validation_every_rows": 3000, **params})
        for s in range(0, X.shape[0], 2500):
            state.update(Batch(X[s:s + 2500], y[s:s + 2500], w[s:s + 2500] if weighted else None))
        states.append(state)
    compiled, reference = states
    assert compiled.n_steps_ == reference.n_steps_ > 20
    ring, ref_ring = compiled.selection_, reference.selection_
    assert ring.recent_next_ == ref_ring.recent_next_ and ring.n_scorings_ == ref_ring.n_scorings_ > 0
    np.testing.assert_array_equal(ring.recent_y_, ref_ring.recent_y_)
    np.testing.assert_array_equal(ring.recent_w_, ref_ring.recent_w_)
    np.testing.assert_array_equal(ring.recent_predicted_, ref_ring.recent_predicted_)
    np.testing.assert_array_equal(ring.is_active_, ref_ring.is_active_)
    scores = np.abs(ref_ring.recent_scores_).max()
    np.testing.assert_allclose(ring.recent_scores_, ref_ring.recent_scores_, rtol=0, atol=1e-5 * scores)
    # float rounding apart (e^x, the sums of a step's row weights, BLAS on a block of the
    # models), the same weights and moments, intercepts judged on the weights' scale
    for names in (("coef_", "intercept_"), ("moment1_", "moment1_bias_"), ("moment2_", "moment2_bias_")):
        scale = max(max(np.abs(getattr(reference, name)).max(initial=0.0) for name in names), 1e-12)
        for name in names:
            np.testing.assert_allclose(getattr(compiled, name), getattr(reference, name), rtol=0, atol=1e-5 * scale,
                                       err_msg=name)
    assert [r["model"] for r in compiled.leaderboard()] == [r["model"] for r in reference.leaderboard()]


def test_dense_steps_run_in_one_call_per_scoring(monkeypatch: pytest.MonkeyPatch) -> None:
    """The steps between two scorings of the models are one compiled call per block of
    models (the Python cost of a step is what made dense training slow)."""
    calls = []
    steps = _dense_training.steps
    monkeypatch.setattr(_dense_training, "steps", lambda *a: calls.append(a[13:15]) or steps(*a))
    X, ys, _ = _data(60_000)
    state = LinearLearnerState(num_models=8, seed=0, validation_every_rows=20_000)
    state.update(Batch(X[:30_000], ys["binary_classifier"][:30_000]))
    state.update(Batch(X[30_000:], ys["binary_classifier"][30_000:]))
    assert state.n_steps_ > 100
    # 50k rows after the 10k of the warm-up: scorings after 20k and 40k, and the batch
    # boundary, cut them in 4 segments; each runs as two blocks of 4 models
    assert sorted(calls) == [(0, 4)] * 4 + [(4, 8)] * 4


def test_warm_up_moments_equal_float64_numpy() -> None:
    rng = np.random.default_rng(0)
    X = (rng.standard_normal((5000, 7)) * [1, 10, 1e3, 1e-3, 1, 1, 1] + [0, 5, -3e4, 1, 0, 0, 7]).astype(np.float32)
    w = rng.uniform(0, 3, 5000).astype(np.float32)
    X.flags.writeable = w.flags.writeable = False  # as the state passes them (one compiled signature)
    total = float(w.sum())
    mean, var = np.empty(7), np.empty(7)
    _dense_training.moments(X, w, total, mean, var)
    X64 = X.astype(np.float64)
    want_mean = (w @ X64) / total
    np.testing.assert_allclose(mean, want_mean, rtol=1e-12)
    np.testing.assert_allclose(var, (w @ (X64 - want_mean) ** 2) / total, rtol=1e-10)


def test_one_compiled_signature_for_read_only_and_writable_input() -> None:
    """Memory-mapped chunks are read-only, fresh ones writable: each mix would cost Numba a
    compilation of seconds if the kernels saw them as they come."""
    X, ys, w = _data(6000)
    frozen = X.copy()
    frozen.flags.writeable = False
    for params, y, rows, weights in (({}, ys["binary_classifier"], X, None),
                                     ({}, ys["binary_classifier"], frozen, w),
                                     ({"predictor_type": "regressor"}, ys["regressor"], frozen, None),
                                     ({"num_models": 1}, ys["binary_classifier"].astype(np.float64), X[:, ::-1], None)):
        LinearLearnerState(seed=0, num_point_for_scaler=1000, **params).update(Batch(rows, y, weights))
    assert len(_dense_training.steps.signatures) == 1
    assert len(_dense_training.moments.signatures) == 1
