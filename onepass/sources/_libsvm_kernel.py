"""The libsvm reader's compiled fast path: one pass over a block's bytes.

A block of clean lines (``label idx:val idx:val ...``, spaces or tabs between pairs,
``\\n`` or ``\\r\\n`` line ends) is parsed in a single loop over its bytes, without
building strings or calling a parser per number: 5-10x the NumPy-and-pyarrow path.
Anything else (a comment, ``qid``, a blank line, ``nan``, an exponent past 1e22, a
malformed token) stops the loop and returns ``ok=False``: the reader then takes its
other paths, which say what is wrong and where. Numbers are read by
:func:`onepass.sources._decimal_kernel.decimal`, keeping 18 significant digits (within one
float64 rounding of the correctly rounded value, the same float32 but for ties).

Compiled with Numba on first use and cached on disk; imported only when a libsvm block
is read.
"""

from __future__ import annotations

import numba
import numpy as np

from onepass.sources._decimal_kernel import POW10, decimal

__all__ = ["parse"]

_SPACE, _TAB, _NL, _CR, _COLON, _ZERO, _NINE = 32, 9, 10, 13, 58, 48, 57


@numba.njit(cache=True, nogil=True)
def _parse(buf, base, labels, indptr, indices, values, pow10):  # pragma: no cover - compiled
    n = buf.shape[0]
    i = 0
    row = 0
    nnz = 0
    indptr[0] = 0
    while i < n:
        while i < n and (buf[i] == _SPACE or buf[i] == _TAB):
            i += 1
        if i >= n or buf[i] == _NL or buf[i] == _CR:
            return row, nnz, False  # a blank line
        label, i, ok = decimal(buf, i, n, pow10, False)
        if not ok or row >= labels.shape[0]:
            return row, nnz, False
        labels[row] = label
        while True:
            if i < n and buf[i] != _SPACE and buf[i] != _TAB and buf[i] != _NL and buf[i] != _CR:
                return row, nnz, False  # a token runs into the next without a space
            while i < n and (buf[i] == _SPACE or buf[i] == _TAB):
                i += 1
            if i >= n or buf[i] == _NL:
                break
            if buf[i] == _CR:
                if i + 1 < n and buf[i + 1] != _NL:
                    return row, nnz, False
                i += 1
                break
            index = 0
            start = i
            while i < n and _ZERO <= buf[i] <= _NINE and i - start < 9:  # below 10^9: fits int32
                index = index * 10 + (buf[i] - _ZERO)
                i += 1
            if i == start or i >= n or buf[i] != _COLON or index < base or nnz >= indices.shape[0]:
                return row, nnz, False
            value, i, ok = decimal(buf, i + 1, n, pow10, False)
            if not ok:
                return row, nnz, False
            indices[nnz] = index - base
            values[nnz] = np.float32(value)
            nnz += 1
        i += 1  # the newline
        row += 1
        indptr[row] = nnz
    return row, nnz, True


def parse(data: bytes | memoryview, base: int, n_lines: int
          ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
    """(labels float64, indptr int64, indices int32, values float32) of a block of
    ``n_lines`` clean lines, or None when the block is not clean (the caller's other paths
    then read it). The arrays are sized by the block's ``:`` count, not its bytes."""
    buf = np.frombuffer(data, dtype=np.uint8)
    labels = np.empty(n_lines, dtype=np.float64)
    indptr = np.empty(n_lines + 1, dtype=np.int64)
    cap = int(np.count_nonzero(buf == _COLON))  # one per pair
    indices = np.empty(cap, dtype=np.int32)
    values = np.empty(cap, dtype=np.float32)
    rows, nnz, ok = _parse(buf, base, labels, indptr, indices, values, POW10)
    if not ok or rows != n_lines:
        return None
    return labels, indptr, indices[:nnz], values[:nnz]
