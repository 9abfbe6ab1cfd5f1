"""DeepAR with a scikit-learn-like API: ``fit``/``partial_fit`` on series, ``predict`` and
``forecast`` after."""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator

from onepass.algorithms._hyper import require
from onepass.algorithms.deepar._model import DeepARModel
from onepass.algorithms.deepar._state import DeepARState
from onepass.batch import Batch

__all__ = ["DeepAR"]

_STATE_PARAMS = [n for n in inspect.signature(DeepARState.__init__).parameters if n not in ("self", "seed")]


def _rows(X: Any) -> Any:
    """Series as :class:`~onepass.sources._series.SeriesRows`: a list of SageMaker's
    records (``{"start", "target", "cat", "dynamic_feat", "id"}``), or rows already read."""
    from onepass.sources._series import SeriesRows

    return X if isinstance(X, SeriesRows) else SeriesRows.of(list(X), where="series")


class DeepAR(BaseEstimator):
    """DeepAR forecasts, trained on series as they come (``partial_fit``) or on a list.

    Parameters
    ----------
    prediction_length, context_length, time_freq, num_cells, num_layers, dropout_rate, likelihood, cardinality, embedding_dimension, num_dynamic_feat, mini_batch_size, learning_rate, optimizer, clip_gradient, weight_decay, windows_per_prediction_length, max_series, early_stopping_patience, num_eval_samples, test_quantiles, max_validation_series, device
        As :class:`onepass.DeepARState` (SageMaker's names).
    epochs : int, default=1
        Passes of ``fit`` over its series.
    batch_size : int, default=256
        Series handed to the state at a time.
    random_state : int or None, default=None

    Attributes
    ----------
    state_ : DeepARState
        The training state: checkpoint it, merge it, finalize it.
    model_ : DeepARModel
    n_rows_seen_ : int

    Examples
    --------
    >>> import numpy as np
    >>> from onepass.algorithms.deepar._estimator import DeepAR
    >>> t = np.arange(200)
    >>> series = [{"start": "2026-01-01 00:00:00", "target": list(10 + np.sin(t / 4 + i)), "cat": [i % 2]}
    ...           for i in range(20)]
    >>> est = DeepAR(prediction_length=6, context_length=12, time_freq="H", num_cells=8, num_layers=1,
    ...              random_state=0).fit(series)
    >>> est.predict(series[:3]).shape
    (3, 6)
    >>> sorted(est.forecast(series[:1], quantiles=[0.1, 0.9])[0]["quantiles"])
    ['0.1', '0.9']
    """

    def __init__(self, prediction_length: int = 24, *, context_length: int | None = None, time_freq: str = "H",
                 num_cells: int = 40, num_layers: int = 2, dropout_rate: float = 0.1, likelihood: str = "student-T",
                 cardinality: Any = "auto", embedding_dimension: Any = "auto", num_dynamic_feat: Any = "auto",
                 mini_batch_size: int = 32, learning_rate: float = 0.003, optimizer: str = "adam",
                 clip_gradient: float = 10.0, weight_decay: float = 1e-8, windows_per_prediction_length: float = 4.0,
                 max_series: int = 100_000, early_stopping_patience: int | None = None, num_eval_samples: int = 100,
                 test_quantiles: Any = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9),
                 max_validation_series: int = 500, device: str = "auto", epochs: int = 1, batch_size: int = 256,
                 random_state: Any = None) -> None:
        self.prediction_length = prediction_length
        self.context_length = context_length
        self.time_freq = time_freq
        self.num_cells = num_cells
        self.num_layers = num_layers
        self.dropout_rate = dropout_rate
        self.likelihood = likelihood
        self.cardinality = cardinality
        self.embedding_dimension = embedding_dimension
        self.num_dynamic_feat = num_dynamic_feat
        self.mini_batch_size = mini_batch_size
        self.learning_rate = learning_rate
        self.optimizer = optimizer
        self.clip_gradient = clip_gradient
        self.weight_decay = weight_decay
        self.windows_per_prediction_length = windows_per_prediction_length
        self.max_series = max_series
        self.early_stopping_patience = early_stopping_patience
        self.num_eval_samples = num_eval_samples
        self.test_quantiles = test_quantiles
        self.max_validation_series = max_validation_series
        self.device = device
        self.epochs = epochs
        self.batch_size = batch_size
        self.random_state = random_state

    def _new_state(self) -> DeepARState:
        require("int>=1", batch_size=self.batch_size, epochs=self.epochs)
        rs = self.random_state
        seed = int(rs) if isinstance(rs, (int, np.integer)) and not isinstance(rs, bool) else None
        return DeepARState(**{n: getattr(self, n) for n in _STATE_PARAMS}, seed=seed)

    def partial_fit(self, X: Any, y: Any = None) -> DeepAR:
        """Learn from more series (or new stretches of known ones, by ``id``)."""
        if not hasattr(self, "state_"):
            self.state_ = self._new_state()
        rows = _rows(X)
        for start in range(0, len(rows), self.batch_size):
            self.state_.update(Batch(rows[start:start + self.batch_size]))
        self.model_: DeepARModel = self.state_.model()
        self.n_rows_seen_ = self.state_.n_rows_seen_
        return self

    def fit(self, X: Any, y: Any = None) -> DeepAR:
        """Learn from series, ``epochs`` passes (early stopping may end them sooner)."""
        self.state_ = self._new_state()
        rows = _rows(X)
        for _ in range(self.epochs):
            for start in range(0, len(rows), self.batch_size):
                self.state_.update(Batch(rows[start:start + self.batch_size]))
            self.state_.end_epoch()
            if self.state_.is_stopped:
                break
        self.model_ = self.state_.model()
        self.n_rows_seen_ = self.state_.n_rows_seen_
        return self

    def predict(self, X: Any) -> np.ndarray:
        """The mean forecast of each series, (series, prediction_length)."""
        return self.model_.predict(_rows(X))

    def forecast(self, X: Any, **options: Any) -> list[dict[str, Any]]:
        """SageMaker DeepAR's predictions (``mean``, ``quantiles``, ``samples``); see
        :meth:`onepass.DeepARModel.forecast`."""
        return self.model_.forecast(_rows(X), **options)

    def score(self, X: Any, y: Any = None) -> float:
        """Minus the mean weighted quantile loss on each series' last ``prediction_length`` points."""
        return self.model_.score(_rows(X))
