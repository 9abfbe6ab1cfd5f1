"""Early stopping on validation loss, as SageMaker's NTM: stop when the loss has not
improved by more than ``tolerance`` (relative) for ``num_patience_epochs`` evaluations."""

from __future__ import annotations

import math
from typing import Any

__all__ = ["EarlyStopping"]


class EarlyStopping:
    """Counts evaluations without improvement.

    An evaluation improves when ``loss < best * (1 - tolerance)`` (for a positive best;
    ``best - tolerance * |best|`` in general). After ``num_patience_epochs`` evaluations
    in a row without improvement, :attr:`is_stopped` is True and stays so.

    >>> stop = EarlyStopping(num_patience_epochs=2, tolerance=0.01)
    >>> [stop.observe(x) for x in (10.0, 9.0, 8.95, 8.99, 8.5)]
    [False, False, False, True, True]
    """

    def __init__(self, num_patience_epochs: int, tolerance: float) -> None:
        self.num_patience_epochs = int(num_patience_epochs)
        self.tolerance = float(tolerance)
        self.best = math.inf
        self.n_bad = 0
        self.is_stopped = False

    def observe(self, loss: float) -> bool:
        """Record one evaluation's loss; return whether training should stop."""
        if self.is_stopped:
            return True
        if not math.isfinite(self.best) or loss < self.best - self.tolerance * abs(self.best):
            self.best, self.n_bad = float(loss), 0
        else:
            self.n_bad += 1
            self.is_stopped = self.num_patience_epochs > 0 and self.n_bad >= self.num_patience_epochs
        return self.is_stopped

    def to_meta(self) -> dict[str, Any]:
        return {"best": None if math.isinf(self.best) else self.best, "n_bad": self.n_bad,
                "is_stopped": self.is_stopped}

    def restore(self, meta: dict[str, Any]) -> None:
        self.best = math.inf if meta.get("best") is None else float(meta["best"])
        self.n_bad = int(meta["n_bad"])
        self.is_stopped = bool(meta["is_stopped"])
