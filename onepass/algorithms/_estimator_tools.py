"""What the scikit-learn estimators share: the seed from ``random_state``, the
``sample_weight`` checks, and streaming rows into the state a batch at a time."""

from __future__ import annotations

from typing import Any

import numpy as np

from onepass.batch import Batch
from onepass.errors import DataError, InvalidParameterError

__all__ = ["checked_sample_weight", "seed_of", "stream_batches"]


def seed_of(random_state: Any) -> int | None:
    """The state's seed for scikit-learn's ``random_state`` (None, an int or a RandomState)."""
    if random_state is None or isinstance(random_state, (int, np.integer)):
        return random_state
    if isinstance(random_state, np.random.RandomState):
        return int(random_state.randint(np.iinfo(np.int32).max))
    raise InvalidParameterError(f"random_state={random_state!r} must be None, an int or a RandomState")


def checked_sample_weight(sample_weight: Any, n_rows: int, dtype: Any) -> np.ndarray | None:
    """``sample_weight`` as an array of ``n_rows`` finite weights >= 0, not all zero."""
    if sample_weight is None:
        return None
    sw = np.asarray(sample_weight, dtype=dtype)
    if sw.shape != (n_rows,):
        raise InvalidParameterError(f"sample_weight has shape {sw.shape}, expected ({n_rows},)")
    if not np.isfinite(sw).all() or (sw < 0).any():
        raise DataError("sample_weight must be finite and >= 0")
    if n_rows and not sw.any():
        raise DataError("sample_weight is zero for every row: there is nothing to learn from")
    return sw


def stream_batches(state: Any, X: Any, y: np.ndarray | None, sw: np.ndarray | None, batch_size: int) -> None:
    """Update ``state`` with the rows of ``X`` (labels ``y``, weights ``sw``), ``batch_size`` at a time."""
    for start in range(0, X.shape[0], batch_size):
        stop = start + batch_size
        state.update(Batch(X[start:stop], None if y is None else y[start:stop],
                           None if sw is None else sw[start:stop]))


class StreamingSupervised:
    """What the supervised estimators (Linear Learner, Factorization Machines) share, as a
    mixin before scikit-learn's ``BaseEstimator``: sparse input accepted, ``epochs`` and
    ``batch_size`` checked, rows streamed into ``state_`` and the chosen model finalized
    (``model_``) after each ``fit``/``partial_fit``, and validated input for predictions."""

    def __sklearn_tags__(self):  # type: ignore[no-untyped-def]
        tags = super().__sklearn_tags__()  # type: ignore[misc]
        tags.input_tags.sparse = True
        return tags

    def _seed(self) -> int | None:
        return seed_of(self.random_state)  # type: ignore[attr-defined]

    def _stream(self, X: Any, y: np.ndarray, sample_weight: Any) -> None:
        sw = checked_sample_weight(sample_weight, X.shape[0], np.float32)
        stream_batches(self.state_, X, y, sw, self.batch_size)  # type: ignore[attr-defined]
        # finalized now, not on first use: predicting must not change the estimator
        self.model_ = self.state_.model()  # type: ignore[attr-defined]

    def _check_epochs(self) -> int:
        epochs, batch_size = self.epochs, self.batch_size  # type: ignore[attr-defined]
        if isinstance(epochs, bool) or not isinstance(epochs, (int, np.integer)) or epochs < 1:
            raise InvalidParameterError(f"epochs={epochs!r} must be an integer >= 1")
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise InvalidParameterError(f"batch_size={batch_size!r} must be an integer >= 1")
        return int(epochs)

    @property
    def leaderboard_(self) -> list[dict[str, Any]]:
        return self.model_.leaderboard_  # type: ignore[attr-defined]

    def _validated(self, X: Any) -> Any:
        from sklearn.utils.validation import check_is_fitted, validate_data

        check_is_fitted(self, "state_")
        return validate_data(self, X, reset=False, accept_sparse="csr", dtype=np.float32)

    def _encode(self, y: np.ndarray) -> np.ndarray:
        """Labels as indices into ``classes_`` (float32), or a clear error for an unknown one."""
        classes = self.classes_  # type: ignore[attr-defined]
        idx = np.clip(np.searchsorted(classes, y), 0, classes.shape[0] - 1)
        unknown = classes[idx] != y
        if unknown.any():
            raise ValueError(f"y holds the label {y[unknown][0]!r}, which is not in classes {classes.tolist()}")
        return idx.astype(np.float32)

    def _regression_targets(self, X: Any, y: Any, reset: bool) -> tuple[Any, np.ndarray]:
        from sklearn.utils.validation import validate_data

        X, y = validate_data(self, X, y, reset=reset, accept_sparse="csr", dtype=np.float32, y_numeric=True)
        y = np.asarray(y, dtype=np.float64)
        if y.ndim != 1:
            raise ValueError(f"y must be one column of targets; got shape {y.shape}")
        return X, y.astype(np.float32)


