"""SageMaker's optimizers by name, on torch, and their moments as arrays.

=========  ===================================================================
name       torch optimizer (what SageMaker's MXNet engine does)
=========  ===================================================================
sgd        ``SGD`` (plain steps, no momentum)
adam       ``Adam`` (betas 0.9, 0.999; eps 1e-8)
adagrad    ``Adagrad`` (eps 1e-7, MXNet's)
rmsprop    ``RMSprop`` (alpha 0.9, eps 1e-8: MXNet's gamma1 and epsilon)
adadelta   ``Adadelta`` (rho 0.9, eps 1e-5, MXNet's; MXNet's AdaDelta takes no
           learning rate, so ``learning_rate`` scales its steps only when set
           away from its default)
=========  ===================================================================

Weight decay is an L2 term added to the gradient (MXNet's ``wd``), for every optimizer.
The moments an optimizer keeps per parameter (Adam's two averages and step count,
Adagrad's sum...) come out as arrays named ``opt__<parameter>__<slot>`` and go back in
exactly, so a resumed run takes the very steps the unstopped run would.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from onepass.errors import IncompatibleStateError
from onepass.neural._device import import_torch

__all__ = ["OPTIMIZERS", "load_optimizer_arrays", "make_optimizer", "optimizer_arrays"]

OPTIMIZERS = ("sgd", "adam", "adagrad", "rmsprop", "adadelta")


def make_optimizer(name: str, parameters: list[Any], learning_rate: float, weight_decay: float,
                   adadelta_scale: float = 1.0) -> Any:
    """A torch optimizer by SageMaker's name over ``parameters`` (a list of tensors)."""
    torch = import_torch()
    if name == "sgd":
        return torch.optim.SGD(parameters, lr=learning_rate, weight_decay=weight_decay)
    if name == "adam":
        return torch.optim.Adam(parameters, lr=learning_rate, weight_decay=weight_decay)
    if name == "adagrad":
        return torch.optim.Adagrad(parameters, lr=learning_rate, weight_decay=weight_decay, eps=1e-7)
    if name == "rmsprop":
        return torch.optim.RMSprop(parameters, lr=learning_rate, alpha=0.9, eps=1e-8, weight_decay=weight_decay)
    if name == "adadelta":
        return torch.optim.Adadelta(parameters, lr=adadelta_scale, rho=0.9, eps=1e-5, weight_decay=weight_decay)
    raise ValueError(f"unknown optimizer {name!r}")  # names are checked at the boundary


def _prefix(name: str) -> str:
    return f"opt__{name.replace('.', '__')}__"


def optimizer_arrays(optimizer: Any, names: list[str]) -> dict[str, np.ndarray]:
    """The optimizer's moments, ``opt__<parameter>__<slot>`` -> float32 array (step
    counts too, as 0-d arrays)."""
    out: dict[str, np.ndarray] = {}
    params = optimizer.param_groups[0]["params"]
    for name, p in zip(names, params, strict=True):
        for slot, value in optimizer.state.get(p, {}).items():
            if value is None:
                continue
            array = value.detach().cpu().numpy() if hasattr(value, "detach") else np.asarray(value)
            out[_prefix(name) + slot] = np.array(array, dtype=np.float32)
    return out


def load_optimizer_arrays(optimizer: Any, names: list[str], arrays: dict[str, np.ndarray]) -> None:
    """Put the moments of ``arrays`` (named as :func:`optimizer_arrays` names them) back
    into ``optimizer``; every ``opt__`` array must belong to a parameter."""
    torch = import_torch()
    params = optimizer.param_groups[0]["params"]
    used = set()
    for name, p in zip(names, params, strict=True):
        prefix = _prefix(name)
        for key in [k for k in arrays if k.startswith(prefix)]:
            slot, array = key[len(prefix):], np.asarray(arrays[key])
            if slot == "step" and array.size == 1:
                array = array.reshape(())  # a count, whatever shape the file gave it
            elif tuple(array.shape) != tuple(p.shape):
                raise IncompatibleStateError(
                    f"optimizer moment {key!r} has shape {tuple(array.shape)}, the parameter {tuple(p.shape)}")
            optimizer.state[p][slot] = torch.tensor(np.asarray(array, dtype=np.float32), device=p.device)
            used.add(key)
    stray = sorted(k for k in arrays if k.startswith("opt__") and k not in used)
    if stray:
        raise IncompatibleStateError(f"optimizer moments {stray} belong to no parameter of this network")
