"""TorchState: the part of a neural algorithm's state that is not its network or its loss.

An algorithm subclasses :class:`TorchState`, builds its network in ``_make_network`` once
the width of the data is known, computes its loss on a batch, and calls
:meth:`TorchState._step`. The base class owns the rest:

- **Seeding.** Every parameter starts from a generator fixed by the network's shape
  (``INIT_SEED`` and the width of the data), never from torch's global one: every state
  of one configuration starts from the same network, so that averaging states trained
  apart (merge, distributed training) averages networks that share their start, as
  data-parallel SGD does. The seed drives what varies run to run, the noise a network
  draws while training (``_normal``) and any sampling, through the state's own NumPy
  generator (``rng_``, whose state goes into the checkpoint). Same data, same seed: the
  same arrays, on the CPU.
- **Arrays.** ``param__<name>`` for the parameters, ``buffer__<name>`` for the
  network's running statistics (batch norm), ``opt__<name>__<slot>`` for the optimizer's
  moments (a torch name's dots become ``__``: array names are identifiers), all float32: onepass's checkpoint format, no ``torch.save``, no pickle. Loading puts
  them back exactly, so a resumed run takes the steps the unstopped one would have.
- **Merge.** The rows-weighted average of every array, parameters and moments alike:
  the loose consistency of a parameter server (Dean et al. 2012), not the exactness of
  K-Means' or PCA's merge. Averaging networks trained apart from one start works while
  the workers have not drifted far; distributed training syncs often for that reason.
- **Parameter server** (``onepass.distributed.ParameterState``): ``parameters`` are the
  network's parameters and buffers; each worker's optimizer moments stay its own.
- **Steps.** SageMaker's optimizers by name, ``rescale_gradient`` (gradients times a
  constant) then ``clip_gradient`` (each gradient value clipped to ``[-c, c]``, as
  MXNet's), weight decay as an L2 term.
- **Device and threads** (``_device``): ``"auto"`` takes a GPU when torch sees one;
  threads follow onepass's threading setting.

Torch is imported when a network is built, never when this module is: the command line
and the model server start without it.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from onepass.errors import IncompatibleStateError
from onepass.neural._arrays import array_key, copy_into
from onepass.neural._device import import_torch, resolve_device, set_threads
from onepass.neural._optimizers import Optimizer

__all__ = ["INIT_SEED", "TorchState"]

#: seeds, with the data's width, the generator every network of a configuration starts from
INIT_SEED = 0x70C4


class TorchState:
    """Base of the neural states: parameters and moments as arrays, merge by averaging.

    Subclasses set, in their ``__init__``, ``self.optimizer``, ``self.learning_rate``,
    ``self.weight_decay``, ``self.clip_gradient``, ``self.rescale_gradient``,
    ``self.device`` and ``self.seed``, then call :meth:`_init_training`; they implement
    ``_make_network(n_features)`` (a ``torch.nn.Module``) and may override
    ``_initial_array``.

    Attributes
    ----------
    network_ : torch.nn.Module or None
        The network, built at the first batch (None before).
    optimizer_ : onepass.neural._optimizers.Optimizer or None
    n_features_ : int
        Width of the data (-1 before the first batch).
    n_rows_seen_ : int
    n_steps_ : int
        Optimizer steps taken.
    rng_ : numpy.random.Generator
        Every random draw: initial parameters, noise, subsampling.
    """

    #: learning rate of the optimizers' defaults, below which adadelta's steps are scaled
    adadelta_default_rate: float = 0.001

    def _init_training(self) -> None:
        self.network_: Any = None
        self.optimizer_: Any = None
        self.n_features_ = -1
        self.n_rows_seen_ = 0
        self.n_steps_ = 0
        self.rng_ = np.random.default_rng(self.seed)
        self._torch_device: Any = None

    # -- hooks ----------------------------------------------------------------------

    def _make_network(self, n_features: int) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def _initial_array(self, name: str, shape: tuple[int, ...], init: np.random.Generator) -> np.ndarray:
        """A parameter's starting value, drawn from ``init``: torch's default for a
        linear layer (uniform in +-1/sqrt(fan_in)) for matrices, ones for a norm's
        scale, zeros for other vectors."""
        if len(shape) >= 2:
            bound = 1.0 / math.sqrt(shape[1])
            return init.uniform(-bound, bound, size=shape).astype(np.float32)
        if "norm" in name and name.endswith("weight"):
            return np.ones(shape, np.float32)
        return np.zeros(shape, np.float32)

    # -- building -------------------------------------------------------------------

    @property
    def torch_device(self) -> Any:
        if self._torch_device is None:
            self._torch_device = resolve_device(self.device)
        return self._torch_device

    def _build(self, n_features: int, arrays: dict[str, np.ndarray] | None = None) -> None:
        """Build the network and its optimizer for ``n_features``: from the generator
        fixed by the network's shape, or from ``arrays`` (a checkpoint's, a merge's, shared
        parameters)."""
        set_threads()
        self.n_features_ = int(n_features)
        network = self._make_network(self.n_features_)
        if arrays is None:
            init = np.random.default_rng([INIT_SEED, self.n_features_])
            arrays = {array_key("param", n): self._initial_array(n, tuple(p.shape), init)
                      for n, p in network.named_parameters()}
            arrays.update({array_key("buffer", n): b.numpy() for n, b in network.named_buffers()})
        self._load_network(network, arrays)
        self.network_ = network.to(self.torch_device)
        scale = 1.0 if self.learning_rate == self.adadelta_default_rate else self.learning_rate / self.adadelta_default_rate
        self.optimizer_ = Optimizer(self.optimizer, list(self.network_.named_parameters()), self.learning_rate,
                                    self.weight_decay, adadelta_scale=scale)
        if arrays is not None and any(k.startswith("opt__") for k in arrays):
            self.optimizer_.load(arrays)

    @staticmethod
    def _load_network(network: Any, arrays: dict[str, np.ndarray]) -> None:
        """Copy the ``param__``/``buffer__`` arrays into ``network``: every one it has must be there."""
        torch = import_torch()
        with torch.no_grad():
            for prefix, named in (("param", network.named_parameters()), ("buffer", network.named_buffers())):
                for name, t in named:
                    key = array_key(prefix, name)
                    if key not in arrays:
                        raise IncompatibleStateError(f"the arrays lack {key!r}, a {prefix} of this network")
                    copy_into(t, key, arrays[key])

    # -- training -------------------------------------------------------------------

    def _normal(self, shape: tuple[int, ...]) -> Any:
        """Standard normal noise as a float32 tensor on the device, from ``rng_``."""
        torch = import_torch()
        return torch.from_numpy(self.rng_.standard_normal(shape, dtype=np.float32)).to(self.torch_device)

    def _tensor(self, array: np.ndarray) -> Any:
        torch = import_torch()
        return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32)).to(self.torch_device)

    def _step(self, loss: Any) -> None:
        """One optimizer step on ``loss``: backward, rescale, clip, step."""
        self.optimizer_.zero_grad()
        loss.backward()
        if self.rescale_gradient != 1.0 or math.isfinite(self.clip_gradient):
            for p in self.network_.parameters():
                if p.grad is None:
                    continue
                if self.rescale_gradient != 1.0:
                    p.grad.mul_(self.rescale_gradient)
                if math.isfinite(self.clip_gradient):
                    p.grad.clamp_(-self.clip_gradient, self.clip_gradient)
        self.optimizer_.step()
        self.n_steps_ += 1

    # -- arrays ---------------------------------------------------------------------

    def _live_tensors(self) -> list[tuple[str, Any]]:
        """The network's parameters and buffers and the optimizer's moments as live tensors,
        by their array names (``param__``, ``buffer__``, ``opt__``); empty before the first batch."""
        if self.network_ is None:
            return []
        return [*((array_key("param", n), p) for n, p in self.network_.named_parameters()),
                *((array_key("buffer", n), b) for n, b in self.network_.named_buffers()),
                *self.optimizer_.named_moments()]

    @staticmethod
    def network_array_specs() -> dict[str, Any]:
        """What :meth:`network_arrays` writes: parameters and optimizer moments (float32),
        buffers (float32, or int64 counts); which ones the network's shape decides, and
        loading checks every one is there."""
        from onepass.state import ArraySpec

        return {"param__*": ArraySpec(("f4",), finite=True), "opt__*": ArraySpec(("f4",)),
                "buffer__*": ArraySpec(("f4", "i8"))}

    def network_arrays(self) -> dict[str, np.ndarray]:
        """Parameters, buffers and optimizer moments as named arrays (empty before the
        first batch)."""
        out = {}
        for key, t in self._live_tensors():
            a = t.detach().cpu().numpy()
            out[key] = a.copy() if key.startswith("buffer__") else a.astype(np.float32, copy=True)  # counts stay ints
        return out

    def _training_meta(self) -> dict[str, Any]:
        return {"n_features": self.n_features_, "n_rows_seen": self.n_rows_seen_, "n_steps": self.n_steps_,
                "rng": self.rng_.bit_generator.state}

    def _restore_training(self, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        self.n_rows_seen_ = int(meta["n_rows_seen"])
        self.n_steps_ = int(meta["n_steps"])
        self.rng_.bit_generator.state = meta["rng"]
        if int(meta["n_features"]) >= 0:
            self._build(int(meta["n_features"]), arrays)

    # -- parameter server (onepass.distributed.ParameterState) -------------------------

    def parameters(self) -> dict[str, np.ndarray] | None:
        """The network's parameters and buffers (what workers share), None before the
        first batch; optimizer moments stay each worker's own."""
        if self.network_ is None:
            return None
        return {k: v for k, v in self.network_arrays().items() if not k.startswith("opt__")}

    def set_parameters(self, parameters: dict[str, np.ndarray]) -> None:
        """Take the shared arrays of :meth:`parameters`; a fresh state starts from them
        (with a fresh optimizer)."""
        if self.network_ is None:
            self._build(self._width_of(parameters), parameters)
        else:
            self._load_network(self.network_, parameters)

    def local_arrays(self) -> dict[str, np.ndarray]:
        """What a worker keeps to itself from piece to piece: the optimizer's moments (a
        fresh Adam takes steps of about the learning rate in every weight whatever the
        gradient, so a worker starting each piece afresh would add that noise each time)."""
        return {} if self.network_ is None else self.optimizer_.arrays()

    def set_local_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        """Take back :meth:`local_arrays` of the same worker's previous piece."""
        if arrays and self.network_ is not None:
            self.optimizer_.load(arrays)

    def _width_of(self, parameters: dict[str, np.ndarray]) -> int:  # pragma: no cover - abstract
        """The data's width, read from shared parameters (a subclass knows which array)."""
        raise NotImplementedError

    # -- merge ----------------------------------------------------------------------

    def _aligned(self, mine: dict[str, np.ndarray], theirs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """``theirs`` with units that mean the same as ``mine``'s in the same places (a
        network whose outputs can be permuted, as a topic model's topics, says how);
        as it is by default."""
        return theirs

    def _merge_networks(self, other: TorchState) -> None:
        """Average every array of ``self`` and ``other``, weighted by their rows seen."""
        if other.network_ is None:
            return
        if self.n_features_ != other.n_features_ and self.network_ is not None:
            raise IncompatibleStateError(
                f"cannot merge a state of {other.n_features_} features into one of {self.n_features_}")
        a, b = self.network_arrays(), other.network_arrays()
        if self.network_ is None:
            merged = b
        else:
            differ = set(a) ^ set(b)
            if differ:
                raise IncompatibleStateError(
                    f"the states hold different arrays: {sorted(differ)}; merge states of one configuration")
            b = self._aligned(a, b)
            total = self.n_rows_seen_ + other.n_rows_seen_
            wa = self.n_rows_seen_ / total if total else 0.5
            merged = {}
            for key, x in a.items():
                mean = wa * x.astype(np.float64) + (1.0 - wa) * b[key].astype(np.float64)
                merged[key] = np.rint(mean).astype(x.dtype) if x.dtype.kind in "iu" else mean.astype(x.dtype)
        self._build(other.n_features_, merged)
        self.n_steps_ = max(self.n_steps_, other.n_steps_)
