"""Clustering quality on a fixed evaluation sample, the same for every case."""

from __future__ import annotations

from pathlib import Path

import numpy as np

EVAL_ROWS = 200_000


def eval_indices(n: int, seed: int) -> np.ndarray:
    """A fixed sample of row indices (sorted), the same for every case on this file."""
    rng = np.random.default_rng([seed, n, 0xE7A1])
    return np.sort(rng.choice(n, size=min(EVAL_ROWS, n), replace=False))


def load_eval_sample(x_path: str | Path, y_path: str | Path, seed: int) -> tuple[np.ndarray, np.ndarray]:
    X = np.load(x_path, mmap_mode="r")
    idx = eval_indices(X.shape[0], seed)
    return np.asarray(X[idx], dtype=np.float32), np.asarray(np.load(y_path, mmap_mode="r")[idx])


def assign(X: np.ndarray, centers: np.ndarray, chunk: int = 20_000) -> tuple[np.ndarray, float]:
    """Nearest center of each row and the inertia (sum of squared distances), in float64."""
    C = np.asarray(centers, dtype=np.float64)
    cc = (C * C).sum(1)
    labels = np.empty(X.shape[0], dtype=np.int64)
    inertia = 0.0
    for s in range(0, X.shape[0], chunk):
        x = np.asarray(X[s : s + chunk], dtype=np.float64)
        d2 = (x * x).sum(1)[:, None] - 2.0 * x @ C.T + cc[None, :]
        j = d2.argmin(1)
        labels[s : s + chunk] = j
        inertia += float(np.maximum(d2[np.arange(len(j)), j], 0.0).sum())
    return labels, inertia


def clustering_quality(centers: np.ndarray, x_path, y_path, seed: int) -> dict:
    from sklearn.metrics import adjusted_rand_score

    X, y = load_eval_sample(x_path, y_path, seed)
    labels, inertia = assign(X, centers)
    return {"inertia": inertia, "ari": float(adjusted_rand_score(y, labels)), "eval_rows": int(X.shape[0])}
