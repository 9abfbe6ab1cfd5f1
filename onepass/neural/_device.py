"""Where the network runs, and on how many threads.

``device="auto"`` takes a GPU when torch sees one, the CPU otherwise.

Torch's threads follow onepass's threading setting (``onepass._parallel``), which keeps
BLAS to one thread because its threads collapse when another process holds the second
core. Torch's OpenMP threads do the same: a NTM step on 64 documents of 2,000 words ran
at 6,900 documents/s on one thread and 590 on two while the machine had other work
(``/tmp/thr.py``, 2026-12-07); its products are small enough that one core is the
better use of a step. So torch runs on one intra-op thread, ``ONEPASS_TORCH_THREADS``
asks for more (large vocabularies, large mini-batches, a quiet machine), and a
distributed worker, which owns one core, always takes one.
"""

from __future__ import annotations

import os
from typing import Any

from onepass.errors import InvalidParameterError

__all__ = ["import_torch", "resolve_device", "set_threads"]


def import_torch() -> Any:
    """torch, or a clear error saying how to install it."""
    try:
        import torch
    except ImportError:  # pragma: no cover - the test environment has torch
        raise InvalidParameterError(
            "the neural algorithms need PyTorch: pip install 'onepass[torch]' (torch==2.13.0, a CPU build "
            "where one is on the machine)") from None
    return torch


def resolve_device(device: str) -> Any:
    """The torch device for ``device``: ``"auto"`` (a GPU when torch sees one), ``"cpu"``,
    ``"cuda"`` or ``"cuda:N"``."""
    torch = import_torch()
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cpu":
        return torch.device("cpu")
    if isinstance(device, str) and (device == "cuda" or device.startswith("cuda:")):
        if not torch.cuda.is_available():
            raise InvalidParameterError(f"device={device!r}: torch sees no GPU here; use device='auto' or 'cpu'")
        return torch.device(device)
    raise InvalidParameterError(f"device={device!r} must be 'auto', 'cpu', 'cuda' or 'cuda:N'")


def set_threads() -> int:
    """Set torch's intra-op threads from onepass's threading setting; return the number."""
    from onepass._parallel import is_inline

    torch = import_torch()
    asked = os.environ.get("ONEPASS_TORCH_THREADS", "1")
    try:
        n = max(1, int(asked))
    except ValueError:
        raise InvalidParameterError(f"ONEPASS_TORCH_THREADS={asked!r} must be a whole number >= 1") from None
    n = 1 if is_inline() else n
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return n
