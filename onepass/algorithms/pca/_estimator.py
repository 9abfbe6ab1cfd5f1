"""The scikit-learn estimator of streaming PCA."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted, validate_data

from onepass.algorithms.pca._model import PCAModel
from onepass.algorithms.pca._state import PCAState
from onepass.batch import Batch
from onepass.errors import InvalidParameterError

__all__ = ["PCA"]


class PCA(TransformerMixin, BaseEstimator):
    """Streaming PCA with the scikit-learn API: one pass, fixed memory.

    Parameters
    ----------
    n_components : int, float or None, default=None
        Components of the model. None keeps all of them (exact mode); a float in
        (0, 1) keeps the fewest components explaining that share of the variance.
    mode : {"exact", "sketch"}, default="exact"
        "exact" keeps the ``d x d`` scatter matrix (SageMaker's "regular"); "sketch"
        keeps a Frequent Directions sketch of ``n_components + extra_components`` rows
        (SageMaker's "randomized"), for wide data; it needs an integer n_components.
    extra_components : int or "auto", default="auto"
        Sketch mode: rows kept beyond n_components ("auto": max(4 * n_components, 64)).
    subtract_mean : bool, default=True
        Center the data on its mean before finding the axes.
    batch_size : int, default=8192
        Rows per mini-batch when ``fit``/``partial_fit`` receive more.
    random_state : int or None, default=None
        Seeds the random test matrices of sketch mode's sparse path (dense input and
        exact mode draw none).

    Attributes
    ----------
    components_ : ndarray of shape (n_components_, n_features_in_)
    explained_variance_ : ndarray of shape (n_components_,)
    explained_variance_ratio_ : ndarray of shape (n_components_,)
    singular_values_ : ndarray of shape (n_components_,)
    mean_ : ndarray of shape (n_features_in_,)
    n_components_ : int
    n_features_in_ : int
    n_rows_seen_ : int
    state_ : PCAState
        The training state: checkpoint it, merge it, finalize it with another
        number of components.

    Notes
    -----
    Exact mode: memory ``O(d^2)``, time ``O(b d^2)`` per mini-batch of ``b`` rows and
    an ``O(d^3)`` eigendecomposition at finalize; batches are combined by Chan et al.'s
    pairwise update, so a large mean offset loses no precision. Sketch mode: memory
    ``O(ell d)`` with ``ell = n_components + extra_components``, time ``O(b d ell)`` per
    mini-batch (``O(b d^2)`` in one large product when ``d`` is below about ``25 ell``);
    Frequent Directions (Liberty 2013; Ghashami et al. 2016) guarantees ``||C - B^T B||_2 <= ||A - A_k||_F^2 / (ell - k)``
    on the centered scatter ``C``. Sparse input is never densified: exact mode adds
    sparse ``X^T X`` products; sketch mode buffers rows and compresses them with a
    randomized range finder (Sparse Frequent Directions, Ghashami, Liberty & Phillips
    2016), time ``O(nnz ell)``. ``explained_variance_`` in sketch mode adds FD's
    shrinkage back (exact for dominant directions, an upper bound for all). See
    :class:`onepass.PCAState`.

    Examples
    --------
    >>> import numpy as np
    >>> from onepass import PCA
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(2000, 2)) @ np.array([[3.0, 0.0, 0.0], [0.0, 1.0, 0.0]]) + 100.0
    >>> pca = PCA(n_components=2).partial_fit(X[:1000]).partial_fit(X[1000:])
    >>> np.round(np.abs(pca.components_), 1)
    array([[1., 0., 0.],
           [0., 1., 0.]])
    >>> pca.transform(X).shape
    (2000, 2)
    """

    def __init__(self, n_components: int | float | None = None, *, mode: str = "exact",
                 extra_components: int | str = "auto", subtract_mean: bool = True,
                 batch_size: int = 8192, random_state: Any = None) -> None:
        self.n_components = n_components
        self.mode = mode
        self.extra_components = extra_components
        self.subtract_mean = subtract_mean
        self.batch_size = batch_size
        self.random_state = random_state

    def __sklearn_tags__(self):  # type: ignore[no-untyped-def]
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags

    def _finalize_settings(self) -> dict[str, Any]:
        nc = self.n_components
        if isinstance(nc, float) and 0 < nc < 1:
            return {"explained_variance": nc}
        return {}

    def _new_state(self) -> PCAState:
        if isinstance(self.batch_size, bool) or not isinstance(self.batch_size, (int, np.integer)) or self.batch_size < 1:
            raise InvalidParameterError(f"batch_size={self.batch_size!r} must be an integer >= 1")
        nc = self.n_components
        if isinstance(nc, float) and not isinstance(nc, bool):
            if not 0 < nc < 1:
                raise InvalidParameterError(f"n_components={nc!r}: a float must be in (0, 1)")
            nc = None
        rs = self.random_state
        seed = rs if rs is None or isinstance(rs, (int, np.integer)) else None
        return PCAState(nc, mode=self.mode, extra_components=self.extra_components,
                        subtract_mean=self.subtract_mean, seed=seed)

    def _stream(self, X: Any) -> None:
        for start in range(0, X.shape[0], self.batch_size):
            self.state_.update(Batch(X[start:start + self.batch_size]))
        # The finalized model is cached in a dict made here, so that a transform does
        # not add attributes (scikit-learn's check_dict_unchanged).
        self._cache: dict[str, PCAModel] = {}
        self.n_rows_seen_ = self.state_.n_rows_seen_

    def partial_fit(self, X: Any, y: Any = None) -> PCA:
        """Update the principal axes with one chunk of rows (split into mini-batches)."""
        first = not hasattr(self, "state_")
        X = validate_data(self, X, reset=first, accept_sparse="csr", dtype=[np.float64, np.float32])
        if first:
            self.state_ = self._new_state()
        self._stream(X)
        return self

    def fit(self, X: Any, y: Any = None) -> PCA:
        """Find the principal axes of ``X`` in one streaming pass (a loop of mini-batches)."""
        for attr in ("state_", "_cache", "n_features_in_"):
            self.__dict__.pop(attr, None)
        return self.partial_fit(X)

    @property
    def model_(self) -> PCAModel:
        """The finalized model of the current state (computed once per state change)."""
        check_is_fitted(self, "state_")
        if "model" not in self._cache:
            self._cache["model"] = self.state_.model(**self._finalize_settings())
        return self._cache["model"]

    @property
    def components_(self) -> np.ndarray:
        return self.model_.components_

    @property
    def explained_variance_(self) -> np.ndarray:
        return self.model_.explained_variance_

    @property
    def explained_variance_ratio_(self) -> np.ndarray:
        return self.model_.explained_variance_ratio_

    @property
    def singular_values_(self) -> np.ndarray:
        return self.model_.singular_values_

    @property
    def mean_(self) -> np.ndarray:
        return self.model_.mean_

    @property
    def n_components_(self) -> int:
        return self.model_.n_components

    def _validated(self, X: Any) -> Any:
        check_is_fitted(self, "state_")
        return validate_data(self, X, reset=False, accept_sparse="csr", dtype=[np.float64, np.float32])

    def transform(self, X: Any) -> np.ndarray:
        """Project the rows of ``X`` on the principal axes."""
        return self.model_.transform(self._validated(X))

    def inverse_transform(self, X: Any) -> np.ndarray:
        """Rows in feature space from their projections."""
        check_is_fitted(self, "state_")
        return self.model_.inverse_transform(X)

    def score(self, X: Any, y: Any = None) -> float:
        """Negative mean squared reconstruction error of ``X`` (higher is better)."""
        return self.model_.score(self._validated(X))
