"""Linear Learner: many linear models trained at once in one pass, the best one chosen.

SageMaker's design: normalize on a warm-up sample, train ``num_models`` models with
different learning rates and regularization side by side on the same stream, score them
on validation rows as training goes, stop the ones that no longer improve, and finalize
the best (binary thresholds tuned on validation). Here the models share one weight
tensor, so a mini-batch is one matrix product for all of them.

The state (``_state.py``), the model (``_model.py``) and the scikit-learn estimators
(``_estimator.py``, imported only when used) live in this package.
"""

from onepass._lazy import lazy_getattr
from onepass.algorithms import _sagemaker_names
from onepass.algorithms.linear._model import LinearLearnerModel
from onepass.algorithms.linear._state import LinearLearnerState
from onepass.state import Algorithm, register

__all__ = ["LinearLearnerClassifier", "LinearLearnerModel", "LinearLearnerRegressor", "LinearLearnerState"]


__getattr__ = lazy_getattr(__name__, {name: "onepass.algorithms.linear._estimator" for name in ("LinearLearnerClassifier", "LinearLearnerRegressor")})


_ONE_PASS_WEIGHTS = (
    "mini-batch optimization in one pass: a repeated row is a second step, not a doubled gradient "
    "in one step, so weights and repeats give different (equally valid) models, as for SGDClassifier; "
    "that weights are honored is tested in tests/algorithms/test_linear.py"
)

register(Algorithm(
    "linear-learner", LinearLearnerState, LinearLearnerModel,
    "onepass.algorithms.linear._estimator:LinearLearnerClassifier",
    finalize_settings=("rank", "model_index"),
    tags={
        "labels": "binary",
        "test_params": {"num_models": 4, "num_point_for_scaler": 500, "mini_batch_size": 250, "learning_rate": 0.1,
                        "max_validation_rows": 500, "validation_every_rows": 1000},
        "merge_rtol": 0.02,
        "merge_shards": "iid",  # merge averages models: shards of one distribution
        "variants": ({"name": "sparse", "sparse_input": True},),  # the lazy sparse steps, same checks
        "more_estimators": ("onepass.algorithms.linear._estimator:LinearLearnerRegressor",),
        "sklearn_expected_failures": {
            "check_sample_weight_equivalence_on_dense_data": _ONE_PASS_WEIGHTS,
            "check_sample_weight_equivalence_on_sparse_data": _ONE_PASS_WEIGHTS,
        },
    },
    sagemaker_names=_sagemaker_names.LINEAR_LEARNER,
))
