"""Hyperparameter checks and the per-model grid shared by the algorithms that train many
models side by side (Linear Learner, Factorization Machines).

Model 0 of a stack takes exactly the given values; the others draw theirs log-uniformly
from a range, from a fixed generator: every state with the same settings holds the same
grid, so the states of independent workers can merge.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from onepass.errors import InvalidParameterError

__all__ = ["GRID_SEED", "draw_grid", "is_int", "is_num", "parse_range"]

GRID_SEED = 0x11EA5


def is_int(v: Any) -> bool:
    return not isinstance(v, bool) and isinstance(v, (int, np.integer))


def is_num(v: Any) -> bool:
    return not isinstance(v, bool) and isinstance(v, (int, float, np.integer, np.floating))


def parse_range(name: str, value: Any, default: tuple[float, float], *, zero_ok: bool) -> list[float]:
    """A (low, high) range from a tuple/list or a ``"low,high"`` string (the CLI form)."""
    if value == "auto":
        return [float(default[0]), float(default[1])]
    if isinstance(value, str):
        parts = value.replace(":", ",").split(",")
        try:
            value = [float(p) for p in parts]
        except ValueError:
            raise InvalidParameterError(f"{name}={value!r} must be 'auto' or 'low,high', e.g. '1e-4,1e-1'") from None
    if (not isinstance(value, (list, tuple)) or len(value) != 2 or not all(is_num(v) for v in value)):
        raise InvalidParameterError(f"{name}={value!r} must be 'auto' or two numbers (low, high)")
    lo, hi = float(value[0]), float(value[1])
    if not (0 < lo <= hi and math.isfinite(hi)) and not (zero_ok and lo == hi == 0):
        raise InvalidParameterError(f"{name}={value!r} must satisfy 0 < low <= high (they are drawn log-uniformly)")
    return [lo, hi]


def draw_grid(grid: np.random.Generator, n_models: int, exact: float, bounds: list[float]) -> np.ndarray:
    """``n_models`` values: ``exact`` for model 0, log-uniform draws in ``bounds`` for the
    others (zeros where the range is 0,0)."""
    lo, hi = bounds
    draws = np.exp(grid.uniform(np.log(lo), np.log(hi), n_models)) if lo > 0 else np.zeros(n_models)
    draws[0] = exact
    return draws


_RULES = {
    "int>=1": (lambda v: is_int(v) and v >= 1, "an integer >= 1"),
    "int>=0": (lambda v: is_int(v) and v >= 0, "an integer >= 0"),
    ">0": (lambda v: is_num(v) and 0 < v < math.inf, "a number > 0"),
    ">=0": (lambda v: is_num(v) and 0 <= v < math.inf, "a number >= 0"),
    "[0,1)": (lambda v: is_num(v) and 0 <= v < 1, "in [0, 1)"),
    "(0,1)": (lambda v: is_num(v) and 0 < v < 1, "in (0, 1)"),
    "finite": (lambda v: is_num(v) and math.isfinite(v), "a finite number"),
    "bool": (lambda v: isinstance(v, (bool, np.bool_)), "true or false"),
}


def require(rule: str, **values: Any) -> None:
    """Raise InvalidParameterError for the first of ``values`` (name=value) that breaks
    ``rule``: one of int>=1, int>=0, >0, >=0, [0,1), (0,1), finite, bool."""
    check, what = _RULES[rule]
    for name, value in values.items():
        if not check(value):
            raise InvalidParameterError(f"{name}={value!r} must be {what}")


def require_choice(name: str, value: Any, choices: Any, *, auto: bool = False) -> None:
    """Raise InvalidParameterError unless ``value`` is one of ``choices`` (or "auto")."""
    if not (auto and value == "auto") and value not in choices:
        raise InvalidParameterError(
            f"{name}={value!r} must be {'auto or ' if auto else ''}one of {', '.join(map(str, choices))}")
