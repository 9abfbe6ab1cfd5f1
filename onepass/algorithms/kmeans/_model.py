"""The finalized K-Means model."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp

from onepass.algorithms.kmeans._weighted import squared_distances
from onepass.errors import FeatureCountError
from onepass.state import ArraySpec

__all__ = ["KMeansModel"]


class KMeansModel:
    """A finalized K-Means model: centers that assign rows to clusters.

    Attributes
    ----------
    cluster_centers_ : ndarray of shape (n_clusters, n_features), float32
    cluster_weights_ : ndarray of shape (n_clusters,)
        Rows (weighted) of the training stream in each cluster, as estimated at finalize.
    inertia_ : float
        Estimated sum of squared distances of the training rows to their closest center
        (weighted): a total, as :meth:`inertia` and ``onepass tune``'s ``inertia`` are;
        over the total weight (``cluster_weights_.sum()``) it is the ``inertia_per_row``
        ``onepass inspect`` shows.
    """

    kind: ClassVar[str] = "kmeans"

    ARRAY_SPECS: ClassVar[dict[str, ArraySpec]] = {
        "cluster_centers": ArraySpec(("f4",), ("k", "d"), finite=True),
        "cluster_weights": ArraySpec(("f8",), ("k",), finite=True),
    }

    def __init__(self, cluster_centers: np.ndarray, *, cluster_weights: np.ndarray,
                 inertia: float, n_iter: int = 0, n_rows_seen: int = 0) -> None:
        self.cluster_centers_ = np.ascontiguousarray(cluster_centers, dtype=np.float32)
        self.cluster_weights_ = np.asarray(cluster_weights, dtype=np.float64)
        self.inertia_ = float(inertia)
        self.n_iter_ = int(n_iter)
        self.n_rows_seen_ = int(n_rows_seen)

    @property
    def n_clusters(self) -> int:
        return int(self.cluster_centers_.shape[0])

    @property
    def n_features(self) -> int:
        return int(self.cluster_centers_.shape[1])

    def _check(self, X: Any) -> Any:
        if X.shape[1] != self.n_features:
            raise FeatureCountError(
                f"X has {X.shape[1]} features, but this K-Means model expects {self.n_features}"
            )
        return X

    def squared_distances(self, X: Any) -> np.ndarray:
        """Squared distances from each row of ``X`` to each center, (n_rows, n_clusters).

        Computed relative to the mean of the centers, so float32 keeps its precision on
        data far from zero.
        """
        X = self._check(X)
        c = self.cluster_centers_
        origin = c.mean(axis=0)
        cs = c - origin
        if sp.issparse(X):
            xo = np.asarray(X @ origin, dtype=np.float64)
            x_sq = np.asarray(X.multiply(X).sum(axis=1), dtype=np.float64).ravel() - 2 * xo + float(origin @ origin)
            d2 = np.asarray(X @ cs.T, dtype=np.float64)
            d2 -= (cs @ origin)[None, :]
            d2 *= -2
            d2 += x_sq[:, None]
            d2 += np.einsum("ij,ij->i", cs, cs)[None, :]
            return np.maximum(d2, 0, out=d2)
        return squared_distances(np.asarray(X, dtype=np.float32) - origin, cs)

    def assign(self, X: Any) -> tuple[np.ndarray, np.ndarray]:
        """(closest cluster, Euclidean distance to it) for each row of ``X``.

        The distance to the chosen center is recomputed from the difference itself,
        exact to float32 rounding wherever the data lies. A row whose squared distances
        overflow float32 (features near its limit, ``3.4e38,-3.4e38,3.4e38``) is assigned
        again in float64, where they fit; the distances are then float64 when float32
        cannot hold one of them.
        """
        with np.errstate(over="ignore", invalid="ignore"):  # overflowing rows are redone below
            d2 = self.squared_distances(X)
            labels = np.argmin(d2, axis=1)
            if sp.issparse(X):
                distances = np.sqrt(d2[np.arange(d2.shape[0]), labels])
            else:
                diff = np.asarray(X, dtype=np.float32) - self.cluster_centers_[labels]
                distances = np.sqrt(np.einsum("ij,ij->i", diff, diff))
        overflowed = np.flatnonzero(~np.isfinite(distances))
        if len(overflowed):
            labels, distances = self._assign_wide(X, labels, distances, overflowed)
        return labels, distances

    def _assign_wide(self, X: Any, labels: np.ndarray, distances: np.ndarray,
                     rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Closest center and distance of ``rows`` computed in float64, row by row (a
        (clusters, features) difference at a time, however many rows overflowed)."""
        X_rows = X[rows]
        X_rows = np.asarray(X_rows.toarray() if sp.issparse(X_rows) else X_rows, dtype=np.float64)
        centers = np.asarray(self.cluster_centers_, dtype=np.float64)
        labels, wide = labels.copy(), np.empty(len(rows))
        for k, x in enumerate(X_rows):
            diff = centers - x
            d2 = np.einsum("ij,ij->i", diff, diff)
            labels[rows[k]] = int(np.argmin(d2))
            wide[k] = np.sqrt(d2[labels[rows[k]]])
        fits = bool(np.all(np.abs(wide) <= np.finfo(np.float32).max))
        out = distances.astype(distances.dtype if fits else np.float64)
        out[rows] = wide
        return labels, out

    def predict(self, X: Any) -> np.ndarray:
        """Index of the closest center for each row."""
        return self.assign(X)[0]

    def score(self, X: Any, y: Any = None) -> float:
        """Opposite of the inertia of ``X`` (higher is better)."""
        return -self.inertia(X)

    def outputs(self, X: Any) -> dict[str, np.ndarray]:
        """Named output columns for each row, as SageMaker's K-Means names them."""
        labels, distances = self.assign(X)
        return {"closest_cluster": labels, "distance_to_cluster": distances}

    def transform(self, X: Any) -> np.ndarray:
        """Euclidean distance from each row to each center."""
        return np.sqrt(self.squared_distances(X))

    def inertia(self, X: Any, sample_weight: np.ndarray | None = None) -> float:
        """Sum of (weighted) squared distances of the rows of ``X`` to their closest center."""
        d2 = self.squared_distances(X).min(axis=1).astype(np.float64)
        return float(d2.sum() if sample_weight is None else d2 @ sample_weight)

    def to_arrays(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        total = float(self.cluster_weights_.sum())
        # headline numbers for 'onepass inspect', which reads only the manifest (from_arrays
        # ignores them: the arrays are the model)
        meta = {"inertia": self.inertia_, "inertia_per_row": self.inertia_ / total if total > 0 else None,
                "cluster_sizes": [float(w) for w in self.cluster_weights_],
                "n_iter": self.n_iter_, "n_rows_seen": self.n_rows_seen_}
        return meta, {"cluster_centers": self.cluster_centers_, "cluster_weights": self.cluster_weights_}

    @classmethod
    def from_arrays(cls, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> KMeansModel:
        return cls(arrays["cluster_centers"], cluster_weights=arrays["cluster_weights"],
                   inertia=meta["inertia"], n_iter=meta.get("n_iter", 0),
                   n_rows_seen=meta.get("n_rows_seen", 0))
