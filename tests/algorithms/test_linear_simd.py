"""linear._simd: scalar formulas run on explicit 16-wide vectors."""

from __future__ import annotations

import numba
import numpy as np

from onepass.algorithms.linear._simd import WIDTH, vector_map
from onepass.algorithms.linear._sparse_training import logistic16


@numba.njit(inline="always")
def _exp(z):  # pragma: no cover - compiled
    return np.exp(z)


_exp16 = vector_map(_exp)


@numba.njit
def _exp_all(a):  # pragma: no cover - compiled
    for i in range(0, a.shape[0], WIDTH):
        _exp16(a, i, ())


@numba.njit
def _gradient_all(a, weight, label):  # pragma: no cover - compiled
    for i in range(0, a.shape[0], WIDTH):
        logistic16(a, i, (weight, label))


def test_vector_exp_is_within_two_ulp_of_float32_exp() -> None:
    x = np.linspace(-87.3, 88.3, 1 << 18, dtype=np.float32)
    got = x.copy()
    _exp_all(got)
    want = np.exp(x)
    ulp = np.abs(got.astype(np.float64) - want) / np.spacing(want)
    assert ulp.max() <= 2.0, f"{ulp.max()} ulp at x={x[ulp.argmax()]}"


def test_vector_exp_edges() -> None:
    x = np.array([0.0, -0.0, 1e-30, -1e-30, 1.0, -1.0, np.nan, np.inf, -np.inf, -100.0, 100.0, 88.0, -87.0, 0.5,
                  -0.5, 2.0], dtype=np.float32)
    got = x.copy()
    _exp_all(got)
    assert got[0] == got[1] == 1.0 and abs(got[2] - 1) < 1e-7 and abs(got[3] - 1) < 1e-7
    assert np.isnan(got[6])
    # kept to e^-87.3..e^88.4: finite, and as good as 0 or huge where the true value is further out
    assert 0 < got[8] < 2e-38 and 0 < got[9] < 2e-38 and 1e38 < got[7] < np.finfo(np.float32).max
    np.testing.assert_allclose(got[[4, 5, 11, 12, 13, 14, 15]], np.exp(x[[4, 5, 11, 12, 13, 14, 15]]), rtol=2.5e-7)


def test_vector_logistic_gradient_matches_the_scalar_formula() -> None:
    rng = np.random.default_rng(0)
    z = (rng.normal(0, 8, 4 * WIDTH)).astype(np.float32)
    z[:3] = [-200.0, 200.0, 0.0]
    for label in (0.0, 1.0):
        got = z.copy()
        _gradient_all(got, np.float32(0.5), np.float32(label))
        with np.errstate(over="ignore"):
            want = np.float32(0.5) * (np.float32(1) / (np.float32(1) + np.exp(-z)) - np.float32(label))
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-30)
