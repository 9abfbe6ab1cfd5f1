"""Losses, their gradients, and the validation metrics models are ranked by.

Every function works on all models at once: scores have shape ``(n_rows, n_models)``
(``(n_rows, n_models, n_classes)`` for softmax), so one call serves the whole stack.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "BINARY_CRITERIA",
    "LOSSES",
    "gradient",
    "loss_values",
    "rank_binary",
    "sigmoid",
    "softmax",
    "softmax_loss_and_gradient",
]

#: predictor type -> the losses it accepts (the first is "auto")
LOSSES = {
    "binary_classifier": ("logistic", "hinge_loss"),
    "multiclass_classifier": ("softmax_loss",),
    "regressor": ("squared_loss", "absolute_loss", "huber_loss", "quantile_loss"),
}

#: SageMaker's binary_classifier_model_selection_criteria, and whether higher is better
BINARY_CRITERIA = {
    "accuracy": True,
    "f_beta": True,
    "f1": True,
    "recall_at_target_precision": True,
    "precision_at_target_recall": True,
    "cross_entropy_loss": False,
    "loss_function": False,
}


def sigmoid(z: np.ndarray) -> np.ndarray:
    """The logistic function, without overflow warnings for large ``|z|``."""
    out = np.empty_like(z)
    np.negative(z, out=out)
    np.exp(out, out=out, where=out < 80)  # exp(80) is finite in float32; beyond, 1/(1+e^z) is 0
    out[-z >= 80] = np.inf
    out += 1
    np.reciprocal(out, out=out)
    return out


def softmax(z: np.ndarray) -> np.ndarray:
    """Softmax over the last axis."""
    e = z - z.max(axis=-1, keepdims=True)
    np.exp(e, out=e)
    e /= e.sum(axis=-1, keepdims=True)
    return e


def softmax_loss_and_gradient(f: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(softmax loss (n, M), gradient (n, M, C)) of scores ``f`` (n, M, C) and labels 0..C-1,
    from one softmax, in the dtype of ``f``: the loss is log(sum(exp(f - max))) - (f_y - max),
    exact without a float64 pass."""
    rows, idx = np.arange(f.shape[0]), y.astype(np.intp)
    e = f - f.max(axis=-1, keepdims=True)
    loss = -e[rows, :, idx]
    np.exp(e, out=e)
    total = e.sum(axis=-1, keepdims=True)
    loss += np.log(total[..., 0])
    e /= total
    e[rows, :, idx] -= 1.0
    return loss, e


def gradient(loss: str, f: np.ndarray, y: np.ndarray, *, margin: float = 1.0, quantile: float = 0.5,
             huber_delta: float = 1.0) -> np.ndarray:
    """d loss / d score for every row and model: ``f`` is (n, M) or (n, M, C); ``y`` is (n,).

    Binary labels are 0/1, multiclass labels 0..C-1 (as floats), regression labels real
    (already normalized). The result has the shape of ``f``, float32.
    """
    if loss == "logistic":
        g = sigmoid(f)
        g -= y[:, None]
        return g
    if loss == "hinge_loss":
        s = (2.0 * y - 1.0).astype(f.dtype)[:, None]  # -1 / +1
        return np.where(s * f < margin, -s, np.float32(0)).astype(f.dtype, copy=False)
    if loss == "softmax_loss":
        g = softmax(f)
        idx = y.astype(np.intp)
        g[np.arange(f.shape[0]), :, idx] -= 1.0
        return g
    r = f - y[:, None]
    if loss == "squared_loss":
        return r
    if loss == "absolute_loss":
        return np.sign(r)
    if loss == "huber_loss":
        return np.clip(r, -huber_delta, huber_delta)
    if loss == "quantile_loss":
        # pinball loss on y - f: slope -quantile when under-predicting, 1 - quantile over
        return np.where(r < 0, np.float32(-quantile), np.float32(1.0 - quantile)).astype(f.dtype, copy=False)
    raise ValueError(f"unknown loss {loss!r}")


