"""Neural Topic Model: topics from a stream of documents, on PyTorch.

SageMaker's Neural Topic Model (a variational autoencoder of word counts, NVDM), on the
torch foundation of ``onepass.neural``: the state (``_state.py``) trains the network
(``_network.py``, imported with torch only when a state builds it), the model
(``_model.py``) predicts topic weights with NumPy alone, ``_quality.py`` measures topics
(NPMI coherence, uniqueness, recovery of known topics), and the scikit-learn estimator
(``_estimator.py``) is imported only when used.
"""

from onepass._lazy import lazy_getattr
from onepass.algorithms import _sagemaker_names
from onepass.algorithms.ntm._model import NTMModel
from onepass.algorithms.ntm._state import NTMState
from onepass.state import Algorithm, register

__all__ = ["NTM", "NTMModel", "NTMState"]

__getattr__ = lazy_getattr(__name__, {"NTM": "onepass.algorithms.ntm._estimator"})

_ONE_PASS_WEIGHTS = (
    "steps over mini-batches with noise drawn per document: a repeated document is one more row in a step and one "
    "more draw, a weight scales one document's loss, so weights and repeats give different (equally valid) networks; "
    "that weights are honored is tested in tests/algorithms/test_ntm.py"
)

register(Algorithm(
    "ntm", NTMState, NTMModel, "onepass.algorithms.ntm._estimator:NTM",
    finalize_settings=("top_words",),
    tags={
        "test_params": {"num_topics": 3, "mini_batch_size": 64, "optimizer": "adam", "learning_rate": 0.01,
                        "max_validation_rows": 50},
        "documents": True,  # the suite feeds word counts (non-negative), not real-valued blobs
        "memory_rows": (50_000, 150_000),  # a network steps at ~100k documents/s here: 10M would take minutes
        "merge_shards": "iid",  # merge averages networks: shards of one distribution
        "merge_rtol": 0.05,
        "variants": ({"name": "sparse", "sparse_input": True},),
        "sklearn_expected_failures": {
            "check_sample_weight_equivalence_on_dense_data": _ONE_PASS_WEIGHTS,
            "check_sample_weight_equivalence_on_sparse_data": _ONE_PASS_WEIGHTS,
        },
    },
    sagemaker_names=_sagemaker_names.NTM,
))
