"""K-Means answers like SageMaker's: ``{"predictions": [{"closest_cluster": i, "distance_to_cluster": d}]}``."""

from onepass.serve.adapters import Adapter

ADAPTER = Adapter(kind="kmeans", json_key="predictions")
