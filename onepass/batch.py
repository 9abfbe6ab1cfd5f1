"""The unit every source yields and every state consumes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import scipy.sparse as sp

__all__ = ["Batch"]


@dataclass
class Batch:
    """A mini-batch of rows and the position right after it.

    Parameters
    ----------
    X : ndarray of shape (n_rows, n_features) or scipy.sparse.csr_matrix
        Features, float32 unless asked otherwise.
    y : ndarray of shape (n_rows,) or None
        Labels, when the source has a label column.
    w : ndarray of shape (n_rows,) or None
        Per-row weights, when the source has a weight column.
    cursor : dict
        JSON-able position right after the last row of this batch. Opening the same
        source at this cursor resumes with the next row: none read twice, none skipped.
    lines : ndarray of shape (n_rows,) or None
        The 1-based line (or record) number of each row in the file the cursor names
        (``cursor["path"]``), when the source knows it: for messages that name a row by
        where it is in its file. Not part of the data.

    Examples
    --------
    >>> import numpy as np
    >>> b = Batch(np.zeros((2, 3), dtype=np.float32))
    >>> b.n_rows, b.n_features
    (2, 3)
    """

    X: np.ndarray | sp.csr_matrix
    y: np.ndarray | None = None
    w: np.ndarray | None = None
    cursor: dict[str, Any] = field(default_factory=dict)
    lines: np.ndarray | None = field(default=None, repr=False, compare=False)

    @property
    def n_rows(self) -> int:
        return int(self.X.shape[0])

    @property
    def n_features(self) -> int:
        return int(self.X.shape[1])
