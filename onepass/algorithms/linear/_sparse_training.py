"""Linear Learner's sparse training, compiled: mini-batch steps, and updates row by row.

A sparse step of ``b`` rows with ``nnz`` non-zeros and ``k`` weight columns (models x
outputs) touches only the records of the features present (``P[f]``: the feature's
weights and optimizer moments side by side). In NumPy that needs the distinct features
(a sort), a gather of the rows, a sparse product each way and a dozen passes over the
gathered block, then a scatter back: 6-10x slower than the work. Compiled here:

- mini-batch steps (``scores``, ``group``, ``update``): one pass computes the scores,
  one groups the step's non-zeros by feature (a counting sort), one applies the
  optimizer to each feature present once, with its summed gradient;
- row by row (``online``, ``mini_batch_size=1``, the default for sparse input): each
  row is scored, then every model learns it at once, as Vowpal Wabbit does for one
  model. Models are independent, so two threads take half the models each. A thread's
  columns go 16 at a time as explicit vectors (``_simd``), the rest in a loop.

Both are ``O(nnz * k)``, independent of the number of features. The records of the
features ``AHEAD`` non-zeros on are prefetched, so the random reads overlap instead of
waiting in turn (the step is bound by them).

The arithmetic is the optimizer of ``LinearLearnerState._apply`` (Adam with its bias
correction, SGD with momentum, Adagrad), L2 added to the gradient and L1 as a proximal
step scaled by each coordinate's step size, in float32 as the NumPy step does, and the
losses of ``_losses.gradient``.

Compiled with Numba on first use and cached on disk (next to this file, or in the
user's cache when the package is read-only). This module imports Numba: the state imports
it only when a sparse step runs, so importing onepass stays cheap. The kernels are
module-level functions: Numba cannot find closures in its cache (their captured
objects differ in every process), and would compile them again each time (4 s).
"""

from __future__ import annotations

import numpy as np

from onepass.algorithms._optimizer_kernels import (
    OPTIMIZER_CODES,
    adagrad_step,
    adam_step,
    adam_terms,
    inline,
    jit,
    logistic_gradient,
    sgd_step,
)
from onepass.algorithms.linear._simd import WIDTH, axpy, prefetch, prefetch_w, vector_map, vector_step

__all__ = ["OPTIMIZER_CODES", "LOSS_CODES", "scores", "group", "update", "online"]

LOSS_CODES = {"logistic": 0, "hinge_loss": 1, "softmax_loss": 2, "squared_loss": 3, "absolute_loss": 4,
              "huber_loss": 5, "quantile_loss": 6}
AHEAD = 16  # non-zeros (features) ahead whose memory is prefetched
LINE = 16  # float32 per cache line
LEAD = 1  # rows ahead whose records the row-by-row loop prefetches


# The optimizer steps (``_optimizer_kernels``) on the record of feature f, columns c0:c1,
# gradient x * g[c] + wd[c] * w: one
# loop per optimizer, without branches inside, over 1-D views indexed from 0 (the
# compiler then knows no index is negative), so it vectorizes.

@inline
def adam(P, f, c0, c1, x, g, lr, wd, l1, a1, b1, b2, eps):  # pragma: no cover - compiled
    w_, m_, v_ = P[f, 0, c0:c1], P[f, 1, c0:c1], P[f, 2, c0:c1]
    g_, lr_, wd_, l1_ = g[c0:c1], lr[c0:c1], wd[c0:c1], l1[c0:c1]
    for c in range(c1 - c0):
        w_[c], m_[c], v_[c] = adam_step(w_[c], m_[c], v_[c], x * g_[c] + wd_[c] * w_[c], lr_[c], l1_[c], a1, b1,
                                        b2, eps)


@inline
def sgd(P, f, c0, c1, x, g, lr, wd, l1, momentum):  # pragma: no cover - compiled
    w_, m_ = P[f, 0, c0:c1], P[f, 1, c0:c1]
    g_, lr_, wd_, l1_ = g[c0:c1], lr[c0:c1], wd[c0:c1], l1[c0:c1]
    for c in range(c1 - c0):
        w_[c], m_[c] = sgd_step(w_[c], m_[c], x * g_[c] + wd_[c] * w_[c], lr_[c], l1_[c], momentum)


@inline
def adagrad(P, f, c0, c1, x, g, lr, wd, l1, acc0, eps):  # pragma: no cover - compiled
    w_, s_ = P[f, 0, c0:c1], P[f, 1, c0:c1]
    g_, lr_, wd_, l1_ = g[c0:c1], lr[c0:c1], wd[c0:c1], l1[c0:c1]
    for c in range(c1 - c0):
        w_[c], s_[c] = adagrad_step(w_[c], s_[c], x * g_[c] + wd_[c] * w_[c], lr_[c], l1_[c], acc0, eps)


