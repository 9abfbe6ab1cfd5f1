"""The Neural Topic Model answers like SageMaker's: ``{"predictions": [{"topic_weights": [...]}]}``."""

from onepass.serve.adapters import Adapter

ADAPTER = Adapter(kind="ntm", json_key="predictions")