def loss_values(loss: str, f: np.ndarray, y: np.ndarray, *, margin: float = 1.0, quantile: float = 0.5,
                huber_delta: float = 1.0) -> np.ndarray:
    """The loss of every row and model, (n, M), float64 (labels as in :func:`gradient`)."""
    if loss == "logistic":
        # log(1 + e^f) - y f, computed stably as max(f, 0) + log1p(e^-|f|) - y f in the
        # scores' precision (float32 scores: NumPy's vectorized exp and log1p, 15x faster than
        # float64 logaddexp; the terms are within 1e-6 of it), summed by the caller in float64
        if f.dtype != np.float32:
            f = f.astype(np.float64)
        y = y.astype(f.dtype, copy=False)
        out = np.log1p(np.exp(-np.abs(f)))
        out += np.maximum(f, 0)
        out -= y[:, None] * f
        return out.astype(np.float64, copy=False)
    f = f.astype(np.float64)
    y = y.astype(np.float64)
    if loss == "hinge_loss":
        s = (2.0 * y - 1.0)[:, None]
        return np.maximum(0.0, margin - s * f)
    if loss == "softmax_loss":
        top = f.max(axis=-1, keepdims=True)
        lse = np.log(np.exp(f - top).sum(axis=-1)) + top[..., 0]
        idx = y.astype(np.intp)
        return lse - f[np.arange(f.shape[0]), :, idx]
    r = f - y[:, None]
    if loss == "squared_loss":
        return 0.5 * r * r
    if loss == "absolute_loss":
        return np.abs(r)
    if loss == "huber_loss":
        a = np.abs(r)
        return np.where(a <= huber_delta, 0.5 * r * r, huber_delta * (a - 0.5 * huber_delta))
    if loss == "quantile_loss":
        return np.maximum(-quantile * r, (1.0 - quantile) * r)
    raise ValueError(f"unknown loss {loss!r}")


def rank_binary(criterion: str, scores: np.ndarray, y: np.ndarray, w: np.ndarray, *, beta: float = 1.0,
                target_precision: float = 0.8, target_recall: float = 0.8) -> tuple[np.ndarray, np.ndarray]:
    """(value of ``criterion``, best decision threshold) for each model, on raw scores.

    ``scores`` is (M, K): each model's raw decision values on the same K validation rows,
    ``y`` their 0/1 labels, ``w`` their weights. A row is predicted positive when its
    score is ``>=`` the threshold; thresholds are only placed where the sorted scores
    change, so tied rows are always predicted alike. A model with no threshold meeting a
    target gets the value 0 (and threshold +inf: it predicts nothing positive).
    """
    n_models, k = scores.shape
    order = np.argsort(-scores, axis=1, kind="stable")
    s_sorted = np.take_along_axis(scores, order, axis=1)
    pos = (y[order] > 0.5) * w[order]
    neg = (y[order] <= 0.5) * w[order]
    tp = np.cumsum(pos, axis=1)  # predicted positive: the first i+1 rows
    fp = np.cumsum(neg, axis=1)
    total_pos = tp[:, -1:] if k else np.zeros((n_models, 1))
    total_neg = fp[:, -1:] if k else np.zeros((n_models, 1))
    # a cut after row i is valid when the next score differs (or i is the last row)
    valid = np.ones((n_models, k), dtype=bool)
    if k > 1:
        valid[:, :-1] = s_sorted[:, :-1] != s_sorted[:, 1:]
    with np.errstate(invalid="ignore", divide="ignore"):
        if criterion == "accuracy":
            value = (tp + (total_neg - fp)) / np.maximum(total_pos + total_neg, 1e-300)
            none = total_neg[:, 0] / np.maximum(total_pos[:, 0] + total_neg[:, 0], 1e-300)
        elif criterion in ("f1", "f_beta"):
            b2 = 1.0 if criterion == "f1" else beta * beta
            value = (1 + b2) * tp / np.maximum((1 + b2) * tp + b2 * (total_pos - tp) + fp, 1e-300)
            none = np.zeros(n_models)
        elif criterion == "recall_at_target_precision":
            precision = tp / np.maximum(tp + fp, 1e-300)
            recall = tp / np.maximum(total_pos, 1e-300)
            value = np.where(precision >= target_precision, recall, 0.0)
            none = np.zeros(n_models)
        elif criterion == "precision_at_target_recall":
            precision = tp / np.maximum(tp + fp, 1e-300)
            recall = tp / np.maximum(total_pos, 1e-300)
            value = np.where(recall >= target_recall, precision, 0.0)
            none = np.zeros(n_models)
        else:
            raise ValueError(f"criterion {criterion!r} takes no threshold")
    value = np.where(valid, value, -np.inf)
    best = np.argmax(value, axis=1) if k else np.zeros(n_models, dtype=np.intp)
    best_value = value[np.arange(n_models), best] if k else np.full(n_models, -np.inf)
    threshold = s_sorted[np.arange(n_models), best].astype(np.float64) if k else np.full(n_models, np.inf)
    # predicting nothing positive is a candidate too (e.g. accuracy on rare positives)
    use_none = none > best_value
    threshold = np.where(use_none, np.inf, threshold)
    best_value = np.where(use_none, none, best_value)
    return best_value.astype(np.float64), threshold