@inline
def record_step(P, f, c0, c1, x, g, lr, wd, l1, optimizer, a1, b1, b2, eps, acc0):  # pragma: no cover - compiled
    """The step of this optimizer on feature f's record, columns c0:c1."""
    if optimizer == 0:
        adam(P, f, c0, c1, x, g, lr, wd, l1, a1, b1, b2, eps)
    elif optimizer == 1:
        sgd(P, f, c0, c1, x, g, lr, wd, l1, b1)
    else:
        adagrad(P, f, c0, c1, x, g, lr, wd, l1, acc0, eps)


# The same steps on 16 columns at once, as explicit vectors (see _simd): the loops above
# spend most of their time checking that their arrays do not overlap, then run once.
adam16, sgd16, adagrad16 = vector_step(adam_step, 3), vector_step(sgd_step, 2), vector_step(adagrad_step, 2)


@inline
def vector_record_step(flat, base, k, x, g, lr, wd, l1, col, optimizer, a1, b1, b2, eps,
                       acc0):  # pragma: no cover - compiled
    """``record_step`` on the 16 columns from ``col`` of the record at ``flat[base]`` (slots ``k`` apart)."""
    if optimizer == 0:
        adam16(flat, base, k, x, g, lr, wd, l1, col, (a1, b1, b2, eps))
    elif optimizer == 1:
        sgd16(flat, base, k, x, g, lr, wd, l1, col, (b1,))
    else:
        adagrad16(flat, base, k, x, g, lr, wd, l1, col, (acc0, eps))


logistic16 = vector_map(logistic_gradient)  # the same on 16 scores (e^x as in _simd: within 2 ulp)


@inline
def coordinate(P, f, c, gc, lr, l1, optimizer, a1, b1, b2, eps, acc0):  # pragma: no cover - compiled
    """The optimizer step of one weight, for one model: the loops above, vectorized for
    many models, cost twice as much per weight for one."""
    if optimizer == 0:
        P[f, 0, c], P[f, 1, c], P[f, 2, c] = adam_step(P[f, 0, c], P[f, 1, c], P[f, 2, c], gc, lr, l1, a1, b1, b2,
                                                       eps)
    elif optimizer == 1:
        P[f, 0, c], P[f, 1, c] = sgd_step(P[f, 0, c], P[f, 1, c], gc, lr, l1, b1)
    else:
        P[f, 0, c], P[f, 1, c] = adagrad_step(P[f, 0, c], P[f, 1, c], gc, lr, l1, acc0, eps)


@jit
def scores(indptr, indices, data, P, intercept, F, r0, r1):  # pragma: no cover - compiled
    """F[r] = intercept + sum of data[j] * P[indices[j], 0] over row r's non-zeros, rows r0..r1."""
    k = F.shape[1]
    flat = P.reshape(-1)
    record = P.shape[1] * k
    last = indptr[r1] - 1
    for r in range(r0, r1):
        for c in range(k):
            F[r, c] = intercept[c]
        for j in range(indptr[r], indptr[r + 1]):
            ahead = indices[min(j + AHEAD, last)] * record
            for line in range(0, k, LINE):
                prefetch(flat, ahead + line)
            f = indices[j]
            x = data[j]
            for c in range(k):
                F[r, c] += x * P[f, 0, c]

@jit
def group(indptr, indices, data, positions, distinct, starts, rows, values, slots):  # pragma: no cover
    """The step's non-zeros grouped by feature (a counting sort); returns the distinct count.

    Feature ``distinct[p]`` has the non-zeros ``starts[p]:starts[p + 1]`` of ``rows``
    (their row) and ``values``. ``positions`` (one int32 per feature, -1 everywhere)
    is used as the feature -> p map and left as found; ``slots`` (nnz int32) is work.
    """
    n = indptr.shape[0] - 1
    u = 0
    last = indptr[n] - 1
    for j in range(indptr[n]):
        prefetch_w(positions, indices[min(j + AHEAD, last)])
        f = indices[j]
        p = positions[f]
        # branch-free (whether a feature is new is a coin toss for the branch predictor):
        # the writes for a new feature are harmless when it is not
        new = p < 0
        p = u if new else p
        positions[f] = p
        distinct[u] = f
        starts[u + 1] = 0
        u += new
        starts[p + 1] += 1
        slots[j] = p
    starts[0] = 0
    for p in range(u):
        starts[p + 1] += starts[p]
    for r in range(n):
        for j in range(indptr[r], indptr[r + 1]):
            p = slots[j]
            at = starts[p]
            rows[at] = r
            values[at] = data[j]
            starts[p] = at + 1
    for p in range(u - 1, 0, -1):  # the fill moved every start to the next one's place
        starts[p] = starts[p - 1]
    starts[0] = 0
    for p in range(u):
        positions[distinct[p]] = -1
    return u

