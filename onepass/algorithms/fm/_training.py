"""Factorization Machines' training, compiled: rows one at a time, or in mini-batch steps.

A model's parameters for feature ``i`` are one record ``P[m, i]`` of shape
``(slots, 1 + num_factors)``: slot 0 holds the linear weight and the factors, the next
slots the optimizer's moments of each (Adagrad's sums of squared gradients, SGD's
momentum, or Adam's two moments). A row with ``nnz`` non-zeros touches ``nnz`` records
of each model, and its score costs ``O(nnz * num_factors)`` with Rendle's identity::

    sum_{i<j} <v_i, v_j> x_i x_j = 1/2 sum_f [(sum_i v_if x_i)^2 - sum_i v_if^2 x_i^2]

whose gradient in ``v_if`` is ``x_i (s_f - v_if x_i)`` with ``s_f = sum_j v_jf x_j``.
Models are independent, so each runs over all the rows on its own (two threads take half
the models each), and a model's table is its own block of memory (no two threads write
one cache line).

Weight decay is lazy, as in Linear Learner's sparse steps: a feature's weights decay in
the steps where it appears. The optimizer formulas are those of ``_optimizer_kernels``.
Compiled with Numba on first use and cached on disk; the state imports this module only
when it trains, so importing onepass does not import Numba.
"""

from __future__ import annotations

import numpy as np

from onepass.algorithms._optimizer_kernels import (
    ADAGRAD,
    ADAM,
    OPTIMIZER_CODES,
    adagrad_step,
    adam_step,
    adam_terms,
    inline,
    jit,
    logistic_gradient,
    sgd_step,
)

__all__ = ["LOSS_CODES", "OPTIMIZER_CODES", "scores", "train"]

LOGISTIC, SQUARED = 0, 1
LOSS_CODES = {"logistic": LOGISTIC, "squared_loss": SQUARED}


@inline
def _step(P, m, i, c, gc, lr, optimizer, a1, b1, b2, eps, acc0):  # pragma: no cover - compiled
    """The optimizer step of weight ``c`` of feature ``i``'s record in model ``m``."""
    zero = np.float32(0.0)
    if optimizer == ADAGRAD:
        P[m, i, 0, c], P[m, i, 1, c] = adagrad_step(P[m, i, 0, c], P[m, i, 1, c], gc, lr, zero, acc0, eps)
    elif optimizer == ADAM:
        P[m, i, 0, c], P[m, i, 1, c], P[m, i, 2, c] = adam_step(P[m, i, 0, c], P[m, i, 1, c], P[m, i, 2, c], gc,
                                                                lr, zero, a1, b1, b2, eps)
    else:
        P[m, i, 0, c], P[m, i, 1, c] = sgd_step(P[m, i, 0, c], P[m, i, 1, c], gc, lr, zero, b1)


@inline
def _bias_step(B, m, gc, lr, optimizer, a1, b1, b2, eps, acc0):  # pragma: no cover - compiled
    zero = np.float32(0.0)
    if optimizer == ADAGRAD:
        B[m, 0], B[m, 1] = adagrad_step(B[m, 0], B[m, 1], gc, lr, zero, acc0, eps)
    elif optimizer == ADAM:
        B[m, 0], B[m, 1], B[m, 2] = adam_step(B[m, 0], B[m, 1], B[m, 2], gc, lr, zero, a1, b1, b2, eps)
    else:
        B[m, 0], B[m, 1] = sgd_step(B[m, 0], B[m, 1], gc, lr, zero, b1)


@inline
def _score(P, B, m, indices, data, a, b, s):  # pragma: no cover - compiled
    """Model ``m``'s score of the row with non-zeros ``a:b``; ``s`` gets the factor sums."""
    K = s.shape[0]
    score = B[m, 0]
    squares = np.float32(0.0)
    for f in range(K):
        s[f] = np.float32(0.0)
    for j in range(a, b):
        i = indices[j]
        x = data[j]
        score += x * P[m, i, 0, 0]
        for f in range(K):
            v = P[m, i, 0, 1 + f] * x
            s[f] += v
            squares += v * v
    pairs = np.float32(0.0)
    for f in range(K):
        pairs += s[f] * s[f]
    return score + np.float32(0.5) * (pairs - squares)


@inline
def _gradient(loss, score, label, weight):  # pragma: no cover - compiled
    """The loss's gradient in the score, times the row's weight."""
    if loss == LOGISTIC:
        return logistic_gradient(score, weight, label)
    return weight * (score - label)


@jit
def scores(indptr, indices, data, P, B, F, m0, m1):  # pragma: no cover - compiled
    """Scores of models ``m0:m1`` for every row into ``F[:, m]`` (no learning)."""
    s = np.zeros(P.shape[3] - 1, dtype=np.float32)
    for m in range(m0, m1):
        for r in range(indptr.shape[0] - 1):
            F[r, m] = _score(P, B, m, indices, data, indptr[r], indptr[r + 1], s)


