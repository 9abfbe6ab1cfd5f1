"""Factorization Machines: linear models plus every pair of features, in one pass.

SageMaker's Factorization Machines (Rendle 2010) for sparse data where pairs of features
matter (user x item, ad x site), learned row by row by a compiled loop that touches only
the features present, ``num_models`` models at once with Linear Learner's model
selection (``onepass.algorithms._selection``). The state (``_state.py``), the model
(``_model.py``), the compiled training (``_training.py``) and the scikit-learn
estimators (``_estimator.py``, imported only when used) live in this package.
"""

from onepass._lazy import lazy_getattr
from onepass.algorithms import _sagemaker_names
from onepass.algorithms.fm._model import FactorizationMachinesModel
from onepass.algorithms.fm._state import FactorizationMachinesState
from onepass.state import Algorithm, register

__all__ = ["FactorizationMachinesClassifier", "FactorizationMachinesModel", "FactorizationMachinesRegressor",
           "FactorizationMachinesState"]

_ESTIMATORS = ("FactorizationMachinesClassifier", "FactorizationMachinesRegressor")
__getattr__ = lazy_getattr(__name__, {name: "onepass.algorithms.fm._estimator" for name in _ESTIMATORS})

_ONE_PASS_WEIGHTS = (
    "learning row by row in one pass: a repeated row is a second step, not a doubled gradient in one step, so "
    "weights and repeats give different (equally valid) models, as for SGDClassifier; that weights are honored "
    "is tested in tests/algorithms/test_fm.py"
)

register(Algorithm(
    "factorization-machines", FactorizationMachinesState, FactorizationMachinesModel,
    "onepass.algorithms.fm._estimator:FactorizationMachinesClassifier",
    finalize_settings=("rank", "model_index", "binary_classifier_model_selection_criteria"),
    tags={
        "labels": "binary",
        # the suite's rows are dense blobs of large values (|x| up to ~30, their products
        # ~900), which steps and factor starts made for one-hot rows throw about: small
        # steps, and factors started at SageMaker's 0.001 so that both halves of a merge
        # grow them along the data's own directions (with the defaults, merged accuracy
        # 0.84-0.94 against 1.00); the merge's limits are in merge's docstring
        "test_params": {"num_models": 3, "num_factors": 4, "max_validation_rows": 500,
                        "validation_every_rows": 1000, "factors_init_sigma": 0.001, "linear_lr": 0.02,
                        "factors_lr": 0.02},
        "merge_rtol": 0.03,
        "merge_shards": "iid",  # merge averages models: shards of one distribution
        "variants": ({"name": "sparse", "sparse_input": True},
                     {"name": "minibatch", "test_params": {"num_models": 2, "num_factors": 4, "mini_batch_size": 20,
                                                           "max_validation_rows": 500, "validation_every_rows": 1000,
                                                           "factors_init_sigma": 0.001, "linear_lr": 0.02,
                                                           "factors_lr": 0.02}}),
        "more_estimators": ("onepass.algorithms.fm._estimator:FactorizationMachinesRegressor",),
        "sklearn_expected_failures": {
            "check_sample_weight_equivalence_on_dense_data": _ONE_PASS_WEIGHTS,
            "check_sample_weight_equivalence_on_sparse_data": _ONE_PASS_WEIGHTS,
        },
    },
    sagemaker_names=_sagemaker_names.FACTORIZATION_MACHINES,
))
