"""onepass: machine learning on data that never stops arriving.

Every algorithm reads its data once, in mini-batches, with memory fixed by its
hyperparameters; its *state* can be checkpointed, resumed, merged and finalized into
many models.
"""

from onepass._lazy import lazy_getattr
from onepass._version import __version__
from onepass.algorithms import (
    DeepARModel,
    DeepARState,
    FactorizationMachinesModel,
    FactorizationMachinesState,
    KMeansModel,
    KMeansState,
    LinearLearnerModel,
    LinearLearnerState,
    NTMModel,
    NTMState,
    PCAModel,
    PCAState,
)
from onepass.algorithms._sagemaker_names import translate_hyperparameters
from onepass.batch import Batch
from onepass.errors import (
    BadRecordError,
    DataError,
    InvalidParameterError,
    OnePassError,
)
from onepass.io import load, load_checkpoint, save_checkpoint, save_model
from onepass.sources import open_source
from onepass.text import build_vocabulary
from onepass.training import train
from onepass.tune import tune

_LAZY = {  # estimators import scikit-learn
    "DeepAR": "onepass.algorithms.deepar._estimator",
    "FactorizationMachinesClassifier": "onepass.algorithms.fm._estimator",
    "FactorizationMachinesRegressor": "onepass.algorithms.fm._estimator",
    "KMeans": "onepass.algorithms.kmeans._estimator",
    "LinearLearnerClassifier": "onepass.algorithms.linear._estimator",
    "LinearLearnerRegressor": "onepass.algorithms.linear._estimator",
    "NTM": "onepass.algorithms.ntm._estimator",
    "PCA": "onepass.algorithms.pca._estimator",
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
