"""Linear Learner's dense training, compiled: a run of mini-batch steps in one call.

A dense step of ``b`` rows, ``d`` features and ``k`` weight columns (models x outputs) is
two ``b x d x k`` matrix products and a few passes over ``b x k`` scores. In NumPy each
step also paid ~20 calls from Python (normalize, product, intercept, gradient, the
progressive-validation ring, the row weights, the optimizer on the weights and on the
intercepts): at 1000 rows, 80 features and 32 models that was most of the step's time
(python /tmp/ll/prof.py 50000 32). Here ``steps`` runs every step up to the next scoring
of the models in one compiled loop, the products still by BLAS (Numba calls SciPy's
``sgemm``), the rest as loops over the step's rows; the state runs it on two threads,
half the models each. It writes the progressive-validation ring of ``ModelSelection``
in place, as its ``remember`` would after each step.

The arithmetic is the NumPy step's, in float32 and in the same order: normalization
``(x - mean) * (1 / scale)``, scores plus intercept, the losses of
``_losses.gradient``, the gradient scaled by each row's share of the step's weight, and
``_optimizers.numpy_step`` (Adam with its bias correction, SGD with momentum, Adagrad)
with L2 added to the gradient and L1 as a proximal step. What rounds differently:
``e^x`` (16 scores at a time as Cephes' expf, see ``_simd``: within 2 ulp of NumPy's),
the sum of a step's row weights when they are not all 1 (NumPy sums pairwise), one
model's intercept gradient (summed in row order), and BLAS's products for a block of one
column. Weights stay within about 1e-6 of the NumPy step's, relative to their scale
(tests/algorithms/test_linear_dense.py).

Also here: the warm-up's feature moments (``moments``), in float64 without the
``n x d`` float64 copies the NumPy version made (0.2-0.7 s for a first batch of 600k
rows, most of it page faults).

Compiled with Numba on first use and cached on disk; this module imports Numba, the state
imports it only when a dense step runs (see ``_sparse_training`` for the conventions).
A process pays Numba's start once, ~0.4 s (its import and target), as the sparse path does.
"""

from __future__ import annotations

import numpy as np

from onepass.algorithms._optimizer_kernels import inline, jit
from onepass.algorithms.linear._simd import WIDTH, vector_map

__all__ = ["moments", "steps", "PAD"]

PAD = WIDTH  # floats past the end of the scores that the 16-wide loss may read and write


@inline
def _sigmoid(z):  # pragma: no cover - compiled
    one = np.float32(1.0)
    return one / (one + np.exp(-z))


@inline
def _exp(z):  # pragma: no cover - compiled
    return np.exp(z)


_sigmoid16 = vector_map(_sigmoid)
_exp16 = vector_map(_exp)


@jit
def moments(X, w, total, mean, var):  # pragma: no cover - compiled
    """Weighted mean and variance of each column of ``X`` (float64; ``total``: the weights' sum)."""
    n, d = X.shape
    acc = np.zeros(d)
    for r in range(n):
        wr = np.float64(w[r])
        for j in range(d):
            acc[j] += wr * X[r, j]
    for j in range(d):
        mean[j] = acc[j] / total
        acc[j] = 0.0
    for r in range(n):
        wr = np.float64(w[r])
        for j in range(d):
            e = X[r, j] - mean[j]
            acc[j] += wr * (e * e)
    for j in range(d):
        var[j] = acc[j] / total


@inline
def _gradient(F, y, n, k, loss, margin, q_under, q_over, delta):  # pragma: no cover - compiled
    """The gradient of a loss other than logistic and softmax in each score, in place of
    the scores (as ``_losses.gradient``)."""
    zero, one = np.float32(0.0), np.float32(1.0)
    if loss == 1:  # hinge, labels 0/1 as -1/+1
        for r in range(n):
            s = np.float32(2.0) * y[r] - one
            for c in range(k):
                F[r, c] = -s if s * F[r, c] < margin else zero
    elif loss == 3:  # squared
        for r in range(n):
            label = y[r]
            for c in range(k):
                F[r, c] = F[r, c] - label
    elif loss == 4:  # absolute
        for r in range(n):
            label = y[r]
            for c in range(k):
                F[r, c] = np.sign(F[r, c] - label)
    elif loss == 5:  # huber
        for r in range(n):
            label = y[r]
            for c in range(k):
                F[r, c] = min(max(F[r, c] - label, -delta), delta)
    else:  # quantile (pinball on label - score)
        for r in range(n):
            label = y[r]
            for c in range(k):
                F[r, c] = q_under if F[r, c] - label < zero else q_over


