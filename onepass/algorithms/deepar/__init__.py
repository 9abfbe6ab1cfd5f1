"""DeepAR: probabilistic forecasts for many related time series, on PyTorch.

SageMaker's DeepAR on the torch foundation of ``onepass.neural``: the state
(``_state.py``) draws training windows from series as they stream past and trains one
LSTM (``_network.py``) across them; the model (``_model.py``) forecasts sample paths,
means and quantiles with NumPy alone; ``_features.py`` holds what the network reads
(lags and time features by frequency, scaling), ``_likelihoods.py`` the distributions,
``_metrics.py`` SageMaker's test metrics (RMSE, weighted quantile loss, MASE). Series
are read by the source format ``"series"`` (SageMaker's JSON lines).
"""

from onepass._lazy import lazy_getattr
from onepass.algorithms import _sagemaker_names
from onepass.algorithms.deepar._model import DeepARModel
from onepass.algorithms.deepar._state import DeepARState
from onepass.state import Algorithm, register

__all__ = ["DeepAR", "DeepARModel", "DeepARState"]

__getattr__ = lazy_getattr(__name__, {"DeepAR": "onepass.algorithms.deepar._estimator"})

register(Algorithm(
    "deepar", DeepARState, DeepARModel, "onepass.algorithms.deepar._estimator:DeepAR",
    tags={
        "series": True,  # the suite's row-based checks do not apply: series in, forecasts out
        "source_format": "series",
        "test_params": {"prediction_length": 4, "context_length": 8, "time_freq": "M", "num_cells": 8,
                        "num_layers": 1, "mini_batch_size": 64, "learning_rate": 0.01,
                        "windows_per_prediction_length": 1.0, "embedding_dimension": 10},
        "memory_rows": (10_000, 40_000),  # 1.5 windows a row: a step per ~40 rows
        "memory_batch": 5_000,
        "merge_shards": "iid",  # merge averages networks: shards of one distribution
        # A merge averages two networks each stepped on half the windows: it scores as either
        # half alone, not as one network stepped on all of them (the steps the other half took
        # are not added). Measured on this suite's data (score = -mean_wQuantileLoss; one
        # pass, a half, merged): these params -0.229, -0.261, -0.283; daily, lr 0.01 -0.211,
        # -0.240, -0.251; daily, lr 0.003 -0.245, -0.304, -0.303. Averaging itself lost more
        # with a 1-wide embedding (auto for 2 categories): -0.26 -> -0.37. Distributed training syncs often for that reason
        # (onepass.distributed, strategy "average").
        "merge_rtol": 0.3,
    },
    sagemaker_names=_sagemaker_names.DEEPAR,
))
