"""What every ``--plot`` shares: matplotlib imported headless on first use, with the one
message when it is missing, and a figure written as a PNG and closed."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from onepass.errors import InvalidParameterError

__all__ = ["pyplot", "save_figure"]


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the Agg backend; a usage error naming the extra without it."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise InvalidParameterError("--plot needs matplotlib, in the 'plot' extra: pip install 'onepass[plot]'") from None
    return plt


def save_figure(fig: Any, path: str | os.PathLike[str]) -> Path:
    """Lay ``fig`` out, write it to ``path`` (its folder made), close it; the path."""
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    pyplot().close(fig)
    return out
