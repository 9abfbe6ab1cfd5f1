"""One package or module per algorithm; importing this package registers them all.

Estimators (which import scikit-learn) load on first use.
"""

from onepass._lazy import lazy_getattr
from onepass.algorithms.deepar import DeepARModel, DeepARState
from onepass.algorithms.fm import FactorizationMachinesModel, FactorizationMachinesState
from onepass.algorithms.kmeans import KMeansModel, KMeansState
from onepass.algorithms.linear import LinearLearnerModel, LinearLearnerState
from onepass.algorithms.ntm import NTMModel, NTMState
from onepass.algorithms.pca import PCAModel, PCAState

__all__ = [
    "DeepAR",
    "DeepARModel",
    "DeepARState",
    "FactorizationMachinesClassifier",
    "FactorizationMachinesModel",
    "FactorizationMachinesRegressor",
    "FactorizationMachinesState",
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
    "PCA",
    "PCAModel",
    "PCAState",
]


__getattr__ = lazy_getattr(__name__, {
    "DeepAR": "onepass.algorithms.deepar._estimator",
    "FactorizationMachinesClassifier": "onepass.algorithms.fm._estimator",
    "FactorizationMachinesRegressor": "onepass.algorithms.fm._estimator",
    "KMeans": "onepass.algorithms.kmeans._estimator",
    "LinearLearnerClassifier": "onepass.algorithms.linear._estimator",
    "LinearLearnerRegressor": "onepass.algorithms.linear._estimator",
    "NTM": "onepass.algorithms.ntm._estimator",
    "PCA": "onepass.algorithms.pca._estimator",
})
