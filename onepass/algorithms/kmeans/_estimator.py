"""The scikit-learn estimator of streaming K-Means."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClusterMixin, TransformerMixin
from sklearn.utils.validation import check_is_fitted, validate_data

from onepass.algorithms._estimator_tools import checked_sample_weight, seed_of, stream_batches
from onepass.algorithms.kmeans._model import KMeansModel
from onepass.algorithms.kmeans._state import KMeansState
from onepass.errors import DataError, InvalidParameterError

__all__ = ["KMeans"]


class KMeans(ClusterMixin, TransformerMixin, BaseEstimator):
    """Streaming K-Means with the scikit-learn API: one pass, fixed memory.

    Parameters
    ----------
    n_clusters : int, default=8
        Number of clusters of the model.
    extra_center_factor : float or "auto", default="auto"
        The state keeps ``ceil(n_clusters * extra_center_factor)`` weighted centers and
        reduces them to ``n_clusters`` at finalize; more centers cost time per row and
        buy quality and a wider choice of ``n_clusters`` after training. ``"auto"``
        keeps 2x the clusters up to 32 clusters, 1.5x for many (at least 16 centers).
    batch_size : int, default=8192
        Rows per mini-batch when ``fit``/``partial_fit`` receive more. Batches of 8192
        rows or more are split in two row blocks computed on two threads.
    half_life : float or None, default=None
        Rows after which a row's weight halves (None: no fading).
    init_size : int or "auto", default="auto"
        Rows buffered to seed the kept centers.
    n_trials : int or "auto", default="auto"
        Restarts of the weighted k-means that reduces the kept centers at finalize.
    max_iter : int, default=300
        Lloyd iterations per restart at finalize.
    tol : float, default=1e-4
        Relative tolerance of the finalize Lloyd iterations.
    random_state : int, numpy.random.RandomState or None, default=None
        Seeds the state's generator: same data and seed give the same model.

    Attributes
    ----------
    cluster_centers_ : ndarray of shape (n_clusters, n_features)
    labels_ : ndarray of shape (n_rows,)
        Cluster of each row of the ``fit`` input (not set by ``partial_fit``, which
        would have to finalize after every chunk).
    inertia_ : float
        Estimated sum of squared distances of all rows seen to their closest center.
    n_iter_ : int
        Lloyd iterations of the finalize.
    n_features_in_ : int
    n_rows_seen_ : int
    state_ : KMeansState
        The training state: checkpoint it, merge it, finalize it with another k.

    Notes
    -----
    Memory is ``O(n_clusters * extra_center_factor * n_features)``; time is one
    ``batch_size x n_centers x n_features`` matrix product per mini-batch. The method is
    SageMaker's web-scale k-means (Sculley 2010, with k-means++ seeding, Arthur &
    Vassilvitskii 2007) reducing the kept centers at finalize.

    Examples
    --------
    >>> import numpy as np
    >>> from onepass import KMeans
    >>> rng = np.random.default_rng(0)
    >>> X = np.concatenate([rng.normal(-5, 1, (500, 2)), rng.normal(5, 1, (500, 2))])
    >>> rng.shuffle(X)
    >>> km = KMeans(n_clusters=2, random_state=0)
    >>> km = km.partial_fit(X[:500]).partial_fit(X[500:])
    >>> np.sort(np.round(km.cluster_centers_[:, 0]))
    array([-5.,  5.], dtype=float32)
    >>> int(km.predict([[4.0, 6.0]])[0]) == int(km.predict([[5.0, 5.0]])[0])
    True
    """

    def __init__(self, n_clusters: int = 8, *, extra_center_factor: float | str = "auto",
                 batch_size: int = 8192, half_life: float | None = None,
                 init_size: int | str = "auto", n_trials: int | str = "auto",
                 max_iter: int = 300, tol: float = 1e-4, random_state: Any = None) -> None:
        self.n_clusters = n_clusters
        self.extra_center_factor = extra_center_factor
        self.batch_size = batch_size
        self.half_life = half_life
        self.init_size = init_size
        self.n_trials = n_trials
        self.max_iter = max_iter
        self.tol = tol
        self.random_state = random_state

    def __sklearn_tags__(self):  # type: ignore[no-untyped-def]
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags

    def _new_state(self) -> KMeansState:
        if isinstance(self.batch_size, bool) or not isinstance(self.batch_size, (int, np.integer)) or self.batch_size < 1:
            raise InvalidParameterError(f"batch_size={self.batch_size!r} must be an integer >= 1")
        return KMeansState(self.n_clusters, extra_center_factor=self.extra_center_factor,
                           half_life=self.half_life, init_size=self.init_size, seed=seed_of(self.random_state))

    def _stream(self, X: Any, sample_weight: Any) -> None:
        sw = checked_sample_weight(sample_weight, X.shape[0], np.float64)
        stream_batches(self.state_, X, None, sw, self.batch_size)
        self._model = None

    def partial_fit(self, X: Any, y: Any = None, sample_weight: Any = None) -> KMeans:
        """Update the clustering with one chunk of rows (split into mini-batches)."""
        first = not hasattr(self, "state_")
        # Finiteness is checked by the state on its own pass over the rows (a second
        # full scan here would cost as much as the distance step at small k).
        X = validate_data(self, X, reset=first, accept_sparse="csr", dtype=np.float32, order="C",
                          ensure_all_finite=False)
        if first:
            self.state_ = self._new_state()
        self._stream(X, sample_weight)
        self.n_rows_seen_ = self.state_.n_rows_seen_
        return self

    def fit(self, X: Any, y: Any = None, sample_weight: Any = None) -> KMeans:
        """Cluster ``X`` in one streaming pass (a loop of ``partial_fit`` mini-batches)."""
        for attr in ("state_", "_model", "labels_", "n_features_in_"):
            self.__dict__.pop(attr, None)
        X = validate_data(self, X, reset=True, accept_sparse="csr", dtype=np.float32, order="C",
                          ensure_all_finite=False)
        if X.shape[0] < self.n_clusters:
            raise DataError(f"n_samples={X.shape[0]} should be >= n_clusters={self.n_clusters}")
        self.state_ = self._new_state()
        self._stream(X, sample_weight)
        self.n_rows_seen_ = self.state_.n_rows_seen_
        self.labels_ = self.predict(X)
        return self

    @property
    def model_(self) -> KMeansModel:
        """The finalized model of the current state (computed once per state change)."""
        check_is_fitted(self, "state_")
        if getattr(self, "_model", None) is None:
            self._model = self.state_.model(self.n_clusters, n_trials=self.n_trials,
                                            max_iter=self.max_iter, tol=self.tol)
        return self._model

    @property
    def cluster_centers_(self) -> np.ndarray:
        return self.model_.cluster_centers_

    @property
    def inertia_(self) -> float:
        return self.model_.inertia_

    @property
    def n_iter_(self) -> int:
        return self.model_.n_iter_

    def _validated(self, X: Any) -> Any:
        check_is_fitted(self, "state_")
        return validate_data(self, X, reset=False, accept_sparse="csr", dtype=np.float32, order="C")

    def predict(self, X: Any) -> np.ndarray:
        """Index of the closest cluster center for each row of ``X``."""
        return self.model_.predict(self._validated(X))

    def transform(self, X: Any) -> np.ndarray:
        """Distances from each row of ``X`` to each cluster center."""
        return self.model_.transform(self._validated(X))

    def score(self, X: Any, y: Any = None, sample_weight: Any = None) -> float:
        """Opposite of the inertia of ``X`` on the model (higher is better)."""
        return -self.model_.inertia(self._validated(X), sample_weight)
