"""The finalized Factorization Machines model: one FM, its weights and factors."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp

from onepass.algorithms._losses import sigmoid
from onepass.algorithms._supervised_model import SupervisedModel
from onepass.errors import FeatureCountError
from onepass.state import ArraySpec

__all__ = ["FactorizationMachinesModel"]


class FactorizationMachinesModel(SupervisedModel):
    """One factorization machine chosen from a state, with the leaderboard it won.

    Attributes
    ----------
    intercept_ : float
        ``w0``.
    coef_ : ndarray of shape (n_features,), float32
        The linear weights ``w``.
    factors_ : ndarray of shape (n_features, num_factors), float32
        Each feature's factor vector ``v_i``; the pair (i, j) has weight ``<v_i, v_j>``.
    predictor_type : str
    threshold_ : float
        Binary models: a row is labelled 1 when its score (the logit) is at least this,
        tuned on validation rows for the selection criterion.
    leaderboard_ : list of dict
    chosen_ : dict
    """

    display_name: ClassVar[str] = "Factorization Machines"
    kind: ClassVar[str] = "factorization-machines"
    ARRAY_SPECS: ClassVar[dict[str, ArraySpec]] = {
        "coef": ArraySpec(("f4",), ("d",), finite=True),
        "factors": ArraySpec(("f4",), ("d", None), finite=True),
    }

    def __init__(self, intercept: float, coef: np.ndarray, factors: np.ndarray, *, predictor_type: str,
                 threshold: float = 0.0, leaderboard: list[dict[str, Any]] | None = None,
                 chosen: dict[str, Any] | None = None, n_rows_seen: int = 0) -> None:
        self.intercept_ = float(intercept)
        self.coef_ = np.ascontiguousarray(coef, dtype=np.float32).reshape(-1)
        self.factors_ = np.ascontiguousarray(factors, dtype=np.float32).reshape(self.coef_.shape[0], -1)
        self._selected(predictor_type, threshold, leaderboard, chosen, n_rows_seen)

    @property
    def loss(self) -> str:
        """The loss the model was trained with: logistic (binary) or squared_loss."""
        return "logistic" if self.predictor_type == "binary_classifier" else "squared_loss"

    @property
    def num_factors(self) -> int:
        return int(self.factors_.shape[1])

    def decision_function(self, X: Any) -> np.ndarray:
        """Scores, (n,): ``w0 + Xw + 1/2 sum_f [(XV)_f^2 - (X^2 V^2)_f]`` (logits for binary)."""
        if X.shape[1] != self.n_features:
            raise FeatureCountError(
                f"X has {X.shape[1]} features, but this Factorization Machines model expects {self.n_features}")
        V = self.factors_.astype(np.float64)
        if sp.issparse(X):
            X = sp.csr_matrix(X, dtype=np.float64)
            squared = X.multiply(X)
        else:
            X = np.asarray(X, dtype=np.float64)
            squared = X * X
        # float64 products: a row's score does not depend on its neighbours in the batch
        XV = np.asarray(X @ V)
        pairs = 0.5 * ((XV * XV).sum(axis=1) - np.asarray(squared @ (V * V)).sum(axis=1))
        return (self.intercept_ + np.asarray(X @ self.coef_.astype(np.float64)).ravel() + pairs).astype(np.float32)

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities, (n, 2): the sigmoid of the scores."""
        if self.predictor_type != "binary_classifier":
            raise AttributeError("a regressor has no class probabilities")
        p = sigmoid(self.decision_function(X))
        return np.column_stack([1 - p, p])

    def outputs(self, X: Any) -> dict[str, np.ndarray]:
        """SageMaker's output fields: binary ``score`` (the probability) and
        ``predicted_label``; regression ``score``."""
        F = self.decision_function(X)
        if self.predictor_type == "regressor":
            return {"score": F}
        return {"score": sigmoid(F), "predicted_label": (F >= self.threshold_).astype(np.int64)}

    def to_arrays(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        meta = self._meta(intercept=self.intercept_)
        return meta, {"coef": self.coef_, "factors": self.factors_}

    @classmethod
    def from_arrays(cls, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> FactorizationMachinesModel:
        return cls(float(meta["intercept"]), arrays["coef"], arrays["factors"], predictor_type=meta["predictor_type"],
                   threshold=float(meta["threshold"]), leaderboard=meta.get("leaderboard"),
                   chosen=meta.get("chosen"), n_rows_seen=meta.get("n_rows_seen", 0))
