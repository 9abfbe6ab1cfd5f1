"""Weighted k-means on a small set of points: k-means++ seeding and Lloyd iterations.

Shared by K-Means's initialization, its merge (reducing a union of centers back to the
budget) and its finalize (reducing the kept centers to ``n_clusters``). The inputs are
at most a few thousand weighted points, so plain NumPy is fast enough.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp


def squared_distances(X: np.ndarray, centers: np.ndarray, x_sq: np.ndarray | None = None) -> np.ndarray:
    """Squared Euclidean distances between the rows of ``X`` and ``centers``, clipped at 0."""
    if x_sq is None:
        x_sq = np.einsum("ij,ij->i", X, X)
    c_sq = np.einsum("ij,ij->i", centers, centers)
    d2 = X @ centers.T
    d2 *= -2
    d2 += x_sq[:, None]
    d2 += c_sq[None, :]
    np.maximum(d2, 0, out=d2)
    return d2


def kmeans_plusplus(
    points: np.ndarray, weights: np.ndarray, k: int, rng: np.random.Generator, n_local_trials: int | None = None
) -> np.ndarray:
    """Indices of ``k`` seeds chosen by greedy weighted k-means++ (D² sampling).

    Each step draws ``n_local_trials`` candidates with probability proportional to
    weight x squared distance to the nearest seed so far, and keeps the one that lowers
    the weighted potential most (Arthur & Vassilvitskii 2007; the greedy variant as in
    scikit-learn).
    """
    n = points.shape[0]
    if n_local_trials is None:
        n_local_trials = 2 + int(np.log(k))
    x_sq = np.einsum("ij,ij->i", points, points)
    p = weights / weights.sum()
    first = int(rng.choice(n, p=p))
    chosen = [first]
    closest = squared_distances(points, points[[first]], x_sq)[:, 0]
    for _ in range(1, k):
        potential = weights * closest
        total = potential.sum()
        if total <= 0:
            # Every point sits on a seed already: take the heaviest points not chosen.
            rest = np.setdiff1d(np.arange(n), chosen)
            order = rest[np.argsort(-weights[rest], kind="stable")]
            chosen.extend(order[: k - len(chosen)].tolist())
            break
        candidates = rng.choice(n, size=n_local_trials, p=potential / total)
        cand_d2 = squared_distances(points, points[candidates], x_sq)
        np.minimum(cand_d2, closest[:, None], out=cand_d2)
        scores = weights @ cand_d2
        best = int(np.argmin(scores))
        chosen.append(int(candidates[best]))
        closest = cand_d2[:, best]
    return np.asarray(chosen[:k], dtype=np.int64)


def lloyd(
    points: np.ndarray,
    weights: np.ndarray,
    centers: np.ndarray,
    *,
    max_iter: int = 300,
    tol: float = 1e-4,
) -> tuple[np.ndarray, np.ndarray, float, int]:
    """Weighted Lloyd iterations from ``centers``.

    Returns the centers, the label of each point, the weighted sum of squared
    distances, and the number of iterations run. Stops when the centers move less than
    ``tol`` times the mean per-feature variance of the points (scikit-learn's rule).
    A center that loses all its points is moved to the point that is farthest from its
    own center, weighted, so that no cluster is left empty.
    """
    k = centers.shape[0]
    centers = centers.astype(np.float64, copy=True)
    x_sq = np.einsum("ij,ij->i", points, points)
    mean = np.average(points, axis=0, weights=weights)
    variance = float(np.average(((points - mean) ** 2).sum(axis=1), weights=weights)) / points.shape[1]
    threshold = tol * variance
    n_iter = 0
    for n_iter in range(1, max_iter + 1):  # noqa: B007  (read after the loop)
        d2 = squared_distances(points, centers, x_sq)
        labels = np.argmin(d2, axis=1)
        mass = np.bincount(labels, weights=weights, minlength=k)
        onehot = sp.csc_matrix((weights, labels, np.arange(points.shape[0] + 1)), shape=(k, points.shape[0]))
        sums = np.asarray(onehot @ points)
        empty = np.flatnonzero(mass <= 0)
        if empty.size:
            cost = weights * d2[np.arange(points.shape[0]), labels]
            far = np.argsort(-cost, kind="stable")[: empty.size]
            sums[empty] = points[far] * weights[far, None]
            mass[empty] = weights[far]
        new_centers = sums / mass[:, None]
        shift = float(((new_centers - centers) ** 2).sum())
        centers = new_centers
        if shift <= threshold and not empty.size:
            break
    d2 = squared_distances(points, centers, x_sq)
    labels = np.argmin(d2, axis=1)
    inertia = float(weights @ d2[np.arange(points.shape[0]), labels])
    return centers, labels, inertia, n_iter


def best_of_trials(
    points: np.ndarray,
    weights: np.ndarray,
    k: int,
    rng: np.random.Generator,
    *,
    n_trials: int,
    max_iter: int = 300,
    tol: float = 1e-4,
) -> tuple[np.ndarray, np.ndarray, float, int]:
    """Weighted k-means of ``points`` into ``k`` clusters, best of ``n_trials`` restarts."""
    points = np.asarray(points, dtype=np.float64)
    weights = np.asarray(weights, dtype=np.float64)
    best = None
    for _ in range(n_trials):
        seeds = kmeans_plusplus(points, weights, k, rng)
        result = lloyd(points, weights, points[seeds], max_iter=max_iter, tol=tol)
        if best is None or result[2] < best[2]:
            best = result
    assert best is not None
    return best