@inline
def _softmax(F, y, n, k, n_outputs, losses, predicted):  # pragma: no cover - compiled
    """Softmax loss of each model (``losses``, (n, k / n_outputs)) and its class
    (``predicted``), then its gradient in place of the scores: as
    ``_losses.softmax_loss_and_gradient`` and the argmax of the scores."""
    n_models = k // n_outputs
    for r in range(n):
        label = int(y[r])
        for m in range(n_models):
            base = m * n_outputs
            top, best = F[r, base], 0
            for o in range(1, n_outputs):
                if F[r, base + o] > top:
                    top, best = F[r, base + o], o
            predicted[r, m] = best
            for o in range(n_outputs):
                F[r, base + o] = F[r, base + o] - top
            losses[r, m] = -F[r, base + label]
    flat = F.reshape(-1)
    for i in range(0, n * k, WIDTH):
        _exp16(flat, i, ())
    for r in range(n):
        label = int(y[r])
        for m in range(n_models):
            base = m * n_outputs
            total = np.float32(0.0)
            for o in range(n_outputs):
                total += F[r, base + o]
            losses[r, m] += np.log(total)
            for o in range(n_outputs):
                F[r, base + o] = F[r, base + o] / total
            F[r, base + label] -= np.float32(1.0)


@inline
def _optimizer(W, g, m1, m2, lr, l1, has_l1, optimizer, a, eps_a, b1, omb1, b2, omb2, momentum, eps,
               acc0):  # pragma: no cover - compiled
    """``numpy_step`` on 1-D ``W`` in place (moments too), then L1's proximal step when
    ``has_l1``; ``a``, ``eps_a``: Adam's bias correction at this step (float32)."""
    zero = np.float32(0.0)
    for c in range(W.shape[0]):
        gc = g[c]
        if optimizer == 0:
            m = m1[c] * b1 + omb1 * gc
            v = m2[c] * b2 + omb2 * (gc * gc)
            step = (lr[c] * a) / (np.sqrt(v) + eps_a)
            w = W[c] - step * m
            m1[c], m2[c] = m, v
        elif optimizer == 1:
            m = m1[c] * momentum + gc
            step = lr[c]
            w = W[c] - step * m
            m1[c] = m
        else:
            s = m1[c] + gc * gc
            step = lr[c] / (np.sqrt(s + acc0) + eps)
            w = W[c] - step * gc
            m1[c] = s
        if has_l1:
            w = np.copysign(max(abs(w) - step * l1[c], zero), w)
        W[c] = w


