"""The scikit-learn estimator of the Neural Topic Model."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, check_non_negative, validate_data

from onepass.algorithms._hyper import require
from onepass.algorithms.ntm._model import NTMModel
from onepass.algorithms.ntm._state import NTMState
from onepass.batch import Batch
from onepass.errors import DataError

__all__ = ["NTM"]


class NTM(TransformerMixin, BaseEstimator):
    """Neural Topic Model with the scikit-learn API: topics from a stream of documents.

    Parameters
    ----------
    num_topics : int, default=10
    encoder_layers, encoder_layers_activation, optimizer, learning_rate, mini_batch_size, batch_norm, clip_gradient, rescale_gradient, sub_sample, weight_decay, num_patience_epochs, tolerance, decoder, prior_alpha, refresh_every, max_validation_rows, validation_fraction, on_empty_document, device
        SageMaker's hyperparameters and onepass's own, as :class:`onepass.NTMState`.
    epochs : int, default=1
        Passes of ``fit`` over its data (early stopping may end them sooner).
    batch_size : int, default=8192
        Documents per batch handed to the state.
    random_state : int or None, default=None

    Attributes
    ----------
    components_ : ndarray of shape (num_topics, n_features_in_)
        Topic-word distributions (rows sum to 1), as scikit-learn's LDA after
        normalization.
    top_words_ : list of list
        Each topic's top words (column indices, or words when named).
    n_features_in_ : int
    n_rows_seen_ : int
    state_ : NTMState
        The training state: checkpoint it, merge it, finalize it.

    Notes
    -----
    See :class:`onepass.NTMState` for the model, its memory and time bounds.

    Examples
    --------
    >>> import numpy as np
    >>> from onepass import NTM
    >>> rng = np.random.default_rng(0)
    >>> X = rng.poisson(1.0, size=(400, 30))
    >>> ntm = NTM(num_topics=3, random_state=0).partial_fit(X[:200]).partial_fit(X[200:])
    >>> ntm.transform(X[:2]).shape
    (2, 3)
    >>> bool(np.allclose(ntm.transform(X[:5]).sum(axis=1), 1.0))
    True
    """

    def __init__(self, num_topics: int = 10, *, encoder_layers: Any = "auto",
                 encoder_layers_activation: str = "sigmoid", optimizer: str = "adam", learning_rate: float = 0.02,
                 mini_batch_size: int = 64, batch_norm: bool = True, clip_gradient: float = math.inf,
                 rescale_gradient: float = 1.0, sub_sample: float = 1.0, weight_decay: float = 0.0,
                 num_patience_epochs: int = 3, tolerance: float = 0.001, decoder: str = "mixture",
                 prior_alpha: float = 0.5, refresh_every: int = 4096, max_validation_rows: int = 2000, validation_fraction: float = 0.05,
                 on_empty_document: str = "skip", device: str = "auto", epochs: int = 1, batch_size: int = 8192,
                 random_state: Any = None) -> None:
        self.num_topics = num_topics
        self.encoder_layers = encoder_layers
        self.encoder_layers_activation = encoder_layers_activation
        self.optimizer = optimizer
        self.learning_rate = learning_rate
        self.mini_batch_size = mini_batch_size
        self.batch_norm = batch_norm
        self.clip_gradient = clip_gradient
        self.rescale_gradient = rescale_gradient
        self.sub_sample = sub_sample
        self.weight_decay = weight_decay
        self.num_patience_epochs = num_patience_epochs
        self.tolerance = tolerance
        self.decoder = decoder
        self.prior_alpha = prior_alpha
        self.refresh_every = refresh_every
        self.max_validation_rows = max_validation_rows
        self.validation_fraction = validation_fraction
        self.on_empty_document = on_empty_document
        self.device = device
        self.epochs = epochs
        self.batch_size = batch_size
        self.random_state = random_state

    def __sklearn_tags__(self):  # type: ignore[no-untyped-def]
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        tags.input_tags.positive_only = True  # word counts
        return tags

    def _new_state(self) -> NTMState:
        require("int>=1", batch_size=self.batch_size, epochs=self.epochs)
        params = {k: v for k, v in self.get_params().items() if k not in ("epochs", "batch_size", "random_state")}
        rs = self.random_state
        seed = int(rs) if isinstance(rs, (int, np.integer)) and not isinstance(rs, bool) else None
        return NTMState(**params, seed=seed)

    def _stream(self, X: Any, sample_weight: Any) -> None:
        for start in range(0, X.shape[0], self.batch_size):
            w = None if sample_weight is None else sample_weight[start:start + self.batch_size]
            self.state_.update(Batch(X[start:start + self.batch_size], None, w))
        self._cache: dict[str, NTMModel] = {}
        self.n_rows_seen_ = self.state_.n_rows_seen_

    def partial_fit(self, X: Any, y: Any = None, sample_weight: Any = None) -> NTM:
        """Learn from one chunk of documents (word counts, rows), in mini-batch steps."""
        first = not hasattr(self, "state_")
        X = validate_data(self, X, reset=first, accept_sparse="csr", dtype=[np.float32, np.float64])
        check_non_negative(X, "NTM (word counts)")
        if sample_weight is not None:
            sample_weight = _check_sample_weight(sample_weight, X, dtype=np.float32)
            if not sample_weight.sum() > 0:
                raise DataError("sample_weight sums to 0: no document would count; give some a weight > 0")
        if first:
            self.state_ = self._new_state()
        self._stream(X, sample_weight)
        return self

    def fit(self, X: Any, y: Any = None, sample_weight: Any = None) -> NTM:
        """``epochs`` passes over ``X`` (a loop of ``partial_fit``), ending early when the
        validation loss stops improving."""
        for attr in ("state_", "_cache", "n_features_in_"):
            self.__dict__.pop(attr, None)
        for _ in range(self.epochs):
            self.partial_fit(X, sample_weight=sample_weight)
            self.state_.end_epoch()
            if self.state_.is_stopped:
                break
        return self

    @property
    def model_(self) -> NTMModel:
        check_is_fitted(self, "state_")
        if "model" not in self._cache:
            self._cache["model"] = self.state_.model()
        return self._cache["model"]

    @property
    def components_(self) -> np.ndarray:
        return self.model_.topic_word_

    @property
    def top_words_(self) -> list[list[Any]]:
        return self.model_.top_words_

    def _validated(self, X: Any) -> Any:
        check_is_fitted(self, "state_")
        return validate_data(self, X, reset=False, accept_sparse="csr", dtype=[np.float32, np.float64])

    def transform(self, X: Any) -> np.ndarray:
        """Topic weights of each document, shape (n_documents, num_topics)."""
        return self.model_.transform(self._validated(X))

    def perplexity(self, X: Any) -> float:
        """exp(loss per word) of ``X``: an upper bound of its perplexity."""
        return self.model_.perplexity(self._validated(X))

    def score(self, X: Any, y: Any = None) -> float:
        """Minus the perplexity of ``X`` (higher is better)."""
        return -self.perplexity(X)
