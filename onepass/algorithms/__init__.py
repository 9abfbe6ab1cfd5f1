"""One package or module per algorithm; importing this package registers them all.

Estimators (which import scikit-learn) load on first use.
"""

from typing import Any

from onepass.algorithms.kmeans import KMeansModel, KMeansState

__all__ = ["KMeans", "KMeansModel", "KMeansState"]


def __getattr__(name: str) -> Any:
    if name == "KMeans":
        from onepass.algorithms.kmeans import KMeans

        return KMeans
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