@jit
def steps(X, y, rw, y_raw, w_raw, totals, edges, mean, inv_scale, P, intercept, bias1, bias2, c0, c1, ring_values,
          ring_predicted, ring_y, ring_w, ring_next, label_scale, label_mean, is_label_normalized, loss, n_outputs,
          lr, wd, l1, use_bias, optimizer, t0, beta_1, beta_2, epsilon, b1, omb1, b2, omb2, momentum, eps, acc0,
          margin, q_under, q_over, delta, Xn, F, G_W, W, losses, predicted):  # pragma: no cover - compiled
    """The mini-batch steps on rows ``edges[i]:edges[i + 1]`` of ``X`` (raw features,
    float32, C order) in turn, columns ``c0:c1`` (whole models) of the records ``P`` and
    intercepts; returns (optimizer steps taken, the ring's next slot).

    Each step normalizes its rows, scores them (keeping the last ``ring_values.shape[0]``
    rows' scores, or multiclass losses and classes, in the progressive-validation ring of
    ``ModelSelection``, as its ``remember`` does; ``ring_y``, ``ring_w`` are written by the
    block that holds column 0), then, unless its rows' weights ``totals[i]`` sum to 0,
    takes the optimizer step (step number ``t0 + 1`` on). ``y``: labels as the losses
    see them (regression: normalized); ``rw``: row weights (class weights included);
    ``y_raw``, ``w_raw``: the labels and weights the ring keeps; ``lr``, ``wd``, ``l1`` per
    column. Work arrays: ``Xn`` (rows, d), ``F`` (rows * (c1 - c0) + PAD), ``G_W`` and
    ``W`` (d, c1 - c0), ``losses`` and ``predicted`` (rows, models) for multiclass.
    """
    d = X.shape[1]
    k = c1 - c0
    m0, m1_ = c0 // n_outputs, c1 // n_outputs
    cap = ring_values.shape[0]
    zero = np.float32(0.0)
    # L2 and L1 are applied when any column has them (as the NumPy step did): a block
    # without its own then adds 0 and shrinks by 0
    has_wd = False
    has_l1 = False
    for c in range(wd.shape[0]):
        has_wd |= wd[c] != zero
        has_l1 |= l1[c] != zero
    for f in range(d):
        for c in range(k):
            W[f, c] = P[f, 0, c0 + c]
    b = intercept[c0:c1]
    bm1 = bias1[c0:c1]
    bm2 = bias2[c0:c1] if optimizer == 0 else bias1[c0:c1]
    lr_, wd_, l1_ = lr[c0:c1], wd[c0:c1], l1[c0:c1]
    no_l1 = np.zeros(k, dtype=np.float32)
    g_b = np.empty(k, dtype=np.float32)
    t = t0
    for i in range(edges.shape[0] - 1):
        a, e = edges[i], edges[i + 1]
        n = e - a
        for r in range(n):
            for j in range(d):
                Xn[r, j] = (X[a + r, j] - mean[j]) * inv_scale[j]
        Xs = Xn[:n]
        S = F[:n * k].reshape((n, k))
        np.dot(Xs, W, S)
        # progressive validation: the last rows' scores (multiclass: losses and classes)
        # before the models learn them, in the ring from slot ring_next on
        first = n - min(n, cap)
        at = ring_next
        for r in range(n):
            row = S[r]
            for c in range(k):
                row[c] += b[c]
            if r < first:
                continue
            if loss != 2:
                kept = ring_values[at, c0:c1]
                if is_label_normalized:
                    for c in range(k):
                        kept[c] = row[c] * label_scale + label_mean
                else:
                    for c in range(k):
                        kept[c] = row[c]
            if c0 == 0:
                ring_y[at], ring_w[at] = y_raw[a + r], w_raw[a + r]
            at = at + 1 if at + 1 < cap else 0
        if loss == 2:
            _softmax(S, y[a:e], n, k, n_outputs, losses, predicted)
            at = ring_next
            for r in range(first, n):
                for m in range(m1_ - m0):
                    ring_values[at, m0 + m] = losses[r, m]
                    ring_predicted[at, m0 + m] = predicted[r, m]
                at = at + 1 if at + 1 < cap else 0
        ring_next = (ring_next + n - first) % cap
        total = totals[i]
        if total <= zero:  # rows of weight 0 only: scored, not learned
            continue
        # the gradient in each score (logistic: its sigmoid here, minus the label below),
        # times the row's share of the step's weight; the intercepts' gradient, its sum
        if loss == 0:
            flat = F[:n * k]
            for j in range(0, n * k, WIDTH):
                _sigmoid16(flat, j, ())
        elif loss != 2:
            _gradient(S, y[a:e], n, k, loss, margin, q_under, q_over, delta)
        for c in range(k):
            g_b[c] = zero
        for r in range(n):
            share = rw[a + r] / total
            row = S[r]
            if loss == 0:
                label = y[a + r]
                for c in range(k):
                    row[c] = (row[c] - label) * share
                    g_b[c] += row[c]
            else:
                for c in range(k):
                    row[c] *= share
                    g_b[c] += row[c]
        t += 1
        np.dot(Xs.T, S, G_W)
        if has_wd:
            for f in range(d):
                for c in range(k):
                    G_W[f, c] += W[f, c] * wd_[c]
        # Adam's bias correction at step t, in float64 as adam_correction computes it
        root = np.sqrt(1.0 - beta_2 ** np.float64(t))
        a1 = np.float32(root / (1.0 - beta_1 ** np.float64(t)))
        eps_a = np.float32(epsilon * root)
        for f in range(d):
            _optimizer(W[f], G_W[f], P[f, 1, c0:c1], P[f, 2, c0:c1] if optimizer == 0 else P[f, 1, c0:c1], lr_,
                       l1_, has_l1, optimizer, a1, eps_a, b1, omb1, b2, omb2, momentum, eps, acc0)
        if use_bias:
            _optimizer(b, g_b, bm1, bm2, lr_, no_l1, False, optimizer, a1, eps_a, b1, omb1, b2, omb2, momentum,
                       eps, acc0)
    for f in range(d):
        for c in range(k):
            P[f, 0, c0 + c] = W[f, c]
    return t - t0, ring_next
