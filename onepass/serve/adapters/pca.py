"""PCA answers like SageMaker's: ``{"projections": [{"projection": [...]}]}``."""

from onepass.serve.adapters import Adapter

ADAPTER = Adapter(kind="pca", json_key="projections")
