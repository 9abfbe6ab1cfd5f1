"""SageMaker's optimizers by name, written out on torch tensors, with their moments as arrays.

=========  ===================================================================
name       step (``g``: the gradient plus ``weight_decay * p``, MXNet's ``wd``)
=========  ===================================================================
sgd        ``p -= lr * g``
adam       Adam (betas 0.9, 0.999; eps 1e-8), bias-corrected
adagrad    ``sum += g^2``, ``p -= lr * g / (sqrt(sum) + 1e-7)`` (MXNet's eps)
rmsprop    ``square_avg = 0.9 square_avg + 0.1 g^2``,
           ``p -= lr * g / (sqrt(square_avg) + 1e-8)`` (MXNet's gamma1, epsilon)
adadelta   rho 0.9, eps 1e-5 (MXNet's); MXNet's AdaDelta takes no learning rate, so
           its steps are scaled only when asked (``adadelta_scale``)
=========  ===================================================================

These are the updates of ``torch.optim``'s classes of the same names (their defaults but
for MXNet's constants), written out rather than used: ``torch.optim`` imports torch's
compiler stack when an optimizer is made (about 1.5 s of every training command on this
machine, ``python -X importtime``), and the moments here are plain named tensors, all
made at the start (zeros, step 0), so that a state's arrays are the same before and
after its first step and a merge always finds both sides' moments. They come out as
arrays named ``opt__<parameter>__<slot>`` and go back in exactly, so a resumed run takes
the very steps the unstopped run would.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from onepass.errors import IncompatibleStateError
from onepass.neural._arrays import copy_into
from onepass.neural._device import import_torch

__all__ = ["OPTIMIZERS", "Optimizer"]

#: the moments each optimizer keeps per parameter, besides its step count
SLOTS = {"sgd": (), "adam": ("exp_avg", "exp_avg_sq"), "adagrad": ("sum",), "rmsprop": ("square_avg",),
         "adadelta": ("square_avg", "acc_delta")}
OPTIMIZERS = tuple(SLOTS)
_ADAM_BETAS, _ADAM_EPS = (0.9, 0.999), 1e-8
_ADAGRAD_EPS = 1e-7
_RMSPROP_ALPHA, _RMSPROP_EPS = 0.9, 1e-8
_ADADELTA_RHO, _ADADELTA_EPS = 0.9, 1e-5


def _prefix(name: str) -> str:
    return f"opt__{name.replace('.', '__')}__"


class Optimizer:
    """One of :data:`OPTIMIZERS` over a network's named parameters."""

    def __init__(self, name: str, named_parameters: list[tuple[str, Any]], learning_rate: float,
                 weight_decay: float, adadelta_scale: float = 1.0) -> None:
        if name not in SLOTS:
            raise ValueError(f"unknown optimizer {name!r}")  # names are checked at the boundary
        torch = import_torch()
        self.name = name
        self.params = list(named_parameters)
        self.learning_rate = float(adadelta_scale if name == "adadelta" else learning_rate)
        self.weight_decay = float(weight_decay)
        self.state = {n: {"step": torch.zeros((), dtype=torch.float32, device=p.device),
                          **{slot: torch.zeros_like(p) for slot in SLOTS[name]}} for n, p in self.params}

    def zero_grad(self) -> None:
        for _, p in self.params:
            p.grad = None

    def step(self) -> None:
        torch = import_torch()
        lr = self.learning_rate
        with torch.no_grad():
            if self.name == "adam":
                self._adam_step(torch)
                return
            for n, p in self.params:
                if p.grad is None:
                    continue
                g = p.grad.add(p, alpha=self.weight_decay) if self.weight_decay else p.grad
                st = self.state[n]
                st["step"] += 1
                if self.name == "sgd":
                    p.add_(g, alpha=-lr)
                elif self.name == "adagrad":
                    st["sum"].addcmul_(g, g, value=1.0)
                    p.addcdiv_(g, st["sum"].sqrt().add_(_ADAGRAD_EPS), value=-lr)
                elif self.name == "rmsprop":
                    st["square_avg"].mul_(_RMSPROP_ALPHA).addcmul_(g, g, value=1 - _RMSPROP_ALPHA)
                    p.addcdiv_(g, st["square_avg"].sqrt().add_(_RMSPROP_EPS), value=-lr)
                else:  # adadelta
                    rho = _ADADELTA_RHO
                    st["square_avg"].mul_(rho).addcmul_(g, g, value=1 - rho)
                    delta = (st["acc_delta"] + _ADADELTA_EPS).sqrt_().div_((st["square_avg"] + _ADADELTA_EPS).sqrt_())
                    delta.mul_(g)
                    st["acc_delta"].mul_(rho).addcmul_(delta, delta, value=1 - rho)
                    p.add_(delta, alpha=-lr)

    def _adam_step(self, torch: Any) -> None:
        """Adam over every parameter at once (torch's fused kernel, the one ``torch.optim.Adam(fused=True)``
        calls): a step over the NTM bench's 440k parameters took 1.6 ms as eight tensor operations per
        parameter, which was a quarter of a step on 64 documents. Per parameter it is the update
        ``exp_avg = b1 exp_avg + (1 - b1) g``, ``exp_avg_sq = b2 exp_avg_sq + (1 - b2) g^2``,
        ``p -= lr / (1 - b1^t) * exp_avg / (sqrt(exp_avg_sq / (1 - b2^t)) + eps)``."""
        live = [(n, p) for n, p in self.params if p.grad is not None]
        if not live:
            return
        steps = [self.state[n]["step"] for n, _ in live]
        torch._foreach_add_(steps, 1)  # the kernel reads the step count after it is counted
        b1, b2 = _ADAM_BETAS
        torch._fused_adam_([p for _, p in live], [p.grad for _, p in live],
                           [self.state[n]["exp_avg"] for n, _ in live], [self.state[n]["exp_avg_sq"] for n, _ in live],
                           [], steps, lr=self.learning_rate, beta1=b1, beta2=b2, weight_decay=self.weight_decay,
                           eps=_ADAM_EPS, amsgrad=False, maximize=False)

    def named_moments(self) -> list[tuple[str, Any]]:
        """The moments and step counts as live tensors, by their array names ``opt__<parameter>__<slot>``."""
        return [(_prefix(n) + slot, value) for n, slots in self.state.items() for slot, value in slots.items()]

    def arrays(self) -> dict[str, np.ndarray]:
        """The moments and step counts, ``opt__<parameter>__<slot>`` -> float32 array."""
        return {key: value.detach().cpu().numpy().astype(np.float32, copy=True) for key, value in self.named_moments()}

    def load(self, arrays: dict[str, np.ndarray]) -> None:
        """Put back moments written by :meth:`arrays`; every ``opt__`` array must belong here."""
        expected = {_prefix(n) + slot: (n, slot) for n, slots in self.state.items() for slot in slots}
        present = {k for k in arrays if k.startswith("opt__")}
        if present != set(expected):
            raise IncompatibleStateError(
                f"the optimizer moments differ from a {self.name} optimizer's: missing "
                f"{sorted(set(expected) - present)}, unknown {sorted(present - set(expected))}")
        for key, (n, slot) in expected.items():
            copy_into(self.state[n][slot], key, arrays[key])
