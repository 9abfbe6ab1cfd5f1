"""Parsing ``NAME=RANGE`` settings into values to try (a grid) or a space to search.

Forms:

- ``2:64`` integers from 2 to 64, both included; ``2:64:2`` with a step;
- ``0.1:0.9:0.2`` numbers with a step (a grid) — without a step, a continuous range,
  only for searches;
- ``log:1e-4:1e-1`` a log-uniform continuous range (searches); ``log:1e-4:1e-1:4``
  four log-spaced values (a grid);
- ``a,b,c`` a list of values (numbers, ``true``/``false``, ``none`` or strings).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from onepass.errors import InvalidParameterError

__all__ = ["Dimension", "parse_param", "parse_value"]


def parse_value(text: str) -> Any:
    """A setting's value as the library wants it: int, float, None, bool or the string."""
    lowered = text.strip().lower()
    if lowered in ("none", "null"):
        return None
    if lowered in ("true", "false"):
        return lowered == "true"
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text.strip()


@dataclass(frozen=True)
class Dimension:
    """One tuned setting: a list of values, or a continuous range ``low..high``."""

    name: str
    values: tuple[Any, ...] | None = None
    low: float | None = None
    high: float | None = None
    log: bool = False
    integer: bool = False

    @property
    def is_grid(self) -> bool:
        return self.values is not None

    def grid(self) -> tuple[Any, ...]:
        if self.values is None:
            raise InvalidParameterError(
                f"--param {self.name}: a continuous range ({self.low}:{self.high}) has no grid; "
                f"give a step ({self.low}:{self.high}:STEP), a count (log:{self.low}:{self.high}:N) or a list"
            )
        return self.values

    def describe(self) -> str:
        if self.values is not None:
            vals = self.values
            shown = ", ".join(map(str, vals)) if len(vals) <= 6 else f"{vals[0]}, {vals[1]}, ..., {vals[-1]}"
            return f"{self.name} in [{shown}] ({len(vals)} values)"
        return f"{self.name} in {'log-' if self.log else ''}[{self.low}, {self.high}]"


def _number(name: str, text: str) -> float:
    value = parse_value(text)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidParameterError(f"--param {name}: {text!r} is not a number")
    return value


def parse_param(spec: str) -> Dimension:
    """``"NAME=RANGE"`` → :class:`Dimension`, or a clear error saying what is wrong."""
    name, sep, rng = spec.partition("=")
    name = name.strip().replace("-", "_")
    if not sep or not name or not rng.strip():
        raise InvalidParameterError(f"--param {spec!r}: write NAME=RANGE, e.g. n_clusters=2:64 or lr=log:1e-4:1e-1")
    rng = rng.strip()
    if "," in rng:
        values = tuple(parse_value(v) for v in rng.split(",") if v.strip())
        if not values:
            raise InvalidParameterError(f"--param {name}: the list {rng!r} is empty")
        return Dimension(name, values=values)
    log = rng.startswith("log:")
    parts = rng[4:].split(":") if log else rng.split(":")
    if len(parts) == 1:
        return Dimension(name, values=(parse_value(parts[0]),))
    if len(parts) not in (2, 3):
        raise InvalidParameterError(f"--param {name}: {rng!r} is not LOW:HIGH, LOW:HIGH:STEP or log:LOW:HIGH[:N]")
    low, high = _number(name, parts[0]), _number(name, parts[1])
    if high < low:
        raise InvalidParameterError(f"--param {name}: the range {low}:{high} is empty (its high end is below its low end)")
    if log:
        if low <= 0:
            raise InvalidParameterError(f"--param {name}: a log range needs low > 0, got {low}")
        if len(parts) == 3:
            count = _number(name, parts[2])
            if not isinstance(count, int) or count < 1:
                raise InvalidParameterError(f"--param {name}: the count {parts[2]!r} must be an integer >= 1")
            if count == 1:
                return Dimension(name, values=(low,))
            ratio = (high / low) ** (1 / (count - 1))
            return Dimension(name, values=tuple(float(low * ratio**i) for i in range(count)))
        return Dimension(name, low=float(low), high=float(high), log=True)
    integer = isinstance(low, int) and isinstance(high, int)
    if len(parts) == 2:
        if integer:
            return Dimension(name, values=tuple(range(low, high + 1)), low=low, high=high, integer=True)
        return Dimension(name, low=float(low), high=float(high))
    step = _number(name, parts[2])
    if not step > 0:
        raise InvalidParameterError(f"--param {name}: the step {step} must be > 0")
    if integer and isinstance(step, int):
        return Dimension(name, values=tuple(range(low, high + 1, step)), low=low, high=high, integer=True)
    count = int(math.floor((high - low) / step + 1e-9)) + 1
    return Dimension(name, values=tuple(round(low + i * step, 12) for i in range(count)))
