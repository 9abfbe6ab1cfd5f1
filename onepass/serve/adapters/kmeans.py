"""K-Means answers like SageMaker's: ``{"predictions": [{"closest_cluster": i, "distance_to_cluster": d}]}``.

Distances go out as float32, as SageMaker's are, whether the rows came dense (the model
computes float32) or sparse (float64); the model assigns a row whose float32 distances
overflow again in float64 (:meth:`KMeansModel.assign`), and its distance goes out in float64
when float32 cannot hold it.
"""

from typing import Any

import numpy as np

from onepass.serve.adapters import Adapter


def _outputs(model: Any, X: Any) -> dict[str, np.ndarray]:
    labels, distances = model.assign(X)  # float64 for rows whose float32 distances overflowed
    if distances.dtype != np.float32 and np.all(np.abs(distances) <= np.finfo(np.float32).max):
        distances = distances.astype(np.float32)
    return {"closest_cluster": labels, "distance_to_cluster": distances}


ADAPTER = Adapter(kind="kmeans", json_key="predictions", outputs=_outputs)
