"""The finalized PCA model."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp

from onepass.errors import FeatureCountError
from onepass.state import ArraySpec

__all__ = ["PCAModel"]


class PCAModel:
    """A finalized PCA model: principal axes that project rows to components.

    Attributes
    ----------
    components_ : ndarray of shape (n_components, n_features), float64
        Principal axes, by decreasing explained variance (unit rows).
    explained_variance_ : ndarray of shape (n_components,)
        Variance along each axis: the scatter divided by ``n - 1``, as scikit-learn's PCA
        does (the uncentered second moment divided by ``n`` with subtract_mean=False).
    explained_variance_ratio_ : ndarray of shape (n_components,)
        Share of the total variance along each axis.
    singular_values_ : ndarray of shape (n_components,)
        Singular values of the centered data (square roots of the scatter's eigenvalues).
    mean_ : ndarray of shape (n_features,)
        The mean subtracted before projecting (zeros when trained with subtract_mean=False).
    n_rows_seen_ : int
    """

    kind: ClassVar[str] = "pca"
    ARRAY_SPECS: ClassVar[dict[str, ArraySpec]] = {
        "components": ArraySpec(("f8",), ("k", "d"), finite=True),
        "explained_variance": ArraySpec(("f8",), ("k",), finite=True),
        "explained_variance_ratio": ArraySpec(("f8",), ("k",)),  # NaN for data of no variance
        "singular_values": ArraySpec(("f8",), ("k",), finite=True),
        "mean": ArraySpec(("f8",), ("d",), finite=True),
    }

    def __init__(self, components: np.ndarray, *, explained_variance: np.ndarray,
                 explained_variance_ratio: np.ndarray, singular_values: np.ndarray,
                 mean: np.ndarray, n_rows_seen: int = 0) -> None:
        self.components_ = np.ascontiguousarray(components, dtype=np.float64)
        self.explained_variance_ = np.asarray(explained_variance, dtype=np.float64)
        self.explained_variance_ratio_ = np.asarray(explained_variance_ratio, dtype=np.float64)
        self.singular_values_ = np.asarray(singular_values, dtype=np.float64)
        self.mean_ = np.asarray(mean, dtype=np.float64)
        self.n_rows_seen_ = int(n_rows_seen)

    @property
    def n_components(self) -> int:
        return int(self.components_.shape[0])

    @property
    def n_features(self) -> int:
        return int(self.components_.shape[1])

    def transform(self, X: Any) -> np.ndarray:
        """Project the rows of ``X`` on the components: ``(X - mean) @ components.T``."""
        if X.shape[1] != self.n_features:
            raise FeatureCountError(f"X has {X.shape[1]} features, but this PCA model expects {self.n_features}")
        if sp.issparse(X):
            return np.asarray(X @ self.components_.T, dtype=np.float64) - self.components_ @ self.mean_
        return (np.asarray(X, dtype=np.float64) - self.mean_) @ self.components_.T

    def inverse_transform(self, Z: Any) -> np.ndarray:
        """Rows in feature space from their projections: ``Z @ components + mean``."""
        Z = np.asarray(Z, dtype=np.float64)
        if Z.ndim != 2 or Z.shape[1] != self.n_components:
            raise FeatureCountError(
                f"Z has shape {Z.shape}, but this PCA model has {self.n_components} components"
            )
        return Z @ self.components_ + self.mean_

    def predict(self, X: Any) -> np.ndarray:
        """The projection of each row (the same as :meth:`transform`)."""
        return self.transform(X)

    def outputs(self, X: Any) -> dict[str, np.ndarray]:
        """Named output columns, as SageMaker's PCA names them: ``projection``."""
        return {"projection": self.transform(X)}

    def reconstruction_errors(self, X: Any) -> np.ndarray:
        """Squared distance of each row to its reconstruction from the components."""
        Z = self.transform(X)
        if sp.issparse(X):
            X = X.toarray()
        diff = np.asarray(X, dtype=np.float64) - self.inverse_transform(Z)
        return np.einsum("ij,ij->i", diff, diff)

    def score(self, X: Any, y: Any = None) -> float:
        """Negative mean squared reconstruction error of the rows of ``X`` (higher is better)."""
        return -float(self.reconstruction_errors(X).mean())

    def to_arrays(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        # the headline numbers for 'onepass inspect', which reads only the manifest
        ratios = [float(r) if np.isfinite(r) else None for r in self.explained_variance_ratio_]
        return {"n_rows_seen": self.n_rows_seen_, "explained_variance_ratio": ratios}, {
            "components": self.components_,
            "explained_variance": self.explained_variance_,
            "explained_variance_ratio": self.explained_variance_ratio_,
            "singular_values": self.singular_values_,
            "mean": self.mean_,
        }

    @classmethod
    def from_arrays(cls, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> PCAModel:
        return cls(arrays["components"], explained_variance=arrays["explained_variance"],
                   explained_variance_ratio=arrays["explained_variance_ratio"],
                   singular_values=arrays["singular_values"], mean=arrays["mean"],
                   n_rows_seen=meta.get("n_rows_seen", 0))
