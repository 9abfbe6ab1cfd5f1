"""One module per algorithm; importing this package registers them all."""

from onepass.algorithms.kmeans import KMeans, KMeansModel, KMeansState

__all__ = ["KMeans", "KMeansModel", "KMeansState"]