class StreamingClassifier(StreamingSupervised):
    """``partial_fit`` and ``fit`` of a streaming classifier: labels mapped to ``classes_``,
    then streamed. The estimator's ``_start(X, classes)`` sets ``classes_`` and ``state_``."""

    def partial_fit(self, X: Any, y: Any, classes: Any = None, sample_weight: Any = None) -> Any:
        """One pass over a chunk. The first call needs ``classes`` (every label the stream holds)."""
        from sklearn.utils.multiclass import check_classification_targets
        from sklearn.utils.validation import validate_data

        first = not hasattr(self, "state_")
        X, y = validate_data(self, X, y, reset=first, accept_sparse="csr", dtype=np.float32)
        check_classification_targets(y)
        self._check_epochs()
        if first:
            if classes is None:
                raise ValueError("classes must be passed on the first call to partial_fit")
            self._start(X, np.unique(np.asarray(classes)))  # type: ignore[attr-defined]
        elif classes is not None and not np.array_equal(np.unique(np.asarray(classes)), self.classes_):
            raise ValueError(f"classes={classes!r} is not the same as on the first call ({self.classes_.tolist()})")
        self._stream(X, self._encode(np.asarray(y)), sample_weight)
        return self

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> Any:
        """``epochs`` streaming passes over ``X`` (a loop of ``partial_fit``)."""
        from sklearn.utils.multiclass import check_classification_targets
        from sklearn.utils.validation import validate_data

        for attr in ("state_", "model_", "classes_", "n_features_in_"):
            self.__dict__.pop(attr, None)
        X, y = validate_data(self, X, y, reset=True, accept_sparse="csr", dtype=np.float32)
        check_classification_targets(y)
        epochs = self._check_epochs()
        self._start(X, np.unique(y))  # type: ignore[attr-defined]
        encoded = self._encode(np.asarray(y))
        for _ in range(epochs):
            self._stream(X, encoded, sample_weight)
        return self

    def decision_function(self, X: Any) -> np.ndarray:
        """Raw scores of the chosen model (logits for logistic loss; (n, n_classes) for multiclass)."""
        X = self._validated(X)
        return self.model_.decision_function(X)  # type: ignore[attr-defined]

    def predict(self, X: Any) -> np.ndarray:
        """The class of each row."""
        X = self._validated(X)
        return self.classes_[self.model_.predict(X)]  # type: ignore[attr-defined]

    def predict_log_proba(self, X: Any) -> np.ndarray:
        with np.errstate(divide="ignore"):
            return np.log(self.predict_proba(X))  # type: ignore[attr-defined]


class StreamingRegressor(StreamingSupervised):
    """``partial_fit`` and ``fit`` of a streaming regressor; the estimator's
    ``_new_regression_state(X)`` makes its ``state_``."""

    def partial_fit(self, X: Any, y: Any, sample_weight: Any = None) -> Any:
        """One pass over a chunk."""
        first = not hasattr(self, "state_")
        X, y = self._regression_targets(X, y, first)
        self._check_epochs()
        if first:
            self.state_ = self._new_regression_state(X)  # type: ignore[attr-defined]
        self._stream(X, y, sample_weight)
        return self

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> Any:
        """``epochs`` streaming passes over ``X`` (a loop of ``partial_fit``)."""
        for attr in ("state_", "model_", "n_features_in_"):
            self.__dict__.pop(attr, None)
        X, y = self._regression_targets(X, y, True)
        epochs = self._check_epochs()
        self.state_ = self._new_regression_state(X)  # type: ignore[attr-defined]
        for _ in range(epochs):
            self._stream(X, y, sample_weight)
        return self

    def predict(self, X: Any) -> np.ndarray:
        """The predicted value of each row."""
        X = self._validated(X)
        return self.model_.predict(X)  # type: ignore[attr-defined]
