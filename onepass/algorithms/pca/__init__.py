"""Streaming PCA: SageMaker's two modes, one pass, fixed memory.

``mode="exact"`` keeps the mean and the full scatter matrix in float64, combined batch
by batch with Chan et al.'s pairwise update, and finalizes with an eigendecomposition
(SageMaker's "regular"). ``mode="sketch"`` keeps a Frequent Directions sketch of
``n_components + extra_components`` rows (SageMaker's "randomized"), for wide data;
sparse rows are buffered and compressed by a randomized range finder (Sparse Frequent
Directions), never densified.

The state (``_state.py``), the model (``_model.py``) and the scikit-learn estimator
(``_estimator.py``, imported only when used) live in this package.
"""

from onepass._lazy import lazy_getattr
from onepass.algorithms import _sagemaker_names
from onepass.algorithms.pca._model import PCAModel
from onepass.algorithms.pca._state import PCAState
from onepass.state import Algorithm, register

__all__ = ["PCA", "PCAModel", "PCAState"]


__getattr__ = lazy_getattr(__name__, {"PCA": "onepass.algorithms.pca._estimator"})


register(Algorithm(
    "pca", PCAState, PCAModel, "onepass.algorithms.pca._estimator:PCA",
    finalize_settings=("n_components", "explained_variance"),
    tags={
        "test_params": {"n_components": 3},
        "merge_rtol": 1e-6,
        # The same checks on sparse input, and on a sketch smaller than the checks' 6
        # features (4 rows) fed dense and sparse (buffered, randomized compression).
        "variants": [
            {"name": "exact-sparse", "sparse_input": True},
            {"name": "sketch", "test_params": {"n_components": 3, "mode": "sketch", "extra_components": 1},
             "merge_rtol": 1e-3},
            {"name": "sketch-sparse", "test_params": {"n_components": 3, "mode": "sketch", "extra_components": 1},
             "merge_rtol": 1e-3, "sparse_input": True},
        ],
    },
    sagemaker_names=_sagemaker_names.PCA,
))
