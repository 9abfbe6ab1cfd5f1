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
    runs = lloyd_runs(points, weights, centers[None], max_iter=max_iter, tol=tol)
    return runs[0][0], runs[1][0], float(runs[2][0]), int(runs[3][0])


# Runs advance together while their (runs, points, centers) distances stay this small.
_MAX_RUN_CELLS = 1 << 21


def lloyd_runs(
    points: np.ndarray,
    weights: np.ndarray,
    centers: np.ndarray,
    *,
    max_iter: int = 300,
    tol: float = 1e-4,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """:func:`lloyd` from each of ``centers``' starts, shape (n_runs, k, n_features).

    Independent runs, each exactly as :func:`lloyd` alone (the same products and sums
    in the same order), advanced together: one product, one argmin and one sparse sum
    per iteration for all runs still moving, instead of one each. Returns per run the
    centers (n_runs, k, n_features), labels (n_runs, n), inertia and iterations (n_runs,).
    """
    n_runs, k, _ = centers.shape
    n = points.shape[0]
    centers = centers.astype(np.float64, copy=True)
    x_sq = np.einsum("ij,ij->i", points, points)
    mean = np.average(points, axis=0, weights=weights)
    variance = float(np.average(((points - mean) ** 2).sum(axis=1), weights=weights)) / points.shape[1]
    threshold = tol * variance
    n_iter = np.zeros(n_runs, dtype=np.int64)
    moving = np.ones(n_runs, dtype=bool)
    group = max(1, _MAX_RUN_CELLS // max(1, n * k))
    for it in range(1, max_iter + 1):
        live = np.flatnonzero(moving)
        if live.size == 0:
            break
        for runs in np.array_split(live, -(-live.size // group)):
            stopped = _lloyd_step(points, weights, x_sq, centers, runs, threshold)
            n_iter[runs] = it
            moving[runs[stopped]] = False
    labels = np.empty((n_runs, n), dtype=np.int64)
    inertia = np.empty(n_runs)
    for runs in np.array_split(np.arange(n_runs), -(-n_runs // group)):
        d2 = _run_distances(points, x_sq, centers[runs])
        labels[runs] = np.argmin(d2, axis=2)
        inertia[runs] = [float(weights @ d2[i, np.arange(n), labels[r]]) for i, r in enumerate(runs)]
    return centers, labels, inertia, n_iter


def _run_distances(points: np.ndarray, x_sq: np.ndarray, centers: np.ndarray) -> np.ndarray:
    """:func:`squared_distances` for each run's centers, (n_runs, n, k), the same way."""
    c_sq = np.einsum("rij,rij->ri", centers, centers)
    d2 = points @ centers.transpose(0, 2, 1)
    d2 *= -2
    d2 += x_sq[None, :, None]
    d2 += c_sq[:, None, :]
    np.maximum(d2, 0, out=d2)
    return d2


def _lloyd_step(points: np.ndarray, weights: np.ndarray, x_sq: np.ndarray, centers: np.ndarray,
                runs: np.ndarray, threshold: float) -> np.ndarray:
    """One Lloyd iteration of ``runs`` (updating ``centers`` in place); which of them stop."""
    n = points.shape[0]
    current = centers[runs]
    n_runs, k, _ = current.shape
    d2 = _run_distances(points, x_sq, current)
    labels = np.argmin(d2, axis=2)
    # Run r's clusters are rows r*k .. r*k+k-1 of one one-hot matrix: each point has a
    # non-zero per run in its column (CSC, no sorting), so one sparse product sums all.
    rows = labels + (np.arange(n_runs) * k)[:, None]
    onehot = sp.csc_matrix((np.repeat(weights, n_runs), rows.T.ravel(), np.arange(0, n * n_runs + 1, n_runs)),
                           shape=(n_runs * k, n))
    sums = np.asarray(onehot @ points).reshape(n_runs, k, -1)
    mass = np.bincount(rows.ravel(), weights=np.tile(weights, n_runs), minlength=n_runs * k).reshape(n_runs, k)
    has_empty = np.zeros(n_runs, dtype=bool)
    for r in np.flatnonzero((mass <= 0).any(axis=1)):
        empty = np.flatnonzero(mass[r] <= 0)
        cost = weights * d2[r, np.arange(n), labels[r]]
        far = np.argsort(-cost, kind="stable")[: empty.size]
        sums[r, empty] = points[far] * weights[far, None]
        mass[r, empty] = weights[far]
        has_empty[r] = True
    new_centers = sums / mass[:, :, None]
    shift = ((new_centers - current) ** 2).sum(axis=(1, 2))
    centers[runs] = new_centers
    return (shift <= threshold) & ~has_empty


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
    centers, labels, inertia, n_iter = lloyd_runs(points, weights, points[all_seeds], max_iter=max_iter, tol=tol)
    best = int(np.argmin(inertia))  # the first of equals, as keeping only strictly better ones does
    return centers[best], labels[best], float(inertia[best]), int(n_iter[best])
