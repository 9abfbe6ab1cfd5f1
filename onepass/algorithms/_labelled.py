"""Labelled rows, as the supervised algorithms (Linear Learner, Factorization Machines)
take and keep them: the checks a batch passes before anything changes, and the rows a
state keeps (warm-up buffer, validation rows)."""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from onepass.batch import Batch
from onepass.errors import BadRecordError, DataError, FeatureCountError

__all__ = ["Rows", "checked_rows", "take", "where"]


def line_of(batch: Batch, row: int) -> tuple[str, int] | None:
    """``(file, line)`` of row ``row`` of a batch, when its source told (``batch.lines``)."""
    cur = batch.cursor or {}
    if batch.lines is None or "path" not in cur or len(batch.lines) != batch.n_rows:
        return None
    return str(cur["path"]), int(batch.lines[row])


def where(batch: Batch, row: int) -> str:
    """Where row ``row`` of a batch is, as well as the batch's cursor tells."""
    cur = batch.cursor or {}
    at = line_of(batch, row)
    if at is not None:
        return f"line {at[1]} of {at[0]}"
    if "path" in cur and "rows" in cur:
        first = int(cur["rows"]) - batch.n_rows
        return f"row {first + row + 1} of the stream (the batch ending at line {cur.get('line', '?')} of {cur['path']})"
    return f"row {row} of the batch"


def checked_rows(batch: Batch, *, name: str, n_features: int, predictor_type: str,
                 num_classes: int | None = None) -> tuple[Any, np.ndarray, np.ndarray]:
    """Validated (X, y, w) of a batch for algorithm ``name`` trained on ``n_features``
    features (-1: not fixed yet); raises, naming the row, before anything changes."""
    X = batch.X
    if n_features != -1 and X.shape[1] != n_features:
        raise FeatureCountError(
            f"batch has {X.shape[1]} features, but this {name} state was trained on "
            f"{n_features}; use data of the same width or start a new state")
    if sp.issparse(X) and X.nnz and not 0 <= int(X.indices.min()) <= int(X.indices.max()) < X.shape[1]:
        at = int(np.flatnonzero((X.indices < 0) | (X.indices >= X.shape[1]))[0])
        row = int(np.searchsorted(X.indptr, at, side="right") - 1)
        raise DataError(f"{where(batch, row)} has column index {int(X.indices[at])}, outside the "
                        f"{X.shape[1]} features of the batch; the sparse matrix is malformed")
    values = X.data if sp.issparse(X) else X
    if not np.isfinite(values).all():
        if sp.issparse(X):
            row = int(np.searchsorted(X.indptr, np.flatnonzero(~np.isfinite(X.data))[0], side="right") - 1)
        else:
            row = int(np.flatnonzero(~np.isfinite(X).all(axis=1))[0])
        raise DataError(f"{where(batch, row)} holds NaN or infinity in its features; {name} needs "
                        "finite values (clean them, or read with on_bad_record='skip' or 'quarantine')")
    if batch.y is None:
        raise DataError(f"{name} needs labels: give the source a label_column (--label-column)")
    y = np.asarray(batch.y, dtype=np.float32).reshape(-1)
    if y.shape[0] != X.shape[0]:
        raise DataError(f"the batch has {X.shape[0]} rows but {y.shape[0]} labels")
    bad = ~np.isfinite(y)
    what = "a finite number"
    if predictor_type == "binary_classifier":
        bad |= (y != 0) & (y != 1)
        what = "0 or 1 (binary_classifier)"
    elif predictor_type == "multiclass_classifier":
        bad |= (y != np.round(y)) | (y < 0) | (y >= num_classes)
        what = f"an integer in 0..{num_classes - 1} (num_classes={num_classes})"  # type: ignore[operator]
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        source, line = line_of(batch, row) or (where(batch, row), None)
        raise BadRecordError(f"label {float(y[row])!r} is outside the declared classes: it must be {what}",
                             source=source, line=line, column="label")
    if batch.w is None:
        w = np.ones(X.shape[0], dtype=np.float32)
    else:
        w = np.asarray(batch.w, dtype=np.float32).reshape(-1)
        if w.shape[0] != X.shape[0] or not np.isfinite(w).all() or (w < 0).any():
            raise DataError("row weights must be one finite number >= 0 per row")
    return X, y, w


