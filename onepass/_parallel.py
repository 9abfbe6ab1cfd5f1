"""Row-parallel work on the batch, with BLAS kept to one thread per worker.

OpenBLAS's own threading collapses on this kind of machine when the second core is
busy (a 4096x50 @ 50x300 product ran 5-10x slower with 2 BLAS threads than with 1 when
another process was running; see benchmarks/RESULTS.md). So the hot loops split a batch
into a fixed number of row blocks, run them on a small thread pool (NumPy's BLAS calls
and its array loops release the GIL), and keep BLAS to one thread meanwhile. The split
is the same on every machine, so results do not depend on the core count.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from functools import partial
from typing import Any, TypeVar

T = TypeVar("T")

N_BLOCKS = 2  # row blocks per batch: fixed, so results are the same on any machine
MIN_BLOCK_ROWS = 4096  # below this, a thread hand-off costs more than it saves

_lock = threading.Lock()
_pool: ThreadPoolExecutor | None = None
_controller: Any = None
_inline = False  # run every block on the calling thread (a worker given one core)


def run_blocks_inline(inline: bool = True) -> None:
    """Run the row blocks one after the other on the calling thread, or (False) in parallel again.

    Distributed workers each own one core: a second thread per worker would only take
    time from the other worker. The blocks (hence the results) stay the same.
    """
    global _inline
    _inline = bool(inline)


def is_inline() -> bool:
    """True when blocks run one after the other on the calling thread (see run_blocks_inline)."""
    return _inline


def _get_pool() -> ThreadPoolExecutor:
    global _pool
    with _lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=max(1, min(N_BLOCKS - 1, (os.cpu_count() or 1) - 1)),
                                       thread_name_prefix="onepass")
        return _pool


def blas_single_thread() -> AbstractContextManager[Any]:
    """A context in which BLAS runs on the calling thread only."""
    global _controller
    if _controller is None:
        from threadpoolctl import ThreadpoolController

        _controller = ThreadpoolController()
    return _controller.limit(limits=1, user_api="blas")


def row_blocks(n_rows: int) -> list[tuple[int, int]]:
    """The row blocks a batch of ``n_rows`` is split into (one if it is small)."""
    if n_rows < N_BLOCKS * MIN_BLOCK_ROWS:
        return [(0, n_rows)]
    edges = [n_rows * i // N_BLOCKS for i in range(N_BLOCKS + 1)]
    return list(zip(edges[:-1], edges[1:], strict=True))


def map_blocks(fn: Callable[[int, int], T], blocks: Sequence[tuple[int, int]]) -> list[T]:
    """``[fn(start, stop) for each block]``, the blocks run in parallel when there are several."""
    return run_together(*(partial(fn, a, b) for a, b in blocks))


def run_together(*fns: Callable[[], T]) -> list[T]:
    """``[fn() for fn in fns]``, run in parallel when there are several (independent
    pieces of one step, row blocks or not)."""
    if len(fns) == 1 or _inline:
        return [fn() for fn in fns]
    # The calling thread runs the first itself: one hand-off fewer.
    futures = [_get_pool().submit(fn) for fn in fns[1:]]
    return [fns[0]()] + [f.result() for f in futures]
