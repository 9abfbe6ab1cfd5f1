"""Factorization Machines answer like SageMaker's: ``{"predictions": [...]}`` with, per row,
binary ``{"score": p, "predicted_label": 0|1}`` and regression ``{"score": v}`` (the
model's own ``outputs()``)."""

from onepass.serve.adapters import Adapter

ADAPTER = Adapter(kind="factorization-machines", json_key="predictions")
