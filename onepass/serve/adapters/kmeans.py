"""K-Means answers like SageMaker's: ``{"predictions": [{"closest_cluster": i, "distance_to_cluster": d}]}``.

Distances go out as float32, as SageMaker's are, whether the rows came dense (the model
computes float32) or sparse (float64). A row whose distances overflow float32 (features near
float32's limit, ``3.4e38,-3.4e38,3.4e38``) is assigned again in float64, where its squared
distances fit, and its distance goes out in float64 when float32 cannot hold it.
"""

from typing import Any

import numpy as np
import scipy.sparse as sp

from onepass.serve.adapters import Adapter


def _outputs(model: Any, X: Any) -> dict[str, np.ndarray]:
    labels, distances = model.assign(X)
    distances = np.asarray(distances, dtype=np.float32)
    overflowed = ~np.isfinite(distances)
    if overflowed.any():
        labels, distances = _assign_wide(model, X, labels, distances, np.flatnonzero(overflowed))
    return {"closest_cluster": labels, "distance_to_cluster": distances}


def _assign_wide(model: Any, X: Any, labels: np.ndarray, distances: np.ndarray, rows: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Closest center and distance of ``rows`` computed in float64 (their float32 overflowed)."""
    X_rows = X[rows]
    X_rows = np.asarray(X_rows.toarray() if sp.issparse(X_rows) else X_rows, dtype=np.float64)
    centers = np.asarray(model.cluster_centers_, dtype=np.float64)
    # row by row: a (clusters, features) difference at a time, however many rows overflowed
    wide = np.empty(len(rows))
    labels = labels.copy()
    for k, x in enumerate(X_rows):
        diff = centers - x
        d2 = np.einsum("ij,ij->i", diff, diff)
        labels[rows[k]] = int(np.argmin(d2))
        wide[k] = np.sqrt(d2[labels[rows[k]]])
    if np.all(np.abs(wide) <= np.finfo(np.float32).max):
        distances = distances.copy()
        distances[rows] = wide
        return labels, distances
    out = distances.astype(np.float64)
    out[rows] = wide
    return labels, out


ADAPTER = Adapter(kind="kmeans", json_key="predictions", outputs=_outputs)
