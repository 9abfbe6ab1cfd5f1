"""The parameter-server path: a small protocol a state implements, and the server.

A state that implements :class:`ParameterState` can train with a parameter server; no
algorithm is named here. Its *parameters* are the arrays every worker must share (a
model's weights, and whatever fixes their meaning, such as a feature normalization).
Workers pull them into a fresh local state, learn from their rows, and push the change
(parameters after minus before); the server adds each pushed change, scaled, to the
arrays it holds.

Two schedules use it:

``parameter-server``
    Asynchronous: a worker pushes after every batch and pulls again when its copy is
    more than ``max_staleness`` pushes of other workers old (stale-synchronous bound).
    Changes are added as they are (scale 1). Best when a model must see every worker's
    progress soon: many workers, sparse features (each push touches few weights), or
    states whose parameters are sums (``is_additive``, such as PCA's exact moments,
    which come out exactly right whatever the staleness).
``average``
    Periodic model averaging: a worker trains its own copy for ``sync_every_rows`` rows,
    then pushes the copy; the server moves ``1/(1+others)`` of the way to it (``others``:
    pushes of other workers since the copy's start), so copies trained side by side from
    the same parameters end as their mean and a copy trained alone is taken whole.
    Far fewer messages (one per piece instead of one per batch) and no staleness to
    tune; best on dense models with few workers and on slow networks, where pushing
    every batch would cost more than it brings. Refused for additive states (the
    average of sums is not their sum).

Exactly once
------------
Each piece of a shard pushes under its own key. When the driver merges the piece (and
records the shard's cursor) the server forgets the key; when the worker dies first,
the server subtracts everything that key pushed, so a shard resumed at its last cursor
never counts a row twice. Checkpoints save the server's parameters less the pushes of
pieces still running.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np

from onepass.errors import IncompatibleStateError, InvalidParameterError

__all__ = ["ParameterServer", "ParameterState", "check_parameter_state", "parameter_delta"]


@runtime_checkable
class ParameterState(Protocol):
    """A state that can train against a parameter server.

    ``parameters()`` returns copies of the shared arrays (a dict of name -> float
    array), or None while the state cannot share them yet (before its first rows, or
    during a warm-up that fixes a normalization). ``set_parameters(p)`` makes the
    state's shared arrays equal to ``p``; on a fresh state of the same hyperparameters
    it makes the state ready to train from ``p``. It never changes the rows counted.

    A state may also define ``is_additive`` (True when its parameters are sums over the
    rows, so that changes add up exactly), and ``local_arrays()``/``set_local_arrays(a)``
    for what a worker keeps to itself from one piece to its next (a torch state's
    optimizer moments).

    Examples
    --------
    >>> import numpy as np
    >>> from onepass import Batch, PCAState
    >>> from onepass.distributed import ParameterState
    >>> state = PCAState(2)
    >>> isinstance(state, ParameterState), state.parameters()
    (True, None)
    >>> state.update(Batch(np.arange(12, dtype=np.float32).reshape(4, 3)))
    >>> worker = PCAState(2)             # a fresh state, started from the shared arrays
    >>> worker.set_parameters(state.parameters())
    >>> worker.mean_.tolist(), worker.n_rows_seen_
    ([4.5, 5.5, 6.5], 0)
    """

    def parameters(self) -> dict[str, np.ndarray] | None: ...

    def set_parameters(self, parameters: dict[str, np.ndarray]) -> None: ...


def check_parameter_state(state: Any, strategy: str) -> None:
    """Refuse a state (or state class) that cannot train with ``strategy``, saying why."""
    cls = state if isinstance(state, type) else type(state)
    if not all(callable(getattr(cls, m, None)) for m in ("parameters", "set_parameters")):
        raise InvalidParameterError(
            f"strategy={strategy!r} needs a state implementing ParameterState (parameters, set_parameters); "
            f"{cls.__name__} does not: use strategy='merge'")
    if strategy == "average" and not isinstance(state, type) and getattr(state, "is_additive", False):
        raise InvalidParameterError(
            f"strategy='average' would divide the sums {cls.__name__} holds by the number of workers; "
            "use strategy='parameter-server' (or 'merge')")


def parameter_delta(after: dict[str, np.ndarray], before: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """``after - before``, array by array (float64), checking both have the same arrays."""
    if after.keys() != before.keys():
        raise IncompatibleStateError(f"the parameters changed names: {sorted(before)} -> {sorted(after)}")
    return {k: np.asarray(after[k], dtype=np.float64) - np.asarray(before[k], dtype=np.float64) for k in after}


class ParameterServer:
    """Holds the shared parameters; adds pushed changes; can take back a lost piece's.

    Plain Python (the driver runs it as a Ray actor). Arrays are held in float64 and
    handed out in the dtypes they came in. ``version`` counts pushes applied.
    """

    def __init__(self, parameters: dict[str, np.ndarray]) -> None:
        self._dtypes = {k: np.asarray(v).dtype for k, v in parameters.items()}
        self._params = {k: np.array(v, dtype=np.float64) for k, v in parameters.items()}
        self._pending: dict[str, dict[str, np.ndarray]] = {}
        self._pending_pushes: dict[str, int] = {}
        self._discarded: set[str] = set()
        self.version = 0
        self.n_pushes = 0
        self.n_pulls = 0
        self.n_discarded = 0  # pushes taken back with their lost piece
        self.n_refused = 0  # pushes of a piece already discarded, arriving late: never applied

    def _out(self, params: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {k: v.astype(self._dtypes[k]) for k, v in params.items()}

    def pull(self) -> tuple[dict[str, np.ndarray], int]:
        """The parameters now and the version they are at."""
        self.n_pulls += 1
        return self._out(self._params), self.version

    def push(self, key: str, delta: dict[str, np.ndarray], scale: float = 1.0, seen: int | None = None) -> int:
        """Add ``scale * delta``, remembered under ``key``; returns the version after it.

        With ``seen`` (model averaging), ``delta`` is the pusher's parameters themselves
        and ``seen`` the version its copy started from (its last pull plus its own pushes
        since). The server moves ``1 / (1 + others)`` of the way to them (never less than
        ``scale``), ``others`` counting the pushes of other workers since ``seen``: a model
        trained alone replaces the parameters, the second of two trained from the same
        parameters makes them the mean of both, a third the mean of three.
        """
        if delta.keys() != self._params.keys():
            raise IncompatibleStateError(f"pushed {sorted(delta)}, the server holds {sorted(self._params)}")
        if seen is not None:
            scale = max(scale, 1.0 / (1 + max(self.version - seen, 0)))
            delta = {k: np.asarray(v, dtype=np.float64) - self._params[k] for k, v in delta.items()}
        if key in self._discarded:
            # a dead worker's push sent before it died may arrive after the driver's discard
            # (two callers: Ray orders calls per caller only); its piece is redone elsewhere
            self.n_refused += 1
            return self.version
        acc = self._pending.setdefault(key, {k: np.zeros_like(v) for k, v in self._params.items()})
        for k, d in delta.items():
            step = np.asarray(d, dtype=np.float64) * scale
            self._params[k] += step
            acc[k] += step
        self.version += 1
        self.n_pushes += 1
        self._pending_pushes[key] = self._pending_pushes.get(key, 0) + 1
        return self.version

    def commit(self, key: str) -> None:
        """``key``'s piece is merged: its pushes stay for good."""
        self._pending.pop(key, None)
        self._pending_pushes.pop(key, None)

    def discard(self, key: str) -> None:
        """``key``'s piece was lost: take back everything it pushed."""
        self._discarded.add(key)
        acc = self._pending.pop(key, None)
        self.n_discarded += self._pending_pushes.pop(key, 0)
        if acc is not None:
            for k, v in acc.items():
                self._params[k] -= v
            self.version += 1

    def committed(self) -> dict[str, np.ndarray]:
        """The parameters without the pushes of pieces not yet merged (what a checkpoint saves)."""
        params = {k: v.copy() for k, v in self._params.items()}
        for acc in self._pending.values():
            for k, v in acc.items():
                params[k] -= v
        return self._out(params)

    def stats(self) -> dict[str, int]:
        return {"version": self.version, "pushes": self.n_pushes, "pulls": self.n_pulls,
                "pushes_discarded": self.n_discarded, "pushes_refused": self.n_refused,
                "pieces_running": len(self._pending)}
