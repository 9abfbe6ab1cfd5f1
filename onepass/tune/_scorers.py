"""Validation scores of many models of one kind, from one read of a validation source.

A *scorer* takes the candidate models (finalized from one state, or one per trial),
accumulates what it needs batch by batch, and reports every metric for every model.
One scorer per model kind, registered in :data:`SCORERS`; the tuner never branches on
the kind. ``onepass evaluate`` reads the same scorers (:meth:`Scorer.report`, with
``detailed=True`` for what only a report shows: a confusion matrix, curves), so each
measure has one definition across ``tune``, ``evaluate``, ``inspect`` and the metrics
file (``train --test``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp

from onepass._parallel import map_blocks, row_blocks
from onepass.batch import Batch
from onepass.errors import InvalidParameterError
from onepass.evaluation._units import is_probability_score, raw_threshold

__all__ = ["SCORERS", "Scorer", "register_scorer", "scorer_for"]

SILHOUETTE_SAMPLE = 2000  # rows kept (reservoir sample) for the silhouette, O(n^2)


class Scorer:
    """Base of the per-kind scorers.

    ``metrics`` maps each metric name to ``"min"`` or ``"max"`` (which way is better);
    ``default_metric`` is the one a leaderboard ranks by unless told otherwise.
    ``detailed`` asks for what only :meth:`report` shows (kept in memory fixed by the
    models, never by the rows).
    """

    kind: ClassVar[str]
    metrics: ClassVar[dict[str, str]]
    default_metric: ClassVar[str]
    needs_labels: ClassVar[bool] = False

    def __init__(self, models: Sequence[Any], *, seed: int = 0, detailed: bool = False) -> None:
        self.models = list(models)
        self.n_rows = 0
        self.rng = np.random.default_rng(seed)
        self.detailed = detailed

    @classmethod
    def default_for(cls, obj: Any) -> str:
        """The metric ranked by unless told otherwise, for this state or model."""
        return cls.default_metric

    def update(self, batch: Batch) -> None:
        raise NotImplementedError

    def results(self) -> list[dict[str, float]]:
        raise NotImplementedError

    def report(self, index: int = 0) -> dict[str, Any]:
        """Everything measured of model ``index``: ``measures`` (name -> number, the
        :meth:`results` and more), ``details`` (JSON-able tables: a confusion matrix,
        cluster sizes, per-component variance) and ``curves`` (arrays to draw)."""
        return {"measures": dict(self.results()[index]), "details": {}, "curves": {}}

    @staticmethod
    def adjust(model: Any, record: dict[str, Any], metric: str) -> Any:
        """The chosen model as written with ``--out`` (a scorer may tune it, e.g. a threshold)."""
        return model


SCORERS: dict[str, type[Scorer]] = {}


def register_scorer(cls: type[Scorer]) -> type[Scorer]:
    SCORERS[cls.kind] = cls
    return cls


def scorer_for(kind: str) -> type[Scorer]:
    try:
        return SCORERS[kind]
    except KeyError:
        raise InvalidParameterError(
            f"no validation scorer for models of kind {kind!r}; tunable kinds: {', '.join(sorted(SCORERS))}"
        ) from None


class _Reservoir:
    """A uniform sample of at most ``size`` rows of a stream (reservoir sampling: the
    i-th row gets in with probability size / i, in place of a random one)."""

    def __init__(self, size: int, rng: np.random.Generator) -> None:
        self.size, self.rng = size, rng
        self.rows: np.ndarray | None = None
        self.filled = 0
        self.seen = 0

    def add(self, X: Any) -> None:
        dense = np.asarray(X.toarray() if sp.issparse(X) else X, dtype=np.float64)
        if self.rows is None:
            self.rows = np.empty((self.size, dense.shape[1]))
        room = min(self.size - self.filled, dense.shape[0])
        self.rows[self.filled : self.filled + room] = dense[:room]
        self.filled += room
        rest = dense[room:]
        index = self.seen + room + 1 + np.arange(rest.shape[0])  # 1-based position in the stream
        for r in np.flatnonzero(self.rng.random(rest.shape[0]) < self.size / index):
            self.rows[int(self.rng.integers(0, self.size))] = rest[r]
        self.seen += dense.shape[0]

    def array(self) -> np.ndarray:
        return np.zeros((0, 0)) if self.rows is None else self.rows[: self.filled]


_SCORE_CELLS = 1 << 17  # (centers x rows) scored at a time: 512 KB of float32, kept in cache
_SILHOUETTE_COLUMNS = 256  # distance-matrix columns at a time: 2 MB of float32, kept in cache


def _cluster_distance_sums(sample: np.ndarray, onehot: sp.csr_matrix) -> np.ndarray:
    """``onehot @ D``: for each (model, cluster) row of ``onehot``, the total Euclidean
    distance of every sample row to that cluster's rows, shape (n_clusters_total, n).

    ``D``, the sample's distance matrix, is made a block of columns at a time (float64
    products, stored float32) and every model's clusters sum that block while it is in
    cache: one pass over ``D`` for all models instead of one per model. Two halves of
    the columns run in parallel; each column is summed the same way whatever the split.
    """
    n = sample.shape[0]
    centered = sample - sample.mean(axis=0)
    sq = np.einsum("ij,ij->i", centered, centered)
    out = np.empty((onehot.shape[0], n), dtype=np.float32)

    def columns(start: int, stop: int) -> None:
        for a in range(start, stop, _SILHOUETTE_COLUMNS):
            b = min(a + _SILHOUETTE_COLUMNS, stop)
            d2 = centered @ centered[a:b].T
            d2 *= -2
            d2 += sq[:, None]
            d2 += sq[None, a:b]
            np.maximum(d2, 0, out=d2)
            d2[np.arange(a, b), np.arange(b - a)] = 0.0  # a row's distance to itself
            out[:, a:b] = onehot @ np.sqrt(d2).astype(np.float32)

    half = n // 2 if n >= 2 * _SILHOUETTE_COLUMNS else n
    map_blocks(columns, [(0, half), (half, n)] if half < n else [(0, n)])
    return out


def _silhouette(sums: np.ndarray, labels: np.ndarray) -> float:
    """Mean silhouette (Rousseeuw 1987) from ``sums``, shape (n, k): each row's total
    distance to each cluster (labels ``0..k-1``, every one used). Rows alone in their
    cluster score 0, as in scikit-learn."""
    n, k = sums.shape
    rows = np.arange(n)
    sizes = np.bincount(labels, minlength=k).astype(np.float64)
    own = sizes[labels] - 1
    with np.errstate(invalid="ignore", divide="ignore"):
        a = sums[rows, labels] / own
        means = sums / sizes
    means[rows, labels] = np.inf
    b = means.min(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        s = (b - a) / np.maximum(a, b)
    s[own == 0] = 0.0
    return float(np.nan_to_num(s).mean())


def _silhouettes(sample: np.ndarray, labelings: list[np.ndarray]) -> list[float]:
    """The mean silhouette of each labeling of ``sample`` (NaN unless it has from 2 to
    n - 1 clusters), all from one pass over the sample's distance matrix."""
    scores = [math.nan] * len(labelings)
    compact, scored = [], []
    for i, labels in enumerate(labelings):
        _, inverse = np.unique(labels, return_inverse=True)
        if sample.shape[0] and 2 <= inverse.max(initial=-1) + 1 < sample.shape[0]:
            compact.append(inverse.ravel())
            scored.append(i)
    if not scored:
        return scores
    offsets = np.cumsum([0] + [int(c.max()) + 1 for c in compact])
    n = sample.shape[0]
    onehot = sp.csr_matrix((np.ones(n * len(compact), dtype=np.float32),
                            (np.concatenate([c + o for c, o in zip(compact, offsets, strict=False)]),
                             np.tile(np.arange(n), len(compact)))), shape=(int(offsets[-1]), n))
    sums = _cluster_distance_sums(sample, onehot)
    for i, labels, a, b in zip(scored, compact, offsets[:-1], offsets[1:], strict=True):
        scores[i] = _silhouette(sums[a:b].T.astype(np.float64), labels)
    return scores


