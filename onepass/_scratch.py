"""Work arrays kept across mini-batches.

A fresh multi-MB NumPy array each batch costs a page fault on every first touch of its
pages (glibc hands large blocks back to the kernel when they are freed). The hot loops
write their per-batch temporaries into arrays kept here instead: grown when a batch
needs more rows, never part of a state's saved arrays.
"""

from __future__ import annotations

import threading

import numpy as np


class Scratch:
    """Named work arrays, one set per thread (the row blocks of ``_parallel`` run on two
    threads at once)."""

    def __init__(self) -> None:
        self._arrays: dict[tuple[str, int, str], np.ndarray] = {}

    def get(self, name: str, shape: tuple[int, ...], dtype: type = np.float32) -> np.ndarray:
        """A C-contiguous array of ``shape`` and ``dtype`` (contents undefined: whatever the
        last user left), this thread's; kept and grown along the first axis."""
        key = (name, threading.get_ident(), np.dtype(dtype).str)
        buf = self._arrays.get(key)
        if buf is None or buf.shape[1:] != tuple(shape[1:]) or buf.shape[0] < shape[0]:
            buf = self._arrays[key] = np.empty(shape, dtype=dtype)
        return buf[:shape[0]]

    def __deepcopy__(self, memo: dict) -> Scratch:
        return Scratch()  # work arrays are not state: a copy starts with none
