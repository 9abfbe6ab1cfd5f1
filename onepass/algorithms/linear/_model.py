"""The finalized Linear Learner model: one linear model, in the original feature space."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp

from onepass.algorithms._losses import sigmoid, softmax
from onepass.algorithms._supervised_model import SupervisedModel
from onepass.errors import FeatureCountError
from onepass.state import ArraySpec

__all__ = ["LinearLearnerModel"]


class LinearLearnerModel(SupervisedModel):
    """One linear model chosen from a Linear Learner state, with the leaderboard it won.

    Attributes
    ----------
    coef_ : ndarray of shape (n_features, n_outputs), float32
        Weights in the original feature space (n_outputs is 1, or the number of classes).
    intercept_ : ndarray of shape (n_outputs,), float32
    predictor_type : str
    loss : str
    threshold_ : float
        Binary models: a row is labelled 1 when its raw score (the logit for logistic
        loss) is at least this, tuned on validation rows for the selection criterion.
    leaderboard_ : list of dict
        Every model of the state, best first (hyperparameters and validation scores).
    chosen_ : dict
        This model's leaderboard entry.
    """

    display_name: ClassVar[str] = "Linear Learner"
    kind: ClassVar[str] = "linear-learner"
    ARRAY_SPECS: ClassVar[dict[str, ArraySpec]] = {
        "coef": ArraySpec(("f4",), ("d", "k"), finite=True),
        "intercept": ArraySpec(("f4",), ("k",), finite=True),
    }

    def __init__(self, coef: np.ndarray, intercept: np.ndarray, *, predictor_type: str, loss: str,
                 threshold: float = 0.0, leaderboard: list[dict[str, Any]] | None = None,
                 chosen: dict[str, Any] | None = None, n_rows_seen: int = 0) -> None:
        self.coef_ = np.ascontiguousarray(coef, dtype=np.float32).reshape(coef.shape[0], -1)
        self.intercept_ = np.asarray(intercept, dtype=np.float32).reshape(-1)
        self.loss = loss
        self._selected(predictor_type, threshold, leaderboard, chosen, n_rows_seen)

    def decision_function(self, X: Any) -> np.ndarray:
        """Raw scores: (n,) for binary and regression, (n, n_classes) for multiclass."""
        if X.shape[1] != self.n_features:
            raise FeatureCountError(
                f"X has {X.shape[1]} features, but this Linear Learner model expects {self.n_features}")
        if sp.issparse(X):
            F = np.asarray(X @ self.coef_, dtype=np.float32) + self.intercept_
        else:
            # float64 products rounded once: a row's score does not depend on its neighbours
            # (float32 BLAS kernels round edge rows of a block differently)
            X = np.asarray(X, dtype=np.float32)
            F = (X @ self.coef_.astype(np.float64)).astype(np.float32) + self.intercept_
        return F if self.predictor_type == "multiclass_classifier" else F[:, 0]

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities, (n, n_classes): logistic or softmax of the raw scores."""
        F = self.decision_function(X)
        if self.predictor_type == "multiclass_classifier":
            return softmax(F)
        if self.predictor_type != "binary_classifier":
            raise AttributeError("a regressor has no class probabilities")
        p = sigmoid(F)
        return np.column_stack([1 - p, p])

    def outputs(self, X: Any) -> dict[str, np.ndarray]:
        """SageMaker's output columns: binary ``score`` (a probability for logistic loss) and
        ``predicted_label``; multiclass ``score`` (one probability per class) and
        ``predicted_label``; regression ``score``."""
        F = self.decision_function(X)
        if self.predictor_type == "regressor":
            return {"score": F}
        if self.predictor_type == "multiclass_classifier":
            return {"score": softmax(F), "predicted_label": F.argmax(axis=1).astype(np.int64)}
        score = sigmoid(F) if self.loss == "logistic" else F
        return {"score": score, "predicted_label": (F >= self.threshold_).astype(np.int64)}

    def to_arrays(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        meta = self._meta(loss=self.loss)
        return meta, {"coef": self.coef_, "intercept": self.intercept_}

    @classmethod
    def from_arrays(cls, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> LinearLearnerModel:
        return cls(arrays["coef"], arrays["intercept"], predictor_type=meta["predictor_type"], loss=meta["loss"],
                   threshold=float(meta["threshold"]), leaderboard=meta.get("leaderboard"),
                   chosen=meta.get("chosen"), n_rows_seen=meta.get("n_rows_seen", 0))
