"""Large tables read at random: zeroed arrays on huge pages.

A sparse step reads the weight records of whatever features its rows hold, scattered
over a table of hundreds of MB (2^20 features x 32 models x 2 slots of float32 is
256 MB). On 4 KiB pages nearly every such read also misses the TLB, and the page walk
comes before the prefetch can start: the row-by-row loop of Linear Learner ran 2.2x
slower per thread than on 2 MiB pages, where the whole table needs ~128 TLB entries
(python /tmp/ok/huge.py 3: 259k -> 573k rows/s for 16 models, one thread).

Linux hands anonymous memory out on huge pages where asked (``madvise(MADV_HUGEPAGE)``,
transparent huge pages in "madvise" or "always" mode). Elsewhere, or where the kernel
says no, the array is an ordinary one: the same values, only slower.

Where memory is fragmented the kernel may compact it before handing out a huge page
(``/sys/kernel/mm/transparent_hugepage/defrag``), a one-time stall when the table is
first touched. ``ONEPASS_HUGE_PAGES=0`` in the environment asks for ordinary pages.
"""

from __future__ import annotations

import mmap
import os

import numpy as np

HUGE_PAGE = 2 << 20  # bytes: x86-64 and arm64 (4 KiB base pages) transparent huge pages
MIN_BYTES = 4 * HUGE_PAGE  # below this an array fits the TLB's reach anyway
LINE = 64  # bytes: a cache line


def _asked_for() -> bool:
    """Huge pages unless the environment says ``ONEPASS_HUGE_PAGES=0`` (read at each call)."""
    return os.environ.get("ONEPASS_HUGE_PAGES", "1").strip().lower() not in ("0", "false", "no", "off")


def zeros(shape: tuple[int, ...], dtype: type = np.float32) -> np.ndarray:
    """A zeroed C-contiguous array starting on a cache line; from ``MIN_BYTES`` on, on
    huge pages where the platform offers them (the memory is the mapping's: freed with
    the last array that views it)."""
    dtype = np.dtype(dtype)
    nbytes = int(np.prod(shape)) * dtype.itemsize
    if nbytes >= MIN_BYTES and hasattr(mmap, "MADV_HUGEPAGE") and _asked_for():
        try:
            # anonymous memory is zero-filled by the kernel, page by page on first touch
            mapping = mmap.mmap(-1, nbytes + HUGE_PAGE, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
            mapping.madvise(mmap.MADV_HUGEPAGE)
        except (OSError, ValueError):
            pass  # not granted: an ordinary array below
        else:
            return _aligned(np.frombuffer(mapping, dtype=np.uint8), HUGE_PAGE, shape, dtype)
    return _aligned(np.zeros(nbytes + LINE, dtype=np.uint8), LINE, shape, dtype)


def _aligned(raw: np.ndarray, align: int, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """The array of ``shape`` viewing ``raw`` (``align`` bytes longer than it needs) from
    its first byte on an ``align`` boundary."""
    skip = -raw.ctypes.data % align
    return raw[skip:skip + int(np.prod(shape)) * dtype.itemsize].view(dtype).reshape(shape)
