"""Watching a training run's checkpoints from outside while the run may be replacing them
(the kill-and-resume tests, and benchmarks/exactly_once.py)."""

from __future__ import annotations

import json
import time
from pathlib import Path

from onepass.io import latest_checkpoint

__all__ = ["rows_checkpointed"]


def rows_checkpointed(ckpt: Path) -> int:
    """Rows in the newest checkpoint in ``ckpt`` (0 if none), read while a run may replace it."""
    for _ in range(200):
        try:
            found = latest_checkpoint(ckpt)
            return 0 if found is None else json.loads((found / "manifest.json").read_text())["rows_seen"]
        except (OSError, ValueError):  # pruned or replaced between the two reads
            time.sleep(0.005)
    raise AssertionError(f"no readable checkpoint in {ckpt}")
