"""Numbers written in text files, parsed strictly: what pyarrow's CSV parser reads, no more.

Python's ``float`` and ``int`` also take ``1_000`` (PEP 515 underscores) and digits of other
scripts (``"١٢"``); a data file holding them is more likely damaged than meant, and the fast
paths (pyarrow, the compiled libsvm parser) refuse them, so the careful line-by-line paths
refuse them too: the same file reads the same whichever path a block takes.
"""

from __future__ import annotations

import re

__all__ = ["parse_float", "parse_int"]

# ASCII decimal, optional sign, fraction and exponent; nan/inf spelled as Python does (the
# readers then say they are not allowed); spaces around, as pyarrow trims them
_FLOAT = re.compile(rb"\s*[+-]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|nan|inf|infinity)\s*", re.IGNORECASE)
_INT = re.compile(rb"\s*[+-]?\d+\s*")


def parse_float(text: bytes) -> float:
    """``float(text)`` for a plain decimal number; ValueError for anything else."""
    if _FLOAT.fullmatch(text) is None:
        raise ValueError(f"not a number: {text!r}")
    return float(text)


def parse_int(text: bytes) -> int:
    """``int(text)`` for plain decimal digits; ValueError for anything else."""
    if _INT.fullmatch(text) is None:
        raise ValueError(f"not an integer: {text!r}")
    return int(text)