@jit
def update(distinct, starts, rows, values, G, P, lr, wd, l1, optimizer,
           a1, b1, b2, eps, acc0, p0, p1, g):  # pragma: no cover - compiled
    """One optimizer step on the records ``P[f]`` of features ``f`` in ``distinct[p0:p1]``,
    with the gradient of the step's rows ``G`` (``g`` is a work vector of ``k`` floats)."""
    k = G.shape[1]
    flat = P.reshape(-1)
    record = P.shape[1] * k
    one = np.float32(1.0)
    for p in range(p0, p1):
        ahead = distinct[min(p + AHEAD, p1 - 1)] * record
        for line in range(0, record, LINE):
            prefetch_w(flat, ahead + line)
        f = distinct[p]
        for c in range(k):
            g[c] = 0.0
        for j in range(starts[p], starts[p + 1]):
            r = rows[j]
            x = values[j]
            for c in range(k):
                g[c] += x * G[r, c]
        record_step(P, f, 0, k, one, g, lr, wd, l1, optimizer, a1, b1, b2, eps, acc0)

@jit
def online(indptr, indices, data, y, rw, P, intercept, bias1, bias2, F, loss, n_outputs, c0, c1, lr, wd, l1,
           use_bias, optimizer, t0, b1, b2, eps, acc0, margin, quantile, delta, g):  # pragma: no cover
    """Rows ``0..n`` one at a time, columns ``c0:c1`` (whole models): each row's scores
    go to ``F`` (before the row is learned), then each model takes one optimizer step on
    the row (weights of the row's features, and the intercept). ``t0``: steps so far
    (Adam's bias correction); ``g``: a work vector of ``k`` floats. One column (one
    model of one output) takes a scalar loop, compiled apart (the vector loops cost twice
    as much per weight for one; one loop with both paths slowed the vector path by 20%)."""
    args = (indptr, indices, data, y, rw, P, intercept, bias1, bias2, F, loss, n_outputs, c0, c1, lr, wd, l1,
            use_bias, optimizer, t0, b1, b2, eps, acc0, margin, quantile, delta, g)
    if c1 - c0 == 1:
        _online_one(*args)
    else:
        _online_many(*args)


@jit
def _online_one(indptr, indices, data, y, rw, P, intercept, bias1, bias2, F, loss, n_outputs, c0, c1, lr, wd, l1,
                use_bias, optimizer, t0, b1, b2, eps, acc0, margin, quantile, delta, g):  # pragma: no cover
    _online_rows(indptr, indices, data, y, rw, P, intercept, bias1, bias2, F, loss, n_outputs, c0, c1, lr, wd, l1,
                 use_bias, optimizer, t0, b1, b2, eps, acc0, margin, quantile, delta, g, True)


@jit
def _online_many(indptr, indices, data, y, rw, P, intercept, bias1, bias2, F, loss, n_outputs, c0, c1, lr, wd, l1,
                 use_bias, optimizer, t0, b1, b2, eps, acc0, margin, quantile, delta, g):  # pragma: no cover
    _online_rows(indptr, indices, data, y, rw, P, intercept, bias1, bias2, F, loss, n_outputs, c0, c1, lr, wd, l1,
                 use_bias, optimizer, t0, b1, b2, eps, acc0, margin, quantile, delta, g, False)


