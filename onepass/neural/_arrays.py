"""Torch tensors as the named arrays of onepass's checkpoints, and back."""

from __future__ import annotations

from typing import Any

import numpy as np

from onepass.errors import IncompatibleStateError

__all__ = ["array_key", "copy_into"]


def array_key(prefix: str, name: str) -> str:
    """The checkpoint name of a torch parameter or buffer: ``param__encoder__0__weight``
    (array names are identifiers: a torch name's dots become ``__``)."""
    return f"{prefix}__{name.replace('.', '__')}"


def copy_into(tensor: Any, key: str, value: Any) -> None:
    """Copy array ``value`` into ``tensor`` (a writable copy, in the tensor's dtype), refusing
    another shape; a 0-d tensor takes a 1-element array whatever its shape (a count the file
    may hold as ``(1,)``)."""
    import torch

    array = np.array(value)
    if tensor.dim() == 0 and array.size == 1:
        array = array.reshape(())
    if tuple(array.shape) != tuple(tensor.shape):
        raise IncompatibleStateError(f"array {key!r} has shape {tuple(array.shape)}; expected {tuple(tensor.shape)}")
    tensor.copy_(torch.from_numpy(array).to(device=tensor.device, dtype=tensor.dtype))
