"""Weighted k-means on a small set of points: k-means++ seeding and Lloyd iterations.

Shared by K-Means's initialization, its merge (reducing a union of centers back to the
budget) and its finalize (reducing the kept centers to ``n_clusters``). The inputs are
at most a few thousand weighted points, so plain NumPy is fast enough.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

# Up to this many points, restarts share one precomputed squared-distance matrix (8 MB).
_PAIRWISE_MAX_POINTS = 1024


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
    points: np.ndarray,
    weights: np.ndarray,
    k: int,
    rng: np.random.Generator,
    n_local_trials: int | None = None,
    *,
    n_runs: int = 1,
    pairwise: np.ndarray | None = None,
) -> np.ndarray:
    """Indices of ``k`` seeds chosen by greedy weighted k-means++ (D² sampling).

    Each step draws ``n_local_trials`` candidates with probability proportional to
    weight x squared distance to the nearest seed so far, and keeps the one that lowers
    the weighted potential most (Arthur & Vassilvitskii 2007; the greedy variant as in
    scikit-learn). Returns shape ``(k,)``, or ``(n_runs, k)`` when ``n_runs`` independent
    seedings are asked for: they advance together, one vectorized step for all.
    ``pairwise``, the points' squared distance matrix when the caller has it, turns
    each step's distance computation into a row lookup.
    """
    n = points.shape[0]
    if n_local_trials is None:
        n_local_trials = 2 + int(np.log(k))
    x_sq = None if pairwise is not None else np.einsum("ij,ij->i", points, points)
    runs = np.arange(n_runs)

    def distances_to(idx: np.ndarray) -> np.ndarray:  # (n_runs, m) indices -> (n_runs, m, n)
        if pairwise is not None:
            return pairwise[idx]
        return squared_distances(points, points[idx.ravel()], x_sq).T.reshape(*idx.shape, n)

    def draw(mass: np.ndarray, size: int) -> np.ndarray:
        # Inverse-CDF sampling, one row of ``mass`` per run, all runs in one search.
        cdf = np.cumsum(mass, axis=1)
        cdf /= cdf[:, -1:]
        cdf += runs[:, None]
        picks = np.searchsorted(cdf.ravel(), rng.random((n_runs, size)) + runs[:, None], side="right")
        return np.minimum(picks - (runs * n)[:, None], n - 1)

    chosen = np.empty((n_runs, k), dtype=np.int64)
    chosen[:, 0] = draw(np.broadcast_to(weights, (n_runs, n)), 1)[:, 0]
    closest = distances_to(chosen[:, :1])[:, 0, :]
    for step in range(1, k):
        potential = weights * closest
        spent = potential.sum(axis=1) <= 0
        if spent.any():
            # Every point of a run sits on a seed already: it gets the heaviest points
            # it has not chosen, and only when it draws again is a real choice made.
            for r in np.flatnonzero(spent):
                rest = np.setdiff1d(np.arange(n), chosen[r, :step])
                chosen[r, step:] = rest[np.argsort(-weights[rest], kind="stable")][: k - step]
            if spent.all():
                break
            potential[spent] = weights  # placeholders, overwritten below
        candidates = draw(potential, n_local_trials)
        cand_d2 = distances_to(candidates)
        np.minimum(cand_d2, closest[:, None, :], out=cand_d2)
        best = np.argmin(cand_d2 @ weights, axis=1)
        live = ~spent
        chosen[live, step] = candidates[runs, best][live]
        closest = np.where(live[:, None], cand_d2[runs, best], closest)
    return chosen[0] if n_runs == 1 else chosen


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
    # The restarts share the points' distance matrix when it is small (finalize reduces
    # a few hundred kept centers): k-means++ then looks distances up instead of
    # computing them at each of its k steps.
    pairwise = squared_distances(points, points) if points.shape[0] <= _PAIRWISE_MAX_POINTS else None
    all_seeds = np.atleast_2d(kmeans_plusplus(points, weights, k, rng, n_runs=n_trials, pairwise=pairwise))
    best = None
    for seeds in all_seeds:
        result = lloyd(points, weights, points[seeds], max_iter=max_iter, tol=tol)
        if best is None or result[2] < best[2]:
            best = result
    assert best is not None
    return best
