"""Compiled loops for the hot paths that NumPy cannot vectorize without extra passes.

Only loops that are unavoidable live here (DESIGN.md: numba only where a loop is
unavoidable). Each kernel has a plain-NumPy twin in its caller for sparse input.
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True, nogil=True, fastmath=False)
def assign_and_accumulate(X, scores, x_sq, w, sums, mass, cost, labels, d2):  # pragma: no cover - compiled
    """For each row: its nearest center (argmin of ``scores``), its squared distance,
    and the weighted sums, mass and cost per center, in one pass over the batch.

    ``scores[i, j] = ||c_j||^2 - 2 x_i.c_j`` (so ``d2 = scores[i, j] + ||x_i||^2``);
    ``sums`` (n_centers, d), ``mass`` and ``cost`` (n_centers,) are zeroed by the caller.
    """
    n, k = scores.shape
    d = X.shape[1]
    for i in range(n):
        best = 0
        best_score = scores[i, 0]
        for j in range(1, k):
            s = scores[i, j]
            if s < best_score:
                best_score = s
                best = j
        dist = best_score + x_sq[i]
        if dist < 0.0:
            dist = 0.0
        labels[i] = best
        d2[i] = dist
        wi = w[i]
        mass[best] += wi
        cost[best] += wi * dist
        for f in range(d):
            sums[best, f] += wi * X[i, f]
