"""The optimizer steps of ``_optimizers`` per weight, compiled with Numba: the compiled
row-by-row and sparse loops of Linear Learner and Factorization Machines inline them for
every weight they touch. L1 is a proximal step scaled by the weight's step size
(``shrink``). Importing this module imports Numba: the states import it only when a
compiled step first runs.
"""

from __future__ import annotations

import numba
import numpy as np

from onepass.algorithms._optimizers import ADAGRAD, ADAM, OPTIMIZER_CODES, SGD

__all__ = ["ADAGRAD", "ADAM", "OPTIMIZER_CODES", "SGD", "adagrad_step", "adam_step", "adam_terms", "inline", "jit",
           "logistic_gradient", "sgd_step", "shrink"]

jit = numba.njit(cache=True, nogil=True, error_model="numpy")
inline = numba.njit(inline="always", nogil=True, error_model="numpy")

# One optimizer step per weight: the new weight, its moments, from gradient ``gc`` (L2
# included), then L1's proximal step scaled by the weight's step size (a no-op where
# l1 is 0). ``a1``: Adam's bias correction of the step; ``b1``: Adam's beta_1 or SGD's
# momentum; ``acc0``: Adagrad's initial accumulator.


@inline
def shrink(w, size):  # pragma: no cover - compiled
    return np.copysign(np.maximum(np.abs(w) - size, np.float32(0.0)), w)


@inline
def adam_step(w, m, v, gc, lr, l1, a1, b1, b2, eps):  # pragma: no cover - compiled
    one = np.float32(1.0)
    m = b1 * m + (one - b1) * gc
    v = b2 * v + (one - b2) * (gc * gc)
    step = (lr * a1) / (np.sqrt(v) + eps)
    return shrink(w - step * m, step * l1), m, v


@inline
def sgd_step(w, m, gc, lr, l1, momentum):  # pragma: no cover - compiled
    m = momentum * m + gc
    return shrink(w - lr * m, lr * l1), m


@inline
def adagrad_step(w, s, gc, lr, l1, acc0, eps):  # pragma: no cover - compiled
    s = s + gc * gc  # the sum of squared gradients
    step = lr / (np.sqrt(s + acc0) + eps)
    return shrink(w - step * gc, step * l1), s


@inline
def adam_terms(b1t, b2t, eps, optimizer):  # pragma: no cover - compiled
    """(step factor, epsilon) at a step where beta_1 and beta_2 raised to the step number
    are ``b1t``, ``b2t``: Adam's bias correction, and (1, eps) for the other optimizers."""
    one = np.float32(1.0)
    if optimizer == ADAM:
        return np.sqrt(one - b2t) / (one - b1t), eps * np.sqrt(one - b2t)
    return one, eps


@inline
def logistic_gradient(z, weight, label):  # pragma: no cover - compiled
    """The logistic loss's gradient in the score ``z``, label 0/1, times the row's weight."""
    one = np.float32(1.0)
    return weight * (one / (one + np.exp(-z)) - label)
