"""onepass: machine learning on data that never stops arriving.

Every algorithm reads its data once, in mini-batches, with memory fixed by its
hyperparameters; its *state* can be checkpointed, resumed, merged and finalized into
many models.
"""

from onepass._lazy import lazy_getattr
from onepass._version import __version__
from onepass.errors import (
    BadRecordError,
    DataError,
    InvalidParameterError,
    OnePassError,
)
from onepass.tune import tune  # light; a name the onepass.tune package would otherwise shadow

# Every other name is imported on first use: ``import onepass`` (and the CLI's start)
# pays for NumPy, SciPy, pyarrow, scikit-learn or PyTorch only when a name needs them.
_ALGORITHM_CLASSES = (
    "DeepAR", "DeepARModel", "DeepARState", "FactorizationMachinesClassifier", "FactorizationMachinesModel",
    "FactorizationMachinesRegressor", "FactorizationMachinesState", "KMeans", "KMeansModel", "KMeansState",
    "LinearLearnerClassifier", "LinearLearnerModel", "LinearLearnerRegressor", "LinearLearnerState", "NTM",
    "NTMModel", "NTMState", "PCA", "PCAModel", "PCAState",
)
_LAZY = {
    **dict.fromkeys(_ALGORITHM_CLASSES, "onepass.algorithms"),
    "Batch": "onepass.batch",
    "build_vocabulary": "onepass.text",
    "load": "onepass.io",
    "load_checkpoint": "onepass.io",
    "open_source": "onepass.sources",
    "save_checkpoint": "onepass.io",
    "save_model": "onepass.io",
    "train": "onepass.training",
    "translate_hyperparameters": "onepass.algorithms._sagemaker_names",
}


__getattr__ = lazy_getattr("onepass", _LAZY)


__all__ = [
    "BadRecordError",
    "Batch",
    "DataError",
    "DeepAR",
    "DeepARModel",
    "DeepARState",
    "FactorizationMachinesClassifier",
    "FactorizationMachinesModel",
    "FactorizationMachinesRegressor",
    "FactorizationMachinesState",
    "InvalidParameterError",
    "KMeans",
    "KMeansModel",
    "KMeansState",
    "LinearLearnerClassifier",
    "LinearLearnerModel",
    "LinearLearnerRegressor",
    "LinearLearnerState",
    "NTM",
    "NTMModel",
    "NTMState",
    "OnePassError",
    "PCA",
    "PCAModel",
    "PCAState",
    "__version__",
    "build_vocabulary",
    "load",
    "load_checkpoint",
    "open_source",
    "save_checkpoint",
    "save_model",
    "train",
    "translate_hyperparameters",
    "tune",
]
