"""Model selection for a stack of models trained side by side on one stream: validation
rows, progressive validation, early stopping and the leaderboard.

Linear Learner and Factorization Machines train ``num_models`` models with different
hyperparameters on the same rows (SageMaker's design). What judges them is the same for
both and lives here: a :class:`ModelSelection` is part of the algorithm's state (its
fields are checkpointed, merged and restored with it) and sees only scores, labels and
weights, never the models themselves.

- **Validation rows**: held out of the stream (``validation_fraction``) or read from a
  validation source, up to ``max_validation_rows``; models are scored on them with their
  current weights.
- **Progressive validation** when there are none: the latest rows, each scored by every
  model *before* it learned the row, kept in a ring of ``max_validation_rows``.
- **Early stopping**: every ``validation_every_rows`` rows learned, each model's
  validation loss; a model that did not improve by ``early_stopping_tolerance`` (relative)
  for ``early_stopping_patience`` scorings stops learning (its learning rate becomes 0).
  The last models still learning are never all stopped at once.
- **Leaderboard**: every model, best first, by the loss, or for binary classifiers by
  ``binary_classifier_model_selection_criteria`` with the decision threshold tuned on
  the same rows (:func:`onepass.algorithms._losses.rank_binary`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from onepass.algorithms._hyper import require, require_choice
from onepass.algorithms._labelled import Rows, take
from onepass.algorithms._losses import BINARY_CRITERIA, loss_values, rank_binary

__all__ = ["ModelSelection", "RawScores", "check_selection_parameters"]

#: ``X -> scores`` of every model (n_rows, num_models * n_outputs), in the labels' units
RawScores = Callable[[Any], np.ndarray]


def check_selection_parameters(*, validation_fraction: Any, max_validation_rows: Any, validation_every_rows: Any,
                               early_stopping_patience: Any, early_stopping_tolerance: Any, criterion: Any,
                               target_precision: Any, target_recall: Any, f_beta: Any) -> None:
    """The checks of the model-selection hyperparameters every stack of models takes."""
    require("int>=1", max_validation_rows=max_validation_rows, validation_every_rows=validation_every_rows)
    require("int>=0", early_stopping_patience=early_stopping_patience)
    require(">=0", early_stopping_tolerance=early_stopping_tolerance)
    require("[0,1)", validation_fraction=validation_fraction)
    require("(0,1)", target_precision=target_precision, target_recall=target_recall)
    require(">0", f_beta=f_beta)
    require_choice("binary_classifier_model_selection_criteria", criterion, BINARY_CRITERIA)


def _num(v: Any) -> float | None:
    v = float(v)
    return v if math.isfinite(v) else None


class ModelSelection:
    """How ``num_models`` models learning side by side are judged, stopped and ranked.

    Parameters are the algorithm's own hyperparameters of the same names (see
    :class:`onepass.LinearLearnerState`); ``loss`` is the loss the models minimize
    (``softmax_loss`` for multiclass, whose ring then keeps each model's loss and class),
    ``loss_kwargs`` its margin, quantile and huber_delta.

    Attributes
    ----------
    validation_ : Rows
        Validation rows (held out or from a validation source).
    n_rows_held_out_ : int
    recent_scores_ : ndarray of shape (max_validation_rows, num_models), float32
        Progressive validation ring: each model's score (multiclass: loss) of recent rows,
        taken before it learned them; empty until :meth:`allocate`.
    recent_predicted_ : ndarray of shape (max_validation_rows, num_models), int32
        Multiclass only: each model's class for those rows.
    recent_y_, recent_w_ : ndarray of shape (max_validation_rows,), float32
        Their labels and weights (weight 0: slot unfilled).
    is_active_ : ndarray of shape (num_models,), bool
        False for models stopped early.
    best_loss_, last_loss_ : ndarray of shape (num_models,)
    n_bad_scorings_, stopped_at_rows_ : ndarray of shape (num_models,), int64
    rows_since_scoring_, n_scorings_ : int
    """

    _PER_MODEL = ("best_loss_", "last_loss_", "n_bad_scorings_", "stopped_at_rows_", "is_active_")

    def __init__(self, num_models: int, predictor_type: str, *, loss: str, loss_kwargs: dict[str, float],
                 n_outputs: int = 1, max_validation_rows: int, validation_every_rows: int,
                 early_stopping_patience: int, early_stopping_tolerance: float, criterion: str,
                 target_precision: float, target_recall: float, f_beta: float) -> None:
        self.num_models = num_models
        self.predictor_type = predictor_type
        self.loss = loss
        self.loss_kwargs = dict(loss_kwargs)
        self.n_outputs = n_outputs
        self.max_validation_rows = max_validation_rows
        self.validation_every_rows = validation_every_rows
        self.early_stopping_patience = early_stopping_patience
        self.early_stopping_tolerance = early_stopping_tolerance
        self.criterion = criterion
        self.target_precision = target_precision
        self.target_recall = target_recall
        self.f_beta = f_beta

        M = num_models
        self.validation_ = Rows.empty()
        self.n_rows_held_out_ = 0
        self.recent_scores_ = np.zeros((0, M), dtype=np.float32)
        self.recent_predicted_ = np.zeros((0, M), dtype=np.int32)
        self.recent_y_ = np.zeros(0, dtype=np.float32)
        self.recent_w_ = np.zeros(0, dtype=np.float32)
        self.recent_next_ = 0
        self.is_active_ = np.ones(M, dtype=bool)
        self.best_loss_ = np.full(M, np.inf)
        self.last_loss_ = np.full(M, np.inf)  # inf, not NaN: NaN != NaN in comparisons
        self.n_bad_scorings_ = np.zeros(M, dtype=np.int64)
        self.stopped_at_rows_ = np.full(M, -1, dtype=np.int64)
        self.rows_since_scoring_ = 0
        self.n_scorings_ = 0

    @property
    def is_multiclass(self) -> bool:
        return self.predictor_type == "multiclass_classifier"

    # -- validation rows --------------------------------------------------------------

    @property
    def wants_validation(self) -> bool:
        """True while the validation rows are fewer than ``max_validation_rows``."""
        return self.validation_.n_rows < self.max_validation_rows

    def hold_out(self, rng: np.random.Generator, fraction: float, X: Any, y: np.ndarray,
                 w: np.ndarray) -> tuple[Any, np.ndarray, np.ndarray]:
        """Hold out a ``fraction`` of the rows as validation rows (while there is room);
        returns the rows left to train on."""
        if fraction <= 0 or not self.wants_validation:
            return X, y, w
        held = rng.random(X.shape[0]) < fraction
        held &= np.cumsum(held) <= self.max_validation_rows - self.validation_.n_rows
        if not held.any():
            return X, y, w
        idx = np.flatnonzero(held)
        self.validation_ = self.validation_.append(take(X, idx), y[idx], w[idx])
        self.n_rows_held_out_ += idx.size
        keep = np.flatnonzero(~held)
        return take(X, keep), y[keep], w[keep]

    def add_validation(self, X: Any, y: np.ndarray, w: np.ndarray) -> int:
        """Keep rows of a validation source, up to ``max_validation_rows``; returns how many."""
        room = self.max_validation_rows - self.validation_.n_rows
        if room <= 0:
            return 0
        rows = Rows(X, y, w).head(room)
        self.validation_ = self.validation_.append(rows.X, rows.y, rows.w)
        return rows.n_rows

    # -- progressive validation -------------------------------------------------------

    def allocate(self) -> None:
        """The progressive-validation ring of a state that starts training, empty."""
        cap, M = self.max_validation_rows, self.num_models
        self.recent_scores_ = np.zeros((cap, M), dtype=np.float32)
        if self.is_multiclass:
            self.recent_predicted_ = np.zeros((cap, M), dtype=np.int32)
        self.recent_y_ = np.zeros(cap, dtype=np.float32)
        self.recent_w_ = np.zeros(cap, dtype=np.float32)  # weight 0: slot unfilled

    def remember(self, values: np.ndarray, y: np.ndarray, w: np.ndarray, predicted: np.ndarray | None = None) -> None:
        """Keep rows scored before the models learned them: ``values`` (n, num_models) are
        scores in the labels' units, or for multiclass losses, with ``predicted`` classes."""
        cap = self.recent_y_.shape[0]
        n = values.shape[0]
        take_n = min(n, cap)
        pos = (self.recent_next_ + np.arange(take_n)) % cap
        self.recent_scores_[pos] = values[n - take_n:]
        if predicted is not None:
            self.recent_predicted_[pos] = predicted[n - take_n:]
        self.recent_y_[pos] = y[n - take_n:]
        self.recent_w_[pos] = w[n - take_n:]
        self.recent_next_ = int((self.recent_next_ + take_n) % cap)

    # -- judging ------------------------------------------------------------------------

    def evaluation(self, raw_scores: RawScores) -> tuple[str, np.ndarray, np.ndarray, np.ndarray,
                                                          np.ndarray | None] | None:
        """(where, per-model values (K, M), labels, weights, predicted classes or None).

        Values are raw scores (binary), predictions (regression) or losses (multiclass),
        on the validation rows when there are any, else on the progressively scored rows.
        """
        if self.validation_.n_rows:
            F = raw_scores(self.validation_.X)
            y, w = self.validation_.y, self.validation_.w
            if self.is_multiclass:
                shaped = F.reshape(F.shape[0], self.num_models, self.n_outputs)
                return "validation", loss_values("softmax_loss", shaped, y), y, w, shaped.argmax(axis=-1)
            return "validation", F, y, w, None
        filled = self.recent_w_ > 0
        if not filled.any():
            return None
        pred = self.recent_predicted_[filled] if self.is_multiclass else None
        return "progressive", self.recent_scores_[filled], self.recent_y_[filled], self.recent_w_[filled], pred

    def losses(self, values: np.ndarray, y: np.ndarray, w: np.ndarray, label_scale: float = 1.0) -> np.ndarray:
        """Weighted mean loss of every model (the labels' units: huber_delta is scaled by
        ``label_scale`` when the models learn normalized labels)."""
        if self.is_multiclass:
            per_row = values.astype(np.float64)
        else:
            kw = dict(self.loss_kwargs)
            if "huber_delta" in kw:
                kw["huber_delta"] = kw["huber_delta"] * label_scale
            per_row = loss_values(self.loss, values, y, **kw)
        total = float(w.sum())
        return (w.astype(np.float64) @ per_row) / total if total > 0 else np.full(self.num_models, np.nan)

    def learned(self, n: int, raw_scores: RawScores, n_rows_trained: int, label_scale: float = 1.0) -> None:
        """Count ``n`` rows learned; score every model (early stopping) when it is time."""
        self.rows_since_scoring_ += n
        if self.rows_since_scoring_ >= self.validation_every_rows:
            self.rows_since_scoring_ = 0
            self.score_and_stop(raw_scores, n_rows_trained, label_scale)

    def rows_to_next_scoring(self) -> int:
        """Rows that can be learned before the models are scored next (at least 1)."""
        return max(1, self.validation_every_rows - self.rows_since_scoring_)

    def score_and_stop(self, raw_scores: RawScores, n_rows_trained: int, label_scale: float = 1.0) -> None:
        found = self.evaluation(raw_scores)
        if found is None:
            return
        _, values, y, w, _ = found
        losses = self.losses(values, y, w, label_scale)
        self.n_scorings_ += 1
        self.last_loss_ = losses
        if self.early_stopping_patience == 0:
            return
        finite = np.isfinite(self.best_loss_)
        best = np.where(finite, self.best_loss_, 0.0)
        bar = np.where(finite, best - self.early_stopping_tolerance * np.abs(best), np.inf)
        improved = losses < bar
        self.best_loss_ = np.where(losses < self.best_loss_, losses, self.best_loss_)
        self.n_bad_scorings_ = np.where(improved, 0, self.n_bad_scorings_ + 1)
        stop = self.is_active_ & (self.n_bad_scorings_ >= self.early_stopping_patience)
        if stop.all() or (self.is_active_ & ~stop).sum() == 0:
            # never stop the last active models at once: keep the best of them learning
            keep = int(np.argmin(np.where(self.is_active_, losses, np.inf)))
            stop[keep] = False
        self.stopped_at_rows_[stop] = n_rows_trained
        self.is_active_ &= ~stop

    def metrics(self, raw_scores: RawScores, label_scale: float = 1.0) -> dict[str, Any]:
        """The best and model 0's validation loss, for the training loop's log."""
        rec: dict[str, Any] = {}
        found = self.evaluation(raw_scores)
        if found is not None:
            where, values, y, w, _ = found
            losses = self.losses(values, y, w, label_scale)
            if np.isfinite(losses).any():
                rec[f"{where}_loss_best"] = float(np.nanmin(losses))
                rec[f"{where}_loss_model0"] = float(losses[0])
        return rec

    def leaderboard(self, raw_scores: RawScores, describe: Callable[[int], dict[str, Any]],
                    label_scale: float = 1.0, criterion: str | None = None) -> list[dict[str, Any]]:
        """Every model, best first: ``describe(m)`` (its hyperparameters) and its scores.

        Binary models are ranked by ``criterion`` when given (a finalize setting), else by
        the state's ``binary_classifier_model_selection_criteria``.

        Scored on the validation rows with the current weights when there are any, else on
        the most recent rows as each model scored them before learning them (progressive
        validation). Binary models get their decision threshold tuned for the criterion.
        """
        found = self.evaluation(raw_scores)
        M = self.num_models
        where, values, y, w, pred = ("none", None, None, None, None) if found is None else found
        losses = self.losses(values, y, w, label_scale) if values is not None else np.full(M, np.nan)
        thresholds = np.zeros(M)
        extra: dict[str, np.ndarray] = {}
        higher_is_better = False
        value = losses
        if self.predictor_type == "binary_classifier":
            criterion = self.criterion if criterion is None else criterion
            require_choice("binary_classifier_model_selection_criteria", criterion, BINARY_CRITERIA)
            higher_is_better = BINARY_CRITERIA[criterion]
            if values is not None and higher_is_better:
                value, thresholds = rank_binary(criterion, values.T, y, w, beta=self.f_beta,
                                                target_precision=self.target_precision,
                                                target_recall=self.target_recall)
            if values is not None:
                pred_pos = values >= thresholds[None, :]
                extra["accuracy"] = (w @ (pred_pos == (y[:, None] > 0.5))) / max(float(w.sum()), 1e-300)
        else:
            criterion = "loss"
        if self.is_multiclass and values is not None:
            extra["accuracy"] = (w @ (pred == y.astype(np.int64)[:, None])) / max(float(w.sum()), 1e-300)
        key = np.where(np.isfinite(value), value, -np.inf if higher_is_better else np.inf)
        order = np.lexsort((np.arange(M), -key if higher_is_better else key))
        board = []
        for rank, m in enumerate(order.tolist()):
            row = {"rank": rank, "model": m, **describe(m), "scored_on": where, "criterion": criterion,
                   "value": _num(value[m]), "loss": _num(losses[m])}
            if self.predictor_type == "binary_classifier":
                row["threshold"] = _num(thresholds[m])
            for name, arr in extra.items():
                row[name] = _num(arr[m])
            row["is_active"] = bool(self.is_active_[m])
            row["stopped_at_rows"] = int(self.stopped_at_rows_[m]) if self.stopped_at_rows_[m] >= 0 else None
            board.append(row)
        return board

    # -- merge ------------------------------------------------------------------------------

    def merge_validation(self, other: ModelSelection) -> None:
        """Take ``other``'s validation rows (while there is room) and its held-out count."""
        self.n_rows_held_out_ += other.n_rows_held_out_
        if other.validation_.n_rows:
            self.add_validation(other.validation_.X, other.validation_.y, other.validation_.w)

    def merge(self, other: ModelSelection) -> None:
        """Join the judgement of two states that both trained: a model learns while either
        state lets it; the progressive rows of both are kept, this state's first."""
        self.is_active_ = self.is_active_ | other.is_active_
        self.best_loss_ = np.minimum(self.best_loss_, other.best_loss_)
        self.n_bad_scorings_ = np.minimum(self.n_bad_scorings_, other.n_bad_scorings_)
        self.stopped_at_rows_ = np.where(self.is_active_, -1, np.maximum(self.stopped_at_rows_,
                                                                          other.stopped_at_rows_))
        filled_a, filled_b = self.recent_w_ > 0, other.recent_w_ > 0
        cap = self.recent_y_.shape[0]
        for name in ("recent_scores_", "recent_predicted_", "recent_y_", "recent_w_"):
            mine_arr, theirs_arr = getattr(self, name), getattr(other, name)
            if mine_arr.shape[0] == 0:
                continue
            joined = np.concatenate([mine_arr[filled_a], theirs_arr[filled_b]])[:cap]
            out = np.zeros_like(mine_arr)
            out[: joined.shape[0]] = joined
            setattr(self, name, out)
        if cap:
            self.recent_next_ = int(min(cap, int(filled_a.sum() + filled_b.sum())) % cap)
        self.merge_validation(other)

    # -- arrays -------------------------------------------------------------------------------

    @staticmethod
    def array_specs() -> dict[str, Any]:
        """What :meth:`to_arrays` writes (the owning state leaves out empty arrays)."""
        from onepass.algorithms._labelled import Rows
        from onepass.state import ArraySpec

        return {"selection_per_model": ArraySpec(("f8",), ("models", None)),
                "recent_scores": ArraySpec(("f4",), ("recent", "models"), required=False),
                "recent_predicted": ArraySpec(("i4",), ("recent", "models"), required=False),
                "recent_yw": ArraySpec(("f4",), ("recent", 2), required=False),
                **Rows.array_specs("validation")}

    def to_arrays(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        meta = {"recent_next": self.recent_next_, "n_rows_held_out": self.n_rows_held_out_,
                "rows_since_scoring": self.rows_since_scoring_, "n_scorings": self.n_scorings_,
                "validation_is_sparse": self.validation_.is_sparse}
        arrays = {
            "selection_per_model": np.column_stack([getattr(self, n).astype(np.float64) for n in self._PER_MODEL]),
            "recent_scores": self.recent_scores_,
            "recent_predicted": self.recent_predicted_,
            "recent_yw": np.column_stack([self.recent_y_, self.recent_w_]),
            **self.validation_.to_arrays("validation"),
        }
        return meta, arrays

    def restore(self, meta: dict[str, Any], arrays: dict[str, np.ndarray], n_features: int) -> None:
        """Take the fields written by :meth:`to_arrays` (``meta`` may hold more keys)."""
        M = self.num_models
        self.recent_next_ = int(meta["recent_next"])
        self.n_rows_held_out_ = int(meta["n_rows_held_out"])
        self.rows_since_scoring_ = int(meta["rows_since_scoring"])
        self.n_scorings_ = int(meta["n_scorings"])
        per_model = arrays["selection_per_model"]
        for j, name in enumerate(self._PER_MODEL):
            setattr(self, name, per_model[:, j].astype(getattr(self, name).dtype))

        def get(name: str, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
            return np.array(arrays[name], dtype=dtype) if name in arrays else np.zeros(shape, dtype=dtype)

        self.recent_scores_ = get("recent_scores", (0, M), np.float32)
        self.recent_predicted_ = get("recent_predicted", (0, M), np.int32)
        recent = get("recent_yw", (0, 2), np.float32)
        self.recent_y_, self.recent_w_ = recent[:, 0].copy(), recent[:, 1].copy()
        self.validation_ = Rows.from_arrays(arrays, "validation", bool(meta["validation_is_sparse"]), n_features)
