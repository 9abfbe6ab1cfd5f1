"""The optimizers of the algorithms that learn weights (Linear Learner, Factorization
Machines): Adam with its bias correction, SGD with momentum, and Adagrad, each once:
:func:`numpy_step` on whole arrays (dense mini-batch steps) here, and the same formulas
per weight, compiled, in ``_optimizer_kernels`` (which imports Numba).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = ["ADAGRAD", "ADAM", "OPTIMIZERS", "OPTIMIZER_CODES", "SGD", "adam_correction", "check_optimizer_parameters",
           "numpy_step"]

OPTIMIZERS = ("adam", "sgd", "adagrad")
ADAM, SGD, ADAGRAD = 0, 1, 2
OPTIMIZER_CODES = {"adam": ADAM, "sgd": SGD, "adagrad": ADAGRAD}


def check_optimizer_parameters(*, momentum: Any, beta_1: Any, beta_2: Any, epsilon: Any) -> None:
    """The checks of the optimizers' own hyperparameters."""
    from onepass.algorithms._hyper import require

    require("[0,1)", momentum=momentum, beta_1=beta_1, beta_2=beta_2)
    require(">0", epsilon=epsilon)


def adam_correction(t: int, beta_1: float, beta_2: float, epsilon: float) -> tuple[float, float]:
    """Adam's bias correction at step ``t``: (step factor, epsilon term)."""
    return math.sqrt(1 - beta_2**t) / (1 - beta_1**t), epsilon * math.sqrt(1 - beta_2**t)


def numpy_step(optimizer: str, W: np.ndarray, g: np.ndarray, m1: np.ndarray, m2: np.ndarray | None,
               lr: np.ndarray, *, t: int = 1, beta_1: float = 0.9, beta_2: float = 0.999, epsilon: float = 1e-8,
               momentum: float = 0.9, initial_accumulator: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """One optimizer step on ``W`` in place (moments in place; ``g`` may be overwritten);
    returns W and the step size per coordinate (for L1's proximal step). ``t``: the step's
    number (Adam's bias correction); adagrad's ``m1`` is its sum of squared gradients."""
    if optimizer == "adagrad":
        m1 += g * g
        step = lr / (np.sqrt(m1 + np.float32(initial_accumulator)) + np.float32(epsilon))
        W -= step * g
        return W, step
    if optimizer == "sgd":
        m1 *= np.float32(momentum)
        m1 += g
        W -= lr * m1
        return W, lr
    m1 *= np.float32(beta_1)
    m1 += np.float32(1 - beta_1) * g
    g *= g
    m2 *= np.float32(beta_2)  # type: ignore[operator]
    m2 += np.float32(1 - beta_2) * g  # type: ignore[operator]
    # bias-corrected step size per coordinate: lr * sqrt(1-b2^t)/(1-b1^t) / (sqrt(v)+eps')
    a, eps = adam_correction(t, beta_1, beta_2, epsilon)
    denom = np.sqrt(m2)
    denom += np.float32(eps)
    step = (lr * np.float32(a)) / denom
    W -= step * m1
    return W, step
