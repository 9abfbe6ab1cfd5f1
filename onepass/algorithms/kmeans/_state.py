"""The K-Means training state."""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp

from onepass._parallel import blas_single_thread, map_blocks, row_blocks
from onepass._scratch import Scratch
from onepass.algorithms.kmeans._model import KMeansModel
from onepass.algorithms.kmeans._weighted import best_of_trials, kmeans_plusplus, lloyd, squared_distances
from onepass.batch import Batch
from onepass.errors import (
    DataError,
    FeatureCountError,
    IncompatibleStateError,
    InvalidParameterError,
    NotFittedError,
)
from onepass.state import ArraySpec

__all__ = ["KMeansState", "resolve_n_centers"]

# A kept center whose weight falls below this share of what an average center gained
# over the same span is reseeded (it was never hit, or its data faded away).
_RESEED_RATIO = 0.01
# A row farther than this many times the mean squared distance of rows to their kept
# center is "far": data from a region no center covers. Far rows open new centers.
_FAR_RATIO = 25.0
# A reborn center starts this fraction of the RMS radius away from the center it
# splits: small, so the bisecting hyperplane passes near the parent and the two share
# its rows (a step of a whole radius, in many dimensions, is farther than most rows).
_SPLIT_STEP = 0.1


_SCORE_ROWS = 2048  # rows whose distance scores are computed and reduced at once (they stay in cache)


def resolve_n_centers(n_clusters: int, extra_center_factor: float | str) -> int:
    """The number of weighted centers a state keeps for ``n_clusters`` clusters.

    A number keeps ``ceil(n_clusters * extra_center_factor)``. ``"auto"`` keeps
    ``n_clusters`` plus ``n_clusters`` more up to 32 clusters and half as many beyond
    (at least 16 centers in all, at most 10 per cluster). Measured in ``make bench``
    (1M rows, d=50): twice the clusters brings the finalized inertia within 0.2% of
    full k-means at k=10; at k=100, 1.5x the clusters is within 0.8% (2x: 0.7%, 1.25x:
    1.3%), while every kept center costs distance computations on every row. Keep more
    (a larger ``extra_center_factor``) to finalize to a wider range of ``n_clusters``.
    """
    if extra_center_factor == "auto":
        extra = max(min(n_clusters, 32), math.ceil(n_clusters / 2))
        return min(10 * n_clusters, max(16, n_clusters + extra))
    return math.ceil(n_clusters * float(extra_center_factor))


def _validate_hyperparameters(n_clusters: Any, extra_center_factor: Any, half_life: Any,
                              init_size: Any) -> None:
    if isinstance(n_clusters, bool) or not isinstance(n_clusters, (int, np.integer)) or n_clusters < 1:
        raise InvalidParameterError(f"n_clusters={n_clusters!r} must be an integer >= 1")
    if extra_center_factor != "auto" and (
        isinstance(extra_center_factor, bool)
        or not isinstance(extra_center_factor, (int, float, np.number))
        or not extra_center_factor >= 1
    ):
        raise InvalidParameterError(
            f"extra_center_factor={extra_center_factor!r} must be 'auto' or a number >= 1"
        )
    if half_life is not None and (not isinstance(half_life, (int, float, np.number)) or not half_life > 0):
        raise InvalidParameterError(f"half_life={half_life!r} must be None or a number of rows > 0")
    if init_size != "auto" and (not isinstance(init_size, (int, np.integer)) or init_size < 1):
        raise InvalidParameterError(f"init_size={init_size!r} must be 'auto' or an integer >= 1")


