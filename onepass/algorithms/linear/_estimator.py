"""The scikit-learn estimators of Linear Learner: a classifier and a regressor."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin

from onepass.algorithms._estimator_tools import StreamingClassifier, StreamingRegressor, StreamingSupervised
from onepass.algorithms.linear._state import LinearLearnerState
from onepass.errors import InvalidParameterError

__all__ = ["LinearLearnerClassifier", "LinearLearnerRegressor"]

# Parameters passed to the state verbatim (the rest belong to the estimator).
_STATE_PARAMS = (
    "loss", "num_models", "optimizer", "learning_rate", "l1", "wd", "learning_rate_range", "l1_range",
    "wd_range", "num_point_for_scaler", "validation_fraction", "early_stopping_patience",
)


class _LinearLearnerBase(StreamingSupervised, BaseEstimator):
    """What the classifier and the regressor share: the state, epochs, mini-batches."""

    def _mini_batch(self, n_rows: int) -> int:
        if self.mini_batch_size == "auto":
            # small data gets small steps, so a few epochs over it still make progress
            return int(min(1000, max(16, n_rows // 50)))
        if isinstance(self.mini_batch_size, bool) or not isinstance(self.mini_batch_size, (int, np.integer)) \
                or self.mini_batch_size < 1:
            raise InvalidParameterError(f"mini_batch_size={self.mini_batch_size!r} must be 'auto' or an integer >= 1")
        return int(self.mini_batch_size)

    def _new_state(self, n_rows: int, **more: Any) -> LinearLearnerState:
        params = {name: getattr(self, name) for name in _STATE_PARAMS}
        params["num_point_for_scaler"] = int(max(1, min(self.num_point_for_scaler, n_rows)))
        return LinearLearnerState(**params, **more, mini_batch_size=self._mini_batch(n_rows),
                                  max_validation_rows=10000, seed=self._seed())

    @property
    def coef_(self) -> np.ndarray:
        coef = self.model_.coef_
        return coef[:, 0] if coef.shape[1] == 1 else coef.T

    @property
    def intercept_(self) -> np.ndarray:
        return self.model_.intercept_


class LinearLearnerClassifier(ClassifierMixin, StreamingClassifier, _LinearLearnerBase):
    """Linear Learner for classification: many models in one pass, the best one kept.

    Two classes train a binary classifier (logistic or hinge loss), more a multiclass
    one (softmax). Labels may be anything scikit-learn accepts; they are mapped to
    ``classes_`` in sorted order.

    Parameters
    ----------
    num_models : int, default=32
        Models trained side by side, each with its own learning rate, l1 and wd.
    loss : str, default="auto"
        logistic or hinge_loss for two classes (auto: logistic); softmax for more.
    optimizer : str, default="adam"
        adam, or sgd (with momentum).
    learning_rate : float or "auto", default="auto"
        Step size of model 0 (the others draw theirs from ``learning_rate_range``).
    l1 : float, default=0.0
        L1 strength of model 0 (proximal: exact zeros).
    wd : float, default=0.0
        L2 strength of model 0.
    learning_rate_range, l1_range, wd_range : str or tuple, default="auto"
        Ranges the other models' values are drawn from, log-uniformly.
    epochs : int, default=10
        Passes ``fit`` makes over its data (SageMaker's default is 15); ``partial_fit``
        makes one pass over its chunk.
    batch_size : int, default=8192
        Rows handed to the state at a time.
    mini_batch_size : int or "auto", default="auto"
        Rows per optimizer step (auto: n_rows / 50 of the first data seen, between 16 and 1000).
    num_point_for_scaler : int, default=10000
        Warm-up rows for the feature normalization.
    validation_fraction : float, default=0.0
        Share of the rows held out to rank models (0: progressive validation).
    early_stopping_patience : int, default=5
        Scorings without improvement before a model stops (0: never).
    binary_classifier_model_selection_criteria : str, default="accuracy"
        How the binary model (and its threshold) is chosen; see ``LinearLearnerState``.
    positive_example_weight_mult : float or "balanced", default=1.0
        Weight of the positive class (binary).
    random_state : int, RandomState or None, default=None
        Seeds the state.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
    coef_ : ndarray of shape (n_features,) or (n_classes, n_features)
        The chosen model's weights, in the original feature space.
    intercept_ : ndarray of shape (1,) or (n_classes,)
    leaderboard_ : list of dict
        Every model, best first.
    model_ : LinearLearnerModel
        The chosen model, finalized after each ``fit``/``partial_fit``.
    n_features_in_ : int
    state_ : LinearLearnerState
        The training state: checkpoint it, merge it, finalize another model from it.

    Notes
    -----
    Memory is ``O(num_models * n_classes * n_features)`` whatever the number of rows; a
    step costs two matrix products for all models (``O(nnz * num_models)`` for sparse
    rows). See :class:`onepass.LinearLearnerState`.

    Examples
    --------
    >>> import numpy as np
    >>> from onepass import LinearLearnerClassifier
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(4000, 3)).astype(np.float32)
    >>> y = (X[:, 0] - X[:, 1] > 0).astype(int)
    >>> clf = LinearLearnerClassifier(num_models=8, random_state=0)
    >>> clf = clf.partial_fit(X[:2000], y[:2000], classes=[0, 1]).partial_fit(X[2000:], y[2000:])
    >>> clf.score(X, y) > 0.95
    True
    >>> clf.predict([[2.0, -2.0, 0.0]])
    array([1])
    """

    def __init__(self, *, num_models: int = 32, loss: str = "auto", optimizer: str = "adam",
                 learning_rate: float | str = "auto", l1: float = 0.0, wd: float = 0.0,
                 learning_rate_range: Any = "auto", l1_range: Any = "auto", wd_range: Any = "auto",
                 epochs: int = 10, batch_size: int = 8192, mini_batch_size: int | str = "auto",
                 num_point_for_scaler: int = 10000, validation_fraction: float = 0.0,
                 early_stopping_patience: int = 5, binary_classifier_model_selection_criteria: str = "accuracy",
                 positive_example_weight_mult: float | str = 1.0, random_state: Any = None) -> None:
        self.num_models = num_models
        self.loss = loss
        self.optimizer = optimizer
        self.learning_rate = learning_rate
        self.l1 = l1
        self.wd = wd
        self.learning_rate_range = learning_rate_range
        self.l1_range = l1_range
        self.wd_range = wd_range
        self.epochs = epochs
        self.batch_size = batch_size
        self.mini_batch_size = mini_batch_size
        self.num_point_for_scaler = num_point_for_scaler
        self.validation_fraction = validation_fraction
        self.early_stopping_patience = early_stopping_patience
        self.binary_classifier_model_selection_criteria = binary_classifier_model_selection_criteria
        self.positive_example_weight_mult = positive_example_weight_mult
        self.random_state = random_state

    def _start(self, X: Any, classes: np.ndarray) -> None:
        if classes.shape[0] < 2:
            raise ValueError(f"LinearLearnerClassifier needs at least 2 classes in y; got 1 class ({classes[0]!r})")
        self.classes_ = classes
        if classes.shape[0] == 2:
            more = {"predictor_type": "binary_classifier",
                    "binary_classifier_model_selection_criteria": self.binary_classifier_model_selection_criteria,
                    "positive_example_weight_mult": self.positive_example_weight_mult}
        else:
            more = {"predictor_type": "multiclass_classifier", "num_classes": int(classes.shape[0])}
        self.state_ = self._new_state(X.shape[0], **more)

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities (logistic or softmax of the chosen model's scores)."""
        if self.loss == "hinge_loss":
            raise AttributeError("hinge_loss models give no probabilities; use decision_function")
        X = self._validated(X)
        return self.model_.predict_proba(X)


