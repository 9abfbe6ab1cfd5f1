"""One package or module per algorithm; importing this package registers them all.

Estimators (which import scikit-learn) load on first use.
"""

from typing import Any

from onepass.algorithms.kmeans import KMeansModel, KMeansState
from onepass.algorithms.linear import LinearLearnerModel, LinearLearnerState
from onepass.algorithms.pca import PCAModel, PCAState

__all__ = [
    "KMeans",
    "KMeansModel",
    "KMeansState",
    "LinearLearnerClassifier",
    "LinearLearnerModel",
    "LinearLearnerRegressor",
    "LinearLearnerState",
    "PCA",
    "PCAModel",
    "PCAState",
]


def __getattr__(name: str) -> Any:
    if name == "KMeans":
        from onepass.algorithms.kmeans import KMeans

        return KMeans
    if name in ("LinearLearnerClassifier", "LinearLearnerRegressor"):
        from onepass.algorithms.linear import _estimator

        return getattr(_estimator, name)
    if name == "PCA":
        from onepass.algorithms.pca import PCA

        return PCA
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
