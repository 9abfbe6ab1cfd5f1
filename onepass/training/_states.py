"""States built from an algorithm's name and hyperparameters, and resumed ones checked."""

from __future__ import annotations

import inspect
from typing import Any

from onepass.errors import IncompatibleStateError, InvalidParameterError
from onepass.state import State, get_algorithm

__all__ = ["check_resume", "make_state", "state_parameters"]


def state_parameters(state_cls: type) -> dict[str, inspect.Parameter]:
    """The hyperparameters a state class accepts (its keyword arguments but ``seed``)."""
    params = inspect.signature(state_cls.__init__).parameters
    return {n: p for n, p in params.items() if n not in ("self", "seed")}


def make_state(algorithm: str, params: dict[str, Any] | None, seed: int | None) -> State:
    """A fresh state of ``algorithm`` with ``params``, refusing unknown parameters."""
    algo = get_algorithm(algorithm)
    params = dict(params or {})
    known = state_parameters(algo.state)
    unknown = sorted(set(params) - set(known))
    if unknown:
        raise InvalidParameterError(
            f"unknown parameter(s) {', '.join(unknown)} for {algorithm}; valid: {', '.join(known)}"
        )
    return algo.state(**params, seed=seed)


def check_resume(manifest: dict[str, Any], algorithm: str, fresh: State) -> None:
    """Refuse to resume a checkpoint of another algorithm or other hyperparameters than
    ``fresh`` (a new state of this run) has."""
    if manifest.get("algorithm") != algorithm:
        raise IncompatibleStateError(
            f"the checkpoint holds a {manifest.get('algorithm')!r} state, this run trains {algorithm!r}; "
            "use another --checkpoint-dir or the same algorithm"
        )
    saved = dict(manifest["meta"].get("hyperparameters", {}))
    wanted = fresh.to_arrays()[0].get("hyperparameters", {})
    for name, value in wanted.items():
        if name == "seed" or name not in saved:
            continue
        if saved[name] != value:
            raise IncompatibleStateError(
                f"the checkpoint was trained with {name}={saved[name]!r}, this run asks {name}={value!r}; "
                "resume with the same hyperparameters or use another --checkpoint-dir"
            )