class KMeansState:
    """Everything streaming K-Means needs to go on training.

    Parameters
    ----------
    n_clusters : int
        The default number of clusters of the finalized model.
    extra_center_factor : float or "auto", default="auto"
        Kept centers per cluster (>= 1): the state keeps
        ``ceil(n_clusters * extra_center_factor)`` weighted centers, and finalizes to any
        ``n_clusters`` up to that number. ``"auto"``: see :func:`resolve_n_centers`
        (2x the clusters up to 32 clusters, 1.5x for many).
    half_life : float or None, default=None
        In rows: the weight of a row halves after this many further rows, so old data
        fades. None keeps every row's weight.
    init_size : int or "auto", default="auto"
        Rows buffered before the kept centers are seeded by k-means++ (``"auto"``:
        ``max(10 * n_centers, 2048)``).
    seed : int or None, default=None
        Seeds the state's own random generator, whose state is checkpointed.

    Attributes
    ----------
    n_features_ : int
        Width of the data, -1 before the first batch.
    centers_ : ndarray of shape (n_kept, n_features), float64
        The kept centers (``n_kept == n_centers`` once seeded, 0 before).
    weights_ : ndarray of shape (n_kept,)
        Weight (row count, decayed by the half-life) of each kept center.
    sse_ : ndarray of shape (n_kept,)
        Sum of squared distances of each kept center's rows to it, maintained exactly
        for the rows as assigned (Welford-style); used to estimate inertia.
    ages_ : ndarray of shape (n_kept,)
        Row weight streamed since each center was (re)seeded, decayed like the weights.
    origin_ : ndarray of shape (n_features,)
        The mean of the rows the centers were seeded from. Distances are computed in
        coordinates relative to it, so float32 keeps its precision on data far from
        zero (a mean offset of 1e4 costs nothing). Empty before seeding.
    buffer_ : ndarray of shape (n_buffered, n_features), float32
        Rows held before seeding; empty once seeded.
    buffer_weights_ : ndarray of shape (n_buffered,)
    n_rows_seen_ : int
    weight_seen_ : float
    rng_ : numpy.random.Generator

    Notes
    -----
    Memory is ``O((n_centers + init_size) * n_features)``, whatever the number of rows.
    Time per batch of ``b`` rows is one ``b x n_centers x n_features`` matrix product
    plus ``O(b * n_features)`` for the center updates.
    """

    kind: ClassVar[str] = "kmeans"

    ARRAY_SPECS: ClassVar[dict[str, ArraySpec]] = {  # m centers kept, b rows buffered
        "centers": ArraySpec(("f8",), ("m", None), finite=True),
        "weights": ArraySpec(("f8",), ("m",), finite=True),
        "sse": ArraySpec(("f8",), ("m",), finite=True),
        "ages": ArraySpec(("f8",), ("m",), finite=True),
        "origin": ArraySpec(("f8",), (None,), finite=True),
        "buffer": ArraySpec(("f4",), ("b", None), finite=True),
        "buffer_weights": ArraySpec(("f8",), ("b",), finite=True),
    }

    def __init__(self, n_clusters: int = 8, *, extra_center_factor: float | str = "auto",
                 half_life: float | None = None, init_size: int | str = "auto",
                 seed: int | None = None) -> None:
        _validate_hyperparameters(n_clusters, extra_center_factor, half_life, init_size)
        self.n_clusters = int(n_clusters)
        self.extra_center_factor = extra_center_factor
        self.half_life = None if half_life is None else float(half_life)
        self.init_size = init_size
        self.seed = int(np.random.SeedSequence().entropy % (2**63)) if seed is None else int(seed)
        self.n_centers = resolve_n_centers(self.n_clusters, extra_center_factor)
        self.n_init_rows = max(10 * self.n_centers, 2048) if init_size == "auto" else int(init_size)
        self.n_features_ = -1
        self.centers_ = np.zeros((0, 0))
        self.weights_ = np.zeros(0)
        self.sse_ = np.zeros(0)
        self.ages_ = np.zeros(0)
        self.buffer_ = np.zeros((0, 0), dtype=np.float32)
        self.buffer_weights_ = np.zeros(0)
        self.n_rows_seen_ = 0
        self.weight_seen_ = 0.0
        self.rng_ = np.random.default_rng(self.seed)
        self.origin_ = np.zeros(0)
        self._centers32 = np.zeros((0, 0), dtype=np.float32)
        self._scratch = Scratch()  # work arrays kept across batches

    # -- properties -----------------------------------------------------------------

    @property
    def is_seeded(self) -> bool:
        return self.centers_.shape[0] > 0

    def hyperparameters(self) -> dict[str, Any]:
        return {
            "n_clusters": self.n_clusters,
            "extra_center_factor": self.extra_center_factor,
            "half_life": self.half_life,
            "init_size": self.init_size,
            "seed": self.seed,
        }

    # -- update -----------------------------------------------------------------------

    def _check_batch(self, X: Any) -> None:
        if self.n_features_ == -1:
            self.n_features_ = int(X.shape[1])
            self.buffer_ = np.zeros((0, self.n_features_), dtype=np.float32)
        elif X.shape[1] != self.n_features_:
            raise FeatureCountError(
                f"batch has {X.shape[1]} features, but this K-Means state was trained on "
                f"{self.n_features_}; use data of the same width or start a new state"
            )

    def update(self, batch: Batch) -> None:
        """Update the state with one mini-batch, in place."""
        X = batch.X
        if X.shape[0] == 0:
            return
        self._check_batch(X)
        w = None if batch.w is None else np.asarray(batch.w, dtype=np.float64)
        # BLAS on one thread for the whole update: its own threads would only spin on
        # these small products and take the core from the row blocks (see _parallel).
        with blas_single_thread():
            if not self.is_seeded:
                self._buffer(X, w)
            else:
                self._update_seeded(X, w)

    def _buffer(self, X: Any, w: np.ndarray | None) -> None:
        dense = np.asarray(X.toarray() if sp.issparse(X) else X, dtype=np.float32)
        if not np.isfinite(dense).all():
            raise DataError("the batch contains NaN or infinity; K-Means needs finite values")
        w = np.ones(dense.shape[0]) if w is None else w
        room = self.n_init_rows - self.buffer_.shape[0]
        self.buffer_ = np.concatenate([self.buffer_, dense[:room]])
        self.buffer_weights_ = np.concatenate([self.buffer_weights_, w[:room]])
        self.n_rows_seen_ += min(room, dense.shape[0])
        self.weight_seen_ += float(w[:room].sum())
        if self.buffer_.shape[0] >= self.n_init_rows:
            self._seed_from_buffer()
            if dense.shape[0] > room:
                self._update_seeded(X[room:], None if w is None else w[room:])

    def _seed_from_buffer(self) -> None:
        """Seed the kept centers from the buffered rows: k-means++ then Lloyd."""
        points = self.buffer_.astype(np.float64)
        weights = self.buffer_weights_
        n_distinct = min(self.n_centers, points.shape[0])
        # Plain k-means++ and a few Lloyd steps: the stream refines the centers anyway.
        seeds = kmeans_plusplus(points, weights, n_distinct, self.rng_, n_local_trials=1)
        centers, labels, _, _ = lloyd(points, weights, points[seeds], max_iter=3)
        d2 = ((points - centers[labels]) ** 2).sum(axis=1)
        self.weights_ = np.bincount(labels, weights=weights, minlength=n_distinct)
        self.sse_ = np.bincount(labels, weights=weights * d2, minlength=n_distinct)
        self.ages_ = np.full(n_distinct, weights.sum())
        self.origin_ = np.average(points, axis=0, weights=weights) if weights.sum() > 0 else points.mean(axis=0)
        self._set_centers(centers)
        self.buffer_ = np.zeros((0, self.n_features_), dtype=np.float32)
        self.buffer_weights_ = np.zeros(0)

    def _set_centers(self, centers: np.ndarray) -> None:
        self.centers_ = np.ascontiguousarray(centers, dtype=np.float64)
        self._refresh_working_copy()

    def _refresh_working_copy(self) -> None:
        """The float32 centers, relative to the origin, that the distance step uses."""
        origin = self.origin_ if self.is_seeded else 0.0
        self._centers32 = (self.centers_ - origin).astype(np.float32)

    def _update_seeded(self, X: Any, w: np.ndarray | None) -> None:
        n = X.shape[0]
        if sp.issparse(X):
            Xs = X
            o32 = self.origin_.astype(np.float32)
            x_sq = (np.asarray(X.multiply(X).sum(axis=1), dtype=np.float64).ravel()
                    - 2.0 * np.asarray(X @ o32, dtype=np.float64) + float(self.origin_ @ self.origin_))
        else:
            # Rows relative to the origin, with a column of ones appended so that one
            # matrix product with [-2c, ||c||^2] gives the scores whole; filled by the
            # row blocks of the first assignment.
            Xs = self._scratch.get("rows", (n, X.shape[1] + 1))
            x_sq = np.empty(n, dtype=np.float32)
        wrow = np.ones(n) if w is None else w
        labels, d2, sums, mass, cost = self._assign(X, Xs, x_sq, wrow, prepare=not sp.issparse(X))
        if not np.isfinite(x_sq).all():
            bad = int(np.flatnonzero(~np.isfinite(x_sq))[0])
            raise DataError(
                f"row {bad} of the batch contains NaN or infinity (or values too large for "
                "float32 squares); K-Means needs finite values"
            )
        if self._open_far_centers(X, d2, wrow):
            labels, d2, sums, mass, cost = self._assign(X, Xs, x_sq, wrow, prepare=False)

        batch_weight = float(wrow.sum())
        if self.half_life is not None:
            decay = 0.5 ** (batch_weight / self.half_life)
            self.weights_ *= decay
            self.sse_ *= decay
            self.ages_ *= decay
        hit = mass > 0
        new_weights = self.weights_ + mass
        batch_means = sums[hit] / mass[hit, None]  # relative to the origin
        delta = batch_means - (self.centers_[hit] - self.origin_)
        # Welford-style: SSE about the running mean, from distances to the old center.
        self.sse_[hit] += cost[hit] - (mass[hit] ** 2 / new_weights[hit]) * np.einsum("ij,ij->i", delta, delta)
        np.maximum(self.sse_, 0, out=self.sse_)
        self.centers_[hit] += delta * (mass[hit] / new_weights[hit])[:, None]
        self.weights_ = new_weights
        self.ages_ += batch_weight
        self.n_rows_seen_ += n
        self.weight_seen_ += batch_weight
        self._reseed_dead()
        self._refresh_working_copy()

    def _assign(self, X: Any, Xs: Any, x_sq: np.ndarray, wrow: np.ndarray, *,
                prepare: bool) -> tuple[np.ndarray, ...]:
        """Nearest kept center of each row, its squared distance, and per-center sums
        (relative to the origin), mass and cost of the batch: one matrix product and one
        pass over the rows. ``Xs`` is the batch relative to the origin with a column of
        ones appended when dense (filled here, with ``x_sq``, when ``prepare``), the batch
        itself when sparse (the origin is then folded into per-center constants).
        """
        n = Xs.shape[0]
        n_kept = self.centers_.shape[0]
        c32 = self._centers32
        c_sq = np.einsum("ij,ij->i", c32, c32)
        # argmin_c ||x - c||^2 = argmin_c (||c||^2 - 2 x.c): one matrix product per batch.
        if sp.issparse(Xs):
            scores = np.asarray(Xs @ (-2.0 * c32).T)
            scores += (c_sq + 2.0 * (c32 @ self.origin_.astype(np.float32)))[None, :]
            labels = np.argmin(scores, axis=1)
            d2 = scores[np.arange(n), labels].astype(np.float64)
            d2 += x_sq
            np.maximum(d2, 0, out=d2)
            onehot = sp.csr_matrix((wrow, (labels, np.arange(n))), shape=(n_kept, n))
            mass = np.bincount(labels, weights=wrow, minlength=n_kept)
            sums = np.asarray((onehot @ Xs).toarray(), dtype=np.float64) - mass[:, None] * self.origin_
            cost = np.bincount(labels, weights=wrow * d2, minlength=n_kept)
        else:
            labels = np.empty(n, dtype=np.int64)
            d2 = np.empty(n, dtype=np.float64)
            rhs = np.ascontiguousarray(np.concatenate([-2.0 * c32, c_sq[:, None]], axis=1).T)
            o32 = self.origin_.astype(np.float32)
            d = X.shape[1]

            def block(a: int, b: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
                m = b - a
                if prepare:
                    np.subtract(X[a:b], o32, out=Xs[a:b, :d])
                    Xs[a:b, d] = 1.0
                    np.einsum("ij,ij->i", Xs[a:b], Xs[a:b], out=x_sq[a:b])  # contiguous: faster
                    x_sq[a:b] -= 1.0  # the column of ones
                # Scores in slices of rows, into a buffer kept across batches: the slice's
                # scores stay in cache for the argmin, and no page of it is new.
                scores = self._scratch.get("scores", (min(m, _SCORE_ROWS), n_kept))
                dist = np.empty(m, dtype=np.float64)
                for i in range(a, b, _SCORE_ROWS):
                    j = min(i + _SCORE_ROWS, b)
                    part = np.matmul(Xs[i:j], rhs, out=scores[:j - i])
                    lab_part = np.argmin(part, axis=1)
                    labels[i:j] = lab_part
                    dist[i - a:j - a] = part[np.arange(j - i), lab_part]
                lab = labels[a:b]
                with np.errstate(invalid="ignore"):  # non-finite rows are reported by the caller
                    dist += x_sq[a:b]
                np.maximum(dist, 0, out=dist)
                d2[a:b] = dist
                wb = wrow[a:b]
                # One non-zero per column: the weighted one-hot assignment, built as CSC
                # without any sorting, so the sums are one sparse-dense product.
                onehot = sp.csc_matrix((wb.astype(np.float32), lab, np.arange(m + 1)), shape=(n_kept, m))
                sums = np.asarray(onehot @ Xs[a:b], dtype=np.float64)[:, :-1]
                mass = np.bincount(lab, weights=wb, minlength=n_kept)
                cost = np.bincount(lab, weights=wb * dist, minlength=n_kept)
                return sums, mass, cost

            parts = map_blocks(block, row_blocks(n))
            sums, mass, cost = parts[0]
            for more in parts[1:]:
                sums += more[0]
                mass += more[1]
                cost += more[2]
        return labels, d2, sums, mass, cost

    def _open_far_centers(self, X: Any, d2: np.ndarray, wrow: np.ndarray) -> bool:
        """Streaming k-means++: rows far from every center open centers of their own.

        A new region of the stream (drift, or a cluster first seen late) would otherwise
        only drag the nearest old centers toward it. Up to ``max(1, n_centers // 50)``
        far rows per batch, drawn with probability proportional to their squared
        distance, become centers; to stay within the budget, the pairs of centers that
        cost least to merge (``w_i w_j / (w_i + w_j) ||c_i - c_j||^2``) are merged first.
        """
        total = float(self.weights_.sum())
        if total <= 0:
            return False
        msd = float(self.sse_.sum()) / total
        far = np.flatnonzero((d2 > _FAR_RATIO * msd) & (wrow > 0))
        if far.size == 0 or msd <= 0:
            return False
        n_kept = self.centers_.shape[0]
        n_new = min(far.size, max(1, n_kept // 50), n_kept // 2)
        if n_new == 0:
            return False
        p = d2[far] * wrow[far]
        rows = np.sort(far[self.rng_.choice(far.size, size=n_new, replace=False, p=p / p.sum())])
        # Free n_new slots by merging the cheapest disjoint pairs of centers.
        pair_d2 = squared_distances(self.centers_, self.centers_)
        w = self.weights_
        with np.errstate(invalid="ignore", divide="ignore"):
            cost = np.outer(w, w) / (w[:, None] + w[None, :]) * pair_d2
        cost = np.nan_to_num(cost, nan=0.0)
        cost[np.tril_indices(n_kept)] = np.inf
        order = np.argsort(cost, axis=None, kind="stable")
        used = np.zeros(n_kept, dtype=bool)
        freed = []
        for flat in order:
            i, j = divmod(int(flat), n_kept)
            if used[i] or used[j]:
                continue
            used[i] = used[j] = True
            self._absorb(i, j)
            freed.append(j)
            if len(freed) == n_new:
                break
        self._place(np.asarray(freed), X[rows])
        self._refresh_working_copy()
        return True

    def _absorb(self, into: int, source: int) -> None:
        """Merge kept center ``source`` into ``into``: weights add, the center moves to
        the weighted mean, and the SSE gains the exact between-centers term."""
        wi, wj = self.weights_[into], self.weights_[source]
        total = wi + wj
        if total > 0 and wj > 0:
            diff = self.centers_[source] - self.centers_[into]
            self.sse_[into] += self.sse_[source] + (wi * wj / total) * float(diff @ diff)
            self.centers_[into] += diff * (wj / total)
            self.weights_[into] = total
        self.ages_[into] = max(self.ages_[into], self.ages_[source])

    def _place(self, slots: np.ndarray, rows: Any) -> None:
        """Put new centers, with no weight yet, on ``rows`` in ``slots``."""
        self.centers_[slots] = rows.toarray() if sp.issparse(rows) else rows
        self.weights_[slots] = 0.0
        self.sse_[slots] = 0.0
        self.ages_[slots] = 0.0

    def _reseed_dead(self) -> None:
        """Give the budget of centers that draw (almost) no rows to the busiest regions.

        A center is dead when its weight is below ``_RESEED_RATIO`` of what an average
        center gained since it was seeded (it was never hit, or its data faded away
        with the half-life). Its mass, sum and SSE go to its nearest live center
        (nothing is dropped), and it is reborn next to the live center of largest SSE,
        displaced by a small random step (``_SPLIT_STEP`` of its RMS radius), so the two split
        its rows (LBG-style splitting). A row itself would make a poor seed: in many
        dimensions a single row is far from every other, draws no rows and dies again.
        Rows far from every center are handled apart, by ``_open_far_centers``.
        """
        n_kept = self.centers_.shape[0]
        expected = self.ages_ / n_kept
        # Judged only after 8 average hits' worth of rows, so a new center has its
        # chance, and a few per batch at most, so no batch reshuffles the state.
        dead = np.flatnonzero((self.weights_ < _RESEED_RATIO * expected) & (expected >= 8.0))
        if dead.size == 0:
            return
        dead = dead[: max(1, n_kept // 50)]
        live = np.setdiff1d(np.arange(n_kept), dead)
        if live.size < dead.size:
            return
        near = live[np.argmin(squared_distances(self.centers_[dead], self.centers_[live]), axis=1)]
        for d, t in zip(dead.tolist(), near.tolist(), strict=True):
            self._absorb(t, d)
        busiest = live[np.argsort(-self.sse_[live], kind="stable")[: dead.size]]
        n_features = self.centers_.shape[1]
        radius = np.sqrt(self.sse_[busiest] / np.maximum(self.weights_[busiest], 1e-12) / n_features)
        step = self.rng_.standard_normal((dead.size, n_features)) * (_SPLIT_STEP * radius[:, None])
        self._place(dead, self.centers_[busiest] + step)
        self.weights_[dead] = 0.0
        self.sse_[dead] = 0.0
        self.ages_[dead] = 0.0

    def metrics(self) -> dict[str, float]:
        """Running training metrics: mean squared distance of the rows to their kept
        center (``msd``, SageMaker's name), and how many kept centers hold rows."""
        if not self.is_seeded:
            return {"buffered_rows": int(self.buffer_.shape[0])}
        total = float(self.weights_.sum())
        return {
            "msd": float(self.sse_.sum() / total) if total > 0 else float("nan"),
            "n_live_centers": int(np.count_nonzero(self.weights_ > 0)),
        }

    # -- merge ------------------------------------------------------------------------

    def _weighted_points(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(points, weights, sse, ages) of everything the state holds, buffer included."""
        if self.is_seeded:
            return self.centers_, self.weights_, self.sse_, self.ages_
        buf = self.buffer_.astype(np.float64)
        return buf, self.buffer_weights_, np.zeros(buf.shape[0]), np.full(buf.shape[0], self.weight_seen_)

    def merge(self, other: KMeansState) -> None:
        """Merge ``other`` into this state: union the kept centers, reduce to the budget.

        The union is reduced back to ``n_centers`` by weighted Lloyd iterations seeded
        with k-means++; SSEs are combined exactly for the centers merged.
        """
        if not isinstance(other, KMeansState):
            raise IncompatibleStateError(f"cannot merge a {type(other).__name__} into a K-Means state")
        if other.n_features_ == -1:
            return
        if self.n_features_ not in (-1, other.n_features_):
            raise IncompatibleStateError(
                f"cannot merge K-Means states of {self.n_features_} and {other.n_features_} features"
            )
        if other.n_centers != self.n_centers:
            raise IncompatibleStateError(
                f"cannot merge K-Means states keeping {self.n_centers} and {other.n_centers} centers; "
                "train both with the same n_clusters and extra_center_factor"
            )
        if self.n_features_ == -1:
            self._check_batch(np.zeros((0, other.n_features_)))
        if not self.is_seeded and not other.is_seeded:
            self.buffer_ = np.concatenate([self.buffer_, other.buffer_])
            self.buffer_weights_ = np.concatenate([self.buffer_weights_, other.buffer_weights_])
            self.n_rows_seen_ += other.n_rows_seen_
            self.weight_seen_ += other.weight_seen_
            if self.buffer_.shape[0] >= self.n_init_rows:
                self._seed_from_buffer()
            return
        if not self.is_seeded:
            self.origin_ = other.origin_.copy()
        p1, w1, s1, a1 = self._weighted_points()
        p2, w2, s2, a2 = other._weighted_points()
        points = np.concatenate([p1, p2])
        weights = np.concatenate([w1, w2])
        sse = np.concatenate([s1, s2])
        ages = np.concatenate([a1, a2])
        keep = weights > 0
        points, weights, sse, ages = points[keep], weights[keep], sse[keep], ages[keep]
        k = min(self.n_centers, points.shape[0])
        with blas_single_thread():  # small products: BLAS threads would only spin
            seeds = kmeans_plusplus(points, weights, k, self.rng_)
            centers, labels, _, _ = lloyd(points, weights, points[seeds], max_iter=20)
        d2 = ((points - centers[labels]) ** 2).sum(axis=1)
        self.weights_ = np.bincount(labels, weights=weights, minlength=k)
        self.sse_ = np.bincount(labels, weights=sse + weights * d2, minlength=k)
        self.ages_ = np.full(k, float(ages.max()) if ages.size else 0.0)
        self._set_centers(centers)
        self.buffer_ = np.zeros((0, self.n_features_), dtype=np.float32)
        self.buffer_weights_ = np.zeros(0)
        self.n_rows_seen_ += other.n_rows_seen_
        self.weight_seen_ += other.weight_seen_

    # -- arrays -----------------------------------------------------------------------

    def to_arrays(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        meta = {
            "hyperparameters": self.hyperparameters(),
            "n_features": self.n_features_,
            "n_rows_seen": self.n_rows_seen_,
            "weight_seen": self.weight_seen_,
            "rng": self.rng_.bit_generator.state,
        }
        arrays = {
            "centers": self.centers_,
            "weights": self.weights_,
            "sse": self.sse_,
            "ages": self.ages_,
            "origin": self.origin_,
            "buffer": self.buffer_,
            "buffer_weights": self.buffer_weights_,
        }
        return meta, arrays

    @classmethod
    def from_arrays(cls, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> KMeansState:
        state = cls(**meta["hyperparameters"])
        state.n_features_ = int(meta["n_features"])
        state.n_rows_seen_ = int(meta["n_rows_seen"])
        state.weight_seen_ = float(meta["weight_seen"])
        state.rng_.bit_generator.state = meta["rng"]
        state.weights_ = np.array(arrays["weights"], dtype=np.float64)
        state.sse_ = np.array(arrays["sse"], dtype=np.float64)
        state.ages_ = np.array(arrays["ages"], dtype=np.float64)
        state.buffer_ = np.array(arrays["buffer"], dtype=np.float32)
        state.buffer_weights_ = np.array(arrays["buffer_weights"], dtype=np.float64)
        state.origin_ = np.array(arrays["origin"], dtype=np.float64)
        state._set_centers(np.array(arrays["centers"], dtype=np.float64))
        return state

    # -- finalize -----------------------------------------------------------------------

    def model(self, n_clusters: int | None = None, *, n_trials: int | str = "auto",
              max_iter: int = 300, tol: float = 1e-4) -> KMeansModel:
        """Finalize to a model with ``n_clusters`` clusters (default: the state's).

        Deterministic for a given state and settings, and does not change the state.

        Parameters
        ----------
        n_clusters : int, default=the state's n_clusters
            Clusters of the model: any number up to the centers kept.
        n_trials : int or "auto", default="auto"
            Restarts of the weighted k-means++ and Lloyd reduction of the kept centers;
            the best is kept ("auto": 10).
        max_iter : int, default=300
            Lloyd iterations per restart.
        tol : float, default=1e-4
            Lloyd stops when centers move less than this times the mean variance.
        """
        k = self.n_clusters if n_clusters is None else n_clusters
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise InvalidParameterError(f"n_clusters={k!r} must be an integer >= 1")
        if k > self.n_centers:
            factor = math.ceil(k / self.n_clusters * 100) / 100
            raise InvalidParameterError(
                f"n_clusters={k} is more than the {self.n_centers} centers kept in this state; "
                f"train with extra_center_factor >= {factor} or choose n_clusters <= {self.n_centers}"
            )
        trials = 10 if n_trials == "auto" else int(n_trials)
        if trials < 1:
            raise InvalidParameterError(f"n_trials={n_trials!r} must be 'auto' or an integer >= 1")
        if self.n_features_ == -1:
            raise NotFittedError("this K-Means state has seen no data; update it with at least one batch")
        points, weights, sse, _ = self._weighted_points()
        keep = weights > 0
        points, weights, sse = points[keep], weights[keep], sse[keep]
        if points.shape[0] < k:
            raise DataError(
                f"n_samples={points.shape[0]} should be >= n_clusters={k}: the state holds only "
                f"{points.shape[0]} distinct weighted points; stream more rows or choose fewer clusters"
            )
        rng = np.random.default_rng([self.seed, k])
        with blas_single_thread():  # small products: BLAS threads would only spin
            centers, labels, inertia, n_iter = best_of_trials(
                points, weights, k, rng, n_trials=trials, max_iter=max_iter, tol=tol
            )
        sizes = np.bincount(labels, weights=weights, minlength=k)
        return KMeansModel(
            centers.astype(np.float32),
            cluster_weights=sizes,
            inertia=float(inertia + sse.sum()),
            n_iter=n_iter,
            n_rows_seen=self.n_rows_seen_,
        )