@register_scorer
class KMeansScorer(Scorer):
    """K-Means on validation rows.

    - ``inertia``: the sum of squared distances of the rows to their closest center,
      as the model's ``inertia_`` and :meth:`KMeansModel.inertia` define it (lower is
      better; it always falls as k grows, so pick with ``select="elbow"``);
    - ``inertia_per_row``: the same over the number of rows (the mean squared
      distance), which compares across data sets of different sizes;
    - ``bic``: the Bayesian information criterion of the spherical-Gaussian mixture
      the clustering implies (X-means, Pelleg & Moore 2000): per-dimension variance
      ``SSE / (d (N - k))``, ``(k - 1) + k d + 1`` free parameters; lower is better, and
      it stops falling where more clusters only split real ones;
    - ``silhouette``: mean silhouette on a uniform sample of 2,000 validation rows
      (higher is better; needs k >= 2).

    Each model's distances are float32 products with the rows taken relative to one
    origin shared by all models (the mean of their centers), a column of ones
    appended: ``||c||^2 - 2 x.c`` in one product, ``||x||^2`` once per row for all
    models. The two row blocks of a batch run in parallel (:mod:`onepass._parallel`).
    The silhouette's distance matrix is made once, for all models.
    """

    kind = "kmeans"
    metrics = {"bic": "min", "inertia": "min", "inertia_per_row": "min", "silhouette": "max"}
    default_metric = "bic"

    def __init__(self, models: Sequence[Any], *, seed: int = 0, detailed: bool = False) -> None:
        super().__init__(models, seed=seed, detailed=detailed)
        self.sse = np.zeros(len(self.models))
        self.counts = [np.zeros(m.n_clusters) for m in self.models]
        self.sample = _Reservoir(SILHOUETTE_SAMPLE, self.rng)
        self.n_features = self.models[0].n_features if self.models else 0
        centers = [np.asarray(m.cluster_centers_, dtype=np.float64) for m in self.models]
        self.origin = np.concatenate(centers).mean(axis=0) if centers else np.zeros(0)
        # Per model, (k, d + 1): [-2 c, ||c||^2] relative to the origin, so that a
        # product with [x, 1] gives ||x - c||^2 - ||x||^2.
        shifted = [c - self.origin for c in centers]
        self.rhs = [np.ascontiguousarray(np.column_stack([-2.0 * c, np.einsum("ij,ij->i", c, c)]), dtype=np.float32)
                    for c in shifted]

    def update(self, batch: Batch) -> None:
        X = batch.X
        for model in self.models:
            model._check(X)
        if sp.issparse(X):
            parts = map_blocks(lambda a, b: self._score_sparse(X[a:b]), row_blocks(X.shape[0]))
        else:
            parts = map_blocks(lambda a, b: self._score_dense(X[a:b]), row_blocks(X.shape[0]))
        for sse, counts in parts:  # in block order: the same sums on any machine
            self.sse += sse
            for mine, more in zip(self.counts, counts, strict=True):
                mine += more
        self.sample.add(X)
        self.n_rows += X.shape[0]

    def _score_dense(self, X: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
        """(SSE, rows per cluster) of each model on the rows ``X``."""
        n, d = X.shape
        rows_t = np.empty((d + 1, n), dtype=np.float32)  # [x - origin, 1] as columns
        np.subtract(X.T, self.origin[:, None].astype(np.float32), out=rows_t[:d])
        rows_t[d] = 1.0
        x_sq = np.einsum("ij,ij->j", rows_t[:d], rows_t[:d])
        sse = np.zeros(len(self.models))
        counts = []
        for i, rhs in enumerate(self.rhs):
            k = rhs.shape[0]
            per_cluster = np.zeros(k, dtype=np.int64)
            # Columns a slice at a time, so that the product is still in cache when
            # it is reduced: the reductions cost as much as the product otherwise.
            step = max(512, min(n, _SCORE_CELLS // k))
            scores_buf = np.empty((k, step), dtype=np.float32)
            closest_buf = np.empty((k, step), dtype=bool)
            for a in range(0, n, step):
                b = min(a + step, n)
                scores = np.matmul(rhs, rows_t[:, a:b], out=scores_buf[:, : b - a])  # ||x - c||^2 - ||x||^2
                # The minimum over the centers (axis 0) is a vectorized pass over whole
                # rows of ``scores``, many times faster than an argmin per column.
                best = scores.min(axis=0)
                closest = np.equal(scores, best, out=closest_buf[:, : b - a])
                hits = np.count_nonzero(closest, axis=1)
                if hits.sum() != b - a:  # a tie (or a NaN): count each row once, at its first closest center
                    hits = np.bincount(np.argmin(scores, axis=0), minlength=k)
                per_cluster += hits
                best += x_sq[a:b]
                np.maximum(best, 0, out=best)
                sse[i] += float(best.sum(dtype=np.float64))
            counts.append(per_cluster)
        return sse, counts

    def _score_sparse(self, X: Any) -> tuple[np.ndarray, list[np.ndarray]]:
        sse = np.empty(len(self.models))
        counts = []
        for i, model in enumerate(self.models):
            d2 = model.squared_distances(X)
            labels = np.argmin(d2, axis=1)
            sse[i] = float(d2[np.arange(d2.shape[0]), labels].astype(np.float64).sum())
            counts.append(np.bincount(labels, minlength=model.n_clusters))
        return sse, counts

    def results(self) -> list[dict[str, float]]:
        sample = self.sample.array()
        labelings = [np.argmin(model.squared_distances(sample), axis=1) if sample.size else np.zeros(0, dtype=np.int64)
                     for model in self.models]
        silhouettes = _silhouettes(sample, labelings)
        out = []
        n, d = self.n_rows, self.n_features
        for model, sse, counts, silhouette in zip(self.models, self.sse, self.counts, silhouettes, strict=True):
            k = model.n_clusters
            rec = {"inertia": float(sse), "inertia_per_row": sse / n if n else math.nan}
            if n > k and sse > 0:
                variance = sse / (d * (n - k))
                used = counts[counts > 0]
                loglik = float((used * np.log(used / n)).sum()) - n * d / 2 * math.log(2 * math.pi * variance) - d * (n - k) / 2
                params = (k - 1) + k * d + 1
                rec["bic"] = -2 * loglik + params * math.log(n)
            else:
                rec["bic"] = math.nan
            rec["silhouette"] = silhouette
            out.append(rec)
        return out

    def report(self, index: int = 0) -> dict[str, Any]:
        """The measures, and each cluster's rows (``cluster_sizes``)."""
        out = super().report(index)
        out["details"]["cluster_sizes"] = [int(c) for c in self.counts[index]]
        return out


@register_scorer
class PCAScorer(Scorer):
    """PCA on validation rows.

    - ``reconstruction_error``: mean squared distance of a row to its reconstruction
      (lower is better; falls with every component, so pick with ``select="elbow"`` or
      a ``target``);
    - ``validation_explained_variance``: the explained variance ratio of the validation
      rows, summed over the components: each component's share of the rows' squared
      distances to the model's mean, ``sum_i ((x_i - mean) . c_j)^2 / sum_i
      ||x_i - mean||^2`` (the definition of the training ``explained_variance_ratio_``,
      which it equals on the training rows of an exact PCA); ``1 -`` it is the
      reconstruction error over the rows' mean squared distance to the model's mean;
    - ``explained_variance_ratio``: the share of the training variance the model's
      components explain (from the state itself); with ``target=0.95``, the smallest
      number of components reaching 95%.

    :meth:`report` gives the validation ratio of each component as well.

    Models finalized from one state share their leading components, so one projection
    onto the largest serves all (checked; otherwise each model projects on its own).
    """

    kind = "pca"
    metrics = {"reconstruction_error": "min", "validation_explained_variance": "max", "explained_variance_ratio": "max"}
    default_metric = "reconstruction_error"

    def __init__(self, models: Sequence[Any], *, seed: int = 0, detailed: bool = False) -> None:
        super().__init__(models, seed=seed, detailed=detailed)
        self.captured = [np.zeros(m.n_components) for m in self.models]  # sum of squared projections per component
        self.deviation = np.zeros(len(self.models))  # sum of squared distances to each model's mean
        largest = max(self.models, key=lambda m: m.n_components)
        # Models finalized from one state share their leading components: one projection
        # on the largest serves all (kept in slot 0)
        self.nested = all(
            np.array_equal(m.components_, largest.components_[: m.n_components]) and np.array_equal(m.mean_, largest.mean_)
            for m in self.models
        )
        self.largest = largest
        if self.nested:
            self.captured[0] = np.zeros(largest.n_components)

    def update(self, batch: Batch) -> None:
        X = batch.X
        dense = np.asarray(X.toarray() if sp.issparse(X) else X, dtype=np.float64)
        for model in self.models:
            if model.n_features != dense.shape[1]:
                model.transform(X[:0])  # raises the model's own FeatureCountError
        for slot, model in [(0, self.largest)] if self.nested else enumerate(self.models):
            centered = dense - model.mean_
            Z = centered @ model.components_.T
            self.captured[slot] += np.einsum("ij,ij->j", Z, Z)
            self.deviation[slot] += float(np.einsum("ij,ij->", centered, centered))
        self.n_rows += dense.shape[0]

    def _sums(self, i: int) -> tuple[np.ndarray, float]:
        """(sum of squared projections per component, sum of squared distances to the
        mean) of model ``i``."""
        if self.nested:
            return self.captured[0][: self.models[i].n_components], float(self.deviation[0])
        return self.captured[i], float(self.deviation[i])

    def results(self) -> list[dict[str, float]]:
        n = self.n_rows
        out = []
        for i, model in enumerate(self.models):
            captured, total = self._sums(i)
            residual = max(total - float(captured.sum()), 0.0)
            out.append({
                "reconstruction_error": residual / n if n else math.nan,
                "validation_explained_variance": float(captured.sum()) / total if n and total > 0 else math.nan,
                "explained_variance_ratio": float(np.sum(model.explained_variance_ratio_)),
            })
        return out

    def report(self, index: int = 0) -> dict[str, Any]:
        """The measures, and each component's ratio on these rows and in training."""
        out = super().report(index)
        captured, total = self._sums(index)
        ratios = captured / total if total > 0 else np.full(captured.shape, math.nan)
        out["details"]["components"] = [
            {"component": j, "explained_variance_ratio": float(r),
             "training_explained_variance_ratio": float(t)}
            for j, (r, t) in enumerate(zip(ratios, self.models[index].explained_variance_ratio_, strict=True))]
        return out


_AUC_BINS = 1 << 14  # score histogram bins (in raw-score space, [-20, 20]) per model and class
_AUC_RANGE = 20.0
_CALIBRATION_BINS = 10
_RESIDUAL_SAMPLE = 2000  # (predicted, actual) pairs kept for a regressor's residual plot


def _bins(F: np.ndarray) -> np.ndarray:
    """Each raw score's histogram bin: [-20, 20] cut in equal bins, beyond clipped."""
    scaled = (np.clip(F, -_AUC_RANGE, _AUC_RANGE) + _AUC_RANGE) / (2 * _AUC_RANGE) * (_AUC_BINS - 1)
    return np.clip(scaled.astype(np.int64), 0, _AUC_BINS - 1)


#: each bin's lower edge, a raw score: "predict 1 at or above bin b" is the threshold edges[b]
_EDGES = np.arange(_AUC_BINS) / (_AUC_BINS - 1) * (2 * _AUC_RANGE) - _AUC_RANGE


def _ratio(a: float, b: float) -> float:
    return a / b if b else math.nan


@register_scorer
class LinearLearnerScorer(Scorer):
    """Linear Learner on labelled validation rows (the source's ``label_column``).

    Binary: ``auc`` (default, from per-model score histograms of 16,384 bins over raw
    scores -20..20), ``cross_entropy`` (the log loss: logistic loss only), and
    ``accuracy`` and ``f1`` at the decision threshold that maximizes each on these rows
    — **threshold tuning**: the threshold is reported (``threshold_accuracy``,
    ``threshold_f1``) in the units of the score ``predict`` writes (a probability for
    logistic loss), and the model written with ``--out`` carries the one of the metric
    ranked by (``accuracy`` or ``f1``), so that its accuracy or F1 on these rows is the
    one reported. Multiclass: ``accuracy`` (default), ``cross_entropy``. Regression:
    ``rmse`` (default), ``mae``, ``r2``.

    :meth:`report` measures one model at its *own* threshold: ``accuracy``, ``f1``,
    ``precision``, ``recall`` and the confusion matrix (exact counts, not from the
    histogram), with the ROC and calibration curves from the histogram; multiclass the
    confusion matrix and macro-averaged precision, recall and F1; regression a sample
    of (predicted, actual) pairs for a residual plot.
    """

    kind = "linear-learner"
    needs_labels = True
    metrics = {"auc": "max", "accuracy": "max", "f1": "max", "cross_entropy": "min",
               "rmse": "min", "mae": "min", "r2": "max"}
    default_metric = "auc"

    @classmethod
    def default_for(cls, obj: Any) -> str:
        kind = getattr(obj, "predictor_type", "binary_classifier")
        return {"binary_classifier": "auc", "multiclass_classifier": "accuracy", "regressor": "rmse"}[kind]

    def __init__(self, models: Sequence[Any], *, seed: int = 0, detailed: bool = False) -> None:
        super().__init__(models, seed=seed, detailed=detailed)
        m = len(self.models)
        self.kind_ = self.models[0].predictor_type
        self.hist = np.zeros((m, 2, _AUC_BINS))  # binary: per model, negatives / positives by score bin
        self.log_loss = np.zeros(m)
        self.correct = np.zeros(m)
        self.abs_err = np.zeros(m)
        self.sq_err = np.zeros(m)
        self.y_sum = 0.0
        self.y_sq = 0.0
        # detailed: confusion counts at each model's own threshold (binary 2 x 2, multiclass
        # n_classes x n_classes, made at the first batch), a regressor's residual sample
        self.confusion: list[np.ndarray | None] = [None] * m
        self.pairs = _Reservoir(_RESIDUAL_SAMPLE, self.rng)

    def update(self, batch: Batch) -> None:
        if batch.y is None:
            raise InvalidParameterError("scoring Linear Learner needs labelled validation rows: give --label-column")
        y = np.asarray(batch.y, dtype=np.float64)
        for i, model in enumerate(self.models):
            F = np.asarray(model.decision_function(batch.X), dtype=np.float64)
            if self.kind_ == "binary_classifier":
                pos = y > 0.5
                bins = _bins(F)
                self.hist[i, 0] += np.bincount(bins[~pos], minlength=_AUC_BINS)
                self.hist[i, 1] += np.bincount(bins[pos], minlength=_AUC_BINS)
                if model.loss == "logistic":  # log(1 + e^-F) for positives, log(1 + e^F) for negatives
                    self.log_loss[i] += float(np.logaddexp(0, np.where(pos, -F, F)).sum())
                else:
                    self.log_loss[i] = math.nan
                if self.detailed:
                    predicted = F >= model.threshold_  # as the model's predicted_label
                    self._count(i, 2, pos.astype(np.int64), predicted.astype(np.int64))
            elif self.kind_ == "multiclass_classifier":
                labels = y.astype(np.int64)
                shifted = F - F.max(axis=1, keepdims=True)
                log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
                self.log_loss[i] -= float(log_p[np.arange(len(labels)), labels].sum())
                self.correct[i] += float((F.argmax(axis=1) == labels).sum())
                if self.detailed:
                    self._count(i, F.shape[1], labels, F.argmax(axis=1))
            else:
                err = F - y
                self.abs_err[i] += float(np.abs(err).sum())
                self.sq_err[i] += float((err * err).sum())
                if self.detailed and i == 0:
                    self.pairs.add(np.column_stack([F, y]))
        self.y_sum += float(y.sum())
        self.y_sq += float((y * y).sum())
        self.n_rows += len(y)

    def _count(self, i: int, n_classes: int, actual: np.ndarray, predicted: np.ndarray) -> None:
        if self.confusion[i] is None:
            self.confusion[i] = np.zeros((n_classes, n_classes), dtype=np.int64)
        cells = self.confusion[i]
        if actual.size and (actual.min() < 0 or actual.max() >= n_classes):
            bad = actual[(actual < 0) | (actual >= n_classes)][0]
            raise InvalidParameterError(f"a label {bad} outside the model's classes 0..{n_classes - 1}")
        cells += np.bincount(actual * n_classes + predicted, minlength=n_classes * n_classes).reshape(cells.shape)

    def _binary(self, i: int) -> dict[str, float]:
        neg, pos = self.hist[i]
        n_neg, n_pos = neg.sum(), pos.sum()
        rec: dict[str, float] = {}
        if n_neg and n_pos:  # P(score of a positive > a negative's), ties half
            below = np.cumsum(neg) - neg
            rec["auc"] = float((pos * (below + 0.5 * neg)).sum() / (n_neg * n_pos))
        else:
            rec["auc"] = math.nan
        # Predict positive at or above bin b: counts for every threshold at once.
        tp = np.cumsum(pos[::-1])[::-1]
        fp = np.cumsum(neg[::-1])[::-1]
        acc = (tp + (n_neg - fp)) / max(n_neg + n_pos, 1)
        with np.errstate(invalid="ignore", divide="ignore"):
            f1 = np.nan_to_num(2 * tp / (2 * tp + fp + (n_pos - tp)))
        best_acc, best_f1 = int(np.argmax(acc)), int(np.argmax(f1))
        shown = self._shown_edges(self.models[i])
        rec.update(accuracy=float(acc[best_acc]), f1=float(f1[best_f1]),
                   threshold_accuracy=float(shown[best_acc]), threshold_f1=float(shown[best_f1]))
        rec["cross_entropy"] = self.log_loss[i] / self.n_rows if self.n_rows else math.nan
        return rec

    @staticmethod
    def _shown_edges(model: Any) -> np.ndarray:
        """The bins' thresholds in the units of ``predict``'s score (probabilities for
        logistic loss: :func:`onepass.evaluation._units.shown_threshold`)."""
        return 1.0 / (1.0 + np.exp(-_EDGES)) if is_probability_score(model.loss) else _EDGES

    def results(self) -> list[dict[str, float]]:
        out = []
        n = self.n_rows
        for i, _model in enumerate(self.models):
            if self.kind_ == "binary_classifier":
                out.append(self._binary(i))
            elif self.kind_ == "multiclass_classifier":
                out.append({"accuracy": self.correct[i] / n, "cross_entropy": self.log_loss[i] / n})
            else:
                ss = self.y_sq - self.y_sum**2 / n
                out.append({"rmse": math.sqrt(self.sq_err[i] / n), "mae": self.abs_err[i] / n,
                            "r2": 1 - self.sq_err[i] / ss if ss > 0 else math.nan})
        return out

    def report(self, index: int = 0) -> dict[str, Any]:
        """Model ``index`` at its own threshold (needs ``detailed=True``)."""
        out = super().report(index)
        measures, details, curves = out["measures"], out["details"], out["curves"]
        cells = self.confusion[index]
        if self.kind_ == "regressor":
            pairs = self.pairs.array()
            curves["predicted"], curves["actual"] = (pairs[:, 0], pairs[:, 1]) if pairs.size else ([], [])
            return out
        if cells is None:
            return out
        details["confusion_matrix"] = cells.tolist()  # rows: actual class, columns: predicted
        total = float(cells.sum())
        if self.kind_ == "binary_classifier":
            (tn, fp), (fn, tp) = cells.astype(np.float64)
            precision, recall = _ratio(tp, tp + fp), _ratio(tp, tp + fn)
            at_threshold = {"accuracy": _ratio(tp + tn, total), "f1": _ratio(2 * tp, 2 * tp + fp + fn),
                            "precision": precision, "recall": recall}
            out["measures"] = measures = {"auc": measures["auc"], "cross_entropy": measures["cross_entropy"],
                                          **at_threshold}
            curves.update(self._curves(index))
        else:
            tp = np.diag(cells).astype(np.float64)
            with np.errstate(invalid="ignore", divide="ignore"):
                precision = tp / cells.sum(axis=0)
                recall = tp / cells.sum(axis=1)
                f1 = 2 * tp / (cells.sum(axis=0) + cells.sum(axis=1))
            measures.update(macro_precision=float(np.nanmean(precision)) if np.isfinite(precision).any() else math.nan,
                            macro_recall=float(np.nanmean(recall)) if np.isfinite(recall).any() else math.nan,
                            macro_f1=float(np.nanmean(f1)) if np.isfinite(f1).any() else math.nan)
        return out

    def _curves(self, i: int) -> dict[str, Any]:
        """ROC (one point per histogram bin) and, for probabilities, the calibration curve."""
        neg, pos = self.hist[i]
        tp = np.concatenate([np.cumsum(pos[::-1])[::-1], [0.0]])
        fp = np.concatenate([np.cumsum(neg[::-1])[::-1], [0.0]])
        out: dict[str, Any] = {"roc_fpr": fp / max(neg.sum(), 1.0), "roc_tpr": tp / max(pos.sum(), 1.0)}
        if is_probability_score(self.models[i].loss):
            width = _EDGES[1] - _EDGES[0]
            p = 1.0 / (1.0 + np.exp(-(_EDGES + width / 2)))  # each bin's middle, as a probability
            group = np.minimum((p * _CALIBRATION_BINS).astype(np.int64), _CALIBRATION_BINS - 1)
            rows = np.bincount(group, weights=neg + pos, minlength=_CALIBRATION_BINS)
            hits = np.bincount(group, weights=pos, minlength=_CALIBRATION_BINS)
            mean_p = np.bincount(group, weights=(neg + pos) * p, minlength=_CALIBRATION_BINS)
            kept = rows > 0
            out.update(calibration_predicted=mean_p[kept] / rows[kept], calibration_observed=hits[kept] / rows[kept],
                       calibration_rows=rows[kept])
        return out

    @staticmethod
    def adjust(model: Any, record: dict[str, Any], metric: str) -> Any:
        """The chosen model with the decision threshold tuned for ``metric`` (the record
        shows it as ``predict``'s score; the model keeps a raw score)."""
        key = f"threshold_{metric}"
        if key in record and record[key] is not None and math.isfinite(record[key]):
            model.threshold_ = raw_threshold(record[key], model.loss)
        return model


@register_scorer
class FactorizationMachinesScorer(LinearLearnerScorer):
    """Factorization Machines on labelled validation rows: the metrics of Linear Learner's
    binary classifiers and regressors (``auc``, ``cross_entropy``, ``accuracy`` and ``f1``
    with threshold tuning; ``rmse``, ``mae``, ``r2``), from the same scores."""

    kind = "factorization-machines"


@register_scorer
class TopicScorer(Scorer):
    """Topic models (NTM) on held-out documents, as the model's own ``evaluate`` measures
    them, summed batch by batch:

    - ``perplexity``: ``exp(total loss / words)`` (the default; lower is better), an
      upper bound of the documents' perplexity (NVDM's);
    - ``total_loss``: the mean per document of the words' negative log-likelihood and
      the KL divergence from the prior;
    - ``npmi``: the mean over topics of their top-10 words' NPMI coherence over these
      documents (from the co-document counts of the top words, O((topics x 10)^2));
    - ``topic_uniqueness``: how little the topics' top words repeat (from the model).

    With batch norm a batch of documents is normalized by its own statistics, as
    :meth:`NTMModel.losses` does: the losses depend a little on how the rows are cut.
    """

    kind = "ntm"
    metrics = {"perplexity": "min", "total_loss": "min", "npmi": "max", "topic_uniqueness": "max"}
    default_metric = "perplexity"

    def __init__(self, models: Sequence[Any], *, seed: int = 0, detailed: bool = False) -> None:
        from onepass.algorithms.ntm._quality import top_word_columns

        super().__init__(models, seed=seed, detailed=detailed)
        m = len(self.models)
        self.loss = np.zeros(m)
        self.words = 0.0
        self.top_n = [min(10, model.n_features) for model in self.models]
        self.columns = [top_word_columns(model.topic_word_, n) if n >= 2 else None
                        for model, n in zip(self.models, self.top_n, strict=True)]
        self.co = [None if c is None else np.zeros((len(c[0]), len(c[0]))) for c in self.columns]

    def update(self, batch: Batch) -> None:
        from onepass.algorithms.ntm._quality import co_document_counts

        for i, model in enumerate(self.models):
            X = model._check(batch.X)
            if X.shape[0] == 0:
                continue
            recon, kl = model.losses(X)
            self.loss[i] += float((recon + kl).sum())
            if self.columns[i] is not None:
                self.co[i] += co_document_counts(X, self.columns[i][0])
        self.words += float(batch.X.sum())
        self.n_rows += batch.n_rows

    def results(self) -> list[dict[str, float]]:
        from onepass.algorithms.ntm._quality import npmi_from_counts, topic_uniqueness

        n = self.n_rows
        out = []
        for i, model in enumerate(self.models):
            rec = {"perplexity": float(np.exp(self.loss[i] / max(self.words, 1e-12))) if n else math.nan,
                   "total_loss": self.loss[i] / n if n else math.nan}
            if self.columns[i] is not None:
                rec["npmi"] = float(np.mean(npmi_from_counts(self.co[i], n, self.columns[i][1]))) if n else math.nan
                rec["topic_uniqueness"] = float(topic_uniqueness(model.topic_word_, n=self.top_n[i]))
            out.append(rec)
        return out

    def report(self, index: int = 0) -> dict[str, Any]:
        """The measures, and each topic's top words and NPMI."""
        from onepass.algorithms.ntm._quality import npmi_from_counts

        out = super().report(index)
        model = self.models[index]
        per_topic = (npmi_from_counts(self.co[index], self.n_rows, self.columns[index][1])
                     if self.columns[index] is not None and self.n_rows else [math.nan] * model.num_topics)
        out["details"]["topics"] = [{"topic": k, "npmi": float(v), "top_words": list(words)}
                                    for k, (v, words) in enumerate(zip(per_topic, model.top_words_, strict=True))]
        return out


@register_scorer
class ForecastScorer(Scorer):
    """Forecasters (DeepAR) on validation series: each series' last ``prediction_length``
    points are forecast from the points before them, and scored as SageMaker DeepAR's
    test channel scores them: ``mean_wQuantileLoss`` (the default), ``RMSE``, ``MASE``.

    Unlike the row scorers it keeps the validation series until the end (a series'
    MASE needs its history): validation sets of series are the size of a test channel."""

    kind = "forecast"
    metrics = {"mean_wQuantileLoss": "min", "RMSE": "min", "MASE": "min"}
    default_metric = "mean_wQuantileLoss"

    def __init__(self, models: Sequence[Any], *, seed: int = 0, detailed: bool = False) -> None:
        super().__init__(models, seed=seed, detailed=detailed)
        self.seed = seed
        self.parts: list[Any] = []
        self._scores: list[dict[str, float]] | None = None

    def update(self, batch: Batch) -> None:
        self.parts.append(batch.X)
        self.n_rows += batch.n_rows
        self._scores = None

    def _all_scores(self) -> list[dict[str, float]]:
        """Every measure of the model's ``evaluate`` (ND and each wQuantileLoss[q] too)."""
        if self._scores is None:
            from onepass.sources._series import SeriesRows

            rows = SeriesRows.concat(self.parts)
            self._scores = [{k: float(v) for k, v in model.evaluate(rows, seed=self.seed).items()}
                            for model in self.models]
        return self._scores

    def results(self) -> list[dict[str, float]]:
        return [{name: scores[name] for name in self.metrics} for scores in self._all_scores()]

    def report(self, index: int = 0) -> dict[str, Any]:
        scores = self._all_scores()[index]
        first = {name: scores[name] for name in self.metrics}
        return {"measures": {**first, **{k: v for k, v in scores.items() if k not in first}}, "details": {},
                "curves": {}}
