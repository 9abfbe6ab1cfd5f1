"""Text for people: numbers and aligned tables, one way everywhere (``evaluate``,
``inspect``, ``tune``'s leaderboard). Pure Python: ``onepass inspect`` imports it."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

__all__ = ["format_number", "format_table"]


def format_number(value: Any, digits: int = 6) -> str:
    """``value`` for people: floats to ``digits`` significant digits, large ones with
    thousands separators, NaN and missing as ``-``; anything else as ``str``."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        if 1000 <= abs(value) < 1e15:  # thousands separated, to ``digits`` significant digits or the units
            text = f"{value:,.{max(digits - len(str(int(abs(value)))), 0)}f}"
            return text.rstrip("0").rstrip(".") if "." in text else text
        return f"{value:.{digits}g}"
    return str(value)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def format_table(records: Sequence[dict[str, Any]], columns: Sequence[str] | None = None, *,
                 digits: int = 6, indent: str = "") -> str:
    """``records`` as an aligned table under a header line: numbers right-aligned, text
    left-aligned; ``columns`` (default: every key, in order of first appearance)."""
    if not records:
        return indent + "(none)"
    if columns is None:
        columns = list(dict.fromkeys(k for r in records for k in r))
    cells = [[format_number(r.get(c), digits) if c in r else "" for c in columns] for r in records]
    numeric = [all(_is_number(r.get(c)) or r.get(c) is None for r in records) for c in columns]
    widths = [max(len(str(c)), *(len(row[j]) for row in cells)) for j, c in enumerate(columns)]

    def line(values: Sequence[str]) -> str:
        parts = [v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric, strict=True)]
        return (indent + "  ".join(parts)).rstrip()

    return "\n".join([line([str(c) for c in columns]), *(line(row) for row in cells)])
