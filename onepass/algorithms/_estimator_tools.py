"""What the scikit-learn estimators share: the seed from ``random_state``, the
``sample_weight`` checks, and streaming rows into the state a batch at a time."""

from __future__ import annotations

from typing import Any

import numpy as np

from onepass.batch import Batch
from onepass.errors import DataError, InvalidParameterError

__all__ = ["checked_sample_weight", "seed_of", "stream_batches"]


def seed_of(random_state: Any) -> int | None:
    """The state's seed for scikit-learn's ``random_state`` (None, an int or a RandomState)."""
    if random_state is None or isinstance(random_state, (int, np.integer)):
        return random_state
    if isinstance(random_state, np.random.RandomState):
        return int(random_state.randint(np.iinfo(np.int32).max))
    raise InvalidParameterError(f"random_state={random_state!r} must be None, an int or a RandomState")


def checked_sample_weight(sample_weight: Any, n_rows: int, dtype: Any) -> np.ndarray | None:
    """``sample_weight`` as an array of ``n_rows`` finite weights >= 0, not all zero."""
    if sample_weight is None:
        return None
    sw = np.asarray(sample_weight, dtype=dtype)
    if sw.shape != (n_rows,):
        raise InvalidParameterError(f"sample_weight has shape {sw.shape}, expected ({n_rows},)")
    if not np.isfinite(sw).all() or (sw < 0).any():
        raise DataError("sample_weight must be finite and >= 0")
    if n_rows and not sw.any():
        raise DataError("sample_weight is zero for every row: there is nothing to learn from")
    return sw


def stream_batches(state: Any, X: Any, y: np.ndarray | None, sw: np.ndarray | None, batch_size: int) -> None:
    """Update ``state`` with the rows of ``X`` (labels ``y``, weights ``sw``), ``batch_size`` at a time."""
    for start in range(0, X.shape[0], batch_size):
        stop = start + batch_size
        state.update(Batch(X[start:stop], None if y is None else y[start:stop],
                           None if sw is None else sw[start:stop]))