class LinearLearnerRegressor(RegressorMixin, StreamingRegressor, _LinearLearnerBase):
    """Linear Learner for regression: many models in one pass, the best one kept.

    Parameters
    ----------
    num_models : int, default=32
        Models trained side by side, each with its own learning rate, l1 and wd.
    loss : str, default="auto"
        squared_loss (auto), absolute_loss, huber_loss or quantile_loss.
    optimizer : str, default="adam"
        adam, or sgd (with momentum).
    learning_rate : float or "auto", default="auto"
        Step size of model 0.
    l1 : float, default=0.0
        L1 strength of model 0.
    wd : float, default=0.0
        L2 strength of model 0.
    learning_rate_range, l1_range, wd_range : str or tuple, default="auto"
        Ranges the other models' values are drawn from, log-uniformly.
    epochs : int, default=10
        Passes ``fit`` makes over its data; ``partial_fit`` makes one.
    batch_size : int, default=8192
        Rows handed to the state at a time.
    mini_batch_size : int or "auto", default="auto"
        Rows per optimizer step.
    num_point_for_scaler : int, default=10000
        Warm-up rows for the feature and label normalization.
    validation_fraction : float, default=0.0
        Share of the rows held out to rank models (0: progressive validation).
    early_stopping_patience : int, default=5
        Scorings without improvement before a model stops (0: never).
    quantile : float, default=0.5
        Quantile of quantile_loss.
    random_state : int, RandomState or None, default=None
        Seeds the state.

    Attributes
    ----------
    coef_ : ndarray of shape (n_features,)
    intercept_ : ndarray of shape (1,)
    leaderboard_ : list of dict
    model_ : LinearLearnerModel
    n_features_in_ : int
    state_ : LinearLearnerState

    Notes
    -----
    Memory is ``O(num_models * n_features)`` whatever the number of rows. See
    :class:`onepass.LinearLearnerState`.

    Examples
    --------
    >>> import numpy as np
    >>> from onepass import LinearLearnerRegressor
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(4000, 3)).astype(np.float32)
    >>> y = 3 * X[:, 0] - 2 * X[:, 2] + 5 + rng.normal(0, 0.1, 4000)
    >>> reg = LinearLearnerRegressor(num_models=8, random_state=0)
    >>> reg = reg.partial_fit(X[:2000], y[:2000]).partial_fit(X[2000:], y[2000:])
    >>> reg.score(X, y) > 0.99
    True
    """

    def __init__(self, *, num_models: int = 32, loss: str = "auto", optimizer: str = "adam",
                 learning_rate: float | str = "auto", l1: float = 0.0, wd: float = 0.0,
                 learning_rate_range: Any = "auto", l1_range: Any = "auto", wd_range: Any = "auto",
                 epochs: int = 10, batch_size: int = 8192, mini_batch_size: int | str = "auto",
                 num_point_for_scaler: int = 10000, validation_fraction: float = 0.0,
                 early_stopping_patience: int = 5, quantile: float = 0.5, random_state: Any = None) -> None:
        self.num_models = num_models
        self.loss = loss
        self.optimizer = optimizer
        self.learning_rate = learning_rate
        self.l1 = l1
        self.wd = wd
        self.learning_rate_range = learning_rate_range
        self.l1_range = l1_range
        self.wd_range = wd_range
        self.epochs = epochs
        self.batch_size = batch_size
        self.mini_batch_size = mini_batch_size
        self.num_point_for_scaler = num_point_for_scaler
        self.validation_fraction = validation_fraction
        self.early_stopping_patience = early_stopping_patience
        self.quantile = quantile
        self.random_state = random_state

    def _new_regression_state(self, X: Any) -> LinearLearnerState:
        return self._new_state(X.shape[0], predictor_type="regressor", quantile=self.quantile)