@inline
def _online_rows(indptr, indices, data, y, rw, P, intercept, bias1, bias2, F, loss, n_outputs, c0, c1, lr, wd, l1,
                 use_bias, optimizer, t0, b1, b2, eps, acc0, margin, quantile, delta, g, scalar):  # pragma: no cover
    n = indptr.shape[0] - 1
    width = c1 - c0
    cv = c0 + width // WIDTH * WIDTH  # columns c0:cv in vectors of 16, cv:c1 in a loop
    flat = P.reshape(-1)
    k = P.shape[2]
    record = P.shape[1] * k
    one = np.float32(1.0)
    zero = np.float32(0.0)
    z = g[c0:c1]  # a 1-D view indexed from 0 (see adam)
    # the intercepts as the record of one more feature (P's slots: the intercept, then
    # its moments), so they take the weights' steps; no L1, no L2 on them
    slots = P.shape[1]
    B = np.zeros((1, slots, k), dtype=np.float32)
    B[0, 0, c0:c1], B[0, 1, c0:c1] = intercept[c0:c1], bias1[c0:c1]
    if slots == 3:  # Adam's second moment (bias2 is bias1 for the others)
        B[0, 2, c0:c1] = bias2[c0:c1]
    bias = B.reshape(-1)
    no_penalty = np.zeros(k, dtype=np.float32)
    b1t = b1 ** np.float32(t0)
    b2t = b2 ** np.float32(t0)
    for r in range(n):
        if scalar:  # one model (see coordinate)
            s = bias[c0]
            for j in range(indptr[r], indptr[r + 1]):
                s += data[j] * P[indices[j], 0, c0]
            z[0] = s
        else:
            for c in range(c0, c1):
                g[c] = bias[c]
            for j in range(indptr[r], indptr[r + 1]):
                base = indices[j] * record
                x = data[j]
                for col in range(c0, cv, WIDTH):
                    axpy(flat, base + col, x, g, col)
                for c in range(cv, c1):
                    g[c] += x * flat[base + c]
        F[r, c0:c1] = z
        # the records of a row ahead, before its turn (this thread's columns of each slot)
        if r + LEAD < n:
            for j in range(indptr[r + LEAD], indptr[r + LEAD + 1]):
                ahead = indices[j] * record
                for slot in range(0, record, k):
                    for line in range(c0, c1, LINE):
                        prefetch_w(flat, ahead + slot + line)
        weight = rw[r]
        if weight <= zero:
            continue
        label = y[r]
        # z becomes the gradient of the loss in each score, times the row's weight
        if loss == 0:  # logistic, labels 0/1
            for col in range(c0, cv, WIDTH):
                logistic16(g, col, (weight, label))
            for c in range(cv, c1):
                g[c] = logistic_gradient(g[c], weight, label)
        elif loss == 1:  # hinge, labels 0/1 as -1/+1
            sgn = np.float32(2.0) * label - one
            for c in range(width):
                z[c] = -weight * sgn if sgn * z[c] < margin else zero
        elif loss == 2:  # softmax over each model's outputs
            for m0 in range(0, width, n_outputs):
                top = z[m0]
                for c in range(m0, m0 + n_outputs):
                    top = max(top, z[c])
                total = zero
                for c in range(m0, m0 + n_outputs):
                    z[c] = np.exp(z[c] - top)
                    total += z[c]
                for c in range(m0, m0 + n_outputs):
                    z[c] = weight * z[c] / total
                z[m0 + int(label)] -= weight
        elif loss == 3:  # squared
            for c in range(width):
                z[c] = weight * (z[c] - label)
        elif loss == 4:  # absolute
            for c in range(width):
                z[c] = weight * np.sign(z[c] - label)
        elif loss == 5:  # huber
            for c in range(width):
                z[c] = weight * min(max(z[c] - label, -delta), delta)
        else:  # quantile (pinball on label - score)
            for c in range(width):
                z[c] = weight * (-quantile if z[c] < label else one - quantile)
        b1t *= b1
        b2t *= b2
        a1, eps_t = adam_terms(b1t, b2t, eps, optimizer)
        if use_bias:
            for col in range(c0, cv, WIDTH):
                vector_record_step(bias, col, k, one, g, lr, no_penalty, no_penalty, col, optimizer, a1, b1, b2,
                                   eps_t, acc0)
            for c in range(cv, c1):
                coordinate(B, 0, c, g[c], lr[c], zero, optimizer, a1, b1, b2, eps_t, acc0)
        if scalar:
            for j in range(indptr[r], indptr[r + 1]):
                f = indices[j]
                coordinate(P, f, c0, data[j] * z[0] + wd[c0] * P[f, 0, c0], lr[c0], l1[c0], optimizer, a1, b1, b2,
                           eps_t, acc0)
            continue
        for j in range(indptr[r], indptr[r + 1]):
            f = indices[j]
            for col in range(c0, cv, WIDTH):
                vector_record_step(flat, f * record + col, k, data[j], g, lr, wd, l1, col, optimizer, a1, b1, b2,
                                   eps_t, acc0)
            if cv < c1:
                record_step(P, f, cv, c1, data[j], g, lr, wd, l1, optimizer, a1, b1, b2, eps_t, acc0)
    intercept[c0:c1], bias1[c0:c1] = B[0, 0, c0:c1], B[0, 1, c0:c1]
    if slots == 3:
        bias2[c0:c1] = B[0, 2, c0:c1]
