"""K-Means answers like SageMaker's: ``{"predictions": [{"closest_cluster": i, "distance_to_cluster": d}]}``.

Distances go out as float32, as SageMaker's are, whether the rows came dense (the model
computes float32) or sparse (float64).
"""

from typing import Any

import numpy as np

from onepass.serve.adapters import Adapter


def _outputs(model: Any, X: Any) -> dict[str, np.ndarray]:
    labels, distances = model.assign(X)
    return {"closest_cluster": labels, "distance_to_cluster": np.asarray(distances, dtype=np.float32)}


ADAPTER = Adapter(kind="kmeans", json_key="predictions", outputs=_outputs)
