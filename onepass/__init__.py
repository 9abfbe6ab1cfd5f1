"""onepass: machine learning on data that never stops arriving.

Every algorithm reads its data once, in mini-batches, with memory fixed by its
hyperparameters; its *state* can be checkpointed, resumed, merged and finalized into
many models.
"""

from onepass.algorithms import KMeans, KMeansModel, KMeansState
from onepass.batch import Batch
from onepass.errors import (
    BadRecordError,
    DataError,
    InvalidParameterError,
    OnePassError,
)
from onepass.io import load, load_checkpoint, save_checkpoint, save_model

__version__ = "0.1.0"

__all__ = [
    "BadRecordError",
    "Batch",
    "DataError",
    "InvalidParameterError",
    "KMeans",
    "KMeansModel",
    "KMeansState",
    "OnePassError",
    "__version__",
    "load",
    "load_checkpoint",
    "save_checkpoint",
    "save_model",
]
