"""The units people read: one definition, used by ``tune``, ``inspect`` and ``evaluate``.

A binary model keeps its decision threshold as a raw score (``threshold_``: a row is
labelled 1 when its raw score is at least this), but ``predict`` writes a *probability*
for logistic loss. Wherever a threshold is shown it is in the units of the ``score``
that ``predict`` writes: the sigmoid of the raw threshold for logistic loss, the raw
score for other losses (hinge: ``score`` is the raw score). Stored values keep the raw
score, so models written before read the same.

Pure Python (no NumPy): ``onepass inspect`` imports it and must start fast.
"""

from __future__ import annotations

import math
from typing import Any

__all__ = ["is_probability_score", "raw_threshold", "shown_threshold"]


def is_probability_score(loss: str | None) -> bool:
    """Whether a binary model trained with ``loss`` writes probabilities as its score."""
    return loss in (None, "logistic", "auto")


def shown_threshold(raw: Any, loss: str | None = "logistic") -> float | None:
    """The threshold as ``predict``'s score: ``sigmoid(raw)`` for logistic loss, else
    ``raw``; ``None`` when there is none (or not a number: ``"inf"`` stored as text)."""
    if raw is None:
        return None
    try:
        value = float(raw)
    except (TypeError, ValueError):
        return None
    if math.isnan(value):
        return None
    if not is_probability_score(loss):
        return value
    if value >= 0:
        return 1.0 / (1.0 + math.exp(-value)) if math.isfinite(value) else 1.0
    if not math.isfinite(value):
        return 0.0
    e = math.exp(value)
    return e / (1.0 + e)


def raw_threshold(shown: float, loss: str | None = "logistic") -> float:
    """Back from :func:`shown_threshold`: the raw score for a threshold on ``predict``'s score."""
    value = float(shown)
    if not is_probability_score(loss):
        return value
    if value <= 0.0:
        return -math.inf
    if value >= 1.0:
        return math.inf
    return math.log(value) - math.log1p(-value)
