"""The scikit-learn estimators of Factorization Machines: a binary classifier and a regressor."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin

from onepass.algorithms._estimator_tools import StreamingClassifier, StreamingRegressor, StreamingSupervised
from onepass.algorithms.fm._state import FactorizationMachinesState

__all__ = ["FactorizationMachinesClassifier", "FactorizationMachinesRegressor"]

# Parameters passed to the state verbatim (the rest belong to the estimator).
_STATE_PARAMS = ("num_factors", "num_models", "optimizer", "mini_batch_size", "bias_lr", "linear_lr", "factors_lr",
                 "bias_wd", "linear_wd", "factors_wd", "validation_fraction", "early_stopping_patience")


class _FactorizationMachinesBase(StreamingSupervised, BaseEstimator):
    """What the classifier and the regressor share: their parameters (one ``__init__``,
    which scikit-learn reads for both), the state, the model's arrays."""

    def __init__(self, *, num_factors: int = 16, num_models: int = 1, optimizer: str = "adagrad",
                 mini_batch_size: int = 1, bias_lr: float | str = "auto", linear_lr: float | str = "auto",
                 factors_lr: float | str = "auto", bias_wd: float = 0.0, linear_wd: float = 1e-6,
                 factors_wd: float = 1e-6, epochs: int = 5, batch_size: int = 8192, validation_fraction: float = 0.0,
                 early_stopping_patience: int = 10, random_state: Any = None) -> None:
        self.num_factors = num_factors
        self.num_models = num_models
        self.optimizer = optimizer
        self.mini_batch_size = mini_batch_size
        self.bias_lr = bias_lr
        self.linear_lr = linear_lr
        self.factors_lr = factors_lr
        self.bias_wd = bias_wd
        self.linear_wd = linear_wd
        self.factors_wd = factors_wd
        self.epochs = epochs
        self.batch_size = batch_size
        self.validation_fraction = validation_fraction
        self.early_stopping_patience = early_stopping_patience
        self.random_state = random_state

    def _new_state(self, predictor_type: str) -> FactorizationMachinesState:
        # models ranked by their log loss, decision threshold 0: predict, predict_proba and
        # decision_function agree, as scikit-learn's classifiers do
        return FactorizationMachinesState(predictor_type, **{name: getattr(self, name) for name in _STATE_PARAMS},
                                          binary_classifier_model_selection_criteria="cross_entropy_loss",
                                          seed=self._seed())

    @property
    def intercept_(self) -> float:
        return self.model_.intercept_

    @property
    def coef_(self) -> np.ndarray:
        return self.model_.coef_

    @property
    def factors_(self) -> np.ndarray:
        return self.model_.factors_


_PARAMETERS = """
    Parameters
    ----------
    num_factors : int, default=16
        Length of each feature's factor vector.
    num_models : int, default=1
        Models trained side by side, each with its own step sizes and weight decays; the
        best is kept.
    optimizer : str, default="adagrad"
        adagrad, sgd or adam.
    mini_batch_size : int, default=1
        Rows per optimizer step (1: row by row).
    bias_lr, linear_lr, factors_lr : float or "auto", default="auto"
        Step sizes of model 0 (see ``FactorizationMachinesState``).
    bias_wd, linear_wd, factors_wd : float, default=0.0, 1e-6, 1e-6
        Weight decays of model 0.
    epochs : int, default=5
        Passes ``fit`` makes over its data; ``partial_fit`` makes one over its chunk.
    batch_size : int, default=8192
        Rows handed to the state at a time.
    validation_fraction : float, default=0.0
        Share of the rows held out to rank models (0: progressive validation).
    early_stopping_patience : int, default=10
        Scorings without improvement before a model stops (0: never).
    random_state : int, RandomState or None, default=None
        Seeds the initial weights."""


class FactorizationMachinesClassifier(ClassifierMixin, StreamingClassifier, _FactorizationMachinesBase):
    __doc__ = """Factorization Machines for binary classification (log loss), in one pass.

    Labels may be any two values scikit-learn accepts; they map to ``classes_`` in
    sorted order (the second is the positive class).
""" + _PARAMETERS + """

    Attributes
    ----------
    classes_ : ndarray of shape (2,)
    intercept_ : float
    coef_ : ndarray of shape (n_features,)
    factors_ : ndarray of shape (n_features, num_factors)
    leaderboard_ : list of dict
    model_ : FactorizationMachinesModel
        The chosen model, finalized after each ``fit``/``partial_fit``.
    n_features_in_ : int
    state_ : FactorizationMachinesState

    Notes
    -----
    Memory is ``O(num_models * n_features * num_factors)`` whatever the number of rows;
    a row costs ``O(nnz * num_factors)`` per model. See
    :class:`onepass.FactorizationMachinesState`.

    Examples
    --------
    >>> import numpy as np
    >>> from onepass import FactorizationMachinesClassifier
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(6000, 3)).astype(np.float32)
    >>> y = (X[:, 0] * X[:, 1] > 0).astype(int)            # an interaction: no linear model learns it
    >>> clf = FactorizationMachinesClassifier(num_factors=4, random_state=0)
    >>> clf = clf.partial_fit(X[:3000], y[:3000], classes=[0, 1]).partial_fit(X[3000:], y[3000:])
    >>> clf.score(X, y) > 0.9
    True
    """

    def __sklearn_tags__(self):  # type: ignore[no-untyped-def]
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_class = False
        return tags

    def _start(self, X: Any, classes: np.ndarray) -> None:
        if classes.shape[0] != 2:
            raise ValueError(f"Only binary classification is supported. FactorizationMachinesClassifier needs y of 2 "
                             f"classes, got {classes.shape[0]} class{'es' if classes.shape[0] != 1 else ''} "
                             f"({classes.tolist()[:10]}); use LinearLearnerClassifier for more")
        self.classes_ = classes
        self.state_ = self._new_state("binary_classifier")

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities (n, 2): the sigmoid of the chosen model's scores."""
        X = self._validated(X)
        return self.model_.predict_proba(X)


class FactorizationMachinesRegressor(RegressorMixin, StreamingRegressor, _FactorizationMachinesBase):
    __doc__ = """Factorization Machines for regression (squared loss), in one pass.
""" + _PARAMETERS + """

    Attributes
    ----------
    intercept_ : float
    coef_ : ndarray of shape (n_features,)
    factors_ : ndarray of shape (n_features, num_factors)
    leaderboard_ : list of dict
    model_ : FactorizationMachinesModel
    n_features_in_ : int
    state_ : FactorizationMachinesState

    Notes
    -----
    Memory is ``O(num_models * n_features * num_factors)`` whatever the number of rows.
    Labels are learned as they are: scale large targets. See
    :class:`onepass.FactorizationMachinesState`.

    Examples
    --------
    >>> import numpy as np
    >>> from onepass import FactorizationMachinesRegressor
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(6000, 3)).astype(np.float32)
    >>> y = X[:, 0] + 2 * X[:, 1] * X[:, 2] + rng.normal(0, 0.1, 6000)
    >>> reg = FactorizationMachinesRegressor(num_factors=4, random_state=0)
    >>> reg = reg.partial_fit(X[:3000], y[:3000]).partial_fit(X[3000:], y[3000:])
    >>> reg.score(X, y) > 0.9
    True
    """


    def _new_regression_state(self, X: Any) -> FactorizationMachinesState:
        return self._new_state("regressor")
