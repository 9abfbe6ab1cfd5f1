"""Linear Learner answers like SageMaker's: ``{"predictions": [...]}`` with, per row,
binary ``{"score": p, "predicted_label": 0|1}``, multiclass ``{"score": [...],
"predicted_label": c}``, regression ``{"score": v}`` (the model's own ``outputs()``)."""

from onepass.serve.adapters import Adapter

ADAPTER = Adapter(kind="linear-learner", json_key="predictions")