def take(X: Any, idx: np.ndarray) -> Any:
    return X[idx]


class Rows:
    """Rows kept by a state (warm-up buffer, validation rows): X dense or CSR, y, w."""

    def __init__(self, X: Any, y: np.ndarray, w: np.ndarray) -> None:
        self.X, self.y, self.w = X, y, w

    @classmethod
    def empty(cls) -> Rows:
        return cls(None, np.zeros(0, dtype=np.float32), np.zeros(0, dtype=np.float32))

    @property
    def n_rows(self) -> int:
        return int(self.y.shape[0])

    @property
    def is_sparse(self) -> bool:
        return self.X is not None and sp.issparse(self.X)

    def append(self, X: Any, y: np.ndarray, w: np.ndarray) -> Rows:
        if sp.issparse(X):
            X = sp.csr_matrix(X, dtype=np.float32)
        else:
            X = np.asarray(X, dtype=np.float32)
        if self.X is None:
            joined = X.copy()
        elif sp.issparse(X) or sp.issparse(self.X):
            joined = sp.vstack([sp.csr_matrix(self.X), sp.csr_matrix(X)], format="csr", dtype=np.float32)
        else:
            joined = np.concatenate([self.X, X])
        return Rows(joined, np.concatenate([self.y, y]).astype(np.float32),
                    np.concatenate([self.w, w]).astype(np.float32))

    def head(self, n: int) -> Rows:
        """The first ``n`` rows."""
        idx = np.arange(min(n, self.n_rows))
        return Rows(take(self.X, idx), self.y[idx], self.w[idx])

    def to_arrays(self, prefix: str) -> dict[str, np.ndarray]:
        yw = {f"{prefix}_yw": np.column_stack([self.y, self.w])}
        if self.X is None:
            return yw
        if sp.issparse(self.X):
            X = self.X
            return {f"{prefix}_data": X.data.astype(np.float32), f"{prefix}_indices": X.indices.astype(np.int64),
                    f"{prefix}_indptr": X.indptr.astype(np.int64), **yw}
        return {f"{prefix}_X": self.X, **yw}

    @staticmethod
    def array_specs(prefix: str) -> dict[str, Any]:
        """What :meth:`to_arrays` writes under ``prefix`` (each array only when not empty)."""
        from onepass.state import ArraySpec

        rows, nnz = f"{prefix} rows", f"{prefix} entries"
        return {f"{prefix}_yw": ArraySpec(("f4",), (rows, 2), required=False),
                f"{prefix}_X": ArraySpec(("f4",), (rows, None), required=False),
                f"{prefix}_data": ArraySpec(("f4",), (nnz,), required=False),
                f"{prefix}_indices": ArraySpec(("i8",), (nnz,), required=False),
                f"{prefix}_indptr": ArraySpec(("i8",), (None,), required=False)}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], prefix: str, is_sparse: bool, n_features: int) -> Rows:
        if f"{prefix}_yw" not in arrays:
            return cls.empty()
        yw = np.array(arrays[f"{prefix}_yw"], dtype=np.float32)
        y, w = yw[:, 0].copy(), yw[:, 1].copy()
        if is_sparse:
            empty = np.zeros(0, dtype=np.int64)
            X = sp.csr_matrix((np.array(arrays.get(f"{prefix}_data", empty), dtype=np.float32),
                               np.array(arrays.get(f"{prefix}_indices", empty)),
                               np.array(arrays.get(f"{prefix}_indptr", np.zeros(y.shape[0] + 1, dtype=np.int64)))),
                              shape=(y.shape[0], n_features))
            X.check_format(full_check=True)  # every index in range: compiled loops read by them unchecked
            return cls(X, y, w)
        if f"{prefix}_X" not in arrays:  # rows of zero features
            return cls(np.zeros((y.shape[0], n_features), dtype=np.float32), y, w)
        return cls(np.array(arrays[f"{prefix}_X"], dtype=np.float32), y, w)
