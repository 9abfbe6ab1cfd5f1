"""What the finalized supervised models (Linear Learner, Factorization Machines) share:
labels or values from their SageMaker output fields, and their natural score."""

from __future__ import annotations

import json
from typing import Any, ClassVar

import numpy as np

__all__ = ["SupervisedModel"]


class SupervisedModel:
    """``predict`` and ``score`` from a model's ``outputs`` (``score``, ``predicted_label``)
    and its ``predictor_type``."""

    display_name: ClassVar[str]
    predictor_type: str
    threshold_: float
    n_rows_seen_: int
    chosen_: dict[str, Any]
    leaderboard_: list[dict[str, Any]]

    def _selected(self, predictor_type: str, threshold: float, leaderboard: list[dict[str, Any]] | None,
                  chosen: dict[str, Any] | None, n_rows_seen: int) -> None:
        """Set what the model keeps of its selection: type, threshold, leaderboard, rows seen."""
        self.predictor_type = predictor_type
        self.threshold_ = float(threshold)
        self.leaderboard_ = list(leaderboard or [])
        self.chosen_ = dict(chosen or {})
        self.n_rows_seen_ = int(n_rows_seen)

    @property
    def n_features(self) -> int:
        return int(self.coef_.shape[0])  # type: ignore[attr-defined]

    def _meta(self, **more: Any) -> dict[str, Any]:
        """The manifest's metadata: predictor type, threshold, rows seen, the leaderboard, and ``more``."""
        meta = {
            "predictor_type": self.predictor_type,
            **more,
            "threshold": self.threshold_ if np.isfinite(self.threshold_) else str(self.threshold_),
            "n_rows_seen": self.n_rows_seen_,
            "chosen": self.chosen_,
            "leaderboard": self.leaderboard_,
        }
        json.dumps(meta, allow_nan=False)  # the manifest must stay strict JSON
        return meta

    def outputs(self, X: Any) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def predict(self, X: Any) -> np.ndarray:
        """Labels (classification, 0/1 or 0..n_classes-1) or values (regression)."""
        out = self.outputs(X)
        return out["score"] if self.predictor_type == "regressor" else out["predicted_label"]

    def score(self, X: Any, y: Any = None) -> float:
        """Accuracy (classifiers) or R^2 (regressors) on ``X, y``."""
        if y is None:
            raise ValueError(f"{self.display_name}'s score needs the labels y")
        y = np.asarray(y, dtype=np.float64).reshape(-1)
        pred = self.predict(X)
        if self.predictor_type == "regressor":
            ss = float(((y - y.mean()) ** 2).sum())
            return 1.0 - float(((y - pred) ** 2).sum()) / ss if ss > 0 else 0.0
        return float((pred == y).mean())