@jit
def train(indptr, indices, data, y, rw, P, B, F, loss, m0, m1, lr_bias, lr_linear, lr_factors, wd_bias,
          wd_linear, wd_factors, use_bias, step_rows, optimizer, t0, b1, b2, eps, acc0,
          positions):  # pragma: no cover - compiled
    """Models ``m0:m1`` learn rows ``0..n``: each row's score goes to ``F[r, m]`` before
    the model learns it (progressive validation). ``step_rows`` 1: one optimizer step per
    row. More: steps of that many rows, scored with the weights at the step's start, each
    feature's gradient the weighted mean over the step's rows, one step per feature
    present (``positions``: -1 for every feature, a work array of ``P.shape[1]`` int32
    that comes back as it went). ``t0``: steps taken so far (Adam's bias correction)."""
    n = indptr.shape[0] - 1
    K1 = P.shape[3]
    K = K1 - 1
    s = np.zeros(K, dtype=np.float32)
    if step_rows > 1:
        S = np.zeros((step_rows, K), dtype=np.float32)
        G = np.zeros(step_rows, dtype=np.float32)
        width = int(indptr[min(n, step_rows)] - indptr[0])
        for r0 in range(0, n, step_rows):
            width = max(width, int(indptr[min(n, r0 + step_rows)] - indptr[r0]))
        acc = np.zeros((width, K1), dtype=np.float32)
        features = np.zeros(width, dtype=np.int32)
    for m in range(m0, m1):
        b1t = b1 ** np.float32(t0)
        b2t = b2 ** np.float32(t0)
        if step_rows == 1:
            for r in range(n):
                a, b = indptr[r], indptr[r + 1]
                score = _score(P, B, m, indices, data, a, b, s)
                F[r, m] = score
                if rw[r] <= np.float32(0.0):
                    continue
                g = _gradient(loss, score, y[r], rw[r])
                b1t *= b1
                b2t *= b2
                a1, eps_t = adam_terms(b1t, b2t, eps, optimizer)
                if use_bias:
                    _bias_step(B, m, g + wd_bias[m] * B[m, 0], lr_bias[m], optimizer, a1, b1, b2, eps_t, acc0)
                for j in range(a, b):
                    i = indices[j]
                    x = data[j]
                    gx = g * x
                    _step(P, m, i, 0, gx + wd_linear[m] * P[m, i, 0, 0], lr_linear[m], optimizer, a1, b1, b2,
                          eps_t, acc0)
                    for f in range(K):
                        v = P[m, i, 0, 1 + f]
                        _step(P, m, i, 1 + f, gx * (s[f] - v * x) + wd_factors[m] * v, lr_factors[m], optimizer,
                              a1, b1, b2, eps_t, acc0)
            continue
        for r0 in range(0, n, step_rows):
            r1 = min(n, r0 + step_rows)
            total = np.float32(0.0)
            for r in range(r0, r1):
                score = _score(P, B, m, indices, data, indptr[r], indptr[r + 1], S[r - r0])
                F[r, m] = score
                G[r - r0] = _gradient(loss, score, y[r], rw[r]) if rw[r] > np.float32(0.0) else np.float32(0.0)
                total += max(rw[r], np.float32(0.0))
            if total <= np.float32(0.0):
                continue
            # each feature's summed gradient, in the order features first appear
            u = 0
            gb = np.float32(0.0)
            for r in range(r0, r1):
                g = G[r - r0] / total
                gb += g
                for j in range(indptr[r], indptr[r + 1]):
                    i = indices[j]
                    x = data[j]
                    p = positions[i]
                    if p < 0:
                        p = u
                        positions[i] = u
                        features[u] = i
                        for c in range(K1):
                            acc[u, c] = np.float32(0.0)
                        u += 1
                    gx = g * x
                    acc[p, 0] += gx
                    for f in range(K):
                        acc[p, 1 + f] += gx * (S[r - r0, f] - P[m, i, 0, 1 + f] * x)
            b1t *= b1
            b2t *= b2
            a1, eps_t = adam_terms(b1t, b2t, eps, optimizer)
            if use_bias:
                _bias_step(B, m, gb + wd_bias[m] * B[m, 0], lr_bias[m], optimizer, a1, b1, b2, eps_t, acc0)
            for p in range(u):
                i = features[p]
                positions[i] = -1
                _step(P, m, i, 0, acc[p, 0] + wd_linear[m] * P[m, i, 0, 0], lr_linear[m], optimizer, a1, b1, b2,
                      eps_t, acc0)
                for f in range(K):
                    _step(P, m, i, 1 + f, acc[p, 1 + f] + wd_factors[m] * P[m, i, 0, 1 + f], lr_factors[m],
                          optimizer, a1, b1, b2, eps_t, acc0)
